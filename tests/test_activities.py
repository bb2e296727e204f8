"""The activities ledger: recorded through the API with field-level refusals, counted by
month, type, community and subdistrict (a joint activity once in every total), imported from
a spreadsheet as a dry run, committed, re-run without doubles, rejects with line numbers."""

from __future__ import annotations

import csv
import re
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from cases.activities import activity_counts
from cases.activity_import import import_activities, load_mapping
from tests.helpers.ledger import COMM_A, COMM_B, bearer, role_tokens

MAPPING = load_mapping(__import__("cases").__path__[0] + "/activities_zh.toml")
MAY = (date(2026, 5, 1), date(2026, 5, 31))


@pytest.fixture
def api(city_db_url, city_engine):
    with city_engine.begin() as conn:
        tokens = role_tokens(conn, ("dispatcher", "planner"))
    with TestClient(create_app(database_url=city_db_url)) as client:
        yield client, tokens


def post(client, tokens, who, **body):
    return client.post("/api/v1/activities", json=body, headers=bearer(tokens, who))


GOOD = {"started_at": "2026-05-20T09:00:00+08:00", "kind": "进校园", "title": "垃圾分类进校园",
        "communities": [COMM_A], "place": "实验小学", "staff": 3, "volunteers": 12,
        "reached": 450, "lon": 117.165, "lat": 35.087}


def test_record_list_and_refusals(api, city_engine):
    client, tokens = api
    r = post(client, tokens, "officer_a", **GOOD)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "school" and r.json()["communities"] == [COMM_A]
    assert r.json()["lon"] == pytest.approx(117.165)
    r = post(client, tokens, "officer_a", **{**GOOD, "communities": [COMM_B]})
    assert r.status_code == 403 and "own communities" in r.text
    r = post(client, tokens, "planner", **GOOD)
    assert r.status_code == 403
    for bad, field in (({"kind": "party"}, "kind"), ({"title": ""}, "title"),
                       ({"reached": -3}, "reached"), ({"reached": 2.5}, "reached"),
                       ({"communities": ["999"]}, "communities"),
                       ({"started_at": "2026-05-20 09:00"}, "started_at"),
                       ({"kind": "other"}, "kind_name"), ({"lat": 95}, "lat")):
        r = post(client, tokens, "dispatcher", **{**GOOD, **bad})
        assert r.status_code == 422, (bad, r.text)
        assert field in r.text, (bad, r.text)
    with city_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM activity")).scalar_one() == 1
    r = client.get("/api/v1/activities?from=2026-05-01&to=2026-05-31",
                   headers={"Authorization": f"Bearer {tokens['planner']}"})
    assert r.status_code == 200 and [a["title"] for a in r.json()] == ["垃圾分类进校园"]


def test_counts_count_a_joint_activity_once_in_every_total(api, city_engine):
    client, tokens = api
    post(client, tokens, "dispatcher", **GOOD)
    post(client, tokens, "dispatcher", **{**GOOD, "kind": "volunteer", "title": "联合清扫",
                                          "communities": [COMM_A, COMM_B], "reached": 100})
    post(client, tokens, "dispatcher", **{**GOOD, "title": "六月", "reached": 7,
                                          "started_at": "2026-06-02T09:00:00+08:00"})
    with city_engine.connect() as conn:
        counts = activity_counts(conn, *MAY)
    assert counts["total"] == {"held": 2, "reached": 550}
    by_comm = {r["key"]: (r["held"], r["reached"]) for r in counts["by_community"]}
    assert by_comm == {COMM_A: (2, 550), COMM_B: (1, 100)}
    by_kind = {r["key"]: r["held"] for r in counts["by_kind"]}
    assert by_kind == {"school": 1, "volunteer": 1}
    assert counts["by_month"] == [{"key": "2026-05", "held": 2, "reached": 550}]
    # COMM_A and COMM_B lie in two subdistricts: each counts the joint activity once.
    by_sd = {r["key"]: r["held"] for r in counts["by_subdistrict"]}
    assert sum(by_sd.values()) == 3 and max(by_sd.values()) == 2
    r = client.get("/api/v1/activities/stats?from=2026-05-01&to=2026-05-31",
                   headers={"Authorization": f"Bearer {tokens['planner']}"})
    assert r.status_code == 200 and r.json()["total"] == {"held": 2, "reached": 550}


HEADER = ["活动编号", "活动时间", "活动类型", "活动名称", "社区", "地点", "经度", "纬度",
          "工作人员数", "志愿者数", "覆盖人数", "备注"]


def write_sheet(path, rows):
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def community_name(engine, code):
    with engine.connect() as conn:
        return conn.execute(text("SELECT name FROM community WHERE code = :c"), {"c": code}).scalar_one()


