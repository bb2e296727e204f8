"""The reference data the workbench pages keep per process (cases/reference.py): a change
of the catalogue, of the active boundaries or of the calendar is seen on the very next
request, because each request reads the stamps with its session."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases import reference
from cases.calendar import CITY_TZ
from cases.calendar_store import import_calendar_file
from geo.boundaries import activate_generation
from tests.helpers.workbench_helpers import (
    COMM_A,
    PASSWORD,
    case_body,
    csrf_of,
    intake_token,
    make_users,
    point_in,
)

_MAP = re.compile(r'id="case-map-data"[^>]*>(.*?)</script>', re.S)


@pytest.fixture
def desk(city_engine, city_db_url):
    """A dispatcher signed in, and one case in COMM_A."""
    make_users(city_engine)
    tok = intake_token(city_engine)
    app = create_app(settings=Settings(tiles="none", database_url=city_db_url),
                     database_url=city_db_url)
    with TestClient(app) as client:
        r = client.post("/api/v1/cases", json=case_body(*point_in(city_engine, COMM_A)),
                        headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 201, r.text
        client.case_id = r.json()["id"]  # type: ignore[attr-defined]
        page = client.get("/login")
        r = client.post("/login", data={"username": "disp", "password": PASSWORD,
                                        "csrf_token": csrf_of(page.text), "next": "/work"},
                        follow_redirects=False)
        assert r.status_code == 303
        yield client


def _renamed_generation(engine, code: str, suffix: str) -> None:
    """A new community generation, a copy of the active one with ``code`` renamed, made
    active (as a boundary import with --activate would)."""
    with engine.begin() as conn:
        old = conn.execute(text("SELECT id FROM boundary_generation "
                                "WHERE level = 'community' AND active")).scalar_one()
        new = conn.execute(text(
            "INSERT INTO boundary_generation (level, source, source_crs, feature_count) "
            "SELECT level, 'renamed copy', source_crs, feature_count FROM boundary_generation "
            "WHERE id = :old RETURNING id"), {"old": old}).scalar_one()
        conn.execute(text(
            "INSERT INTO community (generation_id, code, name, subdistrict_code, area_m2, "
            "properties, geom) SELECT :new, code, CASE WHEN code = :code THEN name || :suffix "
            "ELSE name END, subdistrict_code, area_m2, properties, geom FROM community "
            "WHERE generation_id = :old"), {"new": new, "old": old, "code": code, "suffix": suffix})
        activate_generation(conn, new)


def _map_data(html: str) -> dict:
    m = _MAP.search(html)
    assert m, "the case page has no map data"
    return json.loads(m.group(1))


def test_filter_choices_follow_the_catalogue_and_the_boundaries(desk, city_engine):
    before = desk.get("/work/queue/dispatch")
    assert before.status_code == 200
    assert "0508 商业噪音" in before.text
    assert ">清除</a>" in before.text  # the filter form's clear link (was a dict method's repr)
    with city_engine.begin() as conn:
        conn.execute(text("UPDATE category SET name_zh = '夜间施工噪声(新)' WHERE code = '0508'"))
    after = desk.get("/work/queue/dispatch")
    assert "0508 夜间施工噪声(新)" in after.text
    # The same page again: kept, still the new name.
    assert "0508 夜间施工噪声(新)" in desk.get("/work/queue/dispatch").text

    _renamed_generation(city_engine, COMM_A, "·新界")
    page = desk.get("/work/queue/dispatch").text
    assert re.search(rf'value="{COMM_A}"[^>]*>{COMM_A} [^<]*·新界<', page), "old community names"


def test_case_page_outlines_and_calendar_follow_changes(desk, city_engine):
    case_id = desk.case_id
    first = _map_data(desk.get(f"/work/cases/{case_id}").text)
    assert first["community"] and not first["community"]["name"].endswith("·新界")

    _renamed_generation(city_engine, COMM_A, "·新界")
    second = _map_data(desk.get(f"/work/cases/{case_id}").text)
    assert second["community"]["name"] == first["community"]["name"] + "·新界"

    # A due time five days on; then every weekday before it becomes a holiday.
    with city_engine.begin() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        conn.execute(text('UPDATE "case" SET current_due_at = :due WHERE id = :id'),
                     {"due": now + timedelta(days=5), "id": case_id})
    left = re.compile(r'class="due tone-[a-z]+"[^>]*>[^<]*· ([^<]+)</span>')
    shown = left.search(desk.get(f"/work/cases/{case_id}").text)
    assert shown, "no time left on the case page"
    today = now.astimezone(CITY_TZ).date()
    days = [today + timedelta(days=i) for i in range(0, 6)]
    rows = [f"{d.isoformat()},holiday,test" for d in days if d.weekday() < 5]
    assert rows
    path = _write_calendar(rows)
    with city_engine.begin() as conn:
        report = import_calendar_file(conn, path, commit=True, years={d.year for d in days})
        assert report.ok and report.committed, report.summary_lines()
    again = left.search(desk.get(f"/work/cases/{case_id}").text)
    assert again and again.group(1) != shown.group(1), (shown.group(1), again.group(1))


def _write_calendar(rows: list[str]):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "holidays.csv"
    path.write_text("date,kind,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_stamps_change_with_each_kind_of_data(city_engine):
    """The stamps alone: each kind of change moves its own stamp (and a read with nothing
    changed gives equal stamps, so the pages' entries are reused)."""
    with city_engine.connect() as conn:
        a = reference.read_stamps(conn)
        assert reference.read_stamps(conn) == a
    with city_engine.begin() as conn:
        conn.execute(text("UPDATE category SET duplicate_radius_m = 77 WHERE code = '0508'"))
    with city_engine.connect() as conn:
        b = reference.read_stamps(conn)
        assert b.categories != a.categories and b.communities == a.communities
        assert reference.duplicate_rule(conn, b, "0508", 50.0, 3) == (77.0, 1)
    _renamed_generation(city_engine, COMM_A, "·新界")
    with city_engine.connect() as conn:
        c = reference.read_stamps(conn)
        assert c.communities != b.communities and c.categories == b.categories
