"""Importing points of interest (schools, hospitals, markets, parks/plazas) from CSV with
lon/lat columns or from any vector file (GeoJSON, Shapefile, GeoPackage; any CRS, GCJ-02 and
BD-09 too), with a dry-run report.

A file is one source: committing it again replaces the rows it brought last time (matched on
``source``, the file name unless given), so re-running an import never duplicates POIs.
Rows with no geometry or impossible coordinates are rejected with the reason; so are points
far from all the others (a longitude of ~0 in a New York file), which are almost always a
data-entry error rather than a real place.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from casegrid.errors import ImportFailed, InvalidInput
from geo.boundary_import import (
    ImportReport,
    as_code,
    bad_coordinates,
    open_vector,
    polygonal,
    properties_records,
    require_fields,
)
from geo.coords import WGS84, normalise_crs
from geo.post_import import CSV_SUFFIXES, points_from_columns, read_csv_file

KINDS = ("school", "hospital", "market", "park_plaza")
# A point further than this from the median of the file's points is taken to be a typo.
MAX_SPREAD_KM = 300.0
_EARTH_RADIUS_KM = 6371.0088
_LON_NAMES = ("lon", "long", "lng", "longitude", "x")
_LAT_NAMES = ("lat", "latitude", "y")


def parse_filters(filters: list[str] | None) -> list[tuple[str, str]]:
    """``['status=OPEN']`` -> ``[('status', 'OPEN')]``; InvalidInput for a malformed one."""
    out = []
    for f in filters or []:
        field, sep, value = f.partition("=")
        if not sep or not field.strip():
            raise InvalidInput(f"--filter {f!r} must be FIELD=VALUE, e.g. status=OPEN", field="filter")
        out.append((field.strip(), value.strip()))
    return out


def parse_kind_map(mapping: str | None) -> dict[str, str]:
    """``'学校=school,医院=hospital'`` -> dict; every target must be a known kind."""
    out: dict[str, str] = {}
    for item in (mapping or "").split(","):
        if not item.strip():
            continue
        src, sep, dst = item.partition("=")
        if not sep or dst.strip() not in KINDS:
            raise InvalidInput(
                f"--kind-map item {item!r} must be VALUE=KIND with KIND one of {', '.join(KINDS)}",
                field="kind_map",
            )
        out[src.strip().casefold()] = dst.strip()
    return out


def _find_column(frame: pd.DataFrame, given: str | None, names: tuple[str, ...], flag: str,
                 source: str) -> str:
    if given:
        require_fields(frame, source, **{flag: given})
        return given
    lower = {str(c).strip().casefold(): c for c in frame.columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise ImportFailed(
        f"{source}: no {flag.split('_')[0]} column found (looked for {', '.join(names)}); "
        f"pass --{flag.replace('_', '-')}; available fields: {', '.join(map(str, frame.columns))}",
        field=flag,
    )


def _read(path: Path, crs: str | None, lon_field: str | None, lat_field: str | None,
          report: ImportReport) -> tuple[pd.DataFrame, np.ndarray]:
    """(attribute frame, geometries in 4326 with None for rejected rows)."""
    if path.suffix.lower() in CSV_SUFFIXES:
        frame = read_csv_file(path)
        lon_f = _find_column(frame, lon_field, _LON_NAMES, "lon_field", path.name)
        lat_f = _find_column(frame, lat_field, _LAT_NAMES, "lat_field", path.name)
        code = normalise_crs(crs) if crs else WGS84
        report.source_crs = "EPSG:4326" if code == WGS84 else code
        report.read = len(frame)
        ok, lon, lat = points_from_columns(frame, lon_f, lat_f, code, report, required=True)
        geoms = np.where(ok, shapely.points(np.nan_to_num(lon), np.nan_to_num(lat)), None)
        return frame.drop(columns=[lon_f, lat_f]), geoms
    gdf, source_crs, warnings = open_vector(path, crs=crs)
    report.source_crs, report.read = source_crs, len(gdf)
    report.warnings.extend(warnings)
    geoms = np.asarray(gdf.geometry.array, dtype=object).copy()
    bad = bad_coordinates(geoms)
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            report.reject(i + 1, None, "no geometry")
            geoms[i] = None
        elif bad[i]:
            report.reject(i + 1, None, f"coordinates out of longitude/latitude range after converting from {source_crs}: pass --crs")
            geoms[i] = None
        elif not g.is_valid:
            fixed = shapely.make_valid(shapely.force_2d(g))
            if g.geom_type in ("Polygon", "MultiPolygon"):
                fixed = polygonal(fixed)
            geoms[i] = fixed
    return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), geoms


def read_located_rows(path: Path, crs: str | None, lon_field: str | None,
                      lat_field: str | None, report: ImportReport) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV with coordinate columns or a vector file as (attribute frame, geometries in
    EPSG:4326, None for a rejected row, recorded in ``report``); the gazetteer import
    reads its files this way too."""
    return _read(path, crs, lon_field, lat_field, report)


def _far_from_median(geoms: np.ndarray, max_km: float) -> np.ndarray:
    """Distance in km of each geometry's representative point from the median point."""
    present = np.array([g is not None for g in geoms])
    dist = np.zeros(len(geoms))
    if present.sum() < 3:
        return dist
    pts = shapely.point_on_surface(geoms[present])
    x, y = np.radians(shapely.get_x(pts)), np.radians(shapely.get_y(pts))
    mx, my = np.median(x), np.median(y)
    # Haversine great-circle distance.
    h = np.sin((y - my) / 2) ** 2 + np.cos(y) * np.cos(my) * np.sin((x - mx) / 2) ** 2
    dist[present] = 2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
    return dist


