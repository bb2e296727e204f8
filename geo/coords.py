"""Coordinate systems and coordinate validation.

Complaints arrive in WGS-84 (GPS), GCJ-02 (Amap, Tencent, WeChat) or BD-09 (Baidu); boundary
files may be in GCJ-02 or any EPSG CRS. Everything is stored in WGS-84 (EPSG:4326), so this
module converts on the way in (:func:`to_wgs84`, :func:`transform_geometries_to_wgs84`) and,
for maps drawn on GCJ-02 tiles, on the way out (:func:`from_wgs84`).

All conversions are numpy-vectorised: scalars are treated as 1-element arrays and arrays
come back as float64 arrays. Invalid input is the caller's job to reject first with
:func:`check_point` / :func:`check_points`; NaN given to a conversion comes back as NaN.

GCJ-02 and BD-09 are obfuscations, not datums: the forward direction is a published
formula, and there is no closed-form inverse. The inverses here iterate the forward formula
to a fixed point (about 1e-10 degrees, i.e. well under a millimetre), so a round trip is
exact to far better than the 0.5 m the routing needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from casegrid.errors import CoordinateError, InvalidInput
from casegrid.settings import get_settings

if TYPE_CHECKING:
    import pyproj

# pyproj, pandas, geopandas and shapely are imported in the functions that need them, not
# here: intake converts points in WGS-84, GCJ-02 or BD-09 with numpy alone, and a serving
# worker should not carry the rest, since every full garbage collection walks its whole heap
# (README, "Serving").

FloatArray = np.ndarray
LonLat = tuple[FloatArray, FloatArray]

WGS84 = "wgs84"
GCJ02 = "gcj02"
BD09 = "bd09"

# Metric CRS for Tengzhou: CGCS2000 / 3-degree Gauss-Kruger zone 39 (central meridian 117E,
# false easting 39 500 000 m). CGCS2000 agrees with WGS-84 to a few centimetres, and the
# 3-degree zone keeps scale error negligible over a county, which is why Chinese municipal
# surveys use it. Buffers, distances and grids for Tengzhou data are computed in it.
# The code comes from the settings (CASEGRID_METRIC_SRID), so another city is a setting.
METRIC_SRID = get_settings().metric_srid
METRIC_CRS = f"EPSG:{METRIC_SRID}"


@lru_cache(maxsize=1)
def _metric_crs_bounds() -> tuple[float, float, float, float]:
    """The metric CRS's area of use as published by EPSG (lon min, lat min, lon max, lat max)."""
    return tuple(_epsg_crs(METRIC_SRID).area_of_use.bounds)


# --- GCJ-02 / BD-09 constants -------------------------------------------------------------
# Source: the "eviltransform" reference implementation (github.com/googollee/eviltransform,
# go/transform.go), itself the widely circulated leak of the GCJ-02 algorithm. It uses the
# Krasovsky 1940 ellipsoid: semi-major axis a and first eccentricity squared ee.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
# The rough bounding box of China that every public implementation uses to decide whether
# the offset applies (same source): lon 72.004..137.8347, lat 0.8293..55.8271.
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)
# BD-09: x_pi = pi * 3000 / 180 and the 0.0065 / 0.006 shift are Baidu's published
# bd_encrypt formula (as in eviltransform and github.com/wandergis/coordtransform).
_X_PI = math.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006

# Fixed-point iteration for the inverses: stop when the forward image of the estimate is
# within 1e-10 degrees (~0.01 mm) of the input. The forward maps are the identity plus a
# perturbation whose derivative is ~1e-3, so this takes 3-5 steps; the cap is a safety net.
_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_STEPS = 30


# --- array helpers ------------------------------------------------------------------------


def _as_arrays(lon: Any, lat: Any) -> LonLat:
    """Both inputs as equal-shape float64 arrays (at least 1-D), copied."""
    x = np.atleast_1d(np.array(lon, dtype=np.float64))
    y = np.atleast_1d(np.array(lat, dtype=np.float64))
    if x.shape != y.shape:
        raise ValueError(f"lon and lat have different shapes: {x.shape} and {y.shape}")
    return x, y


