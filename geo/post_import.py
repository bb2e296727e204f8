"""Importing community posts (城市管理岗) from CSV or a point file, with a dry-run report.

Posts are keyed by community code, which is stable across boundary generations, so an import
upserts: a known code is updated, a new one inserted. Rows whose code is not a community of
the active generation are rejected; active communities left without a post are warned about.

CSV columns: community_code, name, contact_name, contact_phone, address, hours, lon, lat
(lon/lat optional; in ``--crs``, WGS-84 by default). A GeoJSON/GeoPackage/Shapefile has the
same fields and point geometries instead of lon/lat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from casegrid.csv_text import text_to_float
from casegrid.errors import ImportFailed
from geo.boundaries import active_generation
from geo.boundary_import import ImportReport, as_code, check_file, open_vector, require_fields
from geo.coords import WGS84, check_points, normalise_crs, to_wgs84

POST_FIELDS = ("community_code", "name", "contact_name", "contact_phone", "address", "hours")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")


def read_csv_file(path: str | Path) -> pd.DataFrame:
    """A CSV file as text columns (codes and phone numbers keep their leading zeros), with
    ImportFailed for a missing, oversized, unreadable or empty file."""
    p = check_file(path)
    sep = "\t" if p.suffix.lower() == ".tsv" else ","
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False, sep=sep, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ImportFailed(f"{p.name} is empty", field="path") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ImportFailed(f"cannot read {p.name} as UTF-8 CSV: {exc}", field="path") from None
    if frame.empty:
        raise ImportFailed(f"{p.name} has a header but no rows", field="path")
    # Blank cells are "missing", not empty strings.
    return frame.apply(lambda col: col.str.strip()).replace("", None)


def points_from_columns(
    frame: pd.DataFrame, lon_field: str, lat_field: str, crs: str, report: ImportReport,
    *, required: bool, codes: list[str | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ok mask, lon, lat) in WGS-84 from two columns in ``crs``; rows where both are blank
    are ok with NaN when not ``required``. Bad rows are rejected in ``report``."""
    lon_raw, lat_raw = frame[lon_field], frame[lat_field]
    blank = lon_raw.isna() & lat_raw.isna()
    ok, reasons = check_points(lon_raw.where(~blank, 0), lat_raw.where(~blank, 0))
    ok = np.asarray(ok, dtype=bool)
    lon = text_to_float(lon_raw)
    lat = text_to_float(lat_raw)
    for i in np.flatnonzero(~ok & ~blank.to_numpy()):
        report.reject(i + 1, None if codes is None else codes[i],
                      f"bad coordinates ({lon_field}/{lat_field}): {reasons[i]}")
    if required:
        for i in np.flatnonzero(blank.to_numpy()):
            report.reject(i + 1, None if codes is None else codes[i],
                          f"no coordinates: {lon_field} and {lat_field} are empty")
        ok &= ~blank.to_numpy()
    else:
        ok |= blank.to_numpy()
    good = ok & ~blank.to_numpy()
    if good.any() and crs != WGS84:
        lon[good], lat[good] = to_wgs84(lon[good], lat[good], crs)
    lon[~good], lat[~good] = np.nan, np.nan
    return ok, lon, lat


