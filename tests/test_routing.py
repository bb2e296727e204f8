"""Routing against a hand-built layout whose answers are known exactly.

Layout (WGS-84 degrees near Tengzhou; 0.01 degree is about 1.1 km north-south and 0.91 km
east-west at this latitude):

    35.12 +------+------+
          |  C   |  D   |
    35.11 +------+------+
          |  A   |  B   |        +------+
    35.10 +------+------+        |  E   |
       117.10 117.11 117.12  117.13 117.14
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import Point, box

from casegrid.errors import CoordinateError, InvalidInput, NotFound
from geo.boundaries import store_generation, subdivide_generation
from geo.coords import from_wgs84
from geo.routing import route

GEOD = Geod(ellps="WGS84")

SQUARES = {
    "A": box(117.10, 35.10, 117.11, 35.11),
    "B": box(117.11, 35.10, 117.12, 35.11),
    "C": box(117.10, 35.11, 117.11, 35.12),
    "D": box(117.11, 35.11, 117.12, 35.12),
    "E": box(117.13, 35.10, 117.14, 35.11),
}


def _layout(squares=SQUARES, prefix="3704810010") -> gpd.GeoDataFrame:
    codes = [f"{prefix}{i:02d}" for i in range(1, len(squares) + 1)]
    return gpd.GeoDataFrame(
        {"code": codes, "name": list(squares)}, geometry=list(squares.values()), crs=4326
    )


@pytest.fixture
def layout(engine):
    with engine.begin() as conn:
        gen = store_generation(conn, "community", _layout(), source="test", source_crs="EPSG:4326")
    return gen.id


def _route(engine, lon, lat, crs="wgs84", **kw):
    with engine.connect() as conn:
        return route(conn, lon, lat, crs, **kw)


def test_point_inside_one_community(engine, layout):
    r = _route(engine, 117.105, 35.105)
    assert (r.rule, r.community_name, r.distance_m) == ("inside", "A", 0.0)
    assert r.near_boundary is False and r.alternates == []
    assert r.generation_id == layout


def test_point_exactly_on_shared_edge_goes_to_lowest_code(engine, layout):
    r = _route(engine, 117.11, 35.105)
    assert r.rule == "on_boundary"
    assert r.community_name == "A"  # A's code sorts first
    assert r.near_boundary is True
    assert [a["name"] for a in r.alternates] == ["B"]
    assert r.alternates[0]["covers"] is True and r.alternates[0]["distance_m"] == 0


def test_point_exactly_on_shared_vertex_lists_all_three_others(engine, layout):
    r = _route(engine, 117.11, 35.11)
    assert r.rule == "on_boundary"
    assert r.community_name == "A"
    assert sorted(a["name"] for a in r.alternates) == ["B", "C", "D"]


def test_point_on_outer_edge_is_inside(engine, layout):
    # ST_Covers, not ST_Contains: the outer edge belongs to the community.
    r = _route(engine, 117.10, 35.105)
    assert (r.rule, r.community_name) == ("inside", "A")


def test_point_in_gap_goes_to_nearest_within_tolerance(engine, layout):
    lon, lat = 117.1205, 35.105
    r = _route(engine, lon, lat)
    expected = GEOD.inv(117.12, lat, lon, lat)[2]
    assert (r.rule, r.community_name) == ("nearest", "B")
    assert r.distance_m == pytest.approx(expected, abs=0.5)


def test_point_beyond_tolerance_is_outside(engine, layout):
    r = _route(engine, 117.125, 35.105)  # ~450 m from B and E
    assert r.rule == "outside"
    assert r.community_code is None and r.post is None
    assert r.distance_m is None


def test_tolerance_is_a_parameter(engine, layout):
    r = _route(engine, 117.125, 35.105, tolerance_m=1000)
    assert r.rule == "nearest"


def test_far_outside_everything(engine, layout):
    r = _route(engine, 116.0, 36.0)
    assert r.rule == "outside" and r.community_code is None


def test_near_boundary_flag_and_alternates(engine, layout):
    lon = 117.11 - 10 / (111_320 * math.cos(math.radians(35.105)))  # ~10 m west of A|B
    r = _route(engine, lon, 35.105)
    assert (r.rule, r.community_name, r.near_boundary) == ("inside", "A", True)
    (alt,) = r.alternates
    assert alt["name"] == "B" and alt["covers"] is False
    assert alt["distance_m"] == pytest.approx(10, abs=0.5)


def test_not_near_boundary_beyond_margin(engine, layout):
    lon = 117.11 - 30 / (111_320 * math.cos(math.radians(35.105)))  # ~30 m from B
    r = _route(engine, lon, 35.105)
    assert r.near_boundary is False and r.alternates == []


def test_near_boundary_margin_along_latitude_is_metric(engine, layout):
    # 15 m south of the A|C edge: within 20 m; 25 m: not. Degrees differ per axis.
    near = _route(engine, 117.105, 35.11 - 15 / 111_320)
    far = _route(engine, 117.105, 35.11 - 25 / 111_320)
    assert [a["name"] for a in near.alternates] == ["C"]
    assert far.alternates == []


def test_gcj02_input_is_converted_before_lookup(engine, layout):
    # The GCJ-02 coordinates of a WGS-84 point inside A lie several hundred metres away;
    # routed as gcj02 they must land in A, routed as if WGS-84 they would not.
    gx, gy = from_wgs84([117.1085], [35.105], "gcj02")
    assert _route(engine, gx[0], gy[0], "gcj02").community_name == "A"
    assert _route(engine, gx[0], gy[0], "wgs84").community_name == "B"


def test_bd09_input_is_converted(engine, layout):
    bx, by = from_wgs84([117.105], [35.105], "bd09")
    r = _route(engine, bx[0], by[0], "bd09")
    assert r.community_name == "A"
    assert (r.input_lon, r.input_lat) == (pytest.approx(bx[0]), pytest.approx(by[0]))
    assert (r.lon, r.lat) == (pytest.approx(117.105, abs=1e-7), pytest.approx(35.105, abs=1e-7))


def test_projected_crs_input(engine, layout):
    x, y = from_wgs84([117.115], [35.105], "EPSG:4527")
    r = _route(engine, x[0], y[0], "EPSG:4527")
    assert r.community_name == "B"


@pytest.mark.parametrize(
    ("lon", "lat", "field"),
    [
        (float("nan"), 35.1, "lon"),
        (117.1, float("nan"), "lat"),
        (float("inf"), 35.1, "lon"),
        (117.1, float("-inf"), "lat"),
        (181.0, 35.1, "lon"),
        (117.1, -91.0, "lat"),
        (None, 35.1, "lon"),
        ("abc", 35.1, "lon"),
    ],
)
def test_bad_coordinates_are_rejected(engine, layout, lon, lat, field):
    with pytest.raises(CoordinateError) as err:
        _route(engine, lon, lat)
    assert err.value.field == field


def test_swapped_coordinates_get_a_hint(engine, layout):
    with pytest.raises(CoordinateError) as err:
        _route(engine, 35.105, 117.105)
    assert err.value.code == "swapped_coordinates"
    assert "117.105" in err.value.message and "35.105" in err.value.message


def test_unknown_crs(engine, layout):
    with pytest.raises(InvalidInput) as err:
        _route(engine, 117.1, 35.1, "wgs-85")
    assert err.value.field == "crs"


def test_no_boundaries_loaded_is_a_clear_error(engine):
    with pytest.raises(NotFound, match="sample load"):
        _route(engine, 117.1, 35.1)


def test_new_generation_keeps_old_routing_reproducible(engine, layout):
    # Redistricting: A grows east to swallow B. The old generation still answers as before.
    moved = dict(SQUARES)
    moved["A"] = box(117.10, 35.10, 117.12, 35.11)
    del moved["B"]
    with engine.begin() as conn:
        new = store_generation(conn, "community", _layout(moved), source="v2", source_crs="EPSG:4326")
    assert new.id != layout
    now = _route(engine, 117.115, 35.105)
    before = _route(engine, 117.115, 35.105, generation_id=layout)
    assert (now.generation_id, now.community_name) == (new.id, "A")
    assert (before.generation_id, before.community_name) == (layout, "B")
    with engine.connect() as conn:
        gens = conn.exec_driver_sql(
            "SELECT id, active FROM boundary_generation ORDER BY id"
        ).all()
    assert [(g.id, g.active) for g in gens] == [(layout, False), (new.id, True)]


def test_huge_polygon_is_subdivided_and_edges_still_count(engine):
    # A circle of 20,000 vertices: subdivided into many small pieces; a point exactly on one
    # of its vertices is still covered, one just outside is not.
    ring = Point(117.2, 35.2).buffer(0.05, quad_segs=5000)
    gdf = gpd.GeoDataFrame({"code": ["999"], "name": ["huge"]}, geometry=[ring], crs=4326)
    with engine.begin() as conn:
        store_generation(conn, "community", gdf, source="t", source_crs="EPSG:4326")
        pieces = conn.exec_driver_sql("SELECT count(*) FROM community_piece").scalar_one()
    assert pieces > 100
    vx, vy = np.asarray(ring.exterior.coords)[1234]
    assert _route(engine, float(vx), float(vy)).rule == "inside"
    assert _route(engine, 117.2, 35.2 + 0.0502, tolerance_m=0).rule == "outside"


def _piece_index_pages(conn) -> int:  # noqa: ANN001 - a SQLAlchemy connection
    return conn.exec_driver_sql(
        "SELECT pg_relation_size('community_piece_geom_gist')"
        " / current_setting('block_size')::int").scalar_one()


def test_piece_index_keeps_small_leaves_after_every_subdivision(engine):
    # Routing tests a point against every entry of each leaf page it visits: the piece index
    # is built with small leaves (migration 0015) and rebuilt after the pieces are written.
    # Filled whole (the sorted build, or pieces inserted into it one by one), its leaves
    # hold well over a hundred pieces each (9 pages for these 1,200 pieces without the
    # rebuild).
    ring = Point(117.2, 35.2).buffer(0.05, quad_segs=5000)
    gdf = gpd.GeoDataFrame({"code": ["999"], "name": ["huge"]}, geometry=[ring], crs=4326)
    with engine.begin() as conn:
        gen = store_generation(conn, "community", gdf, source="t", source_crs="EPSG:4326").id
        for max_vertices in (None, 16):
            if max_vertices:
                subdivide_generation(conn, gen, max_vertices=max_vertices)
            pieces = conn.exec_driver_sql("SELECT count(*) FROM community_piece").scalar_one()
            assert pieces > 300
            assert _piece_index_pages(conn) >= pieces / 40, (pieces, _piece_index_pages(conn))


def test_every_point_gets_exactly_one_documented_rule(engine, layout):
    rng = np.random.default_rng(7)
    for lon, lat in zip(rng.uniform(117.09, 117.15, 40), rng.uniform(35.09, 35.13, 40), strict=True):
        r = _route(engine, float(lon), float(lat))
        assert r.rule in ("inside", "on_boundary", "nearest", "outside")
        covering = [n for n, g in SQUARES.items() if g.covers(Point(lon, lat))]
        if len(covering) == 1:
            assert (r.rule, r.community_name) == ("inside", covering[0])
        if not covering:
            assert r.rule in ("nearest", "outside")
