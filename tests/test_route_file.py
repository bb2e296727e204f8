"""route-file on real data: NYC 311 requests against NYC's community districts, compared
with the city's own assignment; and bad rows never stop a run."""

from __future__ import annotations

import re
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geo.boundaries import store_generation
from geo.route_file import distances_to_communities, route_file
from tests.helpers.paths import require_realdata

BOROUGH = {"MANHATTAN": 1, "BRONX": 2, "BROOKLYN": 3, "QUEENS": 4, "STATEN ISLAND": 5}


def board_to_borocd(board: str) -> str | None:
    """'05 BROOKLYN' -> '305' (realdata/README.md); 'Unspecified ...' -> None."""
    m = re.fullmatch(r"(\d{2}) (MANHATTAN|BRONX|BROOKLYN|QUEENS|STATEN ISLAND)", board.strip())
    if not m:
        return None
    return str(BOROUGH[m.group(2)] * 100 + int(m.group(1)))


@pytest.fixture
def nyc(engine):
    path = require_realdata("nyc", "community_districts_2013_dcp.geojson")
    gdf = gpd.read_file(path).to_crs(4326)
    gdf["geometry"] = gdf.geometry.make_valid()
    frame = gpd.GeoDataFrame(
        {"code": gdf["BoroCD"].astype(int).astype(str), "name": gdf["BoroCD"].astype(str)},
        geometry=gdf.geometry,
        crs=4326,
    )
    with engine.begin() as conn:
        store_generation(conn, "community", frame, source=str(path), source_crs="EPSG:4326")
    return engine


@pytest.mark.realdata
def test_nyc_311_agrees_with_the_city_on_99_percent(nyc, tmp_path):
    src = require_realdata("nyc", "311_service_requests_2022-05-01.csv")
    out = tmp_path / "routed.csv"
    report = route_file(nyc, src, out, lon_col="Longitude", lat_col="Latitude")
    routed = pd.read_csv(out, dtype=str, keep_default_na=False)
    raw = pd.read_csv(src, dtype=str, keep_default_na=False)
    # every input row and column is kept, in order
    assert len(routed) == len(raw) == report.rows
    assert list(routed.columns[: len(raw.columns)]) == list(raw.columns)
    assert (routed["Unique Key"] == raw["Unique Key"]).all()
    # rows without coordinates are 'invalid' with a reason, not dropped
    no_coords = raw["Latitude"] == ""
    assert no_coords.sum() > 0
    assert (routed.loc[no_coords, "rule"] == "invalid").all()
    assert routed.loc[no_coords, "reason"].str.contains("missing").all()

    truth = raw["Community Board"].map(board_to_borocd)
    judged = truth.notna() & ~no_coords
    agree = routed.loc[judged, "community_code"] == truth[judged]
    rate = agree.mean()
    assert rate >= 0.99, f"agreement {rate:.4f}"

    # Each disagreement is explained: its distance to the district the city chose.
    bad = routed.loc[judged & ~(routed["community_code"] == truth)]
    dist = distances_to_communities(
        nyc, bad["Longitude"].astype(float).to_numpy(), bad["Latitude"].astype(float).to_numpy(),
        truth[bad.index].tolist(),
    )
    listing = "\n".join(
        f"{k}: routed {c} ({r}, near_boundary={nb}, alternates={alt}), city says {t}, {d:.2f} m away"
        for k, c, r, nb, alt, t, d in zip(
            bad["Unique Key"], bad["community_code"], bad["rule"], bad["near_boundary"],
            bad["alternates"], truth[bad.index], dist, strict=True)
    )
    print(f"agreement {rate:.2%} over {judged.sum()} rows; disagreements:\n{listing}")
    assert np.isfinite(dist).all()
    assert (dist > 0).all(), "a disagreeing point inside the city's district would be a routing bug"
    # Where the city's choice is within the GPS margin, we flagged the point for a dispatcher
    # and offered the city's district as an alternate: nothing is hidden.
    close = dist <= 20
    assert close.any()
    assert (bad["near_boundary"][close] == "True").all()
    assert all(t in alt.split(";") for t, alt in zip(truth[bad.index][close], bad["alternates"][close], strict=True))



def _one_square_community(engine) -> None:  # noqa: ANN001
    """A single community "1": the square 117-117.1 E, 35-35.1 N."""
    from shapely.geometry import box

    with engine.begin() as conn:
        store_generation(
            conn, "community",
            gpd.GeoDataFrame({"code": ["1"], "name": ["A"]}, geometry=[box(117, 35, 117.1, 35.1)], crs=4326),
            source="t", source_crs="EPSG:4326",
        )


