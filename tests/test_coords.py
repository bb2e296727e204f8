"""Coordinate systems (WGS-84 / GCJ-02 / BD-09 / EPSG) and coordinate validation.

Pure Python: no database. Reference values come from published sources cited next to each
one, or from an independent scalar re-implementation of the published formula below.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import Point, Polygon

from casegrid.errors import CoordinateError, InvalidInput
from geo import coords
from geo.coords import (
    BD09,
    GCJ02,
    METRIC_CRS,
    WGS84,
    bd09_to_gcj02,
    bd09_to_wgs84,
    check_point,
    check_points,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    metric_crs_for,
    normalise_crs,
    to_wgs84,
    transform_geometries_to_wgs84,
    utm_epsg_for,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = pyproj.Geod(ellps="WGS84")
TENGZHOU = (117.16, 35.09)


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance on WGS-84, vectorised."""
    _, _, dist = GEOD.inv(
        np.broadcast_to(lon1, np.shape(lon2)), np.broadcast_to(lat1, np.shape(lat2)), lon2, lat2
    )
    return np.asarray(dist)


# --- independent scalar implementation of the published formulas -------------------------
# Transcribed from github.com/googollee/eviltransform go/transform.go (WGStoGCJ) and the
# bd_encrypt formula in github.com/wandergis/coordtransform index.js, with plain `math`,
# one point at a time, so a slip in the vectorised code cannot hide in both.


def _ref_wgs_to_gcj(lon: float, lat: float) -> tuple[float, float]:
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    ret_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret_lat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
    ret_lat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
    ret_lat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2 / 3
    ret_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret_lon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
    ret_lon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
    ret_lon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    rad_lat = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (ret_lat * 180.0) / ((a * (1 - ee)) / (magic * sqrt_magic) * math.pi)
    d_lon = (ret_lon * 180.0) / (a / sqrt_magic * math.cos(rad_lat) * math.pi)
    return lon + d_lon, lat + d_lat


def _ref_gcj_to_bd(lon: float, lat: float) -> tuple[float, float]:
    x_pi = math.pi * 3000.0 / 180.0
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * x_pi)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * x_pi)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


# --- forward formulas against published values -------------------------------------------

# github.com/googollee/eviltransform, go/transform_test.go: (wgs lat, wgs lng, gcj lat, gcj lng).
EVILTRANSFORM_PAIRS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM_PAIRS)
def test_wgs_to_gcj_matches_eviltransform_reference(wlat, wlon, glat, glon):
    lon, lat = wgs84_to_gcj02(wlon, wlat)
    assert lon[0] == pytest.approx(glon, abs=1e-9)
    assert lat[0] == pytest.approx(glat, abs=1e-9)


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM_PAIRS)
def test_gcj_to_wgs_recovers_eviltransform_reference(wlat, wlon, glat, glon):
    lon, lat = gcj02_to_wgs84(glon, glat)
    # eviltransform's own "exact" inverse promises < 0.5 m; ours must do better.
    assert metres(wlon, wlat, lon, lat)[0] < 0.01


def test_forward_formulas_match_coordtransform_readme():
    # github.com/wandergis/coordtransform README, example for the point (116.404, 39.915).
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert (lon[0], lat[0]) == pytest.approx((116.41024449916938, 39.91640428150164), abs=1e-9)
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert (lon[0], lat[0]) == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-9)


def test_iterative_inverses_beat_the_published_one_step_inverses():
    # Same README: its gcj02towgs84 / bd09togcj02 are one-step approximations. Ours must
    # land within a few metres of them but map forward onto the input far more exactly.
    target = (116.404, 39.915)
    cases = [
        (gcj02_to_wgs84, _ref_wgs_to_gcj, (116.39775550083061, 39.91359571849836)),
        (bd09_to_gcj02, _ref_gcj_to_bd, (116.39762729119315, 39.90865673957631)),
    ]
    for inverse, forward, one_step in cases:
        lon, lat = inverse(*target)
        assert metres(one_step[0], one_step[1], lon, lat)[0] < 5.0
        ours = metres(*target, *map(np.atleast_1d, forward(lon[0], lat[0])))[0]
        theirs = metres(*target, *map(np.atleast_1d, forward(*one_step)))[0]
        assert ours < 0.001
        assert theirs > 10 * ours