def test_import_dry_run_commit_rerun_and_rejects(city_engine, tmp_path):
    name_a = community_name(city_engine, COMM_A)
    name_b = community_name(city_engine, COMM_B)
    sheet = write_sheet(tmp_path / "activities.csv", [
        ["A-1", "2026-05-03 09:00", "垃圾分类宣传", "小区分类宣传", name_a, "广场", "", "", "2", "5", "120", ""],
        ["A-2", "2026-05-10 15:30", "进公园", "公园宣传", f"{name_a}、{name_b}", "荆河公园", "117.16", "35.09", "1", "8", "300", "联合"],
        ["A-3", "2026-05-11 15:30", "开会", "不是活动类型", name_a, "", "", "", "1", "0", "10", ""],
        ["A-4", "2026/05/12", "志愿服务", "日期格式错", name_a, "", "", "", "1", "0", "10", ""],
        ["", "2026-05-13 08:00", "志愿服务", "无编号的清扫", name_b, "", "", "", "3", "20", "80", ""],
    ])
    with city_engine.begin() as conn:
        dry = import_activities(conn, sheet, MAPPING)
    assert (dry.rows, dry.new, dry.stored, dry.committed) == (5, 3, 0, False)
    assert [(line, field) for line, field, _ in dry.rejected] == [(4, "kind"), (5, "started_at")]
    with city_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM activity")).scalar_one() == 0
    with dry.reject_file.open(encoding="utf-8-sig") as fh:
        rejected = list(csv.reader(fh))
    assert [r[0] for r in rejected[1:]] == ["4", "5"] and rejected[1][2] == "A-3"

    with city_engine.begin() as conn:
        done = import_activities(conn, sheet, MAPPING, commit=True)
    assert (done.new, done.stored) == (3, 3)
    with city_engine.begin() as conn:
        again = import_activities(conn, sheet, MAPPING, commit=True)
    assert (again.new, again.stored, again.already_present) == (0, 0, 3)
    with city_engine.connect() as conn:
        counts = activity_counts(conn, *MAY)
        joint = conn.execute(text(
            "SELECT count(*) FROM activity_community ac JOIN activity a ON a.id = ac.activity_id "
            "WHERE a.import_key = 'id:A-2'")).scalar_one()
    assert counts["total"] == {"held": 3, "reached": 500} and joint == 2


def test_synthetic_year_is_marked_and_loads_once(city_engine):
    from casegrid.demo.activities import SYNTHETIC_NOTE, load_sample_activities

    with city_engine.begin() as conn:
        first = load_sample_activities(conn, date(2025, 11, 1))
    with city_engine.begin() as conn:
        again = load_sample_activities(conn, date(2025, 11, 1))
        rows = conn.execute(text(
            "SELECT count(*) AS n, count(*) FILTER (WHERE source = 'synthetic' AND note = :note) "
            "AS marked, min(started_at) AS lo, max(started_at) AS hi, sum(reached) AS reached, "
            "count(*) FILTER (WHERE geom IS NULL) AS unplaced FROM activity"),
            {"note": SYNTHETIC_NOTE}).one()
        kinds = dict(conn.execute(text("SELECT kind, count(*) FROM activity GROUP BY kind")).all())
    assert first == rows.n and again == 0
    assert 450 <= rows.n <= 600 and rows.marked == rows.n and rows.unplaced == 0
    assert rows.lo.date() >= date(2025, 11, 1) and rows.hi.date() <= date(2026, 10, 31)
    assert set(kinds) >= {"school", "volunteer", "sorting_outreach", "plaza"}
    assert rows.reached > 100_000  # the programme reports 900,000+ people over its years


def test_evaluation_map_and_the_hotspot_layer(api, city_engine):
    from casegrid.demo.activities import load_sample_activities

    client, tokens = api
    with city_engine.begin() as conn:
        load_sample_activities(conn, date(2025, 11, 1), days=60)
    auth = {"Authorization": f"Bearer {tokens['planner']}"}
    r = client.get("/maps/evaluation?from=2025-11-01&to=2025-12-31", headers=auth)
    assert r.status_code == 200, r.text
    assert "城市管理岗考核" in r.text and "cg-evaluation" in r.text
    r = client.get("/maps/evaluation?from=2025-11-01&to=2025-12-31&lang=en", headers=auth)
    assert "Evaluation of community posts" in r.text
    r = client.get("/maps/hotspots?date_from=2025-11-01&date_to=2025-12-31", headers=auth)
    assert r.status_code == 200
    # the layer's name, as folium writes it into the layer control (JSON-escaped)
    assert "社区活动 (".encode("unicode_escape").decode() in r.text or "社区活动 (" in r.text


def test_workbench_form_offers_the_posts_key_places(city_db_url, city_engine):
    """The form's place can be a point of interest inside the officer's own communities;
    the activity takes the POI's point and the list shows its name."""
    from geo.pois import pois_in
    from tests.helpers.workbench_helpers import PASSWORD, csrf_of, make_users

    make_users(city_engine)
    with city_engine.connect() as conn:
        own = pois_in(conn, [COMM_A])
        other = [p for p in pois_in(conn, None) if p["community_code"] != COMM_A]
    assert own and other, "the sample city has points of interest in and out of COMM_A"
    with TestClient(create_app(database_url=city_db_url)) as client:
        page = client.get("/login")
        client.post("/login", data={"username": "off", "password": PASSWORD,
                                    "csrf_token": csrf_of(page.text), "next": "/work"})
        page = client.get("/work/activities?month=2026-05")
        offered = {int(v) for v in re.findall(r'<option value="(\d+)"', page.text)}
        assert {p["id"] for p in own} <= offered
        assert not offered & {p["id"] for p in other}  # another community's places: not offered
        poi = own[0]
        form = {"csrf_token": csrf_of(page.text), "started_at": "2026-05-21T15:00",
                "kind": "school", "title": "安全宣传", "communities": COMM_A,
                "poi_id": str(poi["id"]), "reached": "120"}
        r = client.post("/work/activities", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert poi["name"] in client.get(r.headers["location"]).text
        r = client.post("/work/activities", data={**form, "poi_id": "x1"})
        assert r.status_code == 422 and "poi_id" in r.text
    with city_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT a.poi_id, ST_Covers(ST_Buffer(p.geom::geography, 1)::geometry, a.geom) "
            "FROM activity a JOIN poi p ON p.id = a.poi_id")).one()
    assert row == (poi["id"], True)
