"""Hotspot statistics on hand-built data with known answers.

The study area is one square community of 4 km around (117.16, 35.08); cases and POIs are
placed in metres (EPSG:4527) and converted with pyproj, and every expected count is computed
independently here with shapely/numpy, not taken from the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from casegrid.errors import InvalidInput
from cases.filters import CaseFilters
from geo.hotspots import aggregate_grid, check_rings, getis_ord, poi_ring_stats, rank_pois

TO_M = Transformer.from_crs(4326, 4527, always_xy=True)
TO_LL = Transformer.from_crs(4527, 4326, always_xy=True)
CX, CY = TO_M.transform(117.16, 35.08)
HALF = 2000.0
AREA_M = shapely.box(CX - HALF, CY - HALF, CX + HALF, CY + HALF)
CST = timezone(timedelta(hours=8))


def _setup_area(conn) -> None:
    """One active community covering the 4 km square, and two categories."""
    conn.execute(text("INSERT INTO category (code, name_zh, name_en) VALUES "
                      "('0508', '商业噪音', 'Commercial noise'), ('0101', '私搭乱建', 'Illegal construction') "
                      "ON CONFLICT (code) DO NOTHING"))
    gen = conn.execute(text("INSERT INTO boundary_generation (level, source, source_crs, active) "
                            "VALUES ('community', 'test', 'EPSG:4527', true) RETURNING id")).scalar_one()
    ring = shapely.transform(AREA_M, lambda xy: np.column_stack(TO_LL.transform(xy[:, 0], xy[:, 1])))
    conn.execute(text("INSERT INTO community (generation_id, code, name, geom) VALUES "
                      "(:g, '370481001001', '测试社区', ST_Multi(ST_SetSRID(ST_GeomFromText(:wkt), 4326)))"),
                 {"g": gen, "wkt": ring.wkt})


def _insert_cases(conn, xs, ys, cats=None, hours=None) -> None:
    lon, lat = TO_LL.transform(np.asarray(xs), np.asarray(ys))
    n = len(lon)
    cats = cats if cats is not None else ["0508"] * n
    hours = hours if hours is not None else [10] * n
    conn.execute(
        text('INSERT INTO "case" (channel, category_code, reported_at, geom, route_rule) VALUES '
             "('hotline_12345', :cat, :at, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'inside')"),
        [{"cat": c, "at": datetime(2025, 6, 2, h, 15, tzinfo=CST), "lon": float(a), "lat": float(b)}
         for a, b, c, h in zip(lon, lat, cats, hours, strict=True)],
    )


@pytest.fixture
def area(engine):
    with engine.begin() as conn:
        _setup_area(conn)
    return engine


def _uniform(rng, n):
    return rng.uniform(CX - HALF + 1, CX + HALF - 1, n), rng.uniform(CY - HALF + 1, CY + HALF - 1, n)


def test_grid_counts_match_independent_binning(area):
    rng = np.random.default_rng(7)
    xs, ys = _uniform(rng, 600)
    with area.begin() as conn:
        _insert_cases(conn, xs, ys)
        grid = aggregate_grid(conn, CaseFilters(), cell_m=250)
    # Independent binning with the same snapped origin rule (whole cells from 0).
    x0, y0 = np.floor((CX - HALF) / 250) * 250, np.floor((CY - HALF) / 250) * 250
    assert (grid.x0, grid.y0) == pytest.approx((x0, y0))
    expect: dict[tuple[int, int], int] = {}
    for x, y in zip(xs, ys, strict=True):
        key = (int((x - x0) // 250), int((y - y0) // 250))
        expect[key] = expect.get(key, 0) + 1
    got = {(int(a), int(b)): int(n) for a, b, n in zip(grid.i, grid.j, grid.count, strict=True) if n}
    assert got == expect
    assert grid.total_in_area == 600
    assert grid.area_m2 == pytest.approx(AREA_M.area, rel=1e-3)
    # Empty cells of the area are present too (Gi* needs them): 4 km / 250 m = 16, +1 for snapping.
    assert len(grid) >= 16 * 16


def test_cluster_of_200_cases_is_a_significant_hot_cell(area):
    rng = np.random.default_rng(11)
    bx, by = _uniform(rng, 800)
    hx, hy = CX + 700.0, CY - 450.0
    cx, cy = hx + rng.normal(0, 30, 200), hy + rng.normal(0, 30, 200)
    with area.begin() as conn:
        _insert_cases(conn, np.r_[bx, cx], np.r_[by, cy])
        grid = aggregate_grid(conn, CaseFilters(), cell_m=250)
    res = getis_ord(grid, permutations=999, seed=3)
    k = grid.cell_of(hx, hy)
    assert k is not None
    assert res.level[k] >= 2, f"cluster cell level {res.level[k]}, p={res.p[k]}, z={res.z[k]}"
    assert res.z[k] > 3
    # Significant hot cells are only around the cluster (queen neighbourhood reach: 2 cells).
    hot = np.flatnonzero(res.level > 0)
    ci, cj = grid.i[k], grid.j[k]
    assert all(abs(grid.i[h] - ci) <= 2 and abs(grid.j[h] - cj) <= 2 for h in hot)


def test_uniform_random_cases_give_few_false_hotspots(area):
    rng = np.random.default_rng(5)
    xs, ys = _uniform(rng, 1500)
    with area.begin() as conn:
        _insert_cases(conn, xs, ys)
        grid = aggregate_grid(conn, CaseFilters(), cell_m=250)
    res = getis_ord(grid, permutations=499, seed=9)
    # FDR at 10 %: with no real pattern, at most a couple of cells may pass.
    assert np.count_nonzero(res.level) <= 3


def test_empty_ledger_gives_no_hotspots(area):
    with area.begin() as conn:
        grid = aggregate_grid(conn, CaseFilters(), cell_m=500)
    res = getis_ord(grid)
    assert grid.total_in_area == 0 and not res.level.any()


def test_ring_counts_match_shapely(area):
    rng = np.random.default_rng(21)
    # Cases within 1.3 km of the centre; drop the ones within 0.5 m of any ring edge, where
    # the 32-segment buffer and the exact distance could disagree.
    school = shapely.box(CX - 60, CY - 40, CX + 60, CY + 40)  # a campus polygon
    market = shapely.Point(CX + 900, CY + 900)
    xs, ys = rng.uniform(CX - 1300, CX + 1300, 900), rng.uniform(CY - 1300, CY + 1300, 900)
    pts = shapely.points(xs, ys)
    keep = np.ones(len(xs), bool)
    for geom in (school, market):
        d = shapely.distance(geom, pts)
        for r in (200, 500, 1000):
            keep &= np.abs(d - r) > 0.5
    xs, ys = xs[keep], ys[keep]
    cats = ["0508" if k % 3 else "0101" for k in range(len(xs))]
    hours = [int(h) for h in rng.integers(0, 24, len(xs))]
    with area.begin() as conn:
        _insert_cases(conn, xs, ys, cats, hours)
        for kind, name, geom in (("school", "实验小学", school), ("market", "农贸市场", market)):
            ll = shapely.transform(geom, lambda xy: np.column_stack(TO_LL.transform(xy[:, 0], xy[:, 1])))
            conn.execute(text("INSERT INTO poi (kind, name, geom) VALUES (:k, :n, ST_SetSRID(ST_GeomFromText(:w), 4326))"),
                         {"k": kind, "n": name, "w": ll.wkt})
        grid = aggregate_grid(conn, CaseFilters(), cell_m=250)
        rows = poi_ring_stats(conn, CaseFilters(), rings=(200, 500, 1000), grid=grid, hot=getis_ord(grid, 99))
        evening = poi_ring_stats(conn, CaseFilters(hour_from=20, hour_to=5, category=("0508",)), rings=(500,))
    pts = shapely.points(xs, ys)
    city_rate = len(xs) / (AREA_M.area / 1e6)
    for row, geom in zip(rows, (school, market), strict=True):
        d = shapely.distance(geom, pts)
        for r in (200, 500, 1000):
            inside = d <= r
            assert row["counts"][r] == int(inside.sum())
            assert row["by_category"].get(r, {}).get("0101", 0) == sum(
                1 for k in np.flatnonzero(inside) if cats[k] == "0101")
            ring_area = geom.buffer(r, 32).intersection(AREA_M).area
            assert row["ring_area_m2"][r] == pytest.approx(ring_area, rel=1e-3)
            assert row["rate_ratio"][r] == pytest.approx((inside.sum() / (ring_area / 1e6)) / city_rate, rel=2e-3)
    # Hour window wrapping midnight and a category filter.
    for row, geom in zip(evening, (school, market), strict=True):
        d = shapely.distance(geom, pts)
        want = sum(1 for k in np.flatnonzero(d <= 500) if cats[k] == "0508" and (hours[k] >= 20 or hours[k] <= 5))
        assert row["counts"][500.0] == want


def test_poi_in_cluster_is_flagged_and_ranked_first(area):
    rng = np.random.default_rng(2)
    bx, by = _uniform(rng, 600)
    hx, hy = CX - 800.0, CY + 600.0
    with area.begin() as conn:
        _insert_cases(conn, np.r_[bx, hx + rng.normal(0, 25, 200)], np.r_[by, hy + rng.normal(0, 25, 200)])
        for name, (x, y) in (("热点市场", (hx, hy)), ("安静公园", (CX + 1500, CY - 1500))):
            lon, lat = TO_LL.transform(x, y)
            conn.execute(text("INSERT INTO poi (kind, name, geom) VALUES ('market', :n, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                         {"n": name, "x": lon, "y": lat})
        grid = aggregate_grid(conn, CaseFilters(), cell_m=250)
        res = getis_ord(grid, seed=1)
        rows = poi_ring_stats(conn, CaseFilters(), grid=grid, hot=res)
    ranked = rank_pois(rows, 200.0)
    assert ranked[0]["name"] == "热点市场" and ranked[0]["in_hotspot"]
    assert ranked[0]["rate_ratio"][200.0] > 5
    assert not ranked[1]["in_hotspot"]


@pytest.mark.parametrize("rings", [(), (500, 200), (5, 100), (100, 200, 300, 400, 500, 600), (100, 100)])
def test_bad_rings_rejected(rings):
    with pytest.raises(InvalidInput) as e:
        check_rings(rings)
    assert e.value.field == "rings"


def test_bad_cell_size_and_filters_rejected(area):
    with area.begin() as conn:
        _insert_cases(conn, [CX], [CY])
        with pytest.raises(InvalidInput):
            aggregate_grid(conn, CaseFilters(), cell_m=5)
    with pytest.raises(InvalidInput) as e:
        CaseFilters(hour_from=25, hour_to=3)
    assert e.value.field == "hour_from"
    with pytest.raises(InvalidInput) as e:
        CaseFilters(hour_from=3)
    assert e.value.field == "hour_to"
    with pytest.raises(InvalidInput) as e:
        CaseFilters(state=("lost",))
    assert e.value.field == "state" and "overdue" in e.value.message


@pytest.mark.parametrize("geom", [
    shapely.Point(300, 200),
    shapely.MultiPoint([(0, 0), (900, 900)]),
    shapely.box(100, 100, 400, 250),
    shapely.Polygon([(0, 0), (1000, 0), (1000, 1000), (0, 1000)], [[(200, 200), (800, 200), (800, 800), (200, 800)]]),
    shapely.MultiPolygon([shapely.box(0, 0, 100, 100), shapely.box(500, 500, 700, 650)]),
    shapely.Polygon([(0, 0), (600, 0), (600, 600), (300, 200), (0, 600)]),  # concave
    shapely.LineString([(0, 0), (500, 800), (1000, 0)]),
    shapely.Point(300, 200).buffer(150, 16),  # a plaza drawn as a circle (65 edges)
    shapely.Point(300, 200).buffer(150, 64),  # more edges than the numpy path takes
], ids=lambda g: f"{g.geom_type}-{shapely.get_num_coordinates(g)}")
def test_poi_distances_equal_geos(geom):
    """The numpy distances behind the ring counts equal GEOS's (0 inside, holes are
    outside, points on an edge or vertex are at 0)."""
    from geo.hotspots import _distances

    rng = np.random.default_rng(4)
    xs = np.r_[rng.uniform(-500, 1500, 5000), 100.0, 250.0, 0.0]
    ys = np.r_[rng.uniform(-500, 1500, 5000), 100.0, 100.0, 0.0]
    want = shapely.distance(geom, shapely.points(xs, ys))
    got = _distances(geom, xs, ys)
    assert np.allclose(got, want, rtol=0, atol=1e-6)
    assert (got == 0).sum() == (want == 0).sum()


def test_local_hours_follow_asia_shanghai():
    """Report hours from PostgreSQL's binary timestamps: UTC+8 today, and the tz database's
    answer in 1988, when Shanghai kept summer time (UTC+9)."""
    from geo.hotspots import _local_hours

    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    instants = [datetime(2025, 6, 2, 13, 30, tzinfo=UTC), datetime(2025, 12, 31, 16, 0, tzinfo=UTC),
                datetime(1988, 7, 1, 12, 0, tzinfo=UTC), datetime(1969, 7, 20, 20, 17, tzinfo=UTC)]
    micros = np.array([(t - epoch) // timedelta(microseconds=1) for t in instants], dtype=np.int64)
    from zoneinfo import ZoneInfo

    want = [t.astimezone(ZoneInfo("Asia/Shanghai")).hour for t in instants]
    assert want[:3] == [21, 0, 21]  # 1988 summer: UTC+9
    assert _local_hours(micros).tolist() == want
