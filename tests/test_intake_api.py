"""Case intake over HTTP against the sample city on a real PostGIS: routing in every CRS,
exactly-once registration (also under a race), possible duplicates, list filters, keyset
pagination, GeoJSON, and what each role may see.

Expected communities are computed here straight from the community polygons with PostGIS
(ST_Covers / ST_Distance), never by calling the router under test; the helpers shared with
the other intake test files (the ``api`` fixture among them) are in tests/helpers/intake_api.py.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cases.intake import DUPLICATES_SQL, NewCase, create_case
from cases.tokens import Principal, create_token
from cases.vocabulary import CHANNELS
from geo.coords import wgs84_to_bd09, wgs84_to_gcj02
from tests.helpers.intake_api import body, covering_communities, interior_points

# --- helpers of this file alone ------------------------------------------------------------


def shared_vertex(engine: Engine) -> tuple[float, float]:
    """A vertex of one community's outline that another community also covers."""
    sql = """
    SELECT ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat
    FROM community a JOIN boundary_generation g ON g.id = a.generation_id AND g.active
    CROSS JOIN LATERAL ST_DumpPoints(a.geom) d
    JOIN community b ON b.generation_id = a.generation_id AND b.code > a.code
     AND ST_Covers(b.geom, d.geom)
    ORDER BY a.code, d.path LIMIT 1
    """
    with engine.connect() as conn:
        row = conn.execute(text(sql)).one()
    return row.lon, row.lat


def east_edge(engine: Engine) -> tuple[float, float]:
    """The easternmost vertex of the city (on its outer edge)."""
    sql = """
    SELECT ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat
    FROM community c JOIN boundary_generation g ON g.id = c.generation_id AND g.active
    CROSS JOIN LATERAL ST_DumpPoints(c.geom) d
    ORDER BY ST_X(d.geom) DESC LIMIT 1
    """
    with engine.connect() as conn:
        row = conn.execute(text(sql)).one()
    return row.lon, row.lat