def read_posts(path: str | Path, *, crs: str | None = None) -> tuple[pd.DataFrame, ImportReport]:
    """Read posts into a frame (the POST_FIELDS plus lon/lat in WGS-84, NaN when the post has
    no location) and a report of the rows read and rejected."""
    p = Path(path)
    if p.suffix.lower() in CSV_SUFFIXES:
        frame = read_csv_file(p)
        source_crs = normalise_crs(crs) if crs else WGS84
        label = "EPSG:4326" if source_crs == WGS84 else source_crs
        warnings: list[str] = []
    else:
        gdf, label, warnings = open_vector(p, crs=crs)
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        geoms = gdf.geometry
        is_point = geoms.notna() & ~geoms.is_empty & (geoms.geom_type == "Point")
        frame["lon"] = np.where(is_point, geoms.x.where(is_point), np.nan)
        frame["lat"] = np.where(is_point, geoms.y.where(is_point), np.nan)
        frame["_not_point"] = geoms.notna() & ~geoms.is_empty & ~is_point
        source_crs = WGS84  # the geometry is converted already
    require_fields(frame, p.name, **{f: f for f in ("community_code", "name")})
    for f in POST_FIELDS:
        if f not in frame:
            frame[f] = None
    for f in ("lon", "lat"):
        if f not in frame:
            frame[f] = None
    report = ImportReport(kind="post", source=str(p), read=len(frame), warnings=warnings,
                          source_crs=label)
    codes = [as_code(v) for v in frame["community_code"]]
    ok, lon, lat = points_from_columns(frame, "lon", "lat", source_crs, report, required=False,
                                       codes=codes)
    seen: dict[str, int] = {}
    keep = []
    for i, code in enumerate(codes):
        n = i + 1
        if not ok[i]:
            continue
        if frame.get("_not_point") is not None and bool(frame["_not_point"].iloc[i]):
            report.reject(n, code, "geometry is not a point: a post is one location")
            continue
        if code is None:
            report.reject(n, None, "community_code is empty")
            continue
        if code in seen:
            report.reject(n, code, f"duplicate community_code (first at row {seen[code]}; only the first is kept)")
            continue
        seen[code] = n
        if as_code(frame["name"].iloc[i]) is None:
            report.reject(n, code, "name is empty: every post needs a name")
            continue
        row = {f: as_code(frame[f].iloc[i]) for f in POST_FIELDS}
        row["community_code"] = code
        row["lon"] = None if np.isnan(lon[i]) else float(lon[i])
        row["lat"] = None if np.isnan(lat[i]) else float(lat[i])
        row["_row"] = n
        keep.append(row)
    posts = pd.DataFrame(keep, columns=[*POST_FIELDS, "lon", "lat", "_row"])
    report.accepted = len(posts)
    return posts, report


def _check_codes(conn: Connection, posts: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    gen = active_generation(conn, "community")
    if gen is None:
        report.warnings.append("no active community generation: community codes were not checked")
        return posts
    active = set(conn.execute(text("SELECT code FROM community WHERE generation_id = :g"),
                              {"g": gen}).scalars())
    unknown = ~posts["community_code"].isin(active)
    for n, code in zip(posts.loc[unknown, "_row"], posts.loc[unknown, "community_code"], strict=True):
        report.reject(int(n), code, f"community_code {code!r} is not a community of the active generation {gen}")
    posts = posts[~unknown]
    report.accepted = len(posts)
    existing = set(conn.execute(text("SELECT community_code FROM community_post")).scalars())
    without = sorted(active - existing - set(posts["community_code"]))
    if without:
        shown = ", ".join(without[:20]) + (" ..." if len(without) > 20 else "")
        report.warnings.append(f"{len(without)} active communities have no post: {shown}")
    return posts


def import_posts(conn: Connection, path: str | Path, *, crs: str | None = None,
                 commit: bool = False) -> ImportReport:
    """Read, check against the active communities and, when ``commit``, upsert the posts by
    community code in the caller's transaction."""
    posts, report = read_posts(path, crs=crs)
    posts = _check_codes(conn, posts, report)
    report.rejected.sort(key=lambda r: r.feature)
    if not commit:
        return report
    if posts.empty:
        raise ImportFailed(f"{Path(path).name}: no post could be imported; nothing stored", field="path")
    rows = posts.drop(columns="_row").astype(object).where(posts.drop(columns="_row").notna(), None)
    records = rows.to_dict("records")
    codes = [r["community_code"] for r in records]
    existing = set(conn.execute(
        text("SELECT community_code FROM community_post WHERE community_code = ANY(:codes)"),
        {"codes": codes},
    ).scalars())
    conn.execute(
        text(
            "INSERT INTO community_post (community_code, name, contact_name, phone, address, hours, geom)"
            " VALUES (:community_code, :name, :contact_name, :contact_phone, :address, :hours,"
            " ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326))"
            " ON CONFLICT (community_code) DO UPDATE SET name = EXCLUDED.name,"
            " contact_name = EXCLUDED.contact_name, phone = EXCLUDED.phone,"
            " address = EXCLUDED.address, hours = EXCLUDED.hours, geom = EXCLUDED.geom,"
            " updated_at = now()"
        ),
        records,
    )
    inserted = len(set(codes) - existing)
    report.committed = True
    report.written = {"inserted": inserted, "updated": len(rows) - inserted}
    return report
