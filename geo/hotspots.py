"""Hotspot statistics for planners: a metric grid of case counts, Getis-Ord Gi* with
false-discovery-rate control, and complaint counts in rings around points of interest.

Everything metric happens in EPSG:4527 (``geo.coords.METRIC_CRS``) inside PostGIS, with
``ST_Transform(geom, 4527)``, which migration 0004 indexes for the ring queries. Only
aggregates leave the database; no page ever embeds raw points.

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

import esda
import libpysal
import numpy as np
from pyproj import Transformer
from scipy import sparse, stats
from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput
from geo.map_data import STATE_GROUPS, CaseFilters, filter_sql

METRIC_SRID = 4527
LEVELS = ((0.01, 3), (0.05, 2), (0.10, 1))  # (alpha, level): 3 = 99 %, 2 = 95 %, 1 = 90 %
DEFAULT_RINGS_M = (200.0, 500.0, 1000.0)
POI_KINDS = ("school", "hospital", "market", "park_plaza")
_TO_WGS84 = Transformer.from_crs(METRIC_SRID, 4326, always_xy=True)
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


def _study_extent(conn: Connection) -> tuple[tuple[float, float, float, float], bool]:
    """Metric extent of the active communities (True) or, without any, of the cases (False)."""
    row = conn.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(ST_Transform(geom, 4527))::geometry e "
            "FROM community WHERE generation_id = (SELECT id FROM boundary_generation WHERE level = 'community' AND active)) x"
        )
    ).first()
    if row and row[0] is not None:
        return (row[0], row[1], row[2], row[3]), True
    row = conn.execute(text('SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(ST_Transform(geom, 4527))::geometry e FROM "case") x')).first()
    if row is None or row[0] is None:
        raise InvalidInput("no communities and no located cases: nothing to aggregate", field="cases")
    return (row[0], row[1], row[2], row[3]), False


def aggregate_grid(conn: Connection, filters: CaseFilters, cell_m: float = 250.0) -> Grid:
    """Count the filtered cases on a ``cell_m`` metre grid over the study area, in PostGIS."""
    if not 20 <= cell_m <= 5000:
        raise InvalidInput(f"cell_m must be between 20 and 5000 metres, not {cell_m}", field="cell_m")
    (xmin, ymin, xmax, ymax), has_area = _study_extent(conn)
    # Snap the origin to whole cells so that the same cell size always gives the same cells.
    x0, y0 = np.floor(xmin / cell_m) * cell_m, np.floor(ymin / cell_m) * cell_m
    nx, ny = int(np.ceil((xmax - x0) / cell_m)) or 1, int(np.ceil((ymax - y0) / cell_m)) or 1
    if nx * ny > MAX_CELLS:
        raise InvalidInput(f"cell_m {cell_m} gives {nx * ny} cells (max {MAX_CELLS}); choose a larger cell", field="cell_m")
    where, p = filter_sql(filters)
    p.update({"x0": x0, "y0": y0, "s": cell_m, "nx": nx, "ny": ny})
    if has_area:
        cells_sql = (
            "area AS (SELECT ST_Union(ST_Transform(geom, 4527)) g FROM community WHERE generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)), "
            "cells AS (SELECT i, j FROM generate_series(0, :nx - 1) i CROSS JOIN generate_series(0, :ny - 1) j, area "
            "WHERE ST_Intersects(area.g, ST_MakeEnvelope(:x0 + i * :s, :y0 + j * :s, :x0 + (i + 1) * :s, :y0 + (j + 1) * :s, 4527))), "
            "area_m2 AS (SELECT ST_Area(g) a FROM area)"
        )
    else:
        cells_sql = (
            "cells AS (SELECT i, j FROM generate_series(0, :nx - 1) i CROSS JOIN generate_series(0, :ny - 1) j), "
            "area_m2 AS (SELECT CAST(:nx AS float8) * :ny * :s * :s a)"
        )
    sql = (
        f"WITH {cells_sql}, "
        f"counts AS (SELECT floor((ST_X(ST_Transform(c.geom, 4527)) - :x0) / :s)::int i, floor((ST_Y(ST_Transform(c.geom, 4527)) - :y0) / :s)::int j, count(*) n "
        f"FROM \"case\" c WHERE {where} GROUP BY 1, 2) "
        "SELECT cells.i, cells.j, COALESCE(counts.n, 0), (SELECT a FROM area_m2) FROM cells "
        "LEFT JOIN counts ON counts.i = cells.i AND counts.j = cells.j ORDER BY cells.i, cells.j"
    )
    rows = conn.execute(text(sql), p).all()
    i = np.array([r[0] for r in rows], dtype=np.int64)
    j = np.array([r[1] for r in rows], dtype=np.int64)
    n = np.array([r[2] for r in rows], dtype=np.float64)
    area = float(rows[0][3]) if rows else 0.0
    return Grid(cell_m=cell_m, x0=float(x0), y0=float(y0), i=i, j=j, count=n, area_m2=area,
                total_in_area=int(n.sum()), index={(int(a), int(b)): k for k, (a, b) in enumerate(zip(i, j, strict=True))})


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
    """The filters with "every state" instead of the maps' default "open cases only"."""
    return filters if filters.states else replace(filters, states=tuple(STATE_GROUPS))