def in_china(lon: Any, lat: Any) -> np.ndarray:
    """True where a point lies inside the rough China box in which GCJ-02/BD-09 offsets apply.

    Points outside the box (and NaN) are passed through unchanged by every GCJ-02/BD-09
    conversion, which is what the map providers do too.
    """
    x, y = _as_arrays(lon, lat)
    return (
        (x >= _CHINA_LON[0]) & (x <= _CHINA_LON[1]) & (y >= _CHINA_LAT[0]) & (y <= _CHINA_LAT[1])
    )


# --- GCJ-02 -------------------------------------------------------------------------------


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> LonLat:
    """GCJ-02 minus WGS-84 at a WGS-84 point, in degrees, with no China-box test."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = 20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)

    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    d_lat += common * 2.0 / 3.0
    d_lat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0

    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    d_lon += common * 2.0 / 3.0
    d_lon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    d_lon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0

    # The polynomial gives metres-ish values; scale them to degrees on the Krasovsky ellipsoid.
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _KRASOVSKY_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_KRASOVSKY_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return d_lon, d_lat


def _wgs_to_gcj_raw(lon: FloatArray, lat: FloatArray) -> LonLat:
    d_lon, d_lat = _gcj_offset(lon, lat)
    return lon + d_lon, lat + d_lat


def _gcj_to_bd_raw(lon: FloatArray, lat: FloatArray) -> LonLat:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _wgs_to_bd_raw(lon: FloatArray, lat: FloatArray) -> LonLat:
    return _gcj_to_bd_raw(*_wgs_to_gcj_raw(lon, lat))


def _invert(forward: Callable[[FloatArray, FloatArray], LonLat], lon: FloatArray,
            lat: FloatArray) -> LonLat:
    """Solve forward(p) = (lon, lat) for p by fixed-point iteration.

    The published one-step inverses (subtract the offset measured at the target) are only
    good to 1-2 m; iterating p <- p - (forward(p) - target) converges because forward is
    the identity plus a slowly varying offset.
    """
    f_lon, f_lat = forward(lon, lat)
    p_lon = lon - (f_lon - lon)
    p_lat = lat - (f_lat - lat)
    for _ in range(_INVERSE_MAX_STEPS):
        f_lon, f_lat = forward(p_lon, p_lat)
        e_lon = f_lon - lon
        e_lat = f_lat - lat
        p_lon = p_lon - e_lon
        p_lat = p_lat - e_lat
        # NaN compares False, so NaN rows do not keep the loop going.
        if not np.any((np.abs(e_lon) > _INVERSE_TOLERANCE_DEG)
                      | (np.abs(e_lat) > _INVERSE_TOLERANCE_DEG)):
            break
    return p_lon, p_lat


def _inside_only(conv: Callable[[FloatArray, FloatArray], LonLat], lon: Any, lat: Any) -> LonLat:
    """Apply ``conv`` to points inside the China box (decided on the input), copy the rest."""
    x, y = _as_arrays(lon, lat)
    mask = in_china(x, y)
    if mask.any():
        x[mask], y[mask] = conv(x[mask], y[mask])
    return x, y


def wgs84_to_gcj02(lon: Any, lat: Any) -> LonLat:
    """WGS-84 to GCJ-02 (the published eviltransform formula); outside China unchanged."""
    return _inside_only(_wgs_to_gcj_raw, lon, lat)


def gcj02_to_wgs84(lon: Any, lat: Any) -> LonLat:
    """GCJ-02 to WGS-84 by iterating the forward formula; outside China unchanged."""
    return _inside_only(lambda x, y: _invert(_wgs_to_gcj_raw, x, y), lon, lat)


def gcj02_to_bd09(lon: Any, lat: Any) -> LonLat:
    """GCJ-02 to BD-09 (Baidu's bd_encrypt formula); outside China unchanged."""
    return _inside_only(_gcj_to_bd_raw, lon, lat)


def bd09_to_gcj02(lon: Any, lat: Any) -> LonLat:
    """BD-09 to GCJ-02 by iterating bd_encrypt; outside China unchanged."""
    return _inside_only(lambda x, y: _invert(_gcj_to_bd_raw, x, y), lon, lat)


def wgs84_to_bd09(lon: Any, lat: Any) -> LonLat:
    """WGS-84 to BD-09 (via GCJ-02); outside China unchanged."""
    return _inside_only(_wgs_to_bd_raw, lon, lat)


def bd09_to_wgs84(lon: Any, lat: Any) -> LonLat:
    """BD-09 to WGS-84: iterate BD-09 to GCJ-02, then GCJ-02 to WGS-84; outside China unchanged.

    Two chained inverses rather than one inverse of the composed map: each converges in a
    few steps and the result is the same to well under a millimetre.
    """

    def conv(x: FloatArray, y: FloatArray) -> LonLat:
        return _invert(_wgs_to_gcj_raw, *_invert(_gcj_to_bd_raw, x, y))

    return _inside_only(conv, lon, lat)


# --- CRS names ----------------------------------------------------------------------------

# Spellings folded to lower case with spaces, '-', '_' and ':' removed. The *ll forms are
# the names Baidu's web APIs use (coordtype=bd09ll / gcj02ll / wgs84ll).
_ALIASES = {
    "wgs84": WGS84,
    "wgs84ll": WGS84,
    "epsg4326": WGS84,
    "4326": WGS84,
    "gcj02": GCJ02,
    "gcj02ll": GCJ02,
    "bd09": BD09,
    "bd09ll": BD09,
}
_EPSG_RE = re.compile(r"(?:epsg)?(\d{1,6})")
_ACCEPTED = (
    "'wgs84' (also 'WGS-84', 'EPSG:4326', '4326'), 'gcj02' (GCJ-02: Amap, Tencent, WeChat), "
    "'bd09' (BD-09: Baidu), or 'EPSG:<code>' for a geographic or projected CRS, "
    "e.g. 'EPSG:4527'"
)


@lru_cache(maxsize=128)
def _epsg_crs(code: int) -> pyproj.CRS:
    import pyproj  # on use (see the imports)

    return pyproj.CRS.from_epsg(code)


def normalise_crs(value: str) -> str:
    """Canonical name of a coordinate system: 'wgs84', 'gcj02', 'bd09' or 'EPSG:NNNN'.

    Accepts the usual spellings case-insensitively ('WGS-84', 'EPSG:4326', '4326',
    'GCJ-02', 'BD-09', 'bd09ll', 'epsg:2263', '2263'...). EPSG codes must be known to PROJ
    and be geographic or projected (2-D positions). Raises ``InvalidInput(field='crs')``
    naming the accepted values otherwise.
    """
    text = "" if value is None else str(value).strip()
    if not text:
        raise InvalidInput(f"crs is missing; accepted: {_ACCEPTED}", field="crs")
    key = re.sub(r"[\s_\-:]", "", text.lower())
    if key in _ALIASES:
        return _ALIASES[key]
    match = _EPSG_RE.fullmatch(key)
    if not match:
        raise InvalidInput(f"crs {text!r} is not recognised; accepted: {_ACCEPTED}", field="crs")
    code = int(match.group(1))
    from pyproj.exceptions import CRSError  # on use (see the imports)

    try:
        crs = _epsg_crs(code)
    except CRSError:
        raise InvalidInput(
            f"crs {text!r}: EPSG:{code} is not a CRS known to PROJ; accepted: {_ACCEPTED}",
            field="crs",
        ) from None
    if not (crs.is_geographic or crs.is_projected):
        raise InvalidInput(
            f"crs {text!r}: EPSG:{code} ({crs.name}) is not a geographic or projected CRS, "
            f"so it cannot locate a point on a map; accepted: {_ACCEPTED}",
            field="crs",
        )
    return WGS84 if code == 4326 else f"EPSG:{code}"


# --- conversions between any supported CRS and WGS-84 -------------------------------------


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> pyproj.Transformer:
    # always_xy: x = longitude/easting first, whatever axis order the EPSG definition says.
    # Sharing one cached Transformer across threads is safe since pyproj 3.1 (pyproj #782).
    import pyproj  # on use (see the imports)

    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def _pyproj(lon: Any, lat: Any, src: str, dst: str) -> LonLat:
    x, y = _as_arrays(lon, lat)
    ox, oy = _transformer(src, dst).transform(x, y)
    ox = np.array(ox, dtype=np.float64, ndmin=1)
    oy = np.array(oy, dtype=np.float64, ndmin=1)
    # PROJ signals "cannot project this point" with inf; NaN is the one no-value marker here.
    bad = ~(np.isfinite(ox) & np.isfinite(oy))
    ox[bad] = np.nan
    oy[bad] = np.nan
    return ox, oy


def to_wgs84(lon: Any, lat: Any, crs: str) -> LonLat:
    """Convert x/lon and y/lat given in ``crs`` (any spelling :func:`normalise_crs` takes)
    to WGS-84 longitude and latitude arrays."""
    code = normalise_crs(crs)
    if code == WGS84:
        return _as_arrays(lon, lat)
    if code == GCJ02:
        return gcj02_to_wgs84(lon, lat)
    if code == BD09:
        return bd09_to_wgs84(lon, lat)
    return _pyproj(lon, lat, code, "EPSG:4326")


def from_wgs84(lon: Any, lat: Any, crs: str) -> LonLat:
    """Convert WGS-84 longitude/latitude to x/lon and y/lat in ``crs`` (e.g. for GCJ-02 tiles)."""
    code = normalise_crs(crs)
    if code == WGS84:
        return _as_arrays(lon, lat)
    if code == GCJ02:
        return wgs84_to_gcj02(lon, lat)
    if code == BD09:
        return wgs84_to_bd09(lon, lat)
    return _pyproj(lon, lat, "EPSG:4326", code)


def _coordinate_function(code: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function for ``shapely.transform``: (N, 2 or 3) coordinates to WGS-84, z kept."""

    def fn(coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64)
        out[:, 0], out[:, 1] = to_wgs84(coords[:, 0], coords[:, 1], code)
        return out

    return fn


def transform_geometries_to_wgs84(geoms: Any, crs: str) -> Any:
    """Geometries whose coordinates are in ``crs``, converted to WGS-84.

    ``geoms`` is a GeoSeries (returned as a GeoSeries with the same index, CRS EPSG:4326),
    an array/list of shapely geometries (returned as an object array) or one geometry. The
    ``crs`` argument is the truth: a GeoSeries's own CRS label is overridden, because GCJ-02
    files are routinely labelled EPSG:4326. Z values are kept; None and empty geometries
    pass through.
    """
    import geopandas as gpd  # on use (see the imports)
    import shapely

    code = normalise_crs(crs)
    if isinstance(geoms, gpd.GeoSeries):
        if code in (WGS84, GCJ02, BD09):
            data = shapely.transform(
                np.asarray(geoms.array, dtype=object), _coordinate_function(code), include_z=None
            )
            return gpd.GeoSeries(data, index=geoms.index, crs="EPSG:4326", name=geoms.name)
        return geoms.set_crs(code, allow_override=True).to_crs("EPSG:4326")
    if isinstance(geoms, shapely.Geometry):
        return shapely.transform(geoms, _coordinate_function(code), include_z=None)
    data = np.asarray(geoms, dtype=object)
    return shapely.transform(data, _coordinate_function(code), include_z=None)


# --- metric projections -------------------------------------------------------------------


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS-84 UTM zone for a point (e.g. NYC -> 32618, Tengzhou -> 32650).

    Follows the standard zone grid including the Norway (32V) and Svalbard exceptions;
    beyond the UTM latitude limits (84N, 80S) returns UPS North/South (32661/32761).
    """
    lon, lat = check_point(lon, lat)
    if lat > 84.0:
        return 32661
    if lat < -80.0:
        return 32761
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat <= 84.0 and lon >= 0.0:
        if lon < 9.0:
            zone = 31
        elif lon < 21.0:
            zone = 33
        elif lon < 33.0:
            zone = 35
        elif lon < 42.0:
            zone = 37
    return (32600 if lat >= 0.0 else 32700) + zone


def metric_crs_for(lon: float, lat: float) -> str:
    """The projected CRS to do metric work in around a point: :data:`METRIC_CRS` where it is
    defined (China between 115.5E and 118.5E, which covers Tengzhou), the UTM zone elsewhere."""
    lon, lat = check_point(lon, lat)
    x0, y0, x1, y1 = _metric_crs_bounds()
    if x0 <= lon <= x1 and y0 <= lat <= y1:
        return METRIC_CRS
    return f"EPSG:{utm_epsg_for(lon, lat)}"


# --- validation ---------------------------------------------------------------------------

_NUMBER, _MISSING, _NOT_A_NUMBER = 0, 1, 2
_SWAPPED = "swapped_coordinates"
_LONG_NAME = {"lon": ("longitude", "117.16"), "lat": ("latitude", "35.09")}


def _coerce(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw values as a 1-D object array, float64 values, kind per value).

    Kind is _NUMBER (parsed, possibly NaN/inf), _MISSING (None, NA, blank string) or
    _NOT_A_NUMBER (anything pandas.to_numeric cannot parse; booleans are refused too, since
    True as a coordinate is always a bug upstream).
    """
    import pandas as pd  # on use (see the imports)

    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        num = values.astype(np.float64).ravel()
        return num.astype(object), num, np.full(num.shape, _NUMBER, dtype=np.int8)
    # Lists go through an object array: np.asarray would silently turn [False, 0.5] into
    # floats and [1.5, 'x'] into strings.
    raw = np.asarray(values, dtype=object).ravel()
    kind = np.full(raw.shape, _NUMBER, dtype=np.int8)
    missing = np.fromiter(
        (v is None or v is pd.NA or v is pd.NaT or (isinstance(v, str) and not v.strip())
         for v in raw), dtype=bool, count=raw.size)
    is_bool = np.fromiter((isinstance(v, bool | np.bool_) for v in raw), dtype=bool,
                          count=raw.size)
    cleaned = raw.copy()
    cleaned[missing | is_bool] = None
    num = pd.to_numeric(pd.Series(cleaned, dtype=object), errors="coerce").to_numpy(np.float64)
    # A NaN that came from a float is "NaN"; one that came from text or an odd object was
    # unparsable ("not a number"). Text 'nan' is unparsable too: nobody types it on purpose.
    is_float_nan = np.fromiter(
        (isinstance(v, float | np.floating) and v != v for v in raw), dtype=bool, count=raw.size)
    unparsable = np.isnan(num) & ~missing & ~is_float_nan
    unparsable |= is_bool
    kind[missing] = _MISSING
    kind[unparsable] = _NOT_A_NUMBER
    return raw, num, kind


def _fmt(v: float) -> str:
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _value_problem(field: str, axis: str, raw: Any, num: float, kind: int) -> str | None:
    """Why one coordinate value is unusable, or None; range is checked separately."""
    long_name, example = _LONG_NAME[axis]
    fix = f"give the {long_name} in decimal degrees, e.g. {example}"
    if kind == _MISSING:
        return f"{field} is missing: {fix}"
    if kind == _NOT_A_NUMBER:
        shown = repr(raw)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return f"{field} {shown} is not a number: {fix}"
    if math.isnan(num):
        return f"{field} is NaN (not a number): {fix}"
    if math.isinf(num):
        return f"{field} is {'+inf' if num > 0 else '-inf'} (not a finite number): {fix}"
    return None


def _row_problem(lon_f: str, lat_f: str, raw_x: Any, raw_y: Any, x: float, y: float,
                 kind_x: int, kind_y: int) -> tuple[str, str | None, str]:
    """(field, code or None for the default, message) for one failing row."""
    px = _value_problem(lon_f, "lon", raw_x, x, kind_x)
    py = _value_problem(lat_f, "lat", raw_y, y, kind_y)
    if px or py:
        message = "; ".join(p for p in (px, py) if p)
        return (lon_f if px else lat_f), None, message
    lon_bad = not -180.0 <= x <= 180.0
    lat_bad = not -90.0 <= y <= 90.0
    lon_rule = f"{lon_f} {_fmt(x)} is outside the valid range [-180, 180]"
    lat_rule = f"{lat_f} {_fmt(y)} is outside the valid range [-90, 90]"
    if lon_bad and lat_bad:
        return lon_f, None, f"{lon_rule} and {lat_rule}: give longitude and latitude in degrees"
    if lon_bad:
        return lon_f, None, f"{lon_rule}: longitude runs from -180 to 180 degrees"
    if abs(x) <= 90.0 and abs(y) <= 180.0:
        return lat_f, _SWAPPED, (
            f"{lon_f}={_fmt(x)}, {lat_f}={_fmt(y)} look swapped ({lat_rule}): "
            f"did you mean {lon_f}={_fmt(y)}, {lat_f}={_fmt(x)}? Give longitude first"
        )
    return lat_f, None, f"{lat_rule}: latitude runs from -90 to 90 degrees"


def _diagnose(lon: Any, lat: Any, field_prefix: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple[str, str | None, str]]]:
    raw_x, x, kind_x = _coerce(lon)
    raw_y, y, kind_y = _coerce(lat)
    if x.shape != y.shape:
        raise ValueError(f"lon and lat have different lengths: {x.size} and {y.size}")
    # NaN compares False, so NaN rows fail the range test without warnings.
    ok = (
        (kind_x == _NUMBER) & (kind_y == _NUMBER)
        & np.isfinite(x) & np.isfinite(y)
        & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    )
    lon_f, lat_f = f"{field_prefix}lon", f"{field_prefix}lat"
    # Messages are built one by one, but only for failing rows (normally few).
    problems = {
        int(i): _row_problem(lon_f, lat_f, raw_x[i], raw_y[i], x[i], y[i], kind_x[i], kind_y[i])
        for i in np.flatnonzero(~ok)
    }
    return ok, x, y, problems


# Below this a coordinate is zero for any purpose (1e-300 degree is far below a nanometre),
# and PostgreSQL raises "value out of range: underflow" when float8 arithmetic such as
# radians() turns a subnormal into zero; routing SQL gets values snapped with snap_tiny.
TINY_DEGREES = 1e-300


def snap_tiny(values: Any) -> Any:
    """``values`` (a float or an array) with magnitudes below :data:`TINY_DEGREES` set to 0."""
    if isinstance(values, float | int):
        return 0.0 if abs(values) < TINY_DEGREES else float(values)
    arr = np.asarray(values, dtype=float)
    return np.where(np.abs(arr) < TINY_DEGREES, 0.0, arr)


def check_point(lon: Any, lat: Any, field_prefix: str = "") -> tuple[float, float]:
    """Validate one coordinate pair and return it as finite floats (numeric strings accepted).

    Raises ``CoordinateError`` with ``field`` '<prefix>lon' or '<prefix>lat' when a value is
    missing, not a number, NaN or infinite, or out of range; when only the latitude is out of
    range and the swapped pair would be valid, the code is 'swapped_coordinates' and the
    message gives the corrected order.
    """
    # Fast path for the common case (one request, two good numbers): no arrays, no pandas.
    if (
        type(lon) in (float, int)
        and type(lat) in (float, int)
        and -180.0 <= lon <= 180.0
        and -90.0 <= lat <= 90.0
    ):
        return float(lon), float(lat)
    if np.ndim(lon) or np.ndim(lat):
        raise ValueError("check_point takes one lon and one lat; use check_points for arrays")
    pair = np.empty(2, dtype=object)  # filled by item so a list-like value stays one value
    pair[0], pair[1] = lon, lat
    ok, x, y, problems = _diagnose(pair[:1], pair[1:], field_prefix)
    if not ok[0]:
        field, code, message = problems[0]
        raise CoordinateError(message, field=field, code=code)
    return float(x[0]), float(y[0])


def check_points(lon: Any, lat: Any, field_prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validate many coordinate pairs at once (lists, arrays or Series; NaN and text allowed).

    Returns ``(ok_mask, reasons)``: a boolean array, and an object array holding None for
    good rows and, for bad ones, the same message :func:`check_point` would raise.
    """
    ok, _, _, problems = _diagnose(lon, lat, field_prefix)
    reasons = np.full(ok.shape, None, dtype=object)
    for i, (_, _, message) in problems.items():
        reasons[i] = message
    return ok, reasons


def grid_centre_sql(geom: str, cell_param: str) -> str:
    """SQL for the centre of the square cell of the ``METRIC_CRS`` grid (cell size: the bound
    parameter ``cell_param``, metres) that holds the WGS-84 point ``geom``, as a WGS-84
    point: a location coarsened so that every point of the cell reads the same."""
    srid = METRIC_CRS.split(":")[1]
    m = f"ST_Transform({geom}, {srid})"
    return (f"ST_Transform(ST_SetSRID(ST_MakePoint("
            f"(floor(ST_X({m}) / :{cell_param}) + 0.5) * :{cell_param}, "
            f"(floor(ST_Y({m}) / :{cell_param}) + 0.5) * :{cell_param}), {srid}), 4326)")
