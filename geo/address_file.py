"""``casegrid locate-file``: locate every row of a CSV by its address text.

One row out per row in, in order: the input columns, then ``lon``, ``lat``,
``community_code``, ``rule``, ``confidence``, ``suggestions`` (JSON, empty when the row
was located or nothing fits) and ``reasons`` (why, as JSON codes with parameters:
:mod:`geo.address_why`; each suggestion carries its own). Each distinct address is matched once, in chunks, set-based
(:func:`geo.address_match.match_addresses`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection

from casegrid.csv_text import TEXT
from casegrid.errors import ImportFailed
from geo.address_match import AddressMatch, match_addresses
from geo.address_memory import join_address_columns

OUT_COLUMNS = ("lon", "lat", "community_code", "rule", "confidence", "suggestions", "reasons")
CHUNK = 50_000


def read_address_csv(path: Path) -> pd.DataFrame:
    """A CSV as text columns (UTF-8, a BOM allowed); ImportFailed when it cannot be read."""
    if not path.exists():
        raise ImportFailed(f"file {path} does not exist", field="file")
    try:
        return pd.read_csv(path, dtype=TEXT, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ImportFailed(f"{path.name} is not a readable UTF-8 CSV: {exc}", field="file") from exc


def locate_frame(conn: Connection, frame: pd.DataFrame, address_cols: list[str],
                 progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """``frame`` with the located columns appended, and a summary (rows, located, by rule)."""
    addresses = join_address_columns(frame, address_cols)
    cache: dict[str, AddressMatch] = {}
    answers: list[AddressMatch | None] = []
    for start in range(0, len(addresses), CHUNK):
        part = addresses[start:start + CHUNK]
        asked = [a for a in part if a]
        found = iter(match_addresses(conn, asked, cache=cache))
        answers.extend(next(found) if a else None for a in part)
        if progress:
            progress(min(start + CHUNK, len(addresses)), len(addresses))
    out = frame.copy()
    out["lon"] = [round(m.lon, 7) if m and m.located else None for m in answers]
    out["lat"] = [round(m.lat, 7) if m and m.located else None for m in answers]
    out["community_code"] = [m.community_code if m and m.located else None for m in answers]
    out["rule"] = [m.rule if m else None for m in answers]
    out["confidence"] = [round(m.confidence, 3) if m else 0.0 for m in answers]
    out["suggestions"] = [json.dumps([s.to_dict() for s in m.suggestions], ensure_ascii=False)
                          if m and m.suggestions else "" for m in answers]
    out["reasons"] = [json.dumps(m.reasons, ensure_ascii=False) if m else "" for m in answers]
    rules = pd.Series([m.rule for m in answers if m and m.located], dtype=object)
    summary = {"rows": len(frame), "with_address": sum(1 for a in addresses if a),
               "located": int(sum(1 for m in answers if m and m.located)),
               "with_suggestions": int(sum(1 for m in answers if m and not m.located
                                           and m.suggestions)),
               "distinct_addresses": len(cache),
               "by_rule": {str(k): int(v) for k, v in rules.value_counts().items()}}
    return out, summary


def read_for_locating(in_path: Path, address_cols: list[str]) -> pd.DataFrame:
    """The input file, checked before any database work: readable, with the address
    columns, without the columns locate-file appends."""
    frame = read_address_csv(in_path)
    join_address_columns(frame.head(0), address_cols)  # raises naming a missing column
    clash = [c for c in OUT_COLUMNS if c in frame.columns]
    if clash:
        raise ImportFailed(f"{in_path.name} already has column(s) {', '.join(clash)}; rename "
                           "them first (locate-file appends these)", field="file")
    return frame


def locate_file(conn: Connection, in_path: Path, out_path: Path, address_cols: list[str],
                progress: Callable[[int, int], None] | None = None,
                frame: pd.DataFrame | None = None) -> dict:
    """Locate ``in_path``'s rows (``frame`` when already read by :func:`read_for_locating`)
    by ``address_cols`` into ``out_path``; the summary."""
    if frame is None:
        frame = read_for_locating(in_path, address_cols)
    out, summary = locate_frame(conn, frame, address_cols, progress)
    out.to_csv(out_path, index=False, encoding="utf-8")
    summary["out"] = str(out_path)
    return summary
