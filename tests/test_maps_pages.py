"""Map pages and their JSON over HTTP, on the sample city with cases inserted by SQL.

What is checked: auth (header or workbench session, roles, a community officer's
scope), no CDN in any page, the viewport endpoint (points vs grid, filters, GCJ-02 shift),
popups without reporter data, the case map, the hotspot page and POI JSON/CSV, the CLI files.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from geo.coords import wgs84_to_gcj02
from maps.assets import REQUIRED
from tests.helpers.map_pages import CITY_BBOX, make_token, seed_cases

EXTERNAL = re.compile(r"""(?:src|href)=["'](?:https?:)?//""", re.I)


@pytest.fixture
def app_client(city_engine, city_db_url):
    facts = seed_cases(city_engine)
    settings = Settings(tiles="none", database_url=city_db_url)
    app = create_app(settings=settings, database_url=city_db_url)
    with TestClient(app) as client:
        client.facts = facts  # type: ignore[attr-defined]
        client.tokens = {r: make_token(city_engine, r) for r in ("dispatcher", "planner", "intake")}  # type: ignore[attr-defined]
        yield client


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}



def test_dispatch_page_needs_token_and_role(app_client):
    # a person without a session is sent to sign in; a machine's bad token is a 401
    r = app_client.get("/maps/dispatch", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fmaps%2Fdispatch"
    assert app_client.get("/maps/api/cases?bbox=1,1,2,2").status_code == 401
    assert app_client.get("/maps/dispatch", headers=_h("cg_wrong")).status_code == 401
    assert app_client.get("/maps/dispatch", headers=_h(app_client.tokens["intake"])).status_code == 403
    r = app_client.get("/maps/dispatch", headers=_h(app_client.tokens["dispatcher"]))
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]


def test_token_in_the_url_no_longer_signs_in(app_client):
    # The demo's ?token= hand-off is gone: a token in an address leaks into history and logs.
    tok = app_client.tokens["dispatcher"]
    r = app_client.get(f"/maps/dispatch?token={tok}&lang=en", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert "set-cookie" not in r.headers


def test_pages_reference_no_outside_host_and_all_assets_are_served(app_client):
    h = _h(app_client.tokens["dispatcher"])
    html = app_client.get("/maps/dispatch", headers=h).text
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)[:3]
    assert "cdn" not in html.lower()
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert app_client.get(src).status_code == 200, src
    for pkg, names in REQUIRED.items():
        for name in names:
            r = app_client.get(f"/static/vendor/{pkg}/{name}")
            assert r.status_code == 200, (pkg, name)
            if name.endswith(".css"):
                assert "//netdna" not in r.text and "cdn" not in r.text.lower()
    assert app_client.get("/static/vendor/leaflet/../../package.json").status_code == 404
    assert app_client.get("/static/vendor/nope/x.js").status_code == 404
    assert app_client.get("/static/vendor/leaflet/leaflet.js.map").status_code == 404


def test_viewport_points_filters_and_overdue(app_client):
    h = _h(app_client.tokens["dispatcher"])
    r = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}", headers=h).json()
    assert r["mode"] == "points" and r["total"] == app_client.facts["open"]
    assert all(p[3] != "closed" for p in r["points"])
    over = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}&state=overdue", headers=h).json()
    assert over["total"] == app_client.facts["overdue"] and all(p[4] == 1 for p in over["points"])
    cat = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}&category=0101&state=closed&state=new", headers=h).json()
    assert 0 < cat["total"] < r["total"]
    # A box with no cases, and a bad box.
    empty = app_client.get("/maps/api/cases?bbox=100,10,100.1,10.1", headers=h).json()
    assert empty == {"mode": "points", "total": 0, "points": []}
    bad = app_client.get("/maps/api/cases?bbox=1,2,3", headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "bbox"
    assert app_client.get("/maps/api/cases?bbox=5,5,4,6", headers=h).status_code == 422
    assert app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}&state=lost", headers=h).json()["field"] == "state"


