"""Topology checks for boundary sets: gaps, overlaps, and communities outside or straddling
their subdistrict.

Everything here is vectorised shapely/geopandas on data sets of tens to a few thousand
polygons; areas are measured in a metric CRS chosen from the data's centre
(:func:`geo.coords.metric_crs_for`: EPSG:4527 around Tengzhou, the UTM zone elsewhere).

* A **gap** is an interior hole of the union of all polygons that is smaller than
  ``max_gap_share`` of the union's area (bigger holes are taken to be intentional, e.g. a
  lake or an area that belongs to nobody, and are only counted).
* An **overlap** is the intersection of two polygons with an area above ``min_area_m2``
  (smaller ones are floating-point slivers of shared edges).
* A community's **parent share** is the fraction of its area inside its subdistrict (the
  declared one, or the one holding most of it when none is declared); below
  ``min_parent_share`` it is reported as straddling, outside, or in the wrong parent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, text

from geo.boundaries import active_generation
from geo.coords import metric_crs_for

MIN_AREA_M2 = 1.0
MAX_GAP_SHARE = 0.05
MIN_PARENT_SHARE = 0.99
# Render at most this many rows per table; to_dict() always has everything.
_RENDER_ROWS = 30


@dataclass
class Gap:
    """A hole in the coverage, with a point inside it."""

    area_m2: float
    lon: float
    lat: float


@dataclass
class Overlap:
    """Two polygons that share area."""

    code_a: str
    code_b: str
    area_m2: float
    lon: float
    lat: float


@dataclass
class ParentIssue:
    """A community not (entirely) inside its subdistrict.

    ``status``: 'straddling' (most of it is in its parent, the rest elsewhere or outside),
    'wrong_parent' (another subdistrict holds more of it than the declared one), 'outside'
    (no subdistrict holds any meaningful part of it), 'unknown_parent' (the declared code is
    not a subdistrict of the active generation).
    """

    code: str
    parent_code: str | None
    share_in_parent: float | None
    best_code: str | None
    best_share: float
    status: str


@dataclass
class TopologyReport:
    """Result of :func:`analyse`; ``parents`` maps each community code to its subdistrict
    (declared, or assigned as the one holding most of it; None when none holds any)."""

    metric_crs: str
    features: int
    total_area_m2: float
    gaps: list[Gap] = field(default_factory=list)
    large_holes: int = 0
    overlaps: list[Overlap] = field(default_factory=list)
    parent_issues: list[ParentIssue] = field(default_factory=list)
    parents: dict[str, str | None] = field(default_factory=dict)
    parents_checked: bool = False

    @property
    def clean(self) -> bool:
        """True when there is nothing to report."""
        return not (self.gaps or self.overlaps or self.parent_issues)

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)

    def render(self, console: Console) -> None:
        """Print a readable summary and tables of the issues."""
        gap_area = sum(g.area_m2 for g in self.gaps)
        ov_area = sum(o.area_m2 for o in self.overlaps)
        console.print(
            f"[bold]Topology[/] ({self.features} polygons, {self.total_area_m2 / 1e6:,.3f} km², "
            f"areas in {self.metric_crs}): {len(self.gaps)} gaps ({gap_area:,.1f} m²), "
            f"{len(self.overlaps)} overlaps ({ov_area:,.1f} m²)"
            + (f", {len(self.parent_issues)} not inside their subdistrict" if self.parents_checked else "")
        )
        if self.large_holes:
            console.print(
                f"  {self.large_holes} large hole(s) in the coverage (over {MAX_GAP_SHARE:.0%} "
                "of the total area) taken to be intentional, not reported as gaps"
            )
        if self.gaps:
            t = Table("gap area m²", "lon", "lat", title="Gaps")
            for g in self.gaps[:_RENDER_ROWS]:
                t.add_row(f"{g.area_m2:,.1f}", f"{g.lon:.6f}", f"{g.lat:.6f}")
            console.print(t)
        if self.overlaps:
            t = Table("code", "code", "overlap m²", "lon", "lat", title="Overlaps")
            for o in self.overlaps[:_RENDER_ROWS]:
                t.add_row(o.code_a, o.code_b, f"{o.area_m2:,.1f}", f"{o.lon:.6f}", f"{o.lat:.6f}")
            console.print(t)
        if self.parent_issues:
            t = Table("community", "subdistrict", "share inside", "most in", "its share", "status",
                      title="Communities not inside their subdistrict")
            for p in self.parent_issues[:_RENDER_ROWS]:
                t.add_row(
                    p.code,
                    p.parent_code or "-",
                    "-" if p.share_in_parent is None else f"{p.share_in_parent:.1%}",
                    p.best_code or "-",
                    f"{p.best_share:.1%}",
                    p.status,
                )
            console.print(t)
        longest = max(len(self.gaps), len(self.overlaps), len(self.parent_issues))
        if longest > _RENDER_ROWS:
            console.print(f"  (tables show the first {_RENDER_ROWS} rows; --json has all)")


def _metric(geoms: gpd.GeoSeries) -> tuple[str, np.ndarray]:
    """Name of the metric CRS for these 4326 geometries, and the geometries in it."""
    x0, y0, x1, y1 = geoms.total_bounds
    crs = metric_crs_for((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    return crs, np.asarray(geoms.to_crs(crs).array, dtype=object)


def _lonlat(points: np.ndarray, metric_crs: str) -> tuple[np.ndarray, np.ndarray]:
    if len(points) == 0:
        return np.array([]), np.array([])
    tr = pyproj.Transformer.from_crs(metric_crs, "EPSG:4326", always_xy=True)
    return tr.transform(shapely.get_x(points), shapely.get_y(points))


def _gaps(metric: np.ndarray, metric_crs: str, min_area: float, max_share: float
          ) -> tuple[list[Gap], int, float]:
    union = shapely.union_all(metric)
    total = float(shapely.area(union))
    holes = [
        shapely.Polygon(ring)
        for part in shapely.get_parts(union)
        if part.geom_type == "Polygon"
        for ring in part.interiors
    ]
    holes_arr = np.asarray(holes, dtype=object)
    areas = shapely.area(holes_arr) if holes else np.array([])
    is_gap = (areas > min_area) & (areas <= max_share * total)
    large = int((areas > max_share * total).sum())
    gap_geoms = holes_arr[is_gap] if holes else holes_arr
    lon, lat = _lonlat(shapely.point_on_surface(gap_geoms), metric_crs)
    gaps = [
        Gap(round(float(a), 2), round(float(x), 7), round(float(y), 7))
        for a, x, y in zip(areas[is_gap], lon, lat, strict=True)
    ]
    gaps.sort(key=lambda g: -g.area_m2)
    return gaps, large, total


def _overlaps(metric: np.ndarray, codes: np.ndarray, metric_crs: str, min_area: float
              ) -> list[Overlap]:
    tree = shapely.STRtree(metric)
    left, right = tree.query(metric, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return []
    inter = shapely.intersection(metric[left], metric[right])
    areas = shapely.area(inter)
    big = areas > min_area
    lon, lat = _lonlat(shapely.point_on_surface(inter[big]), metric_crs)
    out = [
        Overlap(str(codes[i]), str(codes[j]), round(float(a), 2), round(float(x), 7), round(float(y), 7))
        for i, j, a, x, y in zip(left[big], right[big], areas[big], lon, lat, strict=True)
    ]
    out.sort(key=lambda o: -o.area_m2)
    return out


def _parent_shares(metric: np.ndarray, parent_metric: np.ndarray) -> pd.DataFrame:
    """Rows (child, parent, share of the child's area inside the parent) for all pairs that
    intersect."""
    tree = shapely.STRtree(parent_metric)
    child, parent = tree.query(metric, predicate="intersects")
    areas = shapely.area(shapely.intersection(metric[child], parent_metric[parent]))
    own = shapely.area(metric)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(own[child] > 0, areas / own[child], 0.0)
    return pd.DataFrame({"child": child, "parent": parent, "share": share})


def _check_parents(
    metric: np.ndarray,
    codes: np.ndarray,
    declared: list[str | None],
    parent_metric: np.ndarray,
    parent_codes: np.ndarray,
    min_share: float,
) -> tuple[list[ParentIssue], dict[str, str | None]]:
    shares = _parent_shares(metric, parent_metric)
    by_child: dict[int, dict[str, float]] = {}
    for c, p, s in zip(shares["child"], shares["parent"], shares["share"], strict=True):
        d = by_child.setdefault(int(c), {})
        code = str(parent_codes[p])
        d[code] = d.get(code, 0.0) + float(s)
    known = {str(c) for c in parent_codes}
    issues: list[ParentIssue] = []
    parents: dict[str, str | None] = {}
    for i, code in enumerate(codes):
        d = by_child.get(i, {})
        best_code, best_share = (max(d.items(), key=lambda kv: kv[1]) if d else (None, 0.0))
        # Floating point makes a fully-inside share 0.9999999...; round before judging.
        best_share = round(min(best_share, 1.0), 6)
        want = declared[i]
        if want is not None and want not in known:
            parents[str(code)] = want
            issues.append(ParentIssue(str(code), want, None, best_code, best_share, "unknown_parent"))
            continue
        parent = want if want is not None else (best_code if best_share > 0 else None)
        parents[str(code)] = parent
        share = round(min(d.get(parent, 0.0), 1.0), 6) if parent else 0.0
        if share >= min_share:
            continue
        if sum(d.values()) < 1.0 - min_share:
            status = "outside"
        elif parent != best_code:
            status = "wrong_parent"
        else:
            status = "straddling"
        issues.append(ParentIssue(str(code), parent, share, best_code, best_share, status))
    return issues, parents


def analyse(
    features: gpd.GeoDataFrame,
    parents: gpd.GeoDataFrame | None = None,
    *,
    min_area_m2: float = MIN_AREA_M2,
    max_gap_share: float = MAX_GAP_SHARE,
    min_parent_share: float = MIN_PARENT_SHARE,
) -> TopologyReport:
    """Check ``features`` (columns ``code``, optional ``parent_code``, polygon geometry in
    EPSG:4326, valid) for gaps and overlaps and, when ``parents`` (``code``, geometry) is
    given, for containment in their parent. Missing ``parent_code`` values are assigned the
    parent that holds most of the feature (see ``TopologyReport.parents``).
    """
    if features.empty:
        return TopologyReport(metric_crs="-", features=0, total_area_m2=0.0)
    metric_crs, metric = _metric(features.geometry)
    codes = features["code"].astype(str).to_numpy()
    gaps, large, total = _gaps(metric, metric_crs, min_area_m2, max_gap_share)
    report = TopologyReport(
        metric_crs=metric_crs,
        features=len(features),
        total_area_m2=round(total, 2),
        gaps=gaps,
        large_holes=large,
        overlaps=_overlaps(metric, codes, metric_crs, min_area_m2),
    )
    if parents is not None and not parents.empty:
        parent_metric = np.asarray(parents.geometry.to_crs(metric_crs).array, dtype=object)
        declared = (
            [None if (v is None or v != v or str(v) == "") else str(v) for v in features["parent_code"]]
            if "parent_code" in features
            else [None] * len(features)
        )
        report.parent_issues, report.parents = _check_parents(
            metric, codes, declared, parent_metric,
            parents["code"].astype(str).to_numpy(), min_parent_share,
        )
        report.parents_checked = True
    return report


def _load_generation(conn: Connection, table: str, generation_id: int) -> gpd.GeoDataFrame:
    # ``table`` is one of two literals chosen below, never user input.
    parent = "subdistrict_code" if table == "community" else "NULL"
    rows = conn.execute(
        text(
            f"SELECT code, {parent} AS parent_code, ST_AsBinary(geom) AS wkb FROM {table}"
            " WHERE generation_id = :g ORDER BY code"
        ),
        {"g": generation_id},
    ).all()
    return gpd.GeoDataFrame(
        {"code": [r.code for r in rows], "parent_code": [r.parent_code for r in rows]},
        geometry=shapely.from_wkb([bytes(r.wkb) for r in rows]),
        crs=4326,
    )


def load_active(conn: Connection, level: str) -> gpd.GeoDataFrame | None:
    """The active generation of ``level`` as a GeoDataFrame (code, parent_code, geometry in
    EPSG:4326), or None when there is none."""
    gen = active_generation(conn, level)
    if gen is None:
        return None
    return _load_generation(conn, level, gen)


def check_active(conn: Connection) -> TopologyReport:
    """Topology of the active community generation against the active subdistricts (or of
    the subdistricts alone when no communities are stored)."""
    communities = load_active(conn, "community")
    subdistricts = load_active(conn, "subdistrict")
    if communities is None:
        if subdistricts is None:
            return TopologyReport(metric_crs="-", features=0, total_area_m2=0.0)
        return analyse(subdistricts.drop(columns="parent_code"))
    return analyse(communities, subdistricts)
