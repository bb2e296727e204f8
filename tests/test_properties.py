"""Property-based tests (hypothesis) beyond tests/test_coords_property.py (which covers the
GCJ-02/BD-09 round trips and check_point on floats and mixed values):

* CRS names: any text is normalised or refused with InvalidInput, never another error;
  conversions of any float pair in any accepted CRS give floats or a CoordinateError;
  the metric CRS (EPSG:4527) round-trips inside its area of use;
* routing on the sample city: any point, in any CRS, as any value (NaN, infinities, huge,
  tiny, text, None) gets exactly one documented rule whose fields agree with it and with
  an independent ST_Covers count, or a CoordinateError;
* boundary import: random rings written as raw GeoJSON (self-intersections, spikes,
  zero-area, repeated points, rings left open) are repaired into valid polygons or
  rejected with a reason, never a crash.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from casegrid.db import make_engine
from casegrid.errors import CoordinateError, ImportFailed, InvalidInput
from geo.boundary_import import read_boundaries
from geo.coords import from_wgs84, normalise_crs, to_wgs84
from geo.routing import RULES, route
from tests.helpers.databases import fresh_database
from tests.helpers.intake_api import covering_communities

GEOD = pyproj.Geod(ellps="WGS84")
CRS_NAMES = ("wgs84", "gcj02", "bd09", "EPSG:4326", "EPSG:4527", "EPSG:3857", "EPSG:32650")
any_float = st.floats(allow_nan=True, allow_infinity=True)
extreme = st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308, 1e-300, 180.0, -180.0,
                           90.0, -90.0, 180.0000001, 90.0000001, float("nan"), float("inf")])
any_value = st.one_of(any_float, extreme, st.integers(-10**20, 10**20), st.none(), st.booleans(),
                      st.text(max_size=10), any_float.map(repr), st.just("117.16"),
                      st.just(" 35.08 "), st.just("1e400"))


# --- CRS names and conversions -------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.text(max_size=20), st.sampled_from(CRS_NAMES),
                      st.integers(0, 10**7).map(lambda n: f"EPSG:{n}"),
                      st.integers(0, 10**7).map(str)))
def test_normalise_crs_names_or_refuses(name):
    try:
        code = normalise_crs(name)
    except InvalidInput as err:
        assert err.field and err.message
        return
    assert code in ("wgs84", "gcj02", "bd09") or code.startswith("EPSG:")
    assert normalise_crs(code) == code  # idempotent


@settings(max_examples=400, deadline=None)
@given(x=st.one_of(any_float, extreme), y=st.one_of(any_float, extreme),
       crs=st.sampled_from(CRS_NAMES), forward=st.booleans())
def test_conversions_give_floats_or_a_coordinate_error(x, y, crs, forward):
    convert = from_wgs84 if forward else to_wgs84
    try:
        lon, lat = convert(x, y, crs)
    except (CoordinateError, InvalidInput) as err:
        assert err.message
        return
    assert lon.shape == lat.shape == (1,)
    assert lon.dtype.kind == "f" and lat.dtype.kind == "f"


@settings(max_examples=200, deadline=None)
@given(lon=st.floats(115.6, 118.4), lat=st.floats(22.7, 49.8))
def test_metric_crs_round_trips_inside_its_area_of_use(lon, lat):
    x, y = from_wgs84(lon, lat, "EPSG:4527")
    assert math.isfinite(x[0]) and math.isfinite(y[0])
    back_lon, back_lat = to_wgs84(x, y, "EPSG:4527")
    _, _, dist = GEOD.inv(lon, lat, back_lon[0], back_lat[0])
    assert dist < 0.01


# --- routing -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city(pg_cluster, city_template) -> Iterator[Engine]:
    for url in fresh_database(pg_cluster, city_template):
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


near_city = st.tuples(st.floats(117.05, 117.30), st.floats(34.98, 35.18))


def _check_outcome(engine: Engine, r) -> None:
    assert r.rule in RULES
    covering = covering_communities(engine, r.lon, r.lat)
    if r.rule == "inside":
        assert covering == [r.community_code] and r.distance_m in (None, 0.0)
    elif r.rule == "on_boundary":
        assert len(covering) >= 2 and r.community_code == min(covering)
        assert {a["code"] for a in r.alternates} >= set(covering) - {r.community_code}
    elif r.rule == "nearest":
        assert covering == [] and r.community_code is not None
        assert 0 < r.distance_m <= 200 + 1e-6  # the default gap tolerance
    else:
        assert covering == [] and r.community_code is None and r.distance_m is None
    assert r.near_boundary == bool(r.alternates) or r.rule == "on_boundary"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point=near_city, crs=st.sampled_from(("wgs84", "gcj02", "bd09")))
def test_any_point_near_the_city_gets_one_consistent_rule(city, point, crs):
    with city.connect() as conn:
        r = route(conn, point[0], point[1], crs)
    _check_outcome(city, r)
    assert r.input_crs == crs and (r.input_lon, r.input_lat) == point


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lon=any_value, lat=any_value, crs=st.sampled_from(CRS_NAMES))
def test_any_value_is_routed_or_refused_with_a_coordinate_error(city, lon, lat, crs):
    with city.connect() as conn:
        try:
            r = route(conn, lon, lat, crs)
        except CoordinateError as err:
            assert err.field in ("lon", "lat") and err.message
            return
    assert math.isfinite(r.lon) and math.isfinite(r.lat)
    assert -180 <= r.lon <= 180 and -90 <= r.lat <= 90
    _check_outcome(city, r)


# --- boundary import of random invalid polygons --------------------------------------------

_BASE = (117.16, 35.08)
coord = st.tuples(st.integers(0, 8), st.integers(0, 8)).map(
    lambda ij: [_BASE[0] + ij[0] * 0.001, _BASE[1] + ij[1] * 0.001])


@st.composite
def rings(draw) -> list[list[float]]:
    """A ring of grid points with repeats, spikes (go out and straight back), collinear
    runs and self-crossings all likely; closed, or left open on purpose."""
    pts = draw(st.lists(coord, min_size=1, max_size=9))
    if draw(st.booleans()) and len(pts) >= 2:  # a spike: out and back along one segment
        i = draw(st.integers(0, len(pts) - 1))
        pts = pts[: i + 1] + [draw(coord), pts[i]] + pts[i + 1:]
    if draw(st.booleans()):
        pts = pts + [pts[0]]
    return pts


@st.composite
def features(draw) -> list[dict]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        shell = draw(rings())
        holes = draw(st.lists(rings(), max_size=1))
        geom = {"type": "Polygon", "coordinates": [shell, *holes]}
        if draw(st.booleans()):
            geom = {"type": "MultiPolygon", "coordinates": [geom["coordinates"], [draw(rings())]]}
        out.append({"type": "Feature", "properties": {"code": f"R{i}", "name": f"ring {i}"},
                    "geometry": geom})
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feats=features())
def test_random_invalid_polygons_are_repaired_or_rejected_never_a_crash(feats):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
        try:
            accepted, report = read_boundaries(path, level="community", code_field="code",
                                               name_field="name")
        except ImportFailed as err:
            # Only a file GDAL cannot read at all (e.g. a ring of fewer than 4 positions in
            # some GDAL versions) may fail as a whole, and then it says so.
            assert err.message and err.field
            return
    assert report.read == len(feats)
    assert report.accepted + len(report.rejected) == report.read == len(accepted) + len(report.rejected)
    for r in report.rejected:
        assert r.reason and 1 <= r.feature <= len(feats)
    repaired = {r.code for r in report.repaired}
    for code, geom in zip(accepted["code"], accepted.geometry, strict=True):
        assert geom.is_valid and geom.geom_type in ("Polygon", "MultiPolygon")
        assert geom.area > 0
        source = next(f for f in feats if f["properties"]["code"] == code)["geometry"]
        raw = shapely.geometry.shape(source) if _closed(source) else None
        if raw is not None and not raw.is_valid:
            assert code in repaired


def _closed(geometry: dict) -> bool:
    polys = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    try:
        return all(len(r) >= 4 and r[0] == r[-1] for p in polys for r in p)
    except TypeError:
        return False


@settings(max_examples=60, deadline=None)
@given(n=st.integers(4, 60), scale=st.floats(1e-9, 1e-3))
def test_zero_area_and_needle_polygons_are_rejected_with_a_reason(n, scale):
    # A "polygon" that is a line walked out and back has no area at all.
    line = [[_BASE[0] + i * scale, _BASE[1] + i * scale] for i in range(n // 2 + 1)]
    ring = line + line[-2::-1]
    assume(len(ring) >= 4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {"code": "Z", "name": "flat"},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
        try:
            accepted, report = read_boundaries(path, level="community", code_field="code",
                                               name_field="name")
        except ImportFailed as err:
            assert err.message
            return
    assert len(accepted) == 0 and len(report.rejected) == 1
    assert "nothing polygonal is left" in report.rejected[0].reason or "invalid" in report.rejected[0].reason


# --- regressions for what the properties found ---------------------------------------------


@pytest.mark.parametrize(("lon", "lat"), [(117.16, 5e-324), (5e-324, 5e-324), (117.16, -1e-310)])
def test_subnormal_coordinates_route_instead_of_a_database_underflow(city, lon, lat):
    # Found: PostgreSQL's radians() raised "value out of range: underflow" for a subnormal
    # latitude (a 500 through the API).
    with city.connect() as conn:
        r = route(conn, lon, lat)
    assert r.rule == "outside" and r.lat == 0.0


def test_route_file_with_a_subnormal_latitude_routes_the_batch(city, tmp_path):
    from geo.route_file import route_file

    src = tmp_path / "in.csv"
    src.write_text("id,x,y\n1,117.16,5e-324\n2,117.16,35.08\n")
    out = tmp_path / "out.csv"
    route_file(city, src, out, lon_col="x", lat_col="y")
    import pandas as pd

    routed = pd.read_csv(out, dtype=str)
    assert list(routed["rule"]) == ["outside", "inside"]


def test_a_one_position_ring_fails_the_file_clearly(tmp_path):
    # Found: GEOS' "point array must contain 0 or >1 elements" escaped read_boundaries.
    path = tmp_path / "one.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": "A", "name": "a"},
        "geometry": {"type": "Polygon", "coordinates": [[[117.16, 35.08]]]}}]}))
    with pytest.raises(ImportFailed) as exc:
        read_boundaries(path, level="community", code_field="code", name_field="name")
    assert "one.geojson" in exc.value.message and "4 positions" in exc.value.message