def nearest_community(engine: Engine, lon: float, lat: float) -> tuple[str, float]:
    """(code, geodesic distance in m) of the active community nearest to the point."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT c.code, ST_Distance(c.geom::geography,"
            " ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) AS d FROM community c"
            " JOIN boundary_generation g ON g.id = c.generation_id AND g.active"
            " ORDER BY d, c.code LIMIT 1"), {"x": lon, "y": lat}).one()
    return row.code, row.d


def geodesic_m(engine: Engine, a: tuple[float, float], b: tuple[float, float]) -> float:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT ST_Distance(ST_SetSRID(ST_MakePoint(:x1, :y1), 4326)::geography,"
            " ST_SetSRID(ST_MakePoint(:x2, :y2), 4326)::geography)"),
            {"x1": a[0], "y1": a[1], "x2": b[0], "y2": b[1]}).scalar_one()


def east_of(lon: float, lat: float, metres: float) -> tuple[float, float]:
    """A point about ``metres`` east (spherical approximation; tests measure the truth)."""
    return lon + metres / (111_320.0 * math.cos(math.radians(lat))), lat


# --- routing on arrival ---------------------------------------------------------------------


def test_wgs84_case_routes_to_the_covering_community_and_is_recorded(api):
    points = interior_points(api.engine)
    assert len(points) == 55
    for code, lon, lat in points[::11]:
        r = api.post_case(body(lon, lat, external_id=f"T-{code}", reporter_name="王女士",
                               reporter_phone="13800000000",
                               photo_urls=["https://img.example.cn/a.jpg"]))
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["created"] is True
        assert covering_communities(api.engine, lon, lat) == [code]
        routing = out["routing"]
        assert routing["community_code"] == code
        assert routing["rule"] == "inside"
        with api.engine.connect() as conn:
            expected = conn.execute(text(
                "SELECT c.subdistrict_code, c.name, p.phone, p.id AS post_id FROM community c"
                " JOIN boundary_generation g ON g.id = c.generation_id AND g.active"
                " JOIN community_post p ON p.community_code = c.code WHERE c.code = :c"),
                {"c": code}).one()
            row = conn.execute(text(
                'SELECT *, ST_X(geom) AS x, ST_Y(geom) AS y FROM "case" WHERE id = :id'),
                {"id": out["id"]}).mappings().one()
            event = conn.execute(text("SELECT * FROM case_event WHERE case_id = :id"),
                                 {"id": out["id"]}).mappings().one()
        assert routing["subdistrict_code"] == expected.subdistrict_code
        assert routing["community_name"] == expected.name
        assert routing["subdistrict_name"]
        assert routing["post"]["phone"] == expected.phone
        assert routing["generation_id"] is not None
        assert out["status"] == "registered" and out["case_no"].startswith("CG")
        assert row["post_id"] == expected.post_id and row["input_crs"] == "wgs84"
        assert (row["x"], row["y"]) == pytest.approx((lon, lat), abs=1e-9)
        assert row["photo_urls"] == ["https://img.example.cn/a.jpg"]
        assert row["reporter_name"] == "王女士"
        assert event["action"] == "register" and event["from_state"] is None
        assert event["to_state"] == "registered"
        assert (event["actor"], event["role"]) == ("test-intake", "intake")
        assert event["data"]["community_code"] == code and event["data"]["rule"] == "inside"


@pytest.mark.parametrize(("crs", "forward"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_phone_map_coordinates_are_converted_before_routing(api, crs, forward):
    for code, lon, lat in interior_points(api.engine)[3::13]:
        x, y = forward(lon, lat)
        x, y = float(x[0]), float(y[0])
        # The offset is real: wider than the 40 m the point sits inside its community.
        assert geodesic_m(api.engine, (lon, lat), (x, y)) > 100
        r = api.post_case(body(x, y, crs=crs))
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["routing"]["community_code"] == code
        loc = out["location"]
        assert geodesic_m(api.engine, (lon, lat), (loc["lon"], loc["lat"])) < 0.5
        assert (loc["input_lon"], loc["input_lat"], loc["input_crs"]) == (x, y, crs)


def test_crs_spellings_are_accepted(api):
    code, lon, lat = interior_points(api.engine)[0]
    x, y = wgs84_to_gcj02(lon, lat)
    r = api.post_case(body(float(x[0]), float(y[0]), crs="GCJ-02"))
    assert r.status_code == 201, r.text
    assert r.json()["routing"]["community_code"] == code
    assert r.json()["location"]["input_crs"] == "gcj02"


def test_point_on_a_shared_vertex_goes_to_the_lowest_code_with_alternates(api):
    lon, lat = shared_vertex(api.engine)
    covering = covering_communities(api.engine, lon, lat)
    assert len(covering) >= 2
    r = api.post_case(body(lon, lat))
    assert r.status_code == 201, r.text
    routing = r.json()["routing"]
    assert routing["rule"] == "on_boundary"
    assert routing["community_code"] == covering[0]
    assert routing["near_boundary"] is True
    assert {a["code"] for a in routing["alternates"]} >= set(covering[1:])


def test_point_just_outside_the_city_goes_to_the_nearest_community(api):
    lon, lat = east_of(*east_edge(api.engine), 60)
    assert covering_communities(api.engine, lon, lat) == []
    code, dist = nearest_community(api.engine, lon, lat)
    assert 40 < dist < 200
    r = api.post_case(body(lon, lat))
    assert r.status_code == 201, r.text
    routing = r.json()["routing"]
    assert routing["rule"] == "nearest"
    assert routing["community_code"] == code
    assert routing["distance_m"] == pytest.approx(dist, abs=0.5)


def test_point_far_outside_is_registered_unrouted(api):
    lon, lat = east_of(*east_edge(api.engine), 3000)
    r = api.post_case(body(lon, lat, external_id="far-1"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["routing"]["rule"] == "outside"
    assert out["routing"]["community_code"] is None and out["routing"]["post"] is None
    assert out["location"]["lon"] == pytest.approx(lon)
    listed = api.client.get("/api/v1/cases", params={"unrouted": "true"},
                            headers=api.headers("dispatcher")).json()["items"]
    assert [c["id"] for c in listed] == [out["id"]]


def test_address_only_case_is_unlocated_and_waits_for_a_dispatcher(api):
    r = api.post_case(body(address="荆河街道某某烧烤店东侧", external_id="addr-1"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["routing"]["rule"] == "unlocated"
    assert out["location"] == {"lon": None, "lat": None, "input_lon": None, "input_lat": None,
                               "input_crs": None, "address": "荆河街道某某烧烤店东侧"}
    assert out["possible_duplicates"] == []
    with api.engine.connect() as conn:
        geom = conn.execute(text('SELECT geom FROM "case" WHERE id = :i'), {"i": out["id"]}).scalar()
    assert geom is None


def test_without_boundaries_a_case_is_still_taken_unrouted(db_url, engine):
    with engine.begin() as conn:
        secret = create_token(conn, "intake", "early")[1]
    with TestClient(create_app(database_url=db_url)) as client:
        r = client.post("/api/v1/cases", json=body(117.1652, 35.0871),
                        headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 201, r.text
    assert r.json()["routing"]["rule"] == "outside"
    assert r.json()["routing"]["generation_id"] is None
    with engine.connect() as conn:
        data = conn.execute(text("SELECT data FROM case_event")).scalar_one()
    assert data["note"] == "no community boundaries loaded"


def test_description_of_exactly_4000_characters_is_accepted(api):
    code, lon, lat = interior_points(api.engine)[0]
    r = api.post_case(body(lon, lat, description="噪" * 4000))
    assert r.status_code == 201, r.text
    assert len(r.json()["description"]) == 4000


def test_channel_list_matches_the_intake_model():
    assert set(NewCase.model_fields["channel"].annotation.__args__) == set(CHANNELS)


def test_case_without_reported_at_is_dated_now(api):
    code, lon, lat = interior_points(api.engine)[0]
    b = body(lon, lat)
    del b["reported_at"]
    before = datetime.now(UTC)
    r = api.post_case(b)
    assert r.status_code == 201, r.text
    reported = datetime.fromisoformat(r.json()["reported_at"])
    assert before - timedelta(seconds=5) <= reported <= datetime.now(UTC) + timedelta(seconds=5)


# --- exactly once ---------------------------------------------------------------------------


def test_the_same_ticket_twice_gives_back_the_first_case(api):
    code, lon, lat = interior_points(api.engine)[5]
    first = api.post_case(body(lon, lat, external_id="12345-2025-000731"))
    assert first.status_code == 201
    again = api.post_case(body(lon, lat, external_id="12345-2025-000731", description="再次来电"))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created"] is False
    assert again.json()["description"] == "广场舞音响太响"  # the first case, untouched
    assert api.counts() == (1, 1)
    # The same ticket number from another channel is another case.
    other = api.post_case(body(lon, lat, external_id="12345-2025-000731", channel="platform"))
    assert other.status_code == 201
    assert api.counts() == (2, 2)


def test_eight_concurrent_requests_with_one_ticket_make_one_case(api):
    code, lon, lat = interior_points(api.engine)[7]
    barrier = threading.Barrier(8)
    results: list = [None] * 8

    def send(i: int) -> None:
        barrier.wait()
        results[i] = api.post_case(body(lon, lat, external_id="RACE-1"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 7 + [201], [r.text for r in results if r.status_code >= 300]
    assert len({r.json()["id"] for r in results}) == 1
    assert api.counts() == (1, 1)


def test_racing_transactions_on_separate_connections_make_one_case(api):
    """Thread B's insert waits for A's open transaction, then reads A's committed case."""
    code, lon, lat = interior_points(api.engine)[9]
    actor = Principal(1, "race", "intake")
    data = NewCase(**body(lon, lat, external_id="RACE-2"))
    outcome: dict = {}

    def second() -> None:
        with api.engine.begin() as conn:
            outcome["b"] = create_case(conn, data, actor)

    with api.engine.begin() as conn_a:
        outcome["a"] = create_case(conn_a, data, actor)
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "B should be blocked on A's uncommitted row"
    t.join(30)
    assert outcome["a"].created is True and outcome["b"].created is False
    assert outcome["a"].case["id"] == outcome["b"].case["id"]
    assert api.counts() == (1, 1)