@pytest.mark.parametrize("url", [
    f"/maps/api/cases?bbox={CITY_BBOX}&date_to=0", f"/maps/api/cases?bbox={CITY_BBOX}&date_from=20261101",
    "/maps/dispatch?date_to=0", "/maps/hotspots?date_from=1700000000", "/api/v1/hotspots/pois?date_to=0",
])
def test_a_date_filter_given_as_a_number_is_refused(app_client, url):
    # Found by schemathesis: pydantic read date_to=0 as Unix time, 1970-01-01, and the map
    # quietly showed no case at all (20261101, a date without dashes, became a day in 1970).
    r = app_client.get(url, headers=_h(app_client.tokens["dispatcher"]))
    assert r.status_code == 422, r.text
    field = url.split("&")[-1].split("?")[-1].split("=")[0]
    assert r.json()["field"] == field and "YYYY-MM-DD" in r.json()["detail"]


def test_a_date_filter_as_a_date_still_filters(app_client):
    h = _h(app_client.tokens["dispatcher"])
    every = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}", headers=h).json()["total"]
    none = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}&date_to=1999-12-31", headers=h).json()
    assert every > 0 and none["total"] == 0


def test_many_cases_come_back_as_a_grid(app_client, monkeypatch):
    from geo import map_data

    monkeypatch.setattr(map_data, "MAX_POINTS", 50)
    monkeypatch.setattr(map_data.cases_in_bbox, "__defaults__", (50, map_data.GRID_COLUMNS))
    r = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}", headers=_h(app_client.tokens["dispatcher"])).json()
    assert r["mode"] == "cells"
    assert sum(c[2] for c in r["cells"]) == app_client.facts["open"] == r["total"]
    assert sum(c[3] for c in r["cells"]) == app_client.facts["overdue"]


def test_popup_has_no_reporter_and_links_record(app_client):
    h = _h(app_client.tokens["planner"])
    pts = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}", headers=h).json()["points"]
    d = app_client.get(f"/maps/api/cases/{pts[0][0]}?lang=en", headers=h).json()
    blob = str(d)
    assert "张三" not in blob and "13800000000" not in blob
    assert d["record_url"] == f"/work/cases/{pts[0][0]}" and d["case_no"].startswith("CG")
    assert d["state_label"] in ("New", "Dispatched", "Handled")
    assert app_client.get("/maps/api/cases/999999", headers=h).status_code == 404


def test_community_officer_sees_only_own_communities(app_client, city_engine):
    with city_engine.connect() as conn:
        code = conn.execute(text('SELECT community_code FROM "case" WHERE closed_at IS NULL LIMIT 1')).scalar_one()
        own = conn.execute(text('SELECT count(*) FROM "case" WHERE community_code = :c AND closed_at IS NULL '
                                "AND status <> 'closed'"), {"c": code}).scalar_one()
        other = conn.execute(text('SELECT id FROM "case" WHERE community_code <> :c LIMIT 1'), {"c": code}).scalar_one()
    h = _h(make_token(city_engine, "community_officer", [code]))
    r = app_client.get(f"/maps/api/cases?bbox={CITY_BBOX}", headers=h).json()
    assert r["total"] == own
    assert app_client.get(f"/maps/api/cases/{other}", headers=h).status_code == 404
    assert app_client.get(f"/maps/cases/{other}", headers=h).status_code == 404
    page = app_client.get("/maps/dispatch", headers=h).text
    assert f'"{code}"' in page
    assert app_client.get("/maps/hotspots", headers=h).status_code == 403


