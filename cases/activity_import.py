"""``casegrid activities import FILE --mapping M.toml [--commit]``: a bureau's activity
records (CSV or XLSX) into the activities ledger.

A dry run by default: every row is read and checked with the same rules as the API
(:func:`cases.activities.check_activity`), and the report says how many rows are new, how
many are stored already (the same key: the file's own id column, or else the start time,
title and posts) and which were refused, with their line numbers and why. ``--commit``
stores the new rows in one transaction, so an interrupted import stores nothing and a run
again stores nothing twice. Refused rows go to a reject file (the row as it was, its line
and the reason) that can be corrected and imported again.

A mapping is a small TOML file (``activities_zh.toml`` beside the case mappings is a
complete example)::

    name = "..."
    [source]      encoding ("auto": UTF-8, else GB18030), delimiter, sheet
    [columns]     started_at, title, kind, communities (codes or names, "、" or "," between
                  several), and optionally ended_at, kind_name, place, lon, lat, crs, staff,
                  volunteers, reached, note, external_id
    [started_at]  format (strftime or ISO8601) and timezone of naive times
    [kind.map]    source type names to kinds (the Chinese names of cases.activities.KINDS
                  are understood without a map)
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, text

from casegrid.errors import CasegridError, ImportFailed, InvalidInput
from casegrid.settings import get_settings
from cases.activities import KIND_BY_NAME, check_activity, store_activity
from cases.tokens import Principal

FIELDS = ("started_at", "ended_at", "kind", "kind_name", "title", "communities", "place",
          "lon", "lat", "crs", "staff", "volunteers", "reached", "note", "external_id")
REQUIRED = ("started_at", "title", "kind", "communities")
IMPORTER = Principal(token_id=0, name="activities import", role="admin")


@dataclass(frozen=True)
class ActivityMapping:
    """A parsed activity mapping."""

    columns: dict[str, str]
    kind_map: dict[str, str]
    date_format: str = "ISO8601"
    timezone: str = field(default_factory=lambda: get_settings().time_zone)  # naive times
    encoding: str = "auto"
    delimiter: str = ","
    sheet: str | int = 0


@dataclass
class ImportReport:
    """What an import found (and, with commit, stored)."""

    rows: int = 0
    new: int = 0
    already_present: int = 0
    stored: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # line, field, why
    reject_file: Path | None = None
    committed: bool = False


def load_mapping(path: Path) -> ActivityMapping:
    """Read and check a mapping file (422 naming what is wrong in it)."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"mapping {path}: {exc}", field="mapping") from None
    cols = doc.get("columns") or {}
    unknown = [k for k in cols if k not in FIELDS]
    if unknown:
        raise InvalidInput(f"mapping {path}: unknown field {unknown[0]!r} in [columns]; fields "
                           f"are {', '.join(FIELDS)}", field="mapping")
    missing = [k for k in REQUIRED if k not in cols]
    if missing:
        raise InvalidInput(f"mapping {path}: [columns] must name the column of "
                           f"{', '.join(missing)}", field="mapping")
    kind_map = dict((doc.get("kind") or {}).get("map") or {})
    bad = {k: v for k, v in kind_map.items() if v not in KIND_BY_NAME}
    if bad:
        raise InvalidInput(f"mapping {path}: [kind.map] maps to unknown kinds "
                           f"{', '.join(map(str, bad.values()))}", field="mapping")
    src, when = doc.get("source") or {}, doc.get("started_at") or {}
    return ActivityMapping(columns={k: str(v) for k, v in cols.items()}, kind_map=kind_map,
                           date_format=when.get("format", "ISO8601"),
                           timezone=when.get("timezone", get_settings().time_zone),
                           encoding=src.get("encoding", "auto"),
                           delimiter=src.get("delimiter", ","), sheet=src.get("sheet", 0))