def test_vectorised_forward_matches_scalar_reference_over_china():
    lons = np.arange(73.0, 137.0, 3.7)
    lats = np.arange(1.0, 55.0, 2.9)
    glon, glat = np.meshgrid(lons, lats)
    lon, lat = wgs84_to_gcj02(glon, glat)
    blon, blat = wgs84_to_bd09(glon, glat)
    for i, j in np.ndindex(glon.shape):
        ref = _ref_wgs_to_gcj(glon[i, j], glat[i, j])
        assert (lon[i, j], lat[i, j]) == pytest.approx(ref, abs=1e-12)
        assert (blon[i, j], blat[i, j]) == pytest.approx(_ref_gcj_to_bd(*ref), abs=1e-12)


# --- round trips across China -------------------------------------------------------------


@pytest.fixture(scope="module")
def china_grid() -> tuple[np.ndarray, np.ndarray]:
    """Every 0.5 degree across the China box, kept 0.5 degree inside its edges."""
    lon, lat = np.meshgrid(np.arange(72.5, 137.5001, 0.5), np.arange(1.0, 55.5001, 0.5))
    return lon.ravel(), lat.ravel()


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [
        (wgs84_to_gcj02, gcj02_to_wgs84),
        (wgs84_to_bd09, bd09_to_wgs84),
        (gcj02_to_bd09, bd09_to_gcj02),
    ],
    ids=["wgs-gcj", "wgs-bd", "gcj-bd"],
)
def test_round_trips_on_dense_grid(china_grid, forward, inverse):
    lon, lat = china_grid
    assert lon.size > 14000
    # Start from either side: inverse(forward(p)) and forward(inverse(q)).
    back = inverse(*forward(lon, lat))
    assert metres(lon, lat, *back).max() < 0.05
    there = forward(*inverse(lon, lat))
    assert metres(lon, lat, *there).max() < 0.05


def test_round_trip_through_public_api_for_every_system(china_grid):
    lon, lat = china_grid
    for crs in ("wgs84", "GCJ-02", "BD-09"):
        back = to_wgs84(*from_wgs84(lon, lat, crs), crs)
        assert metres(lon, lat, *back).max() < 0.05


def test_offsets_near_tengzhou():
    lon, lat = TENGZHOU
    gcj = wgs84_to_gcj02(lon, lat)
    bd = wgs84_to_bd09(lon, lat)
    gcj_m = metres(lon, lat, *gcj)[0]
    bd_m = metres(lon, lat, *bd)[0]
    # "Several hundred metres (BD-09 up to ~1 km)": wider than a community.
    assert 300 < gcj_m < 900
    assert bd_m > gcj_m + 300
    assert bd_m < 1600
    # Converting back from what a phone reports lands on the original point.
    assert metres(lon, lat, *to_wgs84(*gcj, "gcj02"))[0] < 0.01
    assert metres(lon, lat, *to_wgs84(*bd, "bd09"))[0] < 0.01


OUTSIDE = [
    (-73.9855, 40.758),  # New York
    (-0.1276, 51.5072),  # London
    (151.2093, -33.8688),  # Sydney
    (0.0, 0.0),
    (72.0, 35.0),  # just west of the box
    (137.9, 35.0),  # just east
    (117.0, 0.8),  # just south
    (117.0, 55.9),  # just north
]


@pytest.mark.parametrize(
    "fn",
    [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84],
)
def test_points_outside_china_are_unchanged(fn):
    lon = np.array([p[0] for p in OUTSIDE] + [TENGZHOU[0]])
    lat = np.array([p[1] for p in OUTSIDE] + [TENGZHOU[1]])
    out_lon, out_lat = fn(lon, lat)
    np.testing.assert_array_equal(out_lon[:-1], lon[:-1])
    np.testing.assert_array_equal(out_lat[:-1], lat[:-1])
    # ...while the Tengzhou point in the same call is moved by hundreds of metres.
    assert metres(lon[-1], lat[-1], out_lon[-1:], out_lat[-1:])[0] > 300
    # The input arrays were not modified in place.
    assert lon[-1] == TENGZHOU[0]