def test_gcj02_tiles_shift_overlays_and_viewport(city_engine, city_db_url):
    seed_cases(city_engine, 3)
    app = create_app(settings=Settings(tiles="https://tiles.intranet/{z}/{x}/{y}.png", tiles_crs="gcj02"),
                     database_url=city_db_url)
    with TestClient(app) as client:
        h = _h(make_token(city_engine, "dispatcher"))
        plain = None
        with city_engine.connect() as conn:
            cid, lon, lat = conn.execute(text('SELECT id, ST_X(geom), ST_Y(geom) FROM "case" WHERE closed_at IS NULL '
                                              "AND status <> 'closed' ORDER BY id LIMIT 1")).one()
        gx, gy = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
        # The viewport box is in GCJ-02; a tight box around the shifted point finds the case.
        box = f"{gx[0] - 1e-4},{gy[0] - 1e-4},{gx[0] + 1e-4},{gy[0] + 1e-4}"
        r = client.get(f"/maps/api/cases?bbox={box}", headers=h).json()
        plain = [p for p in r["points"] if p[0] == cid]
        assert plain and plain[0][1] == pytest.approx(gx[0], abs=2e-6) and plain[0][2] == pytest.approx(gy[0], abs=2e-6)
        # The unshifted WGS-84 location is ~500 m away: a tight box there does not find it.
        box = f"{lon - 1e-4},{lat - 1e-4},{lon + 1e-4},{lat + 1e-4}"
        assert cid not in [p[0] for p in client.get(f"/maps/api/cases?bbox={box}", headers=h).json()["points"]]
        page = client.get("/maps/dispatch", headers=h).text
        assert "tiles.intranet" in page
        # tiles=none is allowed per page; any other override is not
        assert "tiles.intranet" not in client.get("/maps/dispatch?tiles=none", headers=h).text
        assert client.get("/maps/dispatch?tiles=https://evil/{z}/{x}/{y}", headers=h).status_code == 422


def test_case_map_shows_community_alternates_and_duplicates(app_client, city_engine):
    with city_engine.begin() as conn:
        c = conn.execute(text('SELECT id, community_code, ST_X(geom) x, ST_Y(geom) y, category_code FROM "case" '
                              "ORDER BY id LIMIT 1")).mappings().one()
        alt = conn.execute(text("SELECT code, name FROM community WHERE code <> :c LIMIT 1"), {"c": c["community_code"]}).one()
        conn.execute(text("UPDATE \"case\" SET near_boundary = true, route_alternates = CAST(:a AS jsonb) WHERE id = :id"),
                     {"id": c["id"], "a": f'[{{"code": "{alt[0]}", "name": "{alt[1]}", "distance_m": 12.5}}]'})
        # Two duplicates 20 m away, same category, same day; one far away; one other category.
        for dx, cat in ((0.0002, c["category_code"]), (-0.0002, c["category_code"]), (0.05, c["category_code"]),
                        (0.0001, "0201")):
            conn.execute(text('INSERT INTO "case" (channel, category_code, reported_at, geom, case_no) SELECT '
                              "'app', :cat, reported_at, ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'DUP' || :cat || :dx "
                              'FROM "case" WHERE id = :id'),
                         {"cat": cat, "x": c["x"] + dx, "y": c["y"], "id": c["id"], "dx": str(dx)})
    h = _h(app_client.tokens["dispatcher"])
    html = app_client.get(f"/maps/cases/{c['id']}?lang=en", headers=h).text
    assert alt[0] in html and c["community_code"] in html
    assert f"DUP{c['category_code']}0.0002" in html and f"DUP{c['category_code']}-0.0002" in html
    assert f"DUP{c['category_code']}0.05" not in html and "DUP0201" not in html
    assert "Near a boundary" in html and "张三" not in html and "13800000000" not in html


def test_nearby_cases_keep_to_the_radius_and_window_at_their_edges(city_engine):
    """The index box must never cut off a case the exact test keeps: cases just inside and
    just outside 50 m east, west, north and south (metres of EPSG:4527, the ones the list
    shows), and just inside and outside the 7-day window."""
    from geo.map_data import nearby_cases

    with city_engine.begin() as conn:
        base = conn.execute(text(
            """INSERT INTO "case" (channel, category_code, reported_at, geom, case_no)
               SELECT 'app', '0508', timestamptz '2025-06-01 12:00+08',
                      ST_SetSRID(ST_MakePoint(117.16, 35.09), 4326), 'BASE'
               RETURNING id""")).scalar_one()
        placed = {}
        spots = {"e49": (49.9, 0, 0), "e51": (50.1, 0, 0), "w49": (-49.9, 0, 0), "n49": (0, 49.9, 0),
                 "n51": (0, 50.1, 0), "s49": (0, -49.9, 0), "d7": (10, 0, 7 * 86400),
                 "d7late": (10, 0, 7 * 86400 + 1), "d7early": (10, 0, -7 * 86400)}
        for name, (dx, dy, secs) in spots.items():
            placed[name] = conn.execute(text(
                """INSERT INTO "case" (channel, category_code, reported_at, geom, case_no)
                   SELECT 'app', '0508', reported_at + make_interval(secs => :s),
                          ST_Transform(ST_Translate(ST_Transform(geom, 4527), :dx, :dy), 4326), :name
                   FROM "case" WHERE id = :b RETURNING id"""),
                {"s": secs, "dx": dx, "dy": dy, "name": name, "b": base}).scalar_one()
        found = {r["id"]: r["distance_m"] for r in nearby_cases(conn, base, 50.0, 7)}
    names = {v: k for k, v in placed.items()}
    assert sorted(names[i] for i in found) == ["d7", "d7early", "e49", "n49", "s49", "w49"]
    assert found[placed["e49"]] == pytest.approx(49.9, abs=1e-6)
    assert found[placed["n49"]] == pytest.approx(49.9, abs=1e-6)