def read_rows(path: Path, mapping: ActivityMapping) -> pd.DataFrame:
    """The file as text cells (never numbers: codes keep their leading zeros)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"{path} does not exist", field="file")
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, sheet_name=mapping.sheet, dtype=str)
        else:
            encodings = ["utf-8-sig", "gb18030"] if mapping.encoding == "auto" else [mapping.encoding]
            for i, enc in enumerate(encodings):
                try:
                    frame = pd.read_csv(path, dtype=str, sep=mapping.delimiter, encoding=enc,
                                        keep_default_na=False)
                    break
                except UnicodeDecodeError:
                    if i == len(encodings) - 1:
                        raise
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}", field="file") from None
    missing = [c for c in mapping.columns.values() if c not in frame.columns]
    if missing:
        raise ImportFailed(f"{path}: no column {', '.join(missing)} (the mapping names it); "
                           f"columns are {', '.join(map(str, frame.columns))}", field="mapping")
    return frame.fillna("")


def _time(value: str, mapping: ActivityMapping, name: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = (datetime.fromisoformat(value) if mapping.date_format == "ISO8601"
                  else datetime.strptime(value, mapping.date_format))
    except ValueError:
        raise InvalidInput(f"{name} {value!r} does not match the format "
                           f"{mapping.date_format}", field=name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(mapping.timezone))
    return parsed.isoformat()


def _community_names(conn: Connection) -> dict[str, str]:
    return {r.name: r.code for r in conn.execute(text(
        "SELECT c.code, c.name FROM community c JOIN boundary_generation g "
        "ON g.id = c.generation_id AND g.active"))}


def _record(row: pd.Series, mapping: ActivityMapping, names: dict[str, str]) -> dict:
    data = {f: str(row[c]).strip() for f, c in mapping.columns.items()}
    data["started_at"] = _time(data.get("started_at", ""), mapping, "started_at")
    if data.get("ended_at") is not None:
        data["ended_at"] = _time(data["ended_at"], mapping, "ended_at")
    kind = data.get("kind", "")
    data["kind"] = mapping.kind_map.get(kind, kind)
    comms = [c.strip() for c in data.get("communities", "").replace("、", ",").split(",")
             if c.strip()]
    data["communities"] = [names.get(c, c) for c in comms]
    for f in ("lon", "lat"):
        if f in data:
            if data[f] == "":
                data[f] = None
            else:
                try:
                    data[f] = float(data[f])
                except ValueError:
                    raise InvalidInput(f"{f} {data[f]!r} is not a number", field=f) from None
    return data


def import_key(data: dict) -> str:
    """The row's key: its own id when the file has one, else a digest of when, what and who."""
    if data.get("external_id"):
        return f"id:{data['external_id']}"
    basis = "|".join([data["started_at"] or "", data.get("title", ""),
                      ",".join(sorted(data.get("communities") or []))])
    return "sha1:" + hashlib.sha1(basis.encode("utf-8")).hexdigest()


def import_activities(conn: Connection, path: Path, mapping: ActivityMapping, *,
                      commit: bool = False, rejects: Path | None = None,
                      created_by: str = "activities import") -> ImportReport:
    """Check every row; with ``commit`` store the new ones (in the caller's transaction).
    Refused rows are written to ``rejects`` (default: ``<file>.rejects.csv``)."""
    frame = read_rows(path, mapping)
    names = _community_names(conn)
    report = ImportReport(rows=len(frame))
    checked, keys, refused_rows = [], [], []
    for i, (_, row) in enumerate(frame.iterrows()):
        line = i + 2  # the header is line 1
        try:
            data = _record(row, mapping, names)
            new = check_activity(conn, data, IMPORTER)
        except CasegridError as exc:
            report.rejected.append((line, exc.field or "", exc.message))
            refused_rows.append((line, exc.message, row))
            continue
        checked.append(new)
        keys.append(import_key(data))
    present = set(conn.execute(text("SELECT import_key FROM activity WHERE import_key = ANY(:k)"),
                               {"k": keys}).scalars())
    seen: set[str] = set()
    for new, key in zip(checked, keys, strict=True):
        if key in present or key in seen:
            report.already_present += 1
            continue
        seen.add(key)
        report.new += 1
        if commit and store_activity(conn, new, created_by, "import", key) is not None:
            report.stored += 1
    report.committed = commit
    if refused_rows:
        report.reject_file = rejects or Path(path).with_suffix(".rejects.csv")
        with report.reject_file.open("w", newline="", encoding="utf-8-sig") as fh:
            w = csv.writer(fh)
            w.writerow(["行号", "原因", *frame.columns])
            for line, why, row in refused_rows:
                w.writerow([line, why, *row.tolist()])
    return report