def hourly_grid(conn: Connection, filters: CaseFilters, cell_m: float) -> list[list[list[float]]]:
    """24 frames (local hour of report 0-23) of ``[lat, lon, n]`` per non-empty cell of
    ``cell_m`` metres, for an hour-of-day animation."""
    where, p = filter_sql(filters)
    rows = conn.execute(
        text(
            f"SELECT extract(hour FROM c.reported_at AT TIME ZONE 'Asia/Shanghai')::int h, "
            f"floor(ST_X(ST_Transform(c.geom, 4527)) / :s)::int i, floor(ST_Y(ST_Transform(c.geom, 4527)) / :s)::int j, count(*) "
            f"FROM \"case\" c WHERE {where} GROUP BY 1, 2, 3"
        ),
        {**p, "s": cell_m},
    ).all()
    frames: list[list[list[float]]] = [[] for _ in range(24)]
    if not rows:
        return frames
    arr = np.array(rows, dtype=np.float64)
    lon, lat = _TO_WGS84.transform((arr[:, 1] + 0.5) * cell_m, (arr[:, 2] + 0.5) * cell_m)
    for h, la, lo, n in zip(arr[:, 0].astype(int), lat, lon, arr[:, 3], strict=True):
        frames[h].append([round(float(la), 5), round(float(lo), 5), float(n)])
    return frames


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
) -> list[dict]:
    """For each point of interest of ``kinds``: cases within each ring (metres from the
    POI's geometry, so from a campus wall when it is a polygon), per category, the ring's
    rate per km² against the city-wide rate (cases in the study area / its area), and the
    Gi* level of the cell under the POI (0 without a grid).

    Each ring is a disc (not an annulus): ``counts[r]`` counts every case within r metres.
    Rings are clipped to the study area to compute their area, so a POI at the town edge is
    not diluted by empty fields.
    """
    rs = check_rings(rings)
    bad = [k for k in kinds if k not in POI_KINDS]
    if bad:
        raise InvalidInput(f"kind must be among {', '.join(POI_KINDS)}, not {bad[0]!r}", field="kind")
    where, p = filter_sql(filters)
    p.update({"rings": list(rs), "rmax": max(rs), "kinds": list(kinds)})
    pois = conn.execute(
        text(
            "WITH area AS (SELECT ST_Union(ST_Transform(geom, 4527)) g FROM community WHERE generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)) "
            "SELECT p.id, p.kind, p.name, ST_X(ST_PointOnSurface(p.geom)) lon, ST_Y(ST_PointOnSurface(p.geom)) lat, "
            "ST_X(ST_PointOnSurface(ST_Transform(p.geom, 4527))) x, ST_Y(ST_PointOnSurface(ST_Transform(p.geom, 4527))) y, "
            "ARRAY(SELECT CASE WHEN area.g IS NULL THEN ST_Area(ST_Buffer(ST_Transform(p.geom, 4527), r, 32)) "
            "ELSE ST_Area(ST_Intersection(ST_Buffer(ST_Transform(p.geom, 4527), r, 32), area.g)) END "
            "FROM unnest(CAST(:rings AS float8[])) r) AS ring_area "
            "FROM poi p, area WHERE p.kind = ANY(:kinds) ORDER BY p.id"
        ),
        p,
    ).mappings().all()
    hits = conn.execute(
        text(
            f"WITH p AS (SELECT id, ST_Transform(geom, 4527) g FROM poi WHERE kind = ANY(:kinds)), "
            f"h AS (SELECT p.id, c.category_code cat, ST_Distance(ST_Transform(c.geom, 4527), p.g) d FROM p "
            f"JOIN \"case\" c ON ST_DWithin(ST_Transform(c.geom, 4527), p.g, :rmax) WHERE {where}) "
            f"SELECT h.id, r.r, h.cat, count(*) FROM h JOIN unnest(CAST(:rings AS float8[])) r(r) ON h.d <= r.r "
            f"GROUP BY 1, 2, 3"
        ),
        p,
    ).all()
    per: dict[int, dict[float, dict[str, int]]] = {}
    for pid, r, cat, n in hits:
        per.setdefault(pid, {}).setdefault(float(r), {})[cat] = n
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


def _city_rate(conn: Connection, filters: CaseFilters, grid: Grid | None) -> float:
    """Cases per km² over the study area (the grid's when given, else the communities')."""
    if grid is not None and grid.area_m2 > 0:
        return grid.total_in_area / (grid.area_m2 / 1e6)
    where, p = filter_sql(filters)
    row = conn.execute(
        text(
            "WITH area AS (SELECT ST_Union(geom) g FROM community WHERE generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)) "
            f"SELECT (SELECT count(*) FROM \"case\" c, area WHERE {where} AND ST_Intersects(c.geom, area.g)), "
            "(SELECT ST_Area(ST_Transform(g, 4527)) FROM area)"
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
    from geo.map_data import boundaries, city_bounds, community_counts

    # Planners study every complaint, closed ones included, unless states are chosen.
    filters = for_statistics(filters.validate())
    rs = check_rings(rings)
    grid = aggregate_grid(conn, filters, cell_m)
    hot = getis_ord(grid, permutations=permutations, seed=seed)
    pois = poi_ring_stats(conn, filters, rs, kinds, grid=grid, hot=hot)
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
        "hourly": hourly_grid(conn, filters, cell_m * hourly_cell_factor),
        "community_counts": community_counts(conn, filters),
        "communities": boundaries(conn, "community"),
        "subdistricts": boundaries(conn, "subdistrict"),
        "bounds": city_bounds(conn),
        "categories": {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT code, name_zh, name_en FROM category"))},
    }