def test_hotspot_page_and_poi_endpoints(app_client):
    h = _h(app_client.tokens["planner"])
    assert app_client.get("/maps/hotspots", headers=_h(app_client.tokens["intake"])).status_code == 403
    r = app_client.get("/maps/hotspots?lang=en&hour_from=20&hour_to=6&rings=300,600", headers=h)
    assert r.status_code == 200, r.text
    html = r.text
    for needle in ("Complaint heatmap", "Significant hot/cold spots (Gi*)", "Schools", "Markets",
                   "Hour-of-day animation", "Cases per community", "Places ranked by complaints", "300 m", "600 m"):
        assert needle in html, needle
    assert not EXTERNAL.findall(html)
    assert len(html) < 2_000_000
    zh = app_client.get("/maps/hotspots", headers=h).text
    # layer names reach the page JSON-escaped; panel texts as HTML
    assert json.dumps("投诉热力图") in zh and "重点场所投诉排名" in zh and "热点 99%" in zh
    j = app_client.get("/api/v1/hotspots/pois?rings=200,500&sort=count&ring=500", headers=h).json()
    counts = [p["rings"][1]["cases"] for p in j["pois"]]
    assert counts == sorted(counts, reverse=True) and j["pois"][0]["rank"] == 1
    assert all(p["rings"][0]["cases"] <= p["rings"][1]["cases"] for p in j["pois"])
    assert j["city_cases"] == app_client.facts["total"]  # statistics count closed cases too
    c = app_client.get("/api/v1/hotspots/pois?rings=200,500&sort=count&ring=500&format=csv", headers=h)
    assert c.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(c.text.lstrip("\ufeff"))))
    assert [int(r["cases_500m"]) for r in rows] == counts
    bad = app_client.get("/api/v1/hotspots/pois?rings=500,200", headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "rings"
    assert app_client.get("/api/v1/hotspots/pois?ring=333", headers=h).json()["field"] == "ring"
    assert app_client.get("/maps/hotspots?cell_m=3", headers=h).json()["field"] == "cell_m"


def test_cli_writes_standalone_files(city_engine, city_db_url, tmp_path: Path):
    from typer.testing import CliRunner

    from casegrid.cli import app

    seed_cases(city_engine, 4)
    runner = CliRunner()
    out = tmp_path / "d.html"
    res = runner.invoke(app, ["map", "dispatch", "--out", str(out), "--database-url", city_db_url, "--tiles", "none",
                              "--lang", "en"])
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    assert not EXTERNAL.findall(html) and "d_files/leaflet/leaflet.js" in html
    assert (tmp_path / "d_files" / "leaflet" / "images" / "layers.png").exists()
    assert '"summaries"' in html and "张三" not in html
    out2 = tmp_path / "h.html"
    res = runner.invoke(app, ["map", "hotspots", "--out", str(out2), "--database-url", city_db_url, "--tiles", "none",
                              "--hours", "20-6", "--category", "0508"])
    assert res.exit_code == 0, res.output
    assert "重点场所投诉排名" in out2.read_text(encoding="utf-8")
    res = runner.invoke(app, ["map", "hotspots", "--out", str(out2), "--database-url", city_db_url, "--hours", "x"])
    assert res.exit_code == 2 and "hours" in res.output