def test_scalars_shapes_and_nan():
    lon, lat = wgs84_to_gcj02(117.16, 35.09)
    assert lon.shape == (1,) and lat.dtype == np.float64
    grid_lon = np.full((2, 3), 117.16)
    grid_lat = np.full((2, 3), 35.09)
    for crs in ("gcj02", "bd09", "EPSG:4527"):
        out = to_wgs84(*from_wgs84(grid_lon, grid_lat, crs), crs)
        assert out[0].shape == (2, 3)
    out_lon, out_lat = to_wgs84([np.nan, 117.16], [35.09, 35.09], "gcj02")
    assert np.isnan(out_lon[0]) and np.isfinite(out_lon[1])
    with pytest.raises(ValueError):
        to_wgs84([1.0, 2.0], [1.0], "gcj02")


# --- CRS names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("wgs84", WGS84),
        ("WGS-84", WGS84),
        ("WGS84", WGS84),
        ("wgs 84", WGS84),
        ("EPSG:4326", WGS84),
        ("epsg:4326", WGS84),
        ("4326", WGS84),
        ("gcj02", GCJ02),
        ("GCJ-02", GCJ02),
        ("gcj_02", GCJ02),
        ("bd09", BD09),
        ("BD-09", BD09),
        ("bd09ll", BD09),
        ("EPSG:2263", "EPSG:2263"),
        ("epsg:4527", "EPSG:4527"),
        (" EPSG:32650 ", "EPSG:32650"),
        ("4490", "EPSG:4490"),
    ],
)
def test_normalise_crs_accepts(spelling, canonical):
    assert normalise_crs(spelling) == canonical


@pytest.mark.parametrize(
    "bad", ["foo", "gcj03", "EPSG:999999", "EPSG:4978", "EPSG:", "", "   ", None, "mars"]
)
def test_normalise_crs_rejects_with_accepted_list(bad):
    with pytest.raises(InvalidInput) as info:
        normalise_crs(bad)
    assert info.value.field == "crs"
    assert "gcj02" in info.value.message and "EPSG:" in info.value.message


def test_conversions_reject_unknown_crs():
    with pytest.raises(InvalidInput):
        to_wgs84(117.16, 35.09, "baidu-mercator")


# --- EPSG CRSs through pyproj -------------------------------------------------------------


def test_ny_state_plane_feet_to_wgs84():
    # NYC Open Data 311 Service Requests (dataset erm2-nwe9) publishes each record's state
    # plane X/Y (EPSG:2263, US survey feet, rounded to the foot) next to its lat/lon.
    records = [
        (996583, 194956, -73.95552043960885, 40.701777357509755),  # Brooklyn, Lee Avenue
        (1039823, 212155, -73.79943159765267, 40.74881840234017),  # Queens, Fresh Meadows
    ]
    x = [r[0] for r in records]
    y = [r[1] for r in records]
    lon, lat = to_wgs84(x, y, "EPSG:2263")
    assert metres([r[2] for r in records], [r[3] for r in records], lon, lat).max() < 1.0
    # The projection's false origin (74W, 40 deg 10'N) is at (984250 ftUS, 0) by definition.
    lon, lat = to_wgs84(984250.0, 0.0, "2263")
    assert (lon[0], lat[0]) == pytest.approx((-74.0, 40.0 + 10 / 60), abs=1e-9)
    # And back.
    bx, by = from_wgs84(-74.0, 40.0 + 10 / 60, "EPSG:2263")
    assert (bx[0], by[0]) == pytest.approx((984250.0, 0.0), abs=1e-3)


def test_unprojectable_points_come_back_as_nan():
    # A UTM zone cannot represent the far side of the globe sensibly; PROJ returns inf there.
    x, y = from_wgs84([117.16, np.nan], [35.09, 35.09], "EPSG:32650")
    assert np.isfinite(x[0]) and np.isnan(x[1]) and np.isnan(y[1])


def test_metric_crs_is_cgcs2000_zone_39_and_covers_tengzhou():
    crs = pyproj.CRS.from_user_input(METRIC_CRS)
    assert crs.is_projected and "CGCS2000" in crs.name and "zone 39" in crs.name
    x, y = from_wgs84(*TENGZHOU, METRIC_CRS)
    # Zone-prefixed easting: 39 500 000 m at the 117E central meridian; Tengzhou is at 117.16E.
    assert 39_500_000 < x[0] < 39_530_000
    assert 3_800_000 < y[0] < 3_950_000
    assert metric_crs_for(*TENGZHOU) == METRIC_CRS
    assert metric_crs_for(-73.9855, 40.758) == "EPSG:32618"


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (-73.9855, 40.758, 32618),  # New York
        (117.16, 35.09, 32650),  # Tengzhou
        (151.2093, -33.8688, 32756),  # Sydney
        (-180.0, 10.0, 32601),
        (180.0, 10.0, 32660),
        (5.32, 60.39, 32632),  # Bergen: the Norway exception (would be 31)
        (15.6, 78.2, 32633),  # Longyearbyen: Svalbard exception
        (0.0, 85.0, 32661),  # UPS North
        (0.0, -85.0, 32761),  # UPS South
    ],
)
def test_utm_epsg_for(lon, lat, epsg):
    assert utm_epsg_for(lon, lat) == epsg


