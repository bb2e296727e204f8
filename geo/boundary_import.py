"""Reading boundary files (GeoJSON, Shapefile, GeoPackage; any CRS, GCJ-02/BD-09 too) into
valid EPSG:4326 polygons, with a report of what was read, repaired and rejected, and the
topology of the result. Nothing is written unless ``commit=True`` (MapIt's habit: imports are
dry runs that report until told otherwise).

This module also holds the helpers the post and POI importers share: :class:`ImportReport`,
:func:`open_vector` (file checks, CRS resolution, conversion to WGS-84) and
:func:`require_fields`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection

from casegrid.errors import ImportFailed
from casegrid.settings import get_settings
from geo.boundaries import LEVELS, store_generation
from geo.coords import BD09, GCJ02, WGS84, normalise_crs, transform_geometries_to_wgs84
from geo.topology import TopologyReport, analyse, load_active

_RENDER_ROWS = 30
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass
class Rejected:
    """A feature or row that was not imported, and why (``feature`` counts from 1)."""

    feature: int
    code: str | None
    reason: str


@dataclass
class Repaired:
    """A feature whose invalid geometry was made valid (``problem`` from shapely)."""

    feature: int
    code: str | None
    problem: str


@dataclass
class ImportReport:
    """What an import read, repaired, rejected and (when committed) wrote."""

    kind: str
    source: str
    source_crs: str = "-"
    read: int = 0
    accepted: int = 0
    repaired: list[Repaired] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    topology: TopologyReport | None = None
    committed: bool = False
    written: dict[str, Any] = field(default_factory=dict)

    def reject(self, feature: int, code: Any, reason: str) -> None:
        """Record a rejected feature (``feature`` is its 1-based position in the file)."""
        self.rejected.append(Rejected(feature, None if code is None else str(code), reason))

    def to_dict(self) -> dict:
        """Plain JSON-able dict (stored with a committed generation)."""
        return asdict(self)

    def render(self, console: Console) -> None:
        """Print the summary, the repaired and rejected features, warnings and topology."""
        console.print(
            f"[bold]{self.kind} import[/] from {self.source} (CRS {self.source_crs}): "
            f"{self.read} read, {self.accepted} accepted, {len(self.repaired)} repaired, "
            f"{len(self.rejected)} rejected"
        )
        if self.repaired:
            t = Table("feature", "code", "problem (repaired)", title="Repaired")
            for r in self.repaired[:_RENDER_ROWS]:
                t.add_row(str(r.feature), r.code or "-", r.problem)
            console.print(t)
        if self.rejected:
            t = Table("feature", "code", "reason", title="Rejected")
            for r in self.rejected[:_RENDER_ROWS]:
                t.add_row(str(r.feature), r.code or "-", r.reason)
            console.print(t)
        if max(len(self.repaired), len(self.rejected)) > _RENDER_ROWS:
            console.print(f"  (tables show the first {_RENDER_ROWS} rows; --json has all)")
        for w in self.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        if self.topology is not None:
            self.topology.render(console)
        if self.committed:
            detail = ", ".join(f"{k} {v}" for k, v in self.written.items())
            console.print(f"[green]committed[/]: {detail}")
        else:
            console.print("[cyan]dry run[/]: nothing written; pass --commit to import")


# --- files ---------------------------------------------------------------------------------


def _size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    if path.suffix.lower() == ".shp":
        # A shapefile is several files; the .dbf can be far bigger than the .shp.
        return sum(p.stat().st_size for p in path.parent.glob(path.stem + ".*") if p.is_file())
    return path.stat().st_size


def check_file(path: str | Path) -> Path:
    """The path, after checking that it exists and is within ``max_upload_mb``."""
    p = Path(path)
    if not p.exists():
        raise ImportFailed(f"{p}: no such file or directory", field="path")
    limit = get_settings().max_upload_mb
    size = _size_bytes(p)
    if size > limit * 1024 * 1024:
        raise ImportFailed(
            f"{p.name} is {size / 1024 / 1024:,.1f} MB, over the {limit} MB limit "
            "(CASEGRID_MAX_UPLOAD_MB); split the file or raise the limit",
            field="path",
        )
    return p


_SHAPEFILE_PARTS = {".shx": "the index", ".dbf": "the attribute table"}


def _check_shapefile_parts(p: Path) -> None:
    """A shapefile needs its .shx and .dbf beside it; without the .dbf GDAL reads shapes with
    no fields at all, which would surface as a confusing 'field not found'."""
    if p.suffix.lower() != ".shp":
        return
    present = {q.suffix.lower() for q in p.parent.glob(p.stem + ".*")}
    for suffix, what in _SHAPEFILE_PARTS.items():
        if suffix not in present:
            raise ImportFailed(
                f"{p.name} is missing its {suffix} ({what}): copy every file of the shapefile "
                "(.shp, .shx, .dbf, .prj) into one folder",
                field="path",
            )


def _read_vector_file(p: Path, layer: str | None) -> gpd.GeoDataFrame:
    _check_shapefile_parts(p)
    try:
        layers = pyogrio.list_layers(p)
        if layer is None and len(layers) > 1:
            names = ", ".join(str(n) for n in layers[:, 0])
            raise ImportFailed(
                f"{p.name} has {len(layers)} layers ({names}); choose one with --layer",
                field="layer",
            )
        gdf = gpd.read_file(p, layer=layer, engine="pyogrio")
    except ImportFailed:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise ImportFailed(
            f"cannot read {p.name}: {exc}. Is it a complete GeoJSON, Shapefile or GeoPackage?",
            field="path",
        ) from None
    except (pyogrio.errors.GeometryError, pyogrio.errors.FieldError, ValueError, OSError) as exc:
        raise ImportFailed(f"cannot read {p.name}: {exc}", field="path") from None
    except shapely.errors.GEOSException as exc:
        # GDAL passes through what GEOS cannot even build (a ring or line of one position).
        raise ImportFailed(
            f"cannot read {p.name}: a geometry is malformed beyond repair ({exc}); every ring "
            "needs at least 4 positions, the last equal to the first",
            field="path",
        ) from None
    if gdf.empty:
        raise ImportFailed(f"{p.name}: the layer has no features", field="path")
    return gdf


def require_fields(frame: pd.DataFrame, source: str, **fields: str | None) -> None:
    """Raise ImportFailed naming the option and listing the available fields when a named
    field (e.g. ``code_field='BoroCD'``) is not a column of ``frame``."""
    available = [c for c in frame.columns if c != getattr(frame, "_geometry_column_name", None)]
    for option, name in fields.items():
        if name is not None and name not in frame.columns:
            flag = "--" + option.replace("_", "-")
            raise ImportFailed(
                f"{flag} {name!r} is not a field of {source}; available fields: "
                + ", ".join(map(str, available)),
                field=option,
            )


def resolve_crs(file_crs: Any, override: str | None, source: str) -> tuple[str, list[str]]:
    """The CRS the coordinates are really in (normalised: 'wgs84', 'gcj02', 'bd09' or
    'EPSG:N') and warnings. ``override`` (``--crs``) wins over the file's own CRS; a file
    with no CRS needs it. 'gcj02'/'bd09' files carry lon/lat, so a projected file CRS
    contradicts them."""
    warnings: list[str] = []
    file_code: str | None = None
    if file_crs is not None:
        epsg = file_crs.to_epsg()
        file_code = WGS84 if epsg == 4326 else (f"EPSG:{epsg}" if epsg else file_crs.to_string())
    if override is None:
        if file_code is None:
            raise ImportFailed(
                f"{source} has no coordinate reference system (a shapefile without its .prj?): "
                "pass --crs, e.g. --crs EPSG:4326, --crs EPSG:4527, --crs gcj02 or --crs bd09",
                field="crs",
            )
        return file_code, warnings
    code = normalise_crs(override)
    if code in (GCJ02, BD09):
        if file_crs is not None and not file_crs.is_geographic:
            raise ImportFailed(
                f"--crs {code} means longitude/latitude on the {code.upper()} datum, but "
                f"{source} is in a projected CRS ({file_code}); drop --crs or fix the file",
                field="crs",
            )
    elif file_code is not None and file_code != code:
        warnings.append(f"{source} says its CRS is {file_code}; using --crs {code} instead")
    return code, warnings


def to_wgs84(gdf: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """``gdf`` with its geometry converted from ``crs`` (see :func:`resolve_crs`) to 4326."""
    geoms = transform_geometries_to_wgs84(gdf.geometry, crs)
    return gpd.GeoDataFrame(gdf.drop(columns=gdf.geometry.name), geometry=geoms.values, crs=4326)


def open_vector(path: str | Path, *, crs: str | None = None, layer: str | None = None
                ) -> tuple[gpd.GeoDataFrame, str, list[str]]:
    """Read a GeoJSON/Shapefile/GeoPackage (``path`` may be a shapefile's folder) and return
    (features in EPSG:4326, source CRS name, warnings). Raises ImportFailed for a missing,
    oversized, unreadable or empty file, or one without a CRS when ``crs`` is not given."""
    p = check_file(path)
    gdf = _read_vector_file(p, layer)
    code, warnings = resolve_crs(gdf.crs, crs, p.name)
    return to_wgs84(gdf, code), ("EPSG:4326" if code == WGS84 else code), warnings


def properties_records(frame: pd.DataFrame, drop: list[str]) -> list[dict]:
    """Each row's remaining columns as a JSON-able dict (timestamps as ISO text)."""
    rest = pd.DataFrame(frame.drop(columns=[c for c in drop if c in frame.columns]))
    if rest.columns.empty:
        return [{} for _ in range(len(frame))]
    return json.loads(rest.to_json(orient="records", date_format="iso", default_handler=str))


def as_code(value: Any) -> str | None:
    """A code as text: None for missing/blank, '311' for 311 or 311.0, stripped otherwise."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text_value = str(value).strip()
    return text_value or None


def bad_coordinates(geoms: np.ndarray) -> np.ndarray:
    """True where a 4326 geometry has a non-finite or out-of-range coordinate."""
    b = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        ok = (
            np.isfinite(b).all(axis=1)
            & (b[:, 0] >= -180) & (b[:, 2] <= 180) & (b[:, 1] >= -90) & (b[:, 3] <= 90)
        )
    return ~ok


# --- polygons ------------------------------------------------------------------------------


def polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Only the polygonal part of ``geom`` (e.g. of a GeometryCollection from make_valid),
    as a valid Polygon or MultiPolygon, or None when there is none."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL and not p.is_empty]
    nested = []
    for p in parts:
        nested.extend(shapely.get_parts(p) if p.geom_type == "MultiPolygon" else [p])
    if not nested:
        return None
    merged = shapely.union_all(nested) if len(nested) > 1 else nested[0]
    if merged.geom_type not in _POLYGONAL or merged.is_empty:
        return polygonal(merged) if merged.geom_type == "GeometryCollection" else None
    return merged


def clean_polygon(geom: Any) -> tuple[shapely.Geometry | None, str | None, str | None]:
    """(valid polygon or None, repair problem or None, rejection reason or None)."""
    if geom is None or geom.is_empty:
        return None, None, "missing or empty geometry"
    geom = shapely.force_2d(geom)
    if geom.geom_type == "GeometryCollection":
        if polygonal(geom) is None:
            kinds = sorted({p.geom_type for p in shapely.get_parts(geom)})
            return None, None, f"not a polygon: a GeometryCollection of {', '.join(kinds)}"
    elif geom.geom_type not in _POLYGONAL:
        return None, None, f"not a polygon: {geom.geom_type} (boundaries must be polygons)"
    if geom.is_valid and geom.geom_type in _POLYGONAL:
        return geom, None, None
    problem = shapely.is_valid_reason(geom) if not geom.is_valid else "geometry collection"
    fixed = polygonal(shapely.make_valid(geom))
    if fixed is None or fixed.area == 0:
        return None, None, f"invalid ({problem}) and nothing polygonal is left after repair"
    return fixed, problem, None


# --- boundaries ----------------------------------------------------------------------------


def read_boundaries(
    path: str | Path,
    *,
    level: str,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    crs: str | None = None,
    layer: str | None = None,
) -> tuple[gpd.GeoDataFrame, ImportReport]:
    """Read a boundary file into (GeoDataFrame in EPSG:4326 with columns code, name,
    parent_code, properties and valid polygon geometry; report).

    Invalid polygons are repaired (``make_valid``, polygonal parts kept) and listed; features
    with no geometry, a non-polygon geometry, coordinates out of range after conversion, a
    missing or repeated code or an empty name are rejected with the reason. Raises
    ImportFailed when the file itself cannot be used.
    """
    if level not in LEVELS:
        raise ImportFailed(f"--level must be one of {', '.join(LEVELS)}, not {level!r}", field="level")
    p = Path(path)
    raw, source_crs, warnings = open_vector(p, crs=crs, layer=layer)
    require_fields(raw, p.name, code_field=code_field, name_field=name_field,
                   parent_field=parent_field)
    report = ImportReport(kind=level, source=str(p), source_crs=source_crs, read=len(raw),
                          warnings=warnings)
    if parent_field and level == "subdistrict":
        report.warnings.append("--parent-field is ignored for subdistricts")
        parent_field = None

    codes = [as_code(v) for v in raw[code_field]]
    names = [as_code(v) for v in raw[name_field]]
    parents = [as_code(v) for v in raw[parent_field]] if parent_field else [None] * len(raw)
    geoms = np.asarray(raw.geometry.array, dtype=object)
    out_of_range = bad_coordinates(geoms)
    props = properties_records(raw, [raw.geometry.name])
    first_seen: dict[str, int] = {}
    keep_rows: list[dict] = []
    keep_geoms: list[shapely.Geometry] = []
    for i, (code, name, parent, geom) in enumerate(zip(codes, names, parents, geoms, strict=True)):
        n = i + 1
        if code is None:
            report.reject(n, None, f"{code_field} is empty: every feature needs a code")
            continue
        if code in first_seen:
            report.reject(n, code, f"duplicate {code_field} {code!r} (first at feature {first_seen[code]}; only the first is kept)")
            continue
        first_seen[code] = n
        if name is None:
            report.reject(n, code, f"{name_field} is empty: every feature needs a name")
            continue
        if geom is not None and not geom.is_empty and out_of_range[i]:
            x0, y0, x1, y1 = shapely.bounds(geom)
            report.reject(
                n, code,
                f"coordinates out of longitude/latitude range after converting from {source_crs} "
                f"(x {x0:.6g}..{x1:.6g}, y {y0:.6g}..{y1:.6g}): the CRS is probably wrong; pass --crs",
            )
            continue
        fixed, problem, reason = clean_polygon(geom)
        if reason:
            report.reject(n, code, reason)
            continue
        if problem:
            report.repaired.append(Repaired(n, code, problem))
        keep_rows.append({"code": code, "name": name, "parent_code": parent, "properties": props[i]})
        keep_geoms.append(fixed)
    report.accepted = len(keep_rows)
    frame = pd.DataFrame(keep_rows, columns=["code", "name", "parent_code", "properties"])
    return gpd.GeoDataFrame(frame, geometry=keep_geoms, crs=4326), report


def plan_import(
    conn: Connection,
    path: str | Path,
    *,
    level: str,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    crs: str | None = None,
    layer: str | None = None,
) -> tuple[gpd.GeoDataFrame, ImportReport]:
    """Read the file and add the topology: gaps and overlaps among the new features and, for
    communities when subdistricts are stored, containment in the active subdistricts (a
    community without a parent gets the subdistrict holding most of it). Writes nothing."""
    features, report = read_boundaries(
        path, level=level, code_field=code_field, name_field=name_field,
        parent_field=parent_field, crs=crs, layer=layer,
    )
    if features.empty:
        return features, report
    subdistricts = load_active(conn, "subdistrict") if level == "community" else None
    report.topology = analyse(features, subdistricts)
    if subdistricts is not None:
        parents = report.topology.parents
        declared = [as_code(v) for v in features["parent_code"]]
        filled = sum(1 for c, d in zip(features["code"], declared, strict=True)
                     if d is None and parents.get(c) is not None)
        features["parent_code"] = pd.Series(
            [d if d is not None else parents.get(c) for c, d in zip(features["code"], declared, strict=True)],
            index=features.index, dtype=object,
        )
        if filled:
            report.warnings.append(
                f"{filled} communities had no parent code: assigned the subdistrict holding most of each"
            )
    elif level == "community" and parent_field is None:
        report.warnings.append("no active subdistrict generation: communities stored without a parent")
    return features, report


def import_boundaries(
    conn: Connection,
    path: str | Path,
    *,
    level: str,
    code_field: str,
    name_field: str,
    parent_field: str | None = None,
    crs: str | None = None,
    layer: str | None = None,
    commit: bool = False,
    activate: bool = True,
    note: str | None = None,
) -> ImportReport:
    """Plan the import and, when ``commit``, store the accepted features as a new generation
    of ``level`` in the caller's transaction (all or nothing), active unless ``activate`` is
    False. The previous generation is kept, inactive."""
    features, report = plan_import(
        conn, path, level=level, code_field=code_field, name_field=name_field,
        parent_field=parent_field, crs=crs, layer=layer,
    )
    if not commit:
        return report
    if features.empty:
        raise ImportFailed(
            f"{Path(path).name}: no feature could be imported ({len(report.rejected)} rejected); nothing stored",
            field="path",
        )
    gen = store_generation(
        conn, level, features, source=str(path), source_crs=report.source_crs,
        report=report.to_dict(), note=note, activate=activate,
    )
    report.committed = True
    report.written = {"generation": gen.id, "features": gen.feature_count, "active": gen.active}
    return report
