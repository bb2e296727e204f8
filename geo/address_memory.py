"""The address memory: what the ledger has learned about where addresses are.

Every case whose point came from GPS or an app, or that a dispatcher placed or confirmed,
teaches its normalised address (``ParsedAddress.key``) -> point, under the community label
it was found in: a casegrid community code, or, learning from another city's history file,
that file's own label (a New York community board). Repeats strengthen an entry (``n`` and
the running sums of the point); an address seen in two communities keeps one row per
community, so the matcher can say that it is ambiguous rather than guess. Learned house
numbers are kept with their street (``street_key``, ``house_no``) so that the matcher can
place a number between two learned numbers of the same street.

Learning is set-based: the rows are normalised in Python once per distinct address,
aggregated, copied into a temporary table and merged with one ``INSERT ... ON CONFLICT``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from casegrid.csv_text import copy_csv, text_to_float
from casegrid.errors import ImportFailed
from geo.address_normalize import city_prefixes, parse_address

# Channels whose coordinates were measured where the problem is (a phone's GPS, an app,
# a patrol handset), not typed in by someone who heard the address.
MEASURED_CHANNELS = ("app", "patrol", "open311")
# The columns of a frame to learn (memory_frame, learn).
COLUMNS = ("key", "community_label", "n", "sum_lon", "sum_lat", "street_key", "house_no")

_MERGE_SQL = """
INSERT INTO address_memory AS m (key, community_label, n, sum_lon, sum_lat, street_key,
                                 house_no, source)
SELECT key, community_label, n, sum_lon, sum_lat, street_key, house_no, :source
FROM cg_learn
ON CONFLICT (key, community_label) DO UPDATE
SET n = m.n + EXCLUDED.n, sum_lon = m.sum_lon + EXCLUDED.sum_lon,
    sum_lat = m.sum_lat + EXCLUDED.sum_lat, last_at = now(), source = EXCLUDED.source
"""


def memory_frame(addresses: list[str | None], lons: np.ndarray, lats: np.ndarray,
                 labels: list[str | None]) -> pd.DataFrame:
    """The rows to learn, aggregated per (key, community label): count and sums of the
    points. Rows without an address, a point or a label are skipped."""
    prefixes = city_prefixes()
    parsed = {a: parse_address(a, prefixes) for a in set(addresses) if a}
    keep = [i for i, a in enumerate(addresses)
            if a and labels[i] and np.isfinite(lons[i]) and np.isfinite(lats[i])
            and parsed[a].key]
    if not keep:
        return pd.DataFrame(columns=list(COLUMNS))
    frame = pd.DataFrame({
        "key": [parsed[addresses[i]].key for i in keep],
        "community_label": [str(labels[i]) for i in keep],
        "lon": np.asarray(lons, dtype=float)[keep],
        "lat": np.asarray(lats, dtype=float)[keep],
        "street_key": [parsed[addresses[i]].street_key for i in keep],
        "house_no": [parsed[addresses[i]].number for i in keep],
    })
    grouped = frame.groupby(["key", "community_label"], sort=False, dropna=False)
    out = grouped.agg(n=("lon", "size"), sum_lon=("lon", "sum"), sum_lat=("lat", "sum"),
                      street_key=("street_key", "first"), house_no=("house_no", "first"))
    out = out.reset_index()
    out["house_no"] = out["house_no"].astype("Int64")
    return out[list(COLUMNS)]


def learn(conn: Connection, frame: pd.DataFrame, source: str) -> int:
    """Merge :func:`memory_frame`'s rows into the memory; returns how many (key, community)
    rows were added or strengthened."""
    if frame.empty:
        return 0
    conn.execute(text(
        "CREATE TEMP TABLE IF NOT EXISTS cg_learn (key text, community_label text, n int,"
        " sum_lon float8, sum_lat float8, street_key text, house_no int) ON COMMIT DROP;"
        " TRUNCATE cg_learn"))
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
            f"COPY cg_learn ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)") as cp:
        cp.write(copy_csv(frame, COLUMNS))
    return conn.execute(text(_MERGE_SQL), {"source": source}).rowcount


def learn_placement(conn: Connection, address: str | None, lon: float, lat: float,
                    community_code: str | None, source: str = "placement") -> int:
    """Teach one address -> point (a dispatcher's placement or confirmation)."""
    if not address or community_code is None:
        return 0
    return learn(conn, memory_frame([address], np.array([lon]), np.array([lat]),
                                    [community_code]), source)


def join_address_columns(frame: pd.DataFrame, columns: list[str]) -> list[str | None]:
    """The address of each row: its ``columns`` joined with ", " (a street address and its
    borough or town), None where the first column is blank."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ImportFailed(f"no column {', '.join(map(repr, missing))}; the file's columns "
                           f"are: {', '.join(map(str, frame.columns[:60]))}",
                           field="address_col")
    parts = [frame[c].fillna("").astype(str).str.strip() for c in columns]
    out: list[str | None] = []
    for values in zip(*parts, strict=True):
        out.append(", ".join(v for v in values if v) if values[0] else None)
    return out


def learn_file(conn: Connection, path: str | Path, *, address_cols: list[str], lon_col: str,
               lat_col: str, crs: str | None = None, community_col: str | None = None,
               source: str | None = None) -> dict:
    """Teach the memory from a history CSV: each row's address (``address_cols`` joined)
    -> its point, under ``community_col``'s label or else the community the point routes
    to. Runs in the caller's transaction; returns a report."""
    from geo.coords import normalise_crs, to_wgs84
    from geo.routing import prepare_points, route_prepared

    p = Path(path)
    if not p.exists():
        raise ImportFailed(f"file {p} does not exist", field="file")
    frame = pd.read_csv(p, dtype=str, keep_default_na=False, encoding_errors="replace")
    for col, flag in ((lon_col, "lon_col"), (lat_col, "lat_col"), (community_col, "community_col")):
        if col and col not in frame.columns:
            raise ImportFailed(f"{p.name} has no column {col!r} (--{flag.replace('_', '-')})",
                               field=flag)
    addresses = join_address_columns(frame, address_cols)
    x, y = text_to_float(frame[lon_col]), text_to_float(frame[lat_col])
    code = normalise_crs(crs) if crs else "wgs84"
    ok = np.isfinite(x) & np.isfinite(y) & ~((x == 0) & (y == 0))
    lon, lat = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    if ok.any():
        lon[ok], lat[ok] = to_wgs84(x[ok], y[ok], code)
    if community_col:
        labels = [v.strip() or None for v in frame[community_col].tolist()]
    else:
        idx = [i for i in np.flatnonzero(ok) if addresses[i]]
        points = [pt for pt in prepare_points([(lon[i], lat[i], "wgs84") for i in idx])]
        good = [(i, pt) for i, pt in zip(idx, points, strict=True) if not isinstance(pt, Exception)]
        routed = route_prepared(conn, [pt for _, pt in good])
        labels = [None] * len(frame)
        for (i, _), r in zip(good, routed, strict=True):
            labels[i] = r.community_code
    mem = memory_frame(addresses, lon, lat, labels)
    merged = learn(conn, mem, source or p.name)
    return {"file": str(p), "rows": len(frame), "learned_rows": int(mem["n"].sum()) if len(mem) else 0,
            "skipped": len(frame) - (int(mem["n"].sum()) if len(mem) else 0),
            "memory_entries": merged}