def test_bad_rows_get_rule_invalid_and_a_reason(engine, tmp_path):
    _one_square_community(engine)
    src = tmp_path / "in.csv"
    src.write_text(
        "id,x,y,rule\n"
        "1,117.05,35.05,keep-me\n"
        "2,,35.05,\n"
        "3,abc,35.05,\n"
        "4,NaN,35.05,\n"
        "5,35.05,117.05,\n"
        "6,200,35.05,\n"
        "7,117.2,35.05,\n"
    )
    out = tmp_path / "out.csv"
    report = route_file(engine, src, out, lon_col="x", lat_col="y")
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["rule"].tolist() == ["keep-me", "", "", "", "", "", ""]  # input column untouched
    assert got["routed_rule"].tolist() == [
        "inside", "invalid", "invalid", "invalid", "invalid", "invalid", "outside"
    ]
    assert "swapped" in got.loc[4, "reason"]
    assert report.invalid == 5 and report.by_rule["inside"] == 1


def test_quoted_line_breaks_and_crlf_are_kept(engine, tmp_path):
    _one_square_community(engine)
    for name, body in {
        "multiline.csv": 'id,x,y,note\n1,117.05,35.05,"two\nlines"\n2,117.06,35.06,plain\n',
        "crlf.csv": "id,x,y,note\r\n1,117.05,35.05,\"a, b\"\r\n2,117.2,35.06,plain\r\n",
    }.items():
        src, out = tmp_path / name, tmp_path / f"out_{name}"
        src.write_bytes(body.encode())
        route_file(engine, src, out, lon_col="x", lat_col="y")
        got = pd.read_csv(out, dtype=str, keep_default_na=False)
        original = pd.read_csv(src, dtype=str, keep_default_na=False)
        assert got[original.columns].equals(original), name
        assert got["community_code"].tolist()[0] == "1"
        assert "\r" not in out.read_text()


@pytest.mark.parametrize("tolerance_m, margin_m", [(None, None), (30.0, 50.0)])
def test_route_points_in_chunks_agrees_with_single_point_routing(city_engine, monkeypatch,
                                                                 tolerance_m, margin_m):
    """route_points routes its rows a chunk at a time (most by their cell, the rest by
    route_sql: geo.route_cells); with chunks of 7 rows, invalid rows among them, every
    valid point gets what routing it alone gives, near boundaries and vertices and far
    outside the city included, with the default gap tolerance and margin and with others;
    and the progress reaches every row."""
    import geo.route_file
    from geo.route_file import route_points
    from geo.routing import route

    with city_engine.connect() as conn:
        ring = conn.exec_driver_sql(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM community c,"
            " LATERAL ST_DumpPoints(c.geom) p WHERE c.generation_id ="
            " (SELECT id FROM boundary_generation WHERE level = 'community' AND active)"
            " ORDER BY c.code, p.path LIMIT 2000").all()
    rng = np.random.default_rng(11)
    vertices = np.array(ring)[rng.choice(len(ring), 40, replace=False)]
    near = vertices + rng.uniform(-0.0004, 0.0004, vertices.shape)  # within ~40 m
    # over the city and up to ~10 km beyond it (gaps, nearest, far outside)
    spread = np.column_stack([rng.uniform(116.95, 117.35, 60), rng.uniform(34.9, 35.3, 60)])
    points = np.vstack([vertices, near, spread])
    lon = points[:, 0].astype(object)
    lat = points[:, 1].astype(object)
    lon[[3, 50, 51]] = [None, "abc", 200.0]  # three invalid rows in different chunks
    monkeypatch.setattr(geo.route_file, "COPY_CHUNK", 7)
    events: list[tuple[str, int, int]] = []
    got = route_points(city_engine, lon, lat, tolerance_m=tolerance_m, margin_m=margin_m,
                       progress=lambda *e: events.append(e))

    assert got.loc[[3, 50, 51], "rule"].tolist() == ["invalid"] * 3
    valid = [i for i in range(len(points)) if i not in (3, 50, 51)]
    assert events[-1] == ("route", len(valid), len(valid))
    with city_engine.connect() as conn:
        for i in valid:
            alone = route(conn, float(lon[i]), float(lat[i]), tolerance_m=tolerance_m,
                          margin_m=margin_m)
            row = got.loc[i]
            assert (row["rule"], row["community_code"], bool(row["near_boundary"])) == (
                alone.rule, alone.community_code, alone.near_boundary), i
            assert row["alternates"] == ";".join(a["code"] for a in alone.alternates), i
            if alone.distance_m is None:
                assert np.isnan(row["distance_m"]), i
            else:
                assert row["distance_m"] == pytest.approx(alone.distance_m, abs=0.01), i
    rules = set(got.loc[valid, "rule"])
    assert {"inside", "on_boundary", "outside"} <= rules
    assert got.loc[valid, "near_boundary"].sum() > 10


def _spread_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random points over the sample city's centre (inside, near boundaries, gaps)."""
    rng = np.random.default_rng(5)
    return rng.uniform(117.10, 117.22, n), rng.uniform(35.03, 35.13, n)