# --- possible duplicates --------------------------------------------------------------------


def _post(api, lon, lat, **kw) -> dict:
    r = api.post_case(body(lon, lat, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def test_possible_duplicates_are_open_same_category_nearby_nearest_first(api):
    code, lon, lat = interior_points(api.engine)[20]
    at = "2025-06-01T21:30:00+08:00"
    # 0504 shop encroachment has no override: settings defaults, 50 m and 7 days.
    far30 = _post(api, *east_of(lon, lat, 30), category="0504", reported_at=at)
    near10 = _post(api, *east_of(lon, lat, -10), category="0504", reported_at=at)
    _post(api, *east_of(lon, lat, 5), category="0101", reported_at=at)  # other category
    closed = _post(api, *east_of(lon, lat, 3), category="0504", reported_at=at)
    merged = _post(api, *east_of(lon, lat, 4), category="0504", reported_at=at)
    _post(api, *east_of(lon, lat, 80), category="0504", reported_at=at)  # beyond 50 m
    _post(api, *east_of(lon, lat, 8), category="0504", reported_at="2025-05-20T10:00:00+08:00")
    with api.engine.begin() as conn:
        conn.execute(text("UPDATE \"case\" SET status = 'closed', closed_at = now() WHERE id = :i"),
                     {"i": closed["id"]})
        conn.execute(text('UPDATE "case" SET merged_into = :m WHERE id = :i'),
                     {"m": near10["id"], "i": merged["id"]})
    new = _post(api, lon, lat, category="0504", reported_at="2025-06-02T09:00:00+08:00")
    dups = new["possible_duplicates"]
    assert [d["id"] for d in dups] == [near10["id"], far30["id"]]
    assert dups[0]["distance_m"] == pytest.approx(
        geodesic_m(api.engine, (lon, lat), east_of(lon, lat, -10)), abs=0.05)
    assert dups[1]["distance_m"] == pytest.approx(30, abs=0.5)
    assert {"case_no", "status", "reported_at"} <= set(dups[0])


def _projected(engine: Engine, lon: float, lat: float, metres: float, azimuth_deg: float
               ) -> tuple[float, float]:
    """The point ``metres`` from (lon, lat) along the geodesic at ``azimuth_deg``."""
    with engine.connect() as conn:
        x, y = conn.execute(text(
            "SELECT ST_X(p::geometry), ST_Y(p::geometry) FROM ST_Project("
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m, radians(:az)) p"),
            {"lon": lon, "lat": lat, "m": metres, "az": azimuth_deg}).one()
    return x, y


def test_duplicates_just_inside_the_radius_are_found_in_every_direction(api):
    """The candidate box is narrower in latitude than in longitude: a neighbour 49 m away
    due north, east, south, west or on a diagonal is offered, one 51 m away is not."""
    code, lon, lat = interior_points(api.engine)[40]
    at = "2025-06-01T21:30:00+08:00"
    inside = set()
    for azimuth in range(0, 360, 45):
        inside.add(_post(api, *_projected(api.engine, lon, lat, 49.0, azimuth),
                         category="0504", reported_at=at)["id"])
        _post(api, *_projected(api.engine, lon, lat, 51.0, azimuth), category="0504",
              reported_at=at)
    dups = _post(api, lon, lat, category="0504", reported_at=at)["possible_duplicates"]
    assert {d["id"] for d in dups} == inside  # none of the eight just outside
    assert all(d["distance_m"] == pytest.approx(49.0, abs=0.01) for d in dups)


def test_per_category_radius_override_widens_the_search_for_noise(api):
    code, lon, lat = interior_points(api.engine)[30]
    noise80 = _post(api, *east_of(lon, lat, 80), category="0599")   # 0599: 100 m, 1 day
    _post(api, *east_of(lon, lat, 80), category="0504")             # 0504: 50 m default
    assert [d["id"] for d in _post(api, lon, lat, category="0599")["possible_duplicates"]] == [noise80["id"]]
    assert _post(api, lon, lat, category="0504")["possible_duplicates"] == []
    # 0599's window is one day: the same noise two days later is a new episode.
    later = _post(api, lon, lat, category="0599", reported_at="2025-06-03T22:00:00+08:00")
    assert later["possible_duplicates"] == []


def test_duplicate_search_uses_the_spatial_index(api):
    points = interior_points(api.engine)
    for i in range(60):  # a spread of open cases so the planner has a choice to make
        code, lon, lat = points[i % 55]
        _post(api, lon, lat, category="0504")
    code, lon, lat = points[0]
    with api.engine.begin() as conn:
        conn.execute(text('ANALYZE "case"'))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        query = {"ord": 0, "id": 0, "lon": lon, "lat": lat, "category": "0504",
                 "at": "2025-06-01T00:00:00+00:00", "days": 7, "deg": 0.0006, "deg_lat": 0.0005, "radius": 50.0,
                 "scope": None}
        plan = "\n".join(conn.execute(text("EXPLAIN " + DUPLICATES_SQL), {
            "queries": json.dumps([query, {**query, "ord": 1}]), "limit": 10}).scalars())
    # Either GiST index on the case points (all cases, or the open ones only) answers it.
    assert re.search(r"Index Scan using case_(open_)?geom_gist", plan), plan


# --- listing ---------------------------------------------------------------------------------


@pytest.fixture
def listed(api):
    """A small, known set of cases across communities, channels, categories and days."""
    points = interior_points(api.engine)
    with api.engine.connect() as conn:
        subs = dict(conn.execute(text(
            "SELECT c.code, c.subdistrict_code FROM community c JOIN boundary_generation g"
            " ON g.id = c.generation_id AND g.active")).all())
    picks = [points[0], points[1], points[30], points[50]]
    made = []
    for i in range(12):
        code, lon, lat = picks[i % 4]
        day = 1 + i
        case = _post(api, lon, lat,
                     category=("0599", "0504", "0101")[i % 3],
                     channel=CHANNELS[i % len(CHANNELS)],
                     reported_at=f"2025-06-{day:02d}T10:00:00+08:00")
        made.append({"id": case["id"], "community": code, "subdistrict": subs[code],
                     "category": ("0599", "0504", "0101")[i % 3],
                     "channel": CHANNELS[i % len(CHANNELS)], "day": day, "lon": lon, "lat": lat})
    return made


def _ids(api, role="dispatcher", **params) -> list[int]:
    r = api.client.get("/api/v1/cases", params=params, headers=api.headers(role))
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


def test_list_filters_each_select_exactly_their_cases(api, listed):
    newest_first = [c["id"] for c in sorted(listed, key=lambda c: -c["day"])]
    assert _ids(api) == newest_first
    for key in ("community", "subdistrict", "category", "channel"):
        value = listed[1][key]
        expected = [c["id"] for c in sorted(listed, key=lambda c: -c["day"]) if c[key] == value]
        assert _ids(api, **{key: value}) == expected, key
        assert 0 < len(expected) < len(listed)
    two = f"{listed[0]['category']},{listed[1]['category']}"
    assert len(_ids(api, category=two)) == 8
    # time range: from inclusive, to exclusive, offsets honoured
    got = _ids(api, **{"from": "2025-06-03T10:00:00+08:00", "to": "2025-06-06T10:00:00+08:00"})
    assert sorted(got) == sorted(c["id"] for c in listed if 3 <= c["day"] < 6)
    got = _ids(api, **{"from": "2025-06-10"})  # a date: midnight in the city
    assert sorted(got) == sorted(c["id"] for c in listed if c["day"] >= 10)
    # status
    with api.engine.begin() as conn:
        conn.execute(text("UPDATE \"case\" SET status = 'dispatched' WHERE id = :i"),
                     {"i": listed[4]["id"]})
    assert _ids(api, status="dispatched") == [listed[4]["id"]]
    assert listed[4]["id"] not in _ids(api, status="registered")
    # bbox around one point
    c = listed[2]
    box = f"{c['lon'] - 0.0003},{c['lat'] - 0.0003},{c['lon'] + 0.0003},{c['lat'] + 0.0003}"
    assert sorted(_ids(api, bbox=box)) == sorted(x["id"] for x in listed if x["community"] == c["community"])
    assert _ids(api, unrouted="true") == []
    assert len(_ids(api, unrouted="false")) == len(listed)


def test_keyset_pagination_has_no_gaps_or_repeats_even_with_equal_times(api):
    code, lon, lat = interior_points(api.engine)[12]
    made = set()
    for i in range(23):
        # three cases share each timestamp: the id breaks the tie
        made.add(_post(api, lon, lat, reported_at=f"2025-06-{1 + i // 3:02d}T08:00:00+08:00")["id"])
    seen: list[int] = []
    times: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/api/v1/cases", params=params, headers=api.headers("dispatcher")).json()
        pages += 1
        seen += [c["id"] for c in page["items"]]
        times += [c["reported_at"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # a case registered mid-walk, newer than everything, must not shift later pages
        if pages == 2:
            _post(api, lon, lat, reported_at="2025-07-01T08:00:00+08:00")
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23 and set(seen) == made
    keys = [(datetime.fromisoformat(t), i) for t, i in zip(times, seen, strict=True)]
    assert keys == sorted(keys, reverse=True)


def test_geojson_format_is_an_rfc7946_feature_collection(api, listed):
    unlocated = api.post_case(body(address="北辛街道某小区门口",
                                  reported_at="2025-06-30T08:00:00+08:00")).json()
    r = api.client.get("/api/v1/cases", params={"format": "geojson", "limit": 5},
                       headers=api.headers("dispatcher"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 5
    assert fc["next_cursor"]
    by_id = {c["id"]: c for c in listed}
    for f in fc["features"]:
        assert f["type"] == "Feature"
        assert set(f) >= {"type", "geometry", "properties"}
        if f["id"] == unlocated["id"]:
            assert f["geometry"] is None
            continue
        assert f["geometry"]["type"] == "Point"
        x, y = f["geometry"]["coordinates"]
        assert (x, y) == pytest.approx((by_id[f["id"]]["lon"], by_id[f["id"]]["lat"]), abs=1e-6)
        assert 116 < x < 118 and 34 < y < 36  # longitude first
        assert f["properties"]["routing"]["community_code"] == by_id[f["id"]]["community"]
    assert unlocated["id"] in {f["id"] for f in fc["features"]}


# --- who sees what -----------------------------------------------------------------------------


def test_community_officer_sees_only_its_communities(api, listed):
    mine = listed[0]["community"]
    officer = {"Authorization": f"Bearer {api.token('community_officer', 'officer', [mine])}"}
    own = [c for c in listed if c["community"] == mine]
    other = next(c for c in listed if c["community"] != mine)
    assert api.client.get(f"/api/v1/cases/{own[0]['id']}", headers=officer).status_code == 200
    r = api.client.get(f"/api/v1/cases/{other['id']}", headers=officer)
    assert r.status_code == 404
    missing = api.client.get("/api/v1/cases/987654321", headers=officer)
    assert r.json()["detail"].replace(str(other["id"]), "X") == \
        missing.json()["detail"].replace("987654321", "X")  # indistinguishable
    got = api.client.get("/api/v1/cases", headers=officer).json()["items"]
    assert sorted(c["id"] for c in got) == sorted(c["id"] for c in own)
    assert api.client.get("/api/v1/cases", params={"community": other["community"]},
                          headers=officer).json()["items"] == []


def test_community_officer_submits_only_inside_its_communities(api):
    points = interior_points(api.engine)
    (mine, lon, lat), (_, olon, olat) = points[0], points[40]
    officer = {"Authorization": f"Bearer {api.token('community_officer', 'officer', [mine])}"}
    r = api.client.post("/api/v1/cases", json=body(lon, lat, channel="patrol"), headers=officer)
    assert r.status_code == 201, r.text
    before = api.counts()
    r = api.client.post("/api/v1/cases", json=body(olon, olat, channel="patrol"), headers=officer)
    assert r.status_code == 403
    assert "dispatcher" in r.json()["detail"]
    assert api.counts() == before


def test_planner_never_sees_reporter_name_or_phone(api):
    code, lon, lat = interior_points(api.engine)[0]
    case = _post(api, lon, lat, reporter_name="李先生", reporter_phone="13912345678")
    for url, params in ((f"/api/v1/cases/{case['id']}", {}), ("/api/v1/cases", {}),
                        ("/api/v1/cases", {"format": "geojson"})):
        r = api.client.get(url, params=params, headers=api.headers("planner"))
        assert r.status_code == 200
        assert "李先生" not in r.text and "13912345678" not in r.text
    seen = api.client.get(f"/api/v1/cases/{case['id']}", headers=api.headers("planner")).json()
    assert seen["reporter_name"] is None and seen["reporter_phone"] is None
    disp = api.client.get(f"/api/v1/cases/{case['id']}", headers=api.headers("dispatcher")).json()
    assert (disp["reporter_name"], disp["reporter_phone"]) == ("李先生", "13912345678")


# --- reference endpoints ------------------------------------------------------------------------


def test_route_dry_run_stores_nothing(api):
    code, lon, lat = interior_points(api.engine)[11]
    x, y = wgs84_to_gcj02(lon, lat)
    r = api.client.get("/api/v1/route", params={"lon": float(x[0]), "lat": float(y[0]), "crs": "gcj02"},
                       headers=api.headers("planner"))
    assert r.status_code == 200, r.text
    assert r.json()["community_code"] == code and r.json()["rule"] == "inside"
    assert api.counts() == (0, 0)


def test_communities_geojson_has_every_community_with_its_post(api):
    r = api.client.get("/api/v1/communities", headers=api.headers("planner"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 55
    with api.engine.connect() as conn:
        phones = dict(conn.execute(text("SELECT community_code, phone FROM community_post")).all())
    for f in fc["features"]:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        x, y = f["geometry"]["coordinates"][0][0][0] if f["geometry"]["type"] == "MultiPolygon" \
            else f["geometry"]["coordinates"][0][0]
        assert 116 < x < 118 and 34 < y < 36
        p = f["properties"]
        assert p["post"]["phone"] == phones[p["code"]]
        assert p["subdistrict_code"] == p["code"][:9] and p["subdistrict_name"]
