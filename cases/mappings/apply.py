"""Apply a mapping to one chunk of an export: validate and convert, vectorised.

Every check works on whole columns (pandas/numpy); the only Python loops run over the
*distinct* values of a column (complaint types, channel names, coordinate systems) or over
the rows already found bad, to word their reasons. Nothing here touches the database: the
caller passes the catalogue codes in.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyproj

from casegrid.csv_text import text_to_float
from casegrid.errors import InvalidInput
from cases.mappings import CHANNELS, REJECT, Mapping
from geo.coords import BD09, GCJ02, WGS84, check_points, normalise_crs, to_wgs84

# Columns of the staging table, in COPY order.
STAGE_COLUMNS = (
    "line", "channel", "external_id", "category_code", "description", "address", "reported_us",
    "reporter_name", "reporter_phone", "photo_urls", "input_lon", "input_lat", "input_crs",
    "lon", "lat",
)
MAX_DESCRIPTION = 4000  # the case table's CHECK, and the API's limit
# A reported time more than this far ahead of now is a clock or format error.
FUTURE_TOLERANCE = pd.Timedelta(days=1)
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_SEPARATOR = "; "


class _Problems:
    """Reasons collected per row; ``kind`` is a short label for the report's tally."""

    def __init__(self, n: int):
        self.n = n
        self.bad = np.zeros(n, dtype=bool)
        self.items: list[tuple[np.ndarray, str, object]] = []

    def add(self, mask: np.ndarray, kind: str, message: object) -> None:
        """``message``: one text for all masked rows, or an array of per-row texts."""
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.bad |= mask
            self.items.append((mask, kind, message))

    def reasons(self) -> tuple[np.ndarray, np.ndarray]:
        """(reason text, first kind) for every bad row, in row order."""
        idx = np.flatnonzero(self.bad)
        text = {int(i): [] for i in idx}
        kind: dict[int, str] = {}
        for mask, k, message in self.items:
            for i in np.flatnonzero(mask):
                i = int(i)
                text[i].append(message if isinstance(message, str) else str(message[i]))
                kind.setdefault(i, k)
        return (np.array([_SEPARATOR.join(text[int(i)]) for i in idx], dtype=object),
                np.array([kind[int(i)] for i in idx], dtype=object))


def _stripped(column: pd.Series) -> pd.Series:
    """``column.astype(object).str.strip()`` for a column of text cells, without the
    accessor's per-cell dispatch (a tenth of a second per 100k cells and column)."""
    cells = column.to_numpy(dtype=object)
    return pd.Series([v.strip() for v in cells.tolist()], index=column.index, dtype=object)


def _col(chunk: pd.DataFrame, mapping: Mapping, name: str) -> pd.Series:
    """The stripped text of a mapped field ('' when unmapped or absent); lists are joined."""
    blank = pd.Series("", index=chunk.index, dtype=object)
    cols = [c for c in mapping.columns.get(name, ()) if c in chunk.columns]
    if not cols:
        return blank
    out = _stripped(chunk[cols[0]])
    for c in cols[1:]:
        part = _stripped(chunk[c])
        out = pd.Series(np.where(out == "", part, np.where(part == "", out, out + _SEPARATOR + part)),
                        index=chunk.index, dtype=object)
    return out