def test_route_points_shares_the_chunks_between_two_backends(city_engine, monkeypatch):
    """The chunks are routed on ROUTE_CONNECTIONS (2) connections at once, each its own
    backend: both route some, every chunk is routed once, and the answer is the same as
    with one connection."""
    import geo.route_file
    from geo.route_file import route_points
    from geo.route_parallel import RouteConnection

    lon, lat = _spread_points(120)
    monkeypatch.setattr(geo.route_file, "COPY_CHUNK", 10)
    monkeypatch.setattr(geo.route_file, "ROUTE_CONNECTIONS", 1)
    one = route_points(city_engine, lon, lat)

    seen: list[tuple[int, int]] = []
    real_route = RouteConnection.route

    def spy(self, lines, x, y):
        pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        seen.append((pid, int(lines[0])))
        time.sleep(0.05)  # so that the second connection is open before the chunks run out
        return real_route(self, lines, x, y)

    monkeypatch.setattr(RouteConnection, "route", spy)
    monkeypatch.setattr(geo.route_file, "ROUTE_CONNECTIONS", 2)
    two = route_points(city_engine, lon, lat)

    assert len({pid for pid, _ in seen}) == 2
    assert sorted(first for _, first in seen) == list(range(0, 120, 10))
    pd.testing.assert_frame_equal(two, one)
    assert set(two["rule"]) >= {"inside"}


def test_a_pool_of_one_connection_routes_on_that_one(city_engine, monkeypatch):
    """An engine whose pool holds one connection routes every chunk on it (a second
    routing connection would wait for the first until the pool timed out)."""
    from sqlalchemy import create_engine

    import geo.route_file
    from geo.route_file import route_points
    from geo.route_parallel import RouteConnection

    lon, lat = _spread_points(50)
    monkeypatch.setattr(geo.route_file, "COPY_CHUNK", 10)
    expected = route_points(city_engine, lon, lat)
    real_route = RouteConnection.route

    def slow(self, lines, x, y):  # the one connection stays busy past the pool's timeout
        time.sleep(0.4)
        return real_route(self, lines, x, y)

    monkeypatch.setattr(RouteConnection, "route", slow)
    single = create_engine(city_engine.url, pool_size=1, max_overflow=0, pool_timeout=1)
    try:
        got = route_points(single, lon, lat)
    finally:
        single.dispose()
    pd.testing.assert_frame_equal(got, expected)


def test_a_failing_routing_connection_fails_the_run_and_returns_its_connections(
        city_engine, monkeypatch):
    """When one routing connection fails, route_points raises that error (not a
    follow-on one), the other connection stops, and both go back to the pool."""
    import geo.route_file
    from geo.route_file import route_points
    from geo.route_parallel import RouteConnection

    lon, lat = _spread_points(100)
    monkeypatch.setattr(geo.route_file, "COPY_CHUNK", 10)
    real_route = RouteConnection.route
    calls = []

    def failing(self, lines, x, y):
        calls.append(int(lines[0]))
        if len(calls) == 3:
            raise RuntimeError("lost the connection")
        time.sleep(0.02)
        return real_route(self, lines, x, y)

    monkeypatch.setattr(RouteConnection, "route", failing)
    before = city_engine.pool.checkedout()
    with pytest.raises(RuntimeError, match="lost the connection"):
        route_points(city_engine, lon, lat)
    assert city_engine.pool.checkedout() == before
    assert len(calls) < 10  # the rest were not routed


def test_a_file_with_no_usable_coordinates_is_written_whole(engine, tmp_path):
    _one_square_community(engine)
    src = tmp_path / "in.csv"
    src.write_text("id,x,y\n1,,35.05\n2,abc,35.05\n")
    out = tmp_path / "out.csv"
    report = route_file(engine, src, out, lon_col="x", lat_col="y")
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["id"].tolist() == ["1", "2"] and got["rule"].tolist() == ["invalid"] * 2
    assert report.invalid == 2 and report.by_rule == {"invalid": 2}


def test_blank_lines_fall_back_to_rewriting_the_rows(engine, tmp_path):
    # Lines are copied as they are only when there is one per record. A quoted line break
    # and a blank line (pandas skips it) each add a physical line: route_file writes the
    # rows through pandas instead, in order.
    _one_square_community(engine)
    src = tmp_path / "in.csv"
    src.write_text('id,x,y,note\n1,117.05,35.05,"two\nlines"\n   \n2,117.2,35.05,b\n'
                   "3,117.06,35.06,c\n")
    out = tmp_path / "out.csv"
    route_file(engine, src, out, lon_col="x", lat_col="y")
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert got["id"].tolist() == ["1", "2", "3"]
    assert got["note"].tolist() == ["two\nlines", "b", "c"]
    assert got["rule"].tolist() == ["inside", "outside", "inside"]
