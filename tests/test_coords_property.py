"""Property-based tests for geo.coords: round trips and validation never misbehave."""

from __future__ import annotations

import math

import numpy as np
import pyproj
from hypothesis import given, settings
from hypothesis import strategies as st

from casegrid.errors import CoordinateError
from geo.coords import check_point, check_points, from_wgs84, to_wgs84

GEOD = pyproj.Geod(ellps="WGS84")

# Inside the China box (72.004-137.8347E, 0.8293-55.8271N), kept 0.05 degree from its edges:
# within the largest GCJ-02/BD-09 offset of an edge a point can fall on different sides of
# the box before and after conversion, and the providers' own behaviour there is undefined.
china_lon = st.floats(72.06, 137.78, allow_nan=False)
china_lat = st.floats(0.88, 55.77, allow_nan=False)
systems = st.sampled_from(["wgs84", "gcj02", "bd09", "GCJ-02", "BD-09"])


@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat, crs=systems)
def test_to_wgs84_undoes_from_wgs84(lon, lat, crs):
    x, y = from_wgs84(lon, lat, crs)
    back_lon, back_lat = to_wgs84(x, y, crs)
    _, _, dist = GEOD.inv(lon, lat, back_lon[0], back_lat[0])
    assert dist < 0.05


@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat, crs=systems)
def test_from_wgs84_undoes_to_wgs84(lon, lat, crs):
    x, y = to_wgs84(lon, lat, crs)
    again_lon, again_lat = from_wgs84(x, y, crs)
    _, _, dist = GEOD.inv(lon, lat, again_lon[0], again_lat[0])
    assert dist < 0.05


@settings(max_examples=100, deadline=None)
@given(lon=st.lists(china_lon, min_size=1, max_size=50), data=st.data())
def test_arrays_convert_like_points(lon, data):
    lat = data.draw(st.lists(china_lat, min_size=len(lon), max_size=len(lon)))
    x, y = to_wgs84(lon, lat, "bd09")
    for i in range(len(lon)):
        xi, yi = to_wgs84(lon[i], lat[i], "bd09")
        # Arrays may take one more iteration than a lone point: equal to ~1e-10 degree.
        assert abs(x[i] - xi[0]) < 1e-9 and abs(y[i] - yi[0]) < 1e-9


any_float = st.floats(allow_nan=True, allow_infinity=True)
anything = st.one_of(
    any_float,
    st.integers(),
    st.none(),
    st.booleans(),
    st.text(max_size=12),
    any_float.map(repr),
)


@settings(max_examples=500, deadline=None)
@given(lon=any_float, lat=any_float)
def test_check_point_on_floats_returns_valid_pair_or_raises_coordinate_error(lon, lat):
    try:
        x, y = check_point(lon, lat)
    except CoordinateError as err:
        assert err.field in ("lon", "lat")
        assert err.message
        return
    assert math.isfinite(x) and math.isfinite(y)
    assert -180 <= x <= 180 and -90 <= y <= 90
    assert (x, y) == (lon, lat)


@settings(max_examples=500, deadline=None)
@given(lon=anything, lat=anything)
def test_check_point_on_anything_returns_valid_pair_or_raises_coordinate_error(lon, lat):
    try:
        x, y = check_point(lon, lat)
    except CoordinateError as err:
        assert err.field in ("lon", "lat")
        return
    assert type(x) is float and type(y) is float
    assert -180 <= x <= 180 and -90 <= y <= 90


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(anything, anything), max_size=20))
def test_check_points_agrees_with_check_point(pairs):
    lon = [p[0] for p in pairs]
    lat = [p[1] for p in pairs]
    ok, reasons = check_points(lon, lat)
    assert ok.shape == (len(pairs),)
    for i, (x, y) in enumerate(pairs):
        try:
            check_point(x, y)
        except CoordinateError as err:
            assert not ok[i] and reasons[i] == err.message
        else:
            assert ok[i] and reasons[i] is None
    assert np.all((reasons == None) == ok)  # noqa: E711 (elementwise comparison)
