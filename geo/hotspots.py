"""Hotspot statistics for planners: a metric grid of case counts, Getis-Ord Gi* with
false-discovery-rate control, and complaint counts in rings around points of interest.

Everything metric happens in EPSG:4527 (``geo.coords.METRIC_CRS``). The filtered cases are
read in **one** scan (:func:`fetch_case_points`: the filters are applied by PostgreSQL and
the rows come back packed as binary columns, a few bytes per case, grouped by category and
community) and everything per case is then counted in numpy: the grid, the hour-of-day
frames, the cases per community and the exact ring counts around each POI. At a million
cases this is one sequential scan (about a second) where the earlier one-query-per-figure
design transformed every case to EPSG:4527 in each of four queries and joined each POI to
tens of thousands of cases through the expression index (70 s). Nothing per case reaches a
page: only the aggregates are returned.

Significance. ``esda.G_Local(y, w, transform="B", star=True)`` gives Gi* and its z-score on
binary queen weights over the grid. Its p-values come from 999 permutations under *total*
randomisation (every cell's count, its own included, is shuffled), standardised against the
permutation mean and spread. Two reasons not to use esda's own permutation p-value here:
esda permutes conditionally (the cell's own count stays fixed), so the centre of an isolated
spike is never significant under Gi*; and a pseudo p-value cannot go below 1/(permutations+1),
which under Benjamini-Hochberg over thousands of cells leaves nothing significant. Cells are
then hot (z > 0) or cold (z < 0) at 99/95/90 % when their p-value passes the FDR cut-off
(``esda.fdr``) at alpha 0.01/0.05/0.10.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import esda
import libpysal
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy import sparse, stats
from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput
from cases.calendar import CITY_TZ
from cases.filters import CaseFilters, filter_sql
from geo.coords import METRIC_SRID

LEVELS = ((0.01, 3), (0.05, 2), (0.10, 1))  # (alpha, level): 3 = 99 %, 2 = 95 %, 1 = 90 %
DEFAULT_RINGS_M = (200.0, 500.0, 1000.0)
POI_KINDS = ("school", "hospital", "market", "park_plaza")
_TO_WGS84 = Transformer.from_crs(METRIC_SRID, 4326, always_xy=True)
_TO_METRIC = Transformer.from_crs(4326, METRIC_SRID, always_xy=True)
MAX_CELLS = 40_000


@dataclass
class Grid:
    """Case counts on square cells of ``cell_m`` metres in EPSG:4527.

    ``i``/``j`` are column/row indices from the origin ``(x0, y0)``; only cells of the study
    area (those touching a community of the active generation, or else every cell of the
    cases' extent) are present, empty ones included with a count of 0.
    """

    cell_m: float
    x0: float
    y0: float
    i: np.ndarray
    j: np.ndarray
    count: np.ndarray
    area_m2: float = 0.0
    total_in_area: int = 0
    index: dict[tuple[int, int], int] = field(default_factory=dict)
    points: CasePoints | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.i)

    def centres_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """WGS-84 longitude and latitude of each cell's centre."""
        return _TO_WGS84.transform(self.x0 + (self.i + 0.5) * self.cell_m, self.y0 + (self.j + 0.5) * self.cell_m)

    def corners_lonlat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """WGS-84 (west, south, east, north) of each cell's metric square (as a box)."""
        w, s = _TO_WGS84.transform(self.x0 + self.i * self.cell_m, self.y0 + self.j * self.cell_m)
        e, n = _TO_WGS84.transform(self.x0 + (self.i + 1) * self.cell_m, self.y0 + (self.j + 1) * self.cell_m)
        return w, s, e, n

    def cell_of(self, x: float, y: float) -> int | None:
        """Position in the arrays of the cell holding metric point (x, y), if in the area."""
        return self.index.get((int(np.floor((x - self.x0) / self.cell_m)), int(np.floor((y - self.y0) / self.cell_m))))


@dataclass
class CasePoints:
    """The cases matching ``filters``, one array element per case: metric ``x``/``y``
    (EPSG:4527), local ``hour`` of the report (0-23), and indices into ``categories`` and
    ``communities`` (a community of ``None``: the case lies in none).

    Read once per page by :func:`fetch_case_points`; the aggregations below accept it so that
    the grid, the rings, the hourly frames and the choropleth share that one scan.
    """

    filters: CaseFilters
    x: np.ndarray
    y: np.ndarray
    hour: np.ndarray
    category: np.ndarray
    community: np.ndarray
    categories: list[str]
    communities: list[str | None]

    def __len__(self) -> int:
        return len(self.x)


# One row per (category, community) with that group's cases packed as one binary column,
# 24 bytes a case: longitude and latitude (float8send) and the report time (timestamptz_send:
# microseconds since 2000-01-01 UTC), all big-endian, which numpy reads with no per-row Python
# step. Three separate string_agg columns, or the local hour computed in SQL (AT TIME ZONE
# per row), cost several times this one aggregate (`python -m bench --only maps`).
_POINTS_SQL = (
    "SELECT c.category_code, c.community_code, "
    "string_agg(float8send(ST_X(c.geom)) || float8send(ST_Y(c.geom)) || timestamptz_send(c.reported_at), ''::bytea) "
    'FROM "case" c WHERE {where} GROUP BY 1, 2'
)
_PACKED = np.dtype([("lon", ">f8"), ("lat", ">f8"), ("t", ">i8")])
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 00:00 UTC, PostgreSQL's timestamp origin


_QUARTER_US = 900_000_000  # every UTC offset in the tz database is whole quarter-hours


def _local_hours(pg_micros: np.ndarray) -> np.ndarray:
    """The city's local hour 0-23 (``CITY_TZ``, daylight saving included) of PostgreSQL
    timestamptz values (binary form): pandas converts each quarter-hour of the span from the
    tz database once (35,000 for a year of reports), and each value looks its own up."""
    if not len(pg_micros):
        return np.empty(0, dtype=np.int16)
    quarters = np.floor_divide(pg_micros + _PG_EPOCH_US, _QUARTER_US)
    first = int(quarters.min())
    span = np.arange(first, int(quarters.max()) + 1, dtype=np.int64) * (_QUARTER_US // 1000)
    table = pd.to_datetime(span, unit="ms", utc=True).tz_convert(CITY_TZ.key).hour
    return np.asarray(table, dtype=np.int16)[quarters - first]


def fetch_case_points(conn: Connection, filters: CaseFilters) -> CasePoints:
    """Read the filtered cases in one scan (see :class:`CasePoints`).

    The filters are applied in SQL (``cases.filters.filter_sql``); the WGS-84 points are
    projected to EPSG:4527 with PROJ through pyproj, the same library and pipeline PostGIS's
    ``ST_Transform`` uses, vectorised over the whole array instead of once per row in SQL.
    """
    where, p = filter_sql(for_statistics(filters))
    rows = conn.execute(text(_POINTS_SQL.format(where=where)), p).all()
    categories = sorted({r[0] for r in rows})
    communities = sorted({r[1] for r in rows}, key=lambda c: (c is None, c or ""))
    cat_ix = {c: k for k, c in enumerate(categories)}
    com_ix = {c: k for k, c in enumerate(communities)}
    parts = [np.frombuffer(r[2], dtype=_PACKED) for r in rows]
    packed = np.concatenate(parts) if parts else np.empty(0, dtype=_PACKED)
    cat = np.repeat(np.array([cat_ix[r[0]] for r in rows], dtype=np.int32), [len(a) for a in parts])
    com = np.repeat(np.array([com_ix[r[1]] for r in rows], dtype=np.int32), [len(a) for a in parts])
    x, y = _TO_METRIC.transform(packed["lon"].astype(np.float64), packed["lat"].astype(np.float64))
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)  # an empty point has no place on any figure
    if not ok.all():
        x, y, packed, cat, com = x[ok], y[ok], packed[ok], cat[ok], com[ok]
    return CasePoints(filters=filters, x=x, y=y, hour=_local_hours(packed["t"].astype(np.int64)),
                      category=cat, community=com, categories=categories, communities=communities)


def _points_for(conn: Connection, filters: CaseFilters, *sources: Any) -> CasePoints:
    """The points of ``filters`` from the first source that holds them (a ``CasePoints`` or
    a ``Grid`` built from them), else from one new scan."""
    for src in sources:
        pts = src if isinstance(src, CasePoints) else getattr(src, "points", None)
        if pts is not None and pts.filters == filters:
            return pts
    return fetch_case_points(conn, filters)


def _study_extent(conn: Connection) -> tuple[tuple[float, float, float, float], bool]:
    """Metric extent of the active communities (True) or, without any, of the cases (False)."""
    row = conn.execute(
        text(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(ST_Transform(geom, {METRIC_SRID}))::geometry e "
            "FROM community WHERE generation_id = (SELECT id FROM boundary_generation WHERE level = 'community' AND active)) x"
        )
    ).first()
    if row and row[0] is not None:
        return (row[0], row[1], row[2], row[3]), True
    row = conn.execute(text(f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(ST_Transform(geom, {METRIC_SRID}))::geometry e FROM "case") x')).first()
    if row is None or row[0] is None:
        raise InvalidInput("no communities and no located cases: nothing to aggregate", field="cases")
    return (row[0], row[1], row[2], row[3]), False


def aggregate_grid(conn: Connection, filters: CaseFilters, cell_m: float = 250.0,
                   points: CasePoints | None = None) -> Grid:
    """Count the filtered cases on a ``cell_m`` metre grid over the study area.

    The study area's cells (and its area) come from PostGIS; the cases are counted into them
    from ``points`` (read with :func:`fetch_case_points` when not given; the grid keeps them,
    so :func:`poi_ring_stats` on the same filters does not read the cases again). A case
    outside every cell of the study area is not counted, as before.
    """
    if not 20 <= cell_m <= 5000:
        raise InvalidInput(f"cell_m must be between 20 and 5000 metres, not {cell_m}", field="cell_m")
    (xmin, ymin, xmax, ymax), has_area = _study_extent(conn)
    # Snap the origin to whole cells so that the same cell size always gives the same cells.
    x0, y0 = np.floor(xmin / cell_m) * cell_m, np.floor(ymin / cell_m) * cell_m
    nx, ny = int(np.ceil((xmax - x0) / cell_m)) or 1, int(np.ceil((ymax - y0) / cell_m)) or 1
    if nx * ny > MAX_CELLS:
        raise InvalidInput(f"cell_m {cell_m} gives {nx * ny} cells (max {MAX_CELLS}); choose a larger cell", field="cell_m")
    p = {"x0": x0, "y0": y0, "s": cell_m, "nx": nx, "ny": ny}
    if has_area:
        sql = (
            f"WITH area AS (SELECT ST_Union(ST_Transform(geom, {METRIC_SRID})) g FROM community WHERE generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)) "
            "SELECT i, j, (SELECT ST_Area(g) FROM area) FROM generate_series(0, :nx - 1) i "
            "CROSS JOIN generate_series(0, :ny - 1) j, area "
            f"WHERE ST_Intersects(area.g, ST_MakeEnvelope(:x0 + i * :s, :y0 + j * :s, :x0 + (i + 1) * :s, :y0 + (j + 1) * :s, {METRIC_SRID})) "
            "ORDER BY i, j"
        )
    else:
        sql = ("SELECT i, j, CAST(:nx AS float8) * :ny * :s * :s FROM generate_series(0, :nx - 1) i "
               "CROSS JOIN generate_series(0, :ny - 1) j ORDER BY i, j")
    cells = conn.execute(text(sql), p).all()
    i = np.array([r[0] for r in cells], dtype=np.int64)
    j = np.array([r[1] for r in cells], dtype=np.int64)
    area = float(cells[0][2]) if cells else 0.0
    pts = _points_for(conn, filters, points)
    # Cell of each case, then the position of that cell among the study area's cells (-1: none).
    ci = np.floor((pts.x - x0) / cell_m)
    cj = np.floor((pts.y - y0) / cell_m)
    inside = (ci >= 0) & (ci < nx) & (cj >= 0) & (cj < ny)
    lookup = np.full((nx, ny), -1, dtype=np.int64)
    lookup[i, j] = np.arange(len(i))
    pos = lookup[ci[inside].astype(np.int64), cj[inside].astype(np.int64)]
    n = np.bincount(pos[pos >= 0], minlength=len(i)).astype(np.float64)
    return Grid(cell_m=cell_m, x0=float(x0), y0=float(y0), i=i, j=j, count=n, area_m2=area,
                total_in_area=int(n.sum()), index={(int(a), int(b)): k for k, (a, b) in enumerate(zip(i, j, strict=True))},
                points=pts)


def queen_weights(grid: Grid) -> libpysal.weights.W:
    """Binary queen contiguity between the grid's cells (the 8 surrounding cells)."""
    neighbours: dict[int, list[int]] = {}
    for k, (a, b) in enumerate(zip(grid.i.tolist(), grid.j.tolist(), strict=True)):
        neighbours[k] = [
            grid.index[(a + da, b + db)]
            for da in (-1, 0, 1) for db in (-1, 0, 1)
            if (da or db) and (a + da, b + db) in grid.index
        ]
    return libpysal.weights.W(neighbours, silence_warnings=True)


@dataclass
class HotspotResult:
    """Gi* per cell: ``z`` (Gi* z-score), ``p`` (permutation p-value, one-sided in the
    direction of ``z``), ``level`` (+3/+2/+1 hot at 99/95/90 %, negative cold, 0 none) and the
    FDR cut-offs used per alpha."""

    z: np.ndarray
    p: np.ndarray
    level: np.ndarray
    cutoffs: dict[float, float]
    permutations: int


def _total_permutation_p(y: np.ndarray, wmat: sparse.csr_matrix, permutations: int, seed: int) -> np.ndarray:
    """One-sided p-values of the local sums (W y)_i against total randomisation of y,
    from the permutation distribution's mean and standard deviation."""
    rng = np.random.default_rng(seed)
    observed = wmat @ y
    total = np.zeros_like(observed)
    total_sq = np.zeros_like(observed)
    done = 0
    while done < permutations:  # blocks keep memory bounded on fine grids
        k = min(200, permutations - done)
        perm = np.stack([rng.permutation(y) for _ in range(k)], axis=1)
        sims = wmat @ perm
        total += sims.sum(axis=1)
        total_sq += (sims * sims).sum(axis=1)
        done += k
    mean = total / permutations
    sd = np.sqrt(np.maximum(total_sq / permutations - mean * mean, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (observed - mean) / sd, 0.0)
    return stats.norm.sf(np.abs(z))


def getis_ord(grid: Grid, permutations: int = 999, seed: int = 12345, fdr: bool = True) -> HotspotResult:
    """Gi* on the grid's counts with binary queen weights, permutation p-values and
    Benjamini-Hochberg FDR control (``fdr=False``: plain alpha)."""
    n = len(grid)
    y = grid.count.astype(np.float64)
    if n < 3 or y.sum() == 0 or np.all(y == y[0]):
        zero = np.zeros(n)
        return HotspotResult(zero, np.ones(n), zero.astype(int), {a: 0.0 for a, _ in LEVELS}, permutations)
    w = queen_weights(grid)
    g = esda.G_Local(y, w, transform="B", star=True, permutations=0)
    z = np.asarray(g.Zs, dtype=np.float64)
    # G_Local's star weights: binary neighbours plus the cell itself.
    wmat = (w.sparse + sparse.identity(n, format="csr")).tocsr()
    p = _total_permutation_p(y, wmat, permutations, seed) if permutations else np.asarray(g.p_norm)
    level = np.zeros(n, dtype=int)
    cutoffs: dict[float, float] = {}
    for alpha, lv in sorted(LEVELS, key=lambda t: -t[0]):  # 90 % first, stricter overwrite
        cut = float(esda.fdr(p, alpha)) if fdr else alpha
        cutoffs[alpha] = cut
        sig = p <= cut
        level[sig] = np.sign(z[sig]).astype(int) * lv
    return HotspotResult(z=z, p=p, level=level, cutoffs=cutoffs, permutations=permutations)


def for_statistics(filters: CaseFilters) -> CaseFilters:
    """The filters as the statistics apply them: every located case that still stands, of
    every state unless states are chosen (the maps' default is open cases only)."""
    return replace(filters, on_map=True)


def hourly_grid(conn: Connection, filters: CaseFilters, cell_m: float,
                points: CasePoints | None = None) -> list[list[list[float]]]:
    """24 frames (local hour of report 0-23) of ``[lat, lon, n]`` per non-empty cell of
    ``cell_m`` metres (cells counted from the metric origin), for an hour-of-day animation."""
    pts = _points_for(conn, filters, points)
    frames: list[list[list[float]]] = [[] for _ in range(24)]
    if not len(pts):
        return frames
    ci = np.floor(pts.x / cell_m).astype(np.int64)
    cj = np.floor(pts.y / cell_m).astype(np.int64)
    i0, j0 = int(ci.min()), int(cj.min())
    ni, nj = int(ci.max()) - i0 + 1, int(cj.max()) - j0 + 1
    # One integer key per (hour, cell): a 1-D unique is several times faster than rows.
    uniq, counts = np.unique((pts.hour.astype(np.int64) * ni + (ci - i0)) * nj + (cj - j0), return_counts=True)
    keys = np.column_stack([uniq // (ni * nj), (uniq // nj) % ni + i0, uniq % nj + j0])
    lon, lat = _TO_WGS84.transform((keys[:, 1] + 0.5) * cell_m, (keys[:, 2] + 0.5) * cell_m)
    for h, la, lo, n in zip(keys[:, 0].tolist(), lat, lon, counts.tolist(), strict=True):
        frames[h].append([round(float(la), 5), round(float(lo), 5), float(n)])
    return frames


def community_counts_of(points: CasePoints) -> dict[str, int]:
    """Cases per community code (for a choropleth); cases in no community are left out."""
    n = np.bincount(points.community, minlength=len(points.communities))
    return {code: int(k) for code, k in zip(points.communities, n.tolist(), strict=True) if code is not None and k}


def check_rings(rings: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Validate ring radii (metres): 1-5 increasing values between 10 m and 5 km."""
    rs = tuple(float(r) for r in rings)
    if not 1 <= len(rs) <= 5 or any(not 10 <= r <= 5000 for r in rs) or list(rs) != sorted(set(rs)):
        raise InvalidInput("rings must be 1-5 increasing distances between 10 and 5000 metres, e.g. 200,500,1000", field="rings")
    return rs


def poi_ring_stats(
    conn: Connection,
    filters: CaseFilters,
    rings: tuple[float, ...] = DEFAULT_RINGS_M,
    kinds: tuple[str, ...] = POI_KINDS,
    grid: Grid | None = None,
    hot: HotspotResult | None = None,
    points: CasePoints | None = None,
) -> list[dict]:
    """For each point of interest of ``kinds``: cases within each ring (metres from the
    POI's geometry, so from a campus wall when it is a polygon), per category, the ring's
    rate per km² against the city-wide rate (cases in the study area / its area), and the
    Gi* level of the cell under the POI (0 without a grid).

    Each ring is a disc (not an annulus): ``counts[r]`` counts every case within r metres.
    Rings are clipped to the study area to compute their area, so a POI at the town edge is
    not diluted by empty fields. The cases are ``points``, or the grid's when it was built on
    the same filters, or else read once here.
    """
    rs = check_rings(rings)
    bad = [k for k in kinds if k not in POI_KINDS]
    if bad:
        raise InvalidInput(f"kind must be among {', '.join(POI_KINDS)}, not {bad[0]!r}", field="kind")
    p = {"rings": list(rs), "kinds": list(kinds)}
    pois = conn.execute(
        text(
            f"WITH area AS (SELECT ST_Union(ST_Transform(geom, {METRIC_SRID})) g FROM community WHERE generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)) "
            "SELECT p.id, p.kind, p.name, ST_X(ST_PointOnSurface(p.geom)) lon, ST_Y(ST_PointOnSurface(p.geom)) lat, "
            f"ST_X(ST_PointOnSurface(ST_Transform(p.geom, {METRIC_SRID}))) x, ST_Y(ST_PointOnSurface(ST_Transform(p.geom, {METRIC_SRID}))) y, "
            f"ST_AsBinary(ST_Transform(p.geom, {METRIC_SRID})) wkb, "
            f"ARRAY(SELECT CASE WHEN area.g IS NULL THEN ST_Area(ST_Buffer(ST_Transform(p.geom, {METRIC_SRID}), r, 32)) "
            f"ELSE ST_Area(ST_Intersection(ST_Buffer(ST_Transform(p.geom, {METRIC_SRID}), r, 32), area.g)) END "
            "FROM unnest(CAST(:rings AS float8[])) r) AS ring_area "
            "FROM poi p, area WHERE p.kind = ANY(:kinds) ORDER BY p.id"
        ),
        p,
    ).mappings().all()
    pts = _points_for(conn, filters, points, grid)
    per = _ring_counts(pts, [(row["id"], shapely.from_wkb(bytes(row["wkb"]))) for row in pois], rs)
    city_rate = _city_rate(conn, filters, grid)
    out = []
    for row in pois:
        by_ring = per.get(row["id"], {})
        counts = {r: sum(by_ring.get(r, {}).values()) for r in rs}
        rates = {}
        for r, a in zip(rs, row["ring_area"], strict=True):
            km2 = (a or 0.0) / 1e6
            density = counts[r] / km2 if km2 > 0 else 0.0
            rates[r] = round(density / city_rate, 3) if city_rate > 0 else None
        level = 0
        if grid is not None and hot is not None:
            k = grid.cell_of(row["x"], row["y"])
            level = int(hot.level[k]) if k is not None else 0
        out.append({
            "id": row["id"], "kind": row["kind"], "name": row["name"],
            "lon": row["lon"], "lat": row["lat"],
            "counts": counts, "by_category": by_ring, "rate_ratio": rates,
            "ring_area_m2": dict(zip(rs, row["ring_area"], strict=True)),
            "hotspot_level": level, "in_hotspot": level > 0,
        })
    return out


def _ring_counts(pts: CasePoints, pois: list[tuple[int, shapely.Geometry]],
                 rings: tuple[float, ...]) -> dict[int, dict[float, dict[str, int]]]:
    """``{poi id: {ring: {category: cases within ring metres of the POI's geometry}}}``,
    leaving out empty rings and categories.

    Exact: each candidate's distance to the POI's metric geometry (0 inside a polygon) is the
    distance PostGIS's ``ST_Distance``/``ST_DWithin`` measure (:func:`_distances`); only the
    candidates within the POI's bounding box grown by the largest ring are looked at, found
    by binary search on the cases sorted by x.
    """
    out: dict[int, dict[float, dict[str, int]]] = {}
    if not len(pts) or not pois:
        return out
    order = np.argsort(pts.x, kind="stable")
    xs, ys, cats = pts.x[order], pts.y[order], pts.category[order]
    rmax = max(rings)
    ncat = len(pts.categories)
    for pid, geom in pois:
        if geom is None or geom.is_empty:
            continue
        w, s, e, n = geom.bounds
        lo = int(np.searchsorted(xs, w - rmax, side="left"))
        hi = int(np.searchsorted(xs, e + rmax, side="right"))
        cy = ys[lo:hi]
        near = np.flatnonzero((cy >= s - rmax) & (cy <= n + rmax)) + lo
        if not len(near):
            continue
        d = _distances(geom, xs[near], ys[near])
        by_ring: dict[float, dict[str, int]] = {}
        for r in rings:
            counts = np.bincount(cats[near[d <= r]], minlength=ncat)
            hit = {pts.categories[k]: int(counts[k]) for k in np.flatnonzero(counts)}
            if hit:
                by_ring[float(r)] = hit
        if by_ring:
            out[pid] = by_ring
    return out


_POINT_TYPES, _LINE_TYPES, _POLYGON_TYPES = (0, 4), (1, 2, 5), (3, 6)
# Points x segments per numpy block: small blocks stay in cache (much larger blocks were
# slower). Beyond _MAX_SEGMENTS edges GEOS's C loop wins over numpy's passes.
_CHUNK = 65_536
_MAX_SEGMENTS = 100


def _distances(geom: shapely.Geometry, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Euclidean distance from each point (xs, ys) to ``geom``, 0 inside a polygon: what
    ``ST_Distance`` gives in a projected CRS, in numpy (building a GEOS point per case costs
    more than the whole count). Polygons: distance to the nearest edge of any ring, and
    inside by the even-odd rule over all rings (holes and parts of a valid multipolygon
    included). Other geometry types, and outlines of more than ``_MAX_SEGMENTS`` edges, go to
    GEOS."""
    tid = int(shapely.get_type_id(geom))
    if tid in _POINT_TYPES:
        d = np.full(len(xs), np.inf)
        for px, py in shapely.get_coordinates(geom):
            d = np.minimum(d, np.hypot(xs - px, ys - py))
        return d
    if tid not in _LINE_TYPES and tid not in _POLYGON_TYPES:
        return shapely.distance(geom, shapely.points(xs, ys))
    parts = shapely.get_parts(geom)
    lines = shapely.get_rings(parts) if tid in _POLYGON_TYPES else parts
    seg = [(c[:-1], c[1:]) for c in (shapely.get_coordinates(g) for g in lines) if len(c) > 1]
    a = np.concatenate([s[0] for s in seg])
    b = np.concatenate([s[1] for s in seg])
    if len(a) > _MAX_SEGMENTS:
        return shapely.distance(geom, shapely.points(xs, ys))
    d2 = np.full(len(xs), np.inf)
    inside = np.zeros(len(xs), dtype=bool)
    step = max(1, _CHUNK // max(1, len(xs)))
    px, py = xs[:, None], ys[:, None]
    for k in range(0, len(a), step):
        ax, ay = a[k:k + step, 0], a[k:k + step, 1]
        dx, dy = b[k:k + step, 0] - ax, b[k:k + step, 1] - ay
        len2 = dx * dx + dy * dy
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(len2 > 0, ((px - ax) * dx + (py - ay) * dy) / len2, 0.0)
        t = np.clip(t, 0.0, 1.0)
        ex, ey = px - (ax + t * dx), py - (ay + t * dy)
        d2 = np.minimum(d2, (ex * ex + ey * ey).min(axis=1))
        if tid in _POLYGON_TYPES:
            # Even-odd rule: count the edges a ray to +x crosses.
            crosses = (ay > py) != ((ay + dy) > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = ax + dx * (py - ay) / dy
            inside ^= (np.count_nonzero(crosses & (px < x_at), axis=1) % 2).astype(bool)
    d = np.sqrt(d2)
    d[inside] = 0.0
    return d


def _city_rate(conn: Connection, filters: CaseFilters, grid: Grid | None) -> float:
    """Cases per km² over the study area (the grid's when given, else the communities')."""
    if grid is not None and grid.area_m2 > 0:
        return grid.total_in_area / (grid.area_m2 / 1e6)
    where, p = filter_sql(for_statistics(filters))
    row = conn.execute(
        text(
            "WITH area AS (SELECT ST_Union(geom) g FROM community WHERE generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)) "
            f"SELECT (SELECT count(*) FROM \"case\" c, area WHERE {where} AND ST_Intersects(c.geom, area.g)), "
            f"(SELECT ST_Area(ST_Transform(g, {METRIC_SRID})) FROM area)"
        ),
        p,
    ).first()
    if row is None or not row[1]:
        return 0.0
    return row[0] / (row[1] / 1e6)


def rank_pois(stats_rows: list[dict], ring: float, by: str = "rate") -> list[dict]:
    """POIs ranked by rate ratio (``by="rate"``) or count (``by="count"``) in ``ring``,
    hotspot level breaking ties."""
    if by not in ("rate", "count"):
        raise InvalidInput("sort must be rate or count", field="sort")

    def key(r: dict) -> tuple:
        rate = r["rate_ratio"].get(ring) or 0.0
        cnt = r["counts"].get(ring, 0)
        return (-(rate if by == "rate" else cnt), -(cnt if by == "rate" else rate), -r["hotspot_level"], r["id"])

    return sorted(stats_rows, key=key)


def hotspot_analysis(
    conn: Connection,
    filters: CaseFilters,
    cell_m: float = 250.0,
    rings: tuple[float, ...] = DEFAULT_RINGS_M,
    kinds: tuple[str, ...] = POI_KINDS,
    permutations: int = 999,
    seed: int = 12345,
    hourly_cell_factor: int = 2,
) -> dict:
    """Everything the planners' page shows, from aggregates only: the grid and its Gi*
    levels, POI ring statistics, 24 hourly frames on cells ``hourly_cell_factor`` times
    larger, and cases per community."""
    from geo.map_data import boundaries, city_bounds

    # Planners study every complaint, closed ones included, unless states are chosen.
    filters = for_statistics(filters)
    rs = check_rings(rings)
    points = fetch_case_points(conn, filters)  # the only read of the cases
    grid = aggregate_grid(conn, filters, cell_m, points=points)
    hot = getis_ord(grid, permutations=permutations, seed=seed)
    pois = poi_ring_stats(conn, filters, rs, kinds, grid=grid, hot=hot, points=points)
    shapes = conn.execute(
        text("SELECT id, ST_AsGeoJSON(geom, 6)::json FROM poi WHERE kind = ANY(:k) "
             "AND GeometryType(geom) NOT IN ('POINT', 'MULTIPOINT')"),
        {"k": list(kinds)},
    ).all()
    outlines = {r[0]: r[1] for r in shapes}
    for p in pois:
        p["outline"] = outlines.get(p["id"])
    return {
        "grid": grid, "hot": hot, "pois": pois, "rings": rs, "cell_m": cell_m,
        "hourly": hourly_grid(conn, filters, cell_m * hourly_cell_factor, points=points),
        "community_counts": community_counts_of(points),
        "communities": boundaries(conn, "community"),
        "subdistricts": boundaries(conn, "subdistrict"),
        "bounds": city_bounds(conn),
        "categories": {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT code, name_zh, name_en FROM category"))},
    }