@pytest.mark.parametrize(("lon", "lat"), [(-122.4, 37.8), (2.35, 48.86), (-58.4, -34.6), (31.2, 30.0)])
def test_utm_zone_area_of_use_contains_the_point(lon, lat):
    # Cross-check against EPSG's own published area of use for the chosen zone.
    area = pyproj.CRS.from_epsg(utm_epsg_for(lon, lat)).area_of_use
    assert area.west <= lon <= area.east and area.south <= lat <= area.north


def test_utm_epsg_for_validates_input():
    with pytest.raises(CoordinateError):
        utm_epsg_for(float("nan"), 10.0)


# --- geometries ---------------------------------------------------------------------------


def test_transform_geoseries_from_gcj02():
    poly = Polygon([(117.15, 35.08), (117.17, 35.08), (117.17, 35.10), (117.15, 35.08)])
    # GCJ-02 files are routinely labelled EPSG:4326; the crs argument must win.
    gs = gpd.GeoSeries([poly, Point(117.16, 35.09), None], index=[10, 20, 30], crs=4326,
                       name="geometry")
    out = transform_geometries_to_wgs84(gs, "GCJ-02")
    assert isinstance(out, gpd.GeoSeries)
    assert list(out.index) == [10, 20, 30] and out.crs.to_epsg() == 4326
    assert out.iloc[2] is None
    got = shapely.get_coordinates(out.iloc[0])
    src = shapely.get_coordinates(poly)
    exp_lon, exp_lat = gcj02_to_wgs84(src[:, 0], src[:, 1])
    np.testing.assert_allclose(got[:, 0], exp_lon, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], exp_lat, atol=1e-12)
    # The ring is still closed and the point moved by several hundred metres.
    assert out.iloc[0].is_valid
    assert metres(117.16, 35.09, [out.iloc[1].x], [out.iloc[1].y])[0] > 300


def test_transform_arrays_single_geometries_and_z():
    arr = [Point(117.16, 35.09, 42.0), Point(-73.98, 40.75)]
    out = transform_geometries_to_wgs84(arr, "bd09")
    assert isinstance(out, np.ndarray) and len(out) == 2
    assert out[0].has_z and out[0].z == 42.0
    exp = bd09_to_wgs84(117.16, 35.09)
    assert (out[0].x, out[0].y) == pytest.approx((exp[0][0], exp[1][0]), abs=1e-12)
    assert out[1].equals(arr[1])  # outside China: unchanged
    one = transform_geometries_to_wgs84(Point(117.16, 35.09), "gcj02")
    assert isinstance(one, Point)


def test_transform_geoseries_from_epsg():
    gs = gpd.GeoSeries([Point(996583, 194956)], crs=None)
    out = transform_geometries_to_wgs84(gs, "EPSG:2263")
    assert out.crs.to_epsg() == 4326
    assert metres(-73.95552043960885, 40.701777357509755, [out.iloc[0].x], [out.iloc[0].y])[0] < 1
    # Same answer for a plain array.
    arr = transform_geometries_to_wgs84(np.array([Point(996583, 194956)]), "2263")
    assert arr[0].equals_exact(out.iloc[0], tolerance=1e-9)


# --- validation ---------------------------------------------------------------------------


def _raises(lon, lat, prefix: str = "") -> CoordinateError:
    with pytest.raises(CoordinateError) as info:
        check_point(lon, lat, field_prefix=prefix)
    return info.value


def test_check_point_accepts_and_returns_floats():
    assert check_point(117.16, 35.09) == (117.16, 35.09)
    lon, lat = check_point(" 117.16 ", "35.09")
    assert (lon, lat) == (117.16, 35.09) and type(lon) is float
    assert check_point(np.float32(1.5), 2) == (1.5, 2.0)
    for lon, lat in [(180, 90), (-180, -90), (0, 0)]:
        assert check_point(lon, lat) == (lon, lat)