def _row_hash_ids(chunk: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Deterministic ids for rows without one: hash of all the row's cells, in file order."""
    values = chunk.iloc[rows].astype(object).itertuples(index=False, name=None)
    return np.array(
        ["row:" + hashlib.blake2b("\x1f".join(v).encode("utf-8"), digest_size=12).hexdigest()
         for v in values], dtype=object)


def _per_row(values: pd.Series, decided: dict[str, tuple[str | None, str | None]]
             ) -> tuple[pd.Series, pd.Series]:
    """(target, reason) per row from the decision on each distinct value: one lookup per
    distinct value, then an array take, rather than a Python call per row."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    # a missing value (code -1) takes the appended None
    target = np.array([decided[v][0] for v in uniques] + [None], dtype=object)
    reason = np.array([decided[v][1] for v in uniques] + [None], dtype=object)
    return (pd.Series(target[codes], index=values.index, dtype=object),
            pd.Series(reason[codes], index=values.index, dtype=object))


def _resolve_categories(values: pd.Series, mapping: Mapping, catalogue: set[str]
                        ) -> tuple[pd.Series, pd.Series]:
    """(code or None, reason or None) per row, decided once per distinct value."""
    decided: dict[str, tuple[str | None, str | None]] = {}
    for v in values.unique():
        target = mapping.category_map.get(v)
        if v == "":
            decided[v] = (None, "category is blank: every row needs a complaint type")
        elif target == REJECT:
            decided[v] = (None, f"category {v!r} is not handled by city management "
                                f"(marked 'reject' in mapping {mapping.name})")
        elif target is not None:
            decided[v] = ((target, None) if target in catalogue else
                          (None, f"category {v!r} maps to {target}, which is not in the "
                                 f"catalogue: fix [category.map] in mapping {mapping.name}"))
        elif mapping.accept_codes and v in catalogue:
            decided[v] = (v, None)
        else:
            decided[v] = (None, f"unknown category {v!r}: add it to [category.map] in "
                                f"mapping {mapping.name} (value: a catalogue code or 'reject')")
    return _per_row(values, decided)


def _resolve_channels(values: pd.Series, mapping: Mapping) -> tuple[pd.Series, pd.Series]:
    decided: dict[str, tuple[str | None, str | None]] = {}
    for v in values.unique():
        if v == "":
            decided[v] = (mapping.channel_default, None)
        elif v in mapping.channel_map:
            decided[v] = (mapping.channel_map[v], None)
        elif v in CHANNELS:
            decided[v] = (v, None)
        else:
            decided[v] = (None, f"channel {v!r} is unknown: add it to [channel.map] in mapping "
                                f"{mapping.name} (one of {', '.join(CHANNELS)})")
    return _per_row(values, decided)


def _resolve_crs(values: pd.Series, mapping: Mapping, default: str) -> tuple[pd.Series, pd.Series]:
    decided: dict[str, tuple[str | None, str | None]] = {}
    for v in values.unique():
        if v == "":
            decided[v] = (default, None)
        elif v in mapping.crs_map:
            decided[v] = (mapping.crs_map[v], None)
        else:
            try:
                decided[v] = (normalise_crs(v), None)
            except InvalidInput:
                decided[v] = (None, f"coordinate system {v!r} is unknown: add it to "
                                    f"[coordinates.map] in mapping {mapping.name}")
    return _per_row(values, decided)


def parse_times(values: pd.Series, fmt: str, tz: str) -> pd.Series:
    """Timestamps as UTC (NaT where unparsable); naive ones are read in ``tz``."""
    values = values.astype(object)
    if fmt.upper() == "ISO8601":
        has_offset = values.str.contains(r"(?:[zZ]|[+-]\d\d:?\d\d)$", regex=True).fillna(False)
        aware = pd.to_datetime(values.where(has_offset), format="ISO8601", errors="coerce", utc=True)
        naive = pd.to_datetime(values.where(~has_offset), format="ISO8601", errors="coerce")
    else:
        naive = pd.to_datetime(values, format=fmt, errors="coerce")
        if getattr(naive.dt, "tz", None) is not None:  # the format carried %z
            return naive.dt.tz_convert("UTC")
        aware = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
        has_offset = pd.Series(False, index=values.index)
    # In the repeated hour of a DST change, take standard time; skip the missing hour forward.
    local = naive.dt.tz_localize(tz, ambiguous=np.zeros(len(naive), dtype=bool),
                                 nonexistent="shift_forward").dt.tz_convert("UTC")
    return local.where(~has_offset, aware)


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[idx] = True
    return m


def _is_geographic(crs: str) -> bool:
    return crs in (WGS84, GCJ02, BD09) or pyproj.CRS.from_user_input(crs).is_geographic


def _coordinates(chunk_lon: pd.Series, chunk_lat: pd.Series, crs: pd.Series, ok: np.ndarray,
                 problems: _Problems, address_only: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(input x, input y, WGS-84 lon, WGS-84 lat) as float arrays (NaN for the
    ``address_only`` rows); bad rows reported."""
    n = len(chunk_lon)
    x = text_to_float(chunk_lon)
    y = text_to_float(chunk_lat)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    unparsed = (np.isnan(x) | np.isnan(y)) & ~address_only
    if unparsed.any():  # word the reasons from the raw text (blank, 'abc', ...)
        idx = np.flatnonzero(unparsed)
        _, msgs = check_points(chunk_lon.to_numpy()[idx], chunk_lat.to_numpy()[idx])
        full = np.full(n, None, dtype=object)
        full[idx] = msgs
        problems.add(unparsed, "invalid coordinates", full)
    crs_values = crs.to_numpy()
    for code in pd.unique(crs_values[ok & ~unparsed]):
        rows = ok & ~unparsed & (crs_values == code)
        idx = np.flatnonzero(rows)
        if _is_geographic(code):
            good, msgs = check_points(x[idx], y[idx])
            bad_idx = idx[~good]
            full = np.full(n, None, dtype=object)
            full[bad_idx] = msgs[~good]
            problems.add(_mask(n, bad_idx), "invalid coordinates", full)
            null_island = (x[idx] == 0) & (y[idx] == 0)
            problems.add(_mask(n, idx[null_island]), "invalid coordinates",
                         "lon/lat are 0,0 (a blank GPS fix, not a place): give the real position")
        else:
            finite = np.isfinite(x[idx]) & np.isfinite(y[idx])
            problems.add(_mask(n, idx[~finite]), "invalid coordinates",
                         f"x/y must be finite numbers in {code}")
        wlon, wlat = to_wgs84(x[idx], y[idx], code)
        lon[idx], lat[idx] = wlon, wlat
        good, _ = check_points(wlon, wlat)
        problems.add(_mask(n, idx[~good]) & ~problems.bad, "invalid coordinates",
                     f"coordinates could not be converted from {code} to WGS-84: "
                     "check the coordinate system (--crs or the mapping's crs column)")
    return x, y, lon, lat


def validate_chunk(chunk: pd.DataFrame, mapping: Mapping, catalogue: set[str], default_crs: str,
                   *, first_line: int, now: pd.Timestamp | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a chunk (all cells text) into rows ready for staging and rejected rows.

    ``first_line`` is the file line of the chunk's first row (header = line 1). The good frame
    has :data:`STAGE_COLUMNS`; the bad one has ``line``, ``reason``, ``reason_kind`` and the
    chunk's own columns, untouched, so the rejects can be fixed and imported again.
    """
    chunk = chunk.reset_index(drop=True)
    n = len(chunk)
    problems = _Problems(n)
    lines = np.arange(first_line, first_line + n, dtype=np.int64)

    external_id = _col(chunk, mapping, "external_id")
    missing_id = (external_id == "").to_numpy()
    if missing_id.any():
        external_id = external_id.copy()
        external_id[missing_id] = _row_hash_ids(chunk, np.flatnonzero(missing_id))

    channel, why = _resolve_channels(_col(chunk, mapping, "channel"), mapping)
    problems.add(why.notna().to_numpy(), "unknown channel", why.to_numpy())
    category, why = _resolve_categories(_col(chunk, mapping, "category"), mapping, catalogue)
    kind = np.where(why.str.contains("not handled by city management", regex=False).fillna(False),
                    "category not handled", "unknown category")
    for label in ("unknown category", "category not handled"):
        problems.add(why.notna().to_numpy() & (kind == label), label, why.to_numpy())

    raw_time = _col(chunk, mapping, "reported_at")
    when = parse_times(raw_time, mapping.date_format, mapping.timezone)
    unparsed = when.isna().to_numpy()
    problems.add(unparsed & (raw_time == "").to_numpy(), "unparsable date",
                 "reported_at is blank: every row needs the time it was reported")
    misread = unparsed & (raw_time != "").to_numpy()
    if misread.any():  # worded for those rows only
        message = np.full(n, None, dtype=object)
        message[misread] = [
            f"reported_at {v!r} does not match the format {mapping.date_format!r} "
            f"([reported_at] format in mapping {mapping.name})"
            for v in raw_time.to_numpy(dtype=object)[misread].tolist()]
        problems.add(misread, "unparsable date", message)
    limit = (now or pd.Timestamp.now(tz="UTC")) + FUTURE_TOLERANCE
    problems.add((when > limit).fillna(False).to_numpy(), "unparsable date",
                 "reported_at lies in the future: check the date format and time zone")

    description = _col(chunk, mapping, "description")
    too_long = (description.str.len() > MAX_DESCRIPTION).to_numpy()
    problems.add(too_long, "description too long",
                 f"description is over {MAX_DESCRIPTION} characters: shorten it")

    crs, why = _resolve_crs(_col(chunk, mapping, "crs"), mapping, default_crs)
    problems.add(why.notna().to_numpy(), "unknown crs", why.to_numpy())
    raw_lon, raw_lat = _col(chunk, mapping, "lon"), _col(chunk, mapping, "lat")
    # No coordinates but an address (a phone call): staged without a point, for the
    # address matcher (geo.address_bulk) to locate or to leave for a dispatcher.
    address_only = ((raw_lon == "") & (raw_lat == "")
                    & (_col(chunk, mapping, "address") != "")).to_numpy()
    x, y, lon, lat = _coordinates(raw_lon, raw_lat, crs.fillna(default_crs),
                                  why.isna().to_numpy() & ~address_only, problems,
                                  address_only)

    good = ~problems.bad
    reported_us = ((when[good] - _EPOCH) // pd.Timedelta(microseconds=1)).astype("int64")
    staged = pd.DataFrame({
        "line": lines[good],
        "channel": channel[good].to_numpy(),
        "external_id": external_id[good].to_numpy(),
        "category_code": category[good].to_numpy(),
        "description": description[good].to_numpy(),
        "address": _col(chunk, mapping, "address")[good].to_numpy(),
        "reported_us": reported_us.to_numpy(),
        "reporter_name": _col(chunk, mapping, "reporter_name")[good].to_numpy(),
        "reporter_phone": _col(chunk, mapping, "reporter_phone")[good].to_numpy(),
        "photo_urls": _col(chunk, mapping, "photo_urls")[good].to_numpy(),
        "input_lon": x[good],
        "input_lat": y[good],
        "input_crs": np.where(address_only, None, crs.to_numpy(dtype=object))[good],
        "lon": lon[good],
        "lat": lat[good],
    })
    rejected = chunk[problems.bad].copy()
    reason, kind = problems.reasons()
    rejected.insert(0, "reason_kind", kind)
    rejected.insert(0, "reason", reason)
    rejected.insert(0, "line", lines[problems.bad])
    return staged, rejected