def read_pois(
    path: str | Path,
    *,
    name_field: str,
    kind: str | None = None,
    kind_field: str | None = None,
    kind_map: str | None = None,
    id_field: str | None = None,
    crs: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
    filters: list[str] | None = None,
    max_spread_km: float = MAX_SPREAD_KM,
) -> tuple[gpd.GeoDataFrame, ImportReport]:
    """Read POIs into (GeoDataFrame in 4326 with kind, name, source_id, properties; report).

    ``kind`` applies to every row; otherwise ``kind_field`` gives it per row, translated by
    ``kind_map`` ('VALUE=KIND,...'; values that already are kinds need no mapping).
    ``filters`` ('FIELD=VALUE', compared case-insensitively, all must hold) skip rows.
    """
    if (kind is None) == (kind_field is None):
        raise InvalidInput("give exactly one of --kind or --kind-field", field="kind")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}", field="kind")
    mapping = parse_kind_map(kind_map)
    conditions = parse_filters(filters)
    p = Path(path)
    report = ImportReport(kind="poi", source=str(p))
    frame, geoms = _read(p, crs, lon_field, lat_field, report)
    require_fields(frame, p.name, name_field=name_field, id_field=id_field, kind_field=kind_field,
                   **{f"filter_{i}": f for i, (f, _) in enumerate(conditions)})
    keep = np.ones(len(frame), dtype=bool)
    for f, value in conditions:
        keep &= frame[f].astype(str).str.strip().str.casefold().to_numpy() == value.casefold()
    # Rows the filter skips are not the user's problem: drop their rejections.
    report.rejected = [r for r in report.rejected if keep[r.feature - 1]]
    rejected = {r.feature for r in report.rejected}
    skipped = int((~keep).sum())
    if skipped:
        report.warnings.append(
            f"{skipped} rows skipped by --filter {' '.join(f'{f}={v}' for f, v in conditions)}"
        )
    dist = _far_from_median(np.where(keep, geoms, None), max_spread_km)
    props = properties_records(frame, [])
    rows, out_geoms = [], []
    for i in range(len(frame)):
        n = i + 1
        if not keep[i] or n in rejected:
            continue
        name = as_code(frame[name_field].iloc[i])
        sid = as_code(frame[id_field].iloc[i]) if id_field else None
        if geoms[i] is None or geoms[i].is_empty:
            report.reject(n, sid, "no usable geometry after repair")
            continue
        if dist[i] > max_spread_km:
            c = shapely.point_on_surface(geoms[i])
            report.reject(n, sid, f"at lon {c.x:.5f}, lat {c.y:.5f}, {dist[i]:,.0f} km from the "
                          "median of the file's points: probably a bad coordinate")
            continue
        if name is None:
            report.reject(n, sid, f"{name_field} is empty: every POI needs a name")
            continue
        row_kind = kind
        if kind_field:
            raw = as_code(frame[kind_field].iloc[i]) or ""
            row_kind = mapping.get(raw.casefold(), raw if raw in KINDS else None)
            if row_kind is None:
                report.reject(n, sid, f"{kind_field} {raw!r} is not one of {', '.join(KINDS)}; "
                              f"map it with --kind-map '{raw}=school'")
                continue
        rows.append({"kind": row_kind, "name": name, "source_id": sid, "properties": props[i]})
        out_geoms.append(geoms[i])
    report.rejected.sort(key=lambda r: r.feature)
    report.accepted = len(rows)
    frame_out = pd.DataFrame(rows, columns=["kind", "name", "source_id", "properties"])
    return gpd.GeoDataFrame(frame_out, geometry=out_geoms, crs=4326), report


def import_pois(conn: Connection, path: str | Path, *, source: str | None = None,
                commit: bool = False, **options) -> ImportReport:
    """Read POIs (see :func:`read_pois` for ``options``) and, when ``commit``, replace the rows
    of the same ``source`` (default: the file name) with them in the caller's transaction."""
    pois, report = read_pois(path, **options)
    source = source or Path(path).name
    if not commit:
        return report
    if pois.empty:
        raise ImportFailed(f"{Path(path).name}: no POI could be imported; nothing stored", field="path")
    replaced = conn.execute(text("DELETE FROM poi WHERE source = :s"), {"s": source}).rowcount
    conn.execute(
        text(
            "INSERT INTO poi (kind, name, source, source_id, properties, geom) VALUES"
            " (:kind, :name, :source, :sid, CAST(:props AS jsonb),"
            " ST_SetSRID(ST_GeomFromWKB(decode(:wkb, 'hex')), 4326))"
        ),
        [
            {"kind": k, "name": n, "source": source, "sid": s,
             "props": json.dumps(pr, ensure_ascii=False, default=str),
             "wkb": shapely.to_wkb(g, hex=True)}
            for k, n, s, pr, g in zip(pois["kind"], pois["name"], pois["source_id"],
                                      pois["properties"], pois.geometry, strict=True)
        ],
    )
    report.committed = True
    report.written = {"source": source, "inserted": len(pois), "replaced": replaced}
    return report