@pytest.mark.parametrize(
    ("lon", "lat", "field", "words"),
    [
        (None, 35.09, "lon", "missing"),
        (117.16, None, "lat", "missing"),
        ("", 35.09, "lon", "missing"),
        ("abc", 35.09, "lon", "not a number"),
        (117.16, "12,5", "lat", "not a number"),
        (True, 35.09, "lon", "not a number"),
        ({"x": 1}, 35.09, "lon", "not a number"),
        (float("nan"), 35.09, "lon", "NaN"),
        (117.16, float("nan"), "lat", "NaN"),
        (float("inf"), 35.09, "lon", "+inf"),
        (117.16, float("-inf"), "lat", "-inf"),
        ("inf", 35.09, "lon", "+inf"),
        (181, 35.09, "lon", "[-180, 180]"),
        (-180.0001, 35.09, "lon", "[-180, 180]"),
        (117.16, -91, "lat", "[-90, 90]"),
        (117.16, 90.5, "lat", "[-90, 90]"),
    ],
)
def test_check_point_errors(lon, lat, field, words):
    err = _raises(lon, lat)
    assert err.field == field
    assert words in err.message
    assert err.message.startswith(field)
    assert err.code == "invalid_coordinates"
    # The prefix is applied to the field and named in the message.
    err = _raises(lon, lat, prefix="location.")
    assert err.field == f"location.{field}"
    assert f"location.{field}" in err.message


def test_swapped_pair_gets_a_hint_with_the_corrected_order():
    err = _raises(35.08, 117.16)
    assert err.code == "swapped_coordinates"
    assert err.field == "lat"
    assert "swapped" in err.message
    assert "lon=117.16, lat=35.08" in err.message
    # Only a pair whose swap would be valid is called swapped.
    err = _raises(100.0, 117.16)
    assert err.code == "invalid_coordinates" and err.field == "lat"


def test_both_out_of_range_names_both():
    err = _raises(200, 100)
    assert err.field == "lon"
    assert "lon 200" in err.message and "lat 100" in err.message
    assert err.code == "invalid_coordinates"
    err = _raises(None, "x")
    assert "lon is missing" in err.message and "lat 'x' is not a number" in err.message


def test_check_point_refuses_arrays():
    with pytest.raises(ValueError):
        check_point([1.0, 2.0], [3.0, 4.0])
    with pytest.raises(ValueError):
        check_point(117.16, [35.09])


def test_check_points_bulk_matches_check_point():
    lon = ["117.16", None, "abc", np.nan, np.inf, 181, 35.08, 200, 117.16, -np.inf]
    lat = [35.09, 35.09, 35.09, 35.09, 35.09, 35.09, 117.16, 100, 35.09, 35.09]
    ok, reasons = check_points(lon, lat)
    assert ok.dtype == bool and reasons.dtype == object
    assert ok.tolist() == [True, False, False, False, False, False, False, False, True, False]
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        if ok[i]:
            assert reasons[i] is None
            check_point(x, y)
        else:
            with pytest.raises(CoordinateError) as info:
                check_point(x, y)
            assert reasons[i] == info.value.message


def test_check_points_accepts_series_and_float_arrays():
    frame = pd.DataFrame({"lon": ["117.16", "x", ""], "lat": ["35.09", "35.1", "35.1"]})
    ok, reasons = check_points(frame["lon"], frame["lat"], field_prefix="row.")
    assert ok.tolist() == [True, False, False]
    assert reasons[1] == "row.lon 'x' is not a number: give the longitude in decimal degrees, " \
        "e.g. 117.16"
    assert "row.lon is missing" in reasons[2]
    ok, reasons = check_points(np.array([117.16, np.nan, 35.0]), np.array([35.09, 1.0, 117.0]))
    assert ok.tolist() == [True, False, False]
    assert "NaN" in reasons[1] and "swapped" in reasons[2]
    ok, reasons = check_points(np.array([], dtype=float), np.array([], dtype=float))
    assert ok.shape == (0,) and reasons.shape == (0,)
    with pytest.raises(ValueError):
        check_points([1.0, 2.0], [1.0])


def test_module_constants_are_sane():
    assert coords.WGS84 == "wgs84" and coords.GCJ02 == "gcj02" and coords.BD09 == "bd09"
    assert normalise_crs(METRIC_CRS) == METRIC_CRS
