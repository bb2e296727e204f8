"""Route every row of a CSV file set-based in PostGIS.

Rows are validated and converted to WGS-84 with numpy, then COPYed and routed chunk by
chunk, set-based, by ``geo/route_cells.py`` (no query per row), on two connections at once
(``geo/route_parallel.py``). Every
input column is kept; ``community_code``, ``community_name``, ``subdistrict_code``, ``rule``,
``distance_m``, ``near_boundary``, ``alternates``, ``generation_id`` and ``reason`` are
appended. Rows with unusable coordinates get ``rule=invalid`` and a reason; they never stop
the run.
"""

from __future__ import annotations

import io
import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy.pool import QueuePool

from casegrid.csv_text import TEXT, csv_text, text_to_float
from casegrid.errors import ImportFailed, InvalidInput
from casegrid.settings import get_settings
from geo.coords import check_points, normalise_crs, snap_tiny, to_wgs84
from geo.route_parallel import RouteConnection
from geo.routing import RULES, require_generation

Progress = Callable[[str, int, int], None]
COPY_CHUNK = 100_000
# Connections that route a file's chunks at once, each on its own backend (and core).
# Two: the benchmark machine has two cores; more connections than the database server has
# cores only add switching.
ROUTE_CONNECTIONS = 2


@dataclass
class RouteFileReport:
    """What a ``route-file`` run did."""

    rows: int = 0
    invalid: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    generation_id: int | None = None
    out: str = ""

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def read_points_csv(path: Path, lon_col: str, lat_col: str) -> pd.DataFrame:
    """Read a CSV keeping every column as text (so nothing is reformatted on output)."""
    if not path.exists():
        raise ImportFailed(f"input file {path} does not exist", field="IN")
    try:
        frame = pd.read_csv(path, dtype=TEXT, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ImportFailed(f"cannot read {path} as CSV: {exc}", field="IN") from exc
    for col, opt in ((lon_col, "--lon-col"), (lat_col, "--lat-col")):
        if col not in frame.columns:
            raise InvalidInput(
                f"column {col!r} not in {path.name}; columns are: {', '.join(frame.columns[:40])}",
                field=opt,
            )
    return frame


def route_points(
    engine: Engine,
    lon: np.ndarray,
    lat: np.ndarray,
    crs: str = "wgs84",
    *,
    generation_id: int | None = None,
    tolerance_m: float | None = None,
    margin_m: float | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Route arrays of coordinates; returns one row per input (same order) with the routing
    columns and ``reason`` for invalid rows."""
    crs = normalise_crs(crs)
    n = len(lon)
    s = get_settings()
    tol = s.gap_tolerance_m if tolerance_m is None else tolerance_m
    margin = s.near_boundary_margin_m if margin_m is None else margin_m
    x = text_to_float(lon)
    y = text_to_float(lat)
    reasons = np.full(n, None, dtype=object)
    if crs in ("wgs84", "gcj02", "bd09"):
        ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90)
        bad = ~ok
        if bad.any():  # explain only the failing rows, from their original text
            _, why = check_points(np.asarray(lon, dtype=object)[bad], np.asarray(lat, dtype=object)[bad])
            reasons[bad] = why
    else:
        ok = np.isfinite(x) & np.isfinite(y)
        reasons[~ok] = f"coordinates are missing or not numbers ({crs})"
    wx = np.full(n, np.nan)
    wy = np.full(n, np.nan)
    if ok.any():
        wx[ok], wy[ok] = snap_tiny(to_wgs84(x[ok], y[ok], crs))
        # after conversion (EPSG inputs) the point must still be a valid lon/lat
        ok2 = np.isfinite(wx) & np.isfinite(wy) & (np.abs(wx) <= 180) & (np.abs(wy) <= 90)
        newly_bad = ok & ~ok2
        if newly_bad.any():
            _, why = check_points(wx[newly_bad], wy[newly_bad])
            reasons[newly_bad] = [f"after conversion from {crs}: {r}" for r in why]
        ok = ok & ok2

    out = pd.DataFrame(
        {
            "community_code": pd.Series([None] * n, dtype=object),
            "community_name": pd.Series([None] * n, dtype=object),
            "subdistrict_code": pd.Series([None] * n, dtype=object),
            "rule": np.where(ok, None, "invalid").astype(object),
            "distance_m": np.full(n, np.nan),
            "near_boundary": np.zeros(n, dtype=bool),
            "alternates": pd.Series([""] * n, dtype=object),
            "generation_id": pd.Series([None] * n, dtype=object),
            "reason": pd.Series(reasons, dtype=object),
        }
    )
    idx = np.flatnonzero(ok)
    with engine.connect() as conn:
        gen = require_generation(conn, generation_id)
        communities = conn.execute(text(
            "SELECT id, code, name, subdistrict_code FROM community WHERE generation_id = :g"),
            {"g": gen}).all()
    out["generation_id"] = gen
    params = {"gen": gen, "tol_m": tol, "margin_m": margin}
    numbers, alternates = _route_on_connections(engine, params, idx, wx, wy, progress)
    _apply_results(out, numbers, alternates, communities)
    return out


def _pool_room(engine: Engine) -> int:
    """How many routing connections the engine's pool can hand out at once
    (ROUTE_CONNECTIONS when it sets no limit): a second routing connection from a pool of
    one would wait for the first until the pool's timeout."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return ROUTE_CONNECTIONS
    overflow = pool._max_overflow  # noqa: SLF001 - QueuePool has no public reader for it
    return ROUTE_CONNECTIONS if overflow < 0 else pool.size() + overflow


def _route_on_connections(engine: Engine, params: dict, idx: np.ndarray, wx: np.ndarray,
                          wy: np.ndarray, progress: Progress | None
                          ) -> tuple[pd.DataFrame, list]:
    """Route the points ``idx`` (line = position in the input) a chunk at a time on up
    to ROUTE_CONNECTIONS connections at once (geo.route_parallel: each its own backend,
    so PostgreSQL routes on as many cores), most by their cell, the rest by route_sql
    (geo.route_cells); returns :func:`_fetch_results` of them all."""
    starts: queue.SimpleQueue[int] = queue.SimpleQueue()
    for start in range(0, len(idx), COPY_CHUNK):
        starts.put(start)
    routed: queue.SimpleQueue[int] = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> tuple[pd.DataFrame, list]:
        with RouteConnection(engine, params) as router:
            while not stop.is_set():
                try:
                    start = starts.get_nowait()
                except queue.Empty:
                    return _fetch_results(router.conn)
                part = idx[start : start + COPY_CHUNK]
                router.route(part, wx[part], wy[part])
                routed.put(len(part))
        raise InterruptedError("stopped")  # another connection failed; its error is raised

    chunks = math.ceil(len(idx) / COPY_CHUNK)
    lanes = max(1, min(ROUTE_CONNECTIONS, chunks, _pool_room(engine)))
    if progress:
        progress("route", 0, len(idx))
    with ThreadPoolExecutor(lanes, thread_name_prefix="route-file") as pool:
        futures = [pool.submit(work) for _ in range(lanes)]
        try:
            done = 0
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()  # a worker's error, raised here
                while not routed.empty():
                    done += routed.get()
                    if progress:
                        progress("route", done, len(idx))
        finally:
            stop.set()
        results = [f.result() for f in futures]
    numbers = pd.concat([r[0] for r in results], ignore_index=True)
    return numbers, [a for r in results for a in r[1]]


# The routed points' numbers, read back as a few large texts (a chunk of ids each) instead
# of a million rows: every field is a number, so none needs quoting. Rule = its position in
# RULES (1-based), community 0 = none, distance '' = none; a distance of 0 (most points) is
# written without the numeric rounding the others need.
_NUMBERS_SQL = """
SELECT string_agg(concat_ws(',', r.id, CASE r.rule {rules} END, COALESCE(r.community_id, 0),
                            CASE WHEN r.distance_m = 0 THEN '0'
                                 ELSE COALESCE(round(r.distance_m::numeric, 2)::text, '') END),
                  E'\\n')
FROM cg_routed r
GROUP BY r.id / :per
""".format(rules=" ".join(f"WHEN '{rule}' THEN {n}" for n, rule in enumerate(RULES, 1)))
# The points near a boundary (a few in a hundred): id and the codes of the other
# communities, nearest first, joined with ';'.
_ALTERNATES_SQL = """
SELECT r.id, (SELECT string_agg(a.item ->> 'code', ';' ORDER BY a.n)
              FROM jsonb_array_elements(r.alternates) WITH ORDINALITY AS a(item, n))
FROM cg_routed r
WHERE r.near_boundary
"""


def _fetch_results(conn: Connection) -> tuple[pd.DataFrame, list]:
    """cg_routed as (numbers: id, rule, community_id, distance_m) and the alternates of
    the points near a boundary [(id, codes)]."""
    blocks = conn.execute(text(_NUMBERS_SQL), {"per": 100_000}).scalars().all()
    columns = {"id": np.int64, "rule": np.int64, "community_id": np.int64, "distance_m": float}
    if blocks:
        numbers = pd.read_csv(io.StringIO("\n".join(blocks)), header=None,
                              names=list(columns), dtype=columns)
    else:
        numbers = pd.DataFrame({c: np.array([], dtype=t) for c, t in columns.items()})
    return numbers, conn.execute(text(_ALTERNATES_SQL)).all()


def _apply_results(out: pd.DataFrame, numbers: pd.DataFrame, alternates: list,
                   communities: list) -> None:
    """Write :func:`_fetch_results`' answer into ``out`` (one row per input, by position)."""
    if not len(numbers):
        return
    ids = numbers["id"].to_numpy()
    out.loc[ids, "rule"] = np.asarray(RULES, dtype=object)[numbers["rule"].to_numpy() - 1]
    out.loc[ids, "distance_m"] = numbers["distance_m"].to_numpy()
    near = np.fromiter((a[0] for a in alternates), dtype=np.int64, count=len(alternates))
    out.loc[near, "near_boundary"] = True
    out.loc[near, "alternates"] = [a[1] for a in alternates]
    # community_id -> its code, name and subdistrict; 0 (none) -> None
    cid = numbers["community_id"].to_numpy()
    known = np.array([c[0] for c in communities], dtype=np.int64)
    lookup = np.zeros(max(cid.max(), known.max(initial=0)) + 1, dtype=np.int64)
    lookup[known] = np.arange(1, len(known) + 1)
    pos = lookup[cid]
    for k, column in enumerate(("community_code", "community_name", "subdistrict_code"), 1):
        values = np.asarray([None, *(c[k] for c in communities)], dtype=object)
        out.loc[ids, column] = values[pos]


def route_file(
    engine: Engine,
    in_path: Path,
    out_path: Path,
    *,
    lon_col: str,
    lat_col: str,
    crs: str = "wgs84",
    tolerance_m: float | None = None,
    margin_m: float | None = None,
    progress: Progress | None = None,
) -> RouteFileReport:
    """Route every row of ``in_path`` and write ``out_path`` with routing columns appended."""
    frame = read_points_csv(in_path, lon_col, lat_col)
    if progress:
        progress("read", len(frame), len(frame))
    routed = route_points(
        engine,
        frame[lon_col].to_numpy(),
        frame[lat_col].to_numpy(),
        crs,
        tolerance_m=tolerance_m,
        margin_m=margin_m,
        progress=progress,
    )
    stats = RouteFileReport(
        rows=len(frame),
        invalid=int((routed["rule"] == "invalid").sum()),
        by_rule={str(k): int(v) for k, v in routed["rule"].value_counts().items()},
        generation_id=int(routed["generation_id"].iloc[0]) if len(routed) else None,
        out=str(out_path),
    )
    # Never overwrite an input column: routing columns that clash get a "routed_" prefix.
    clash = [c for c in routed.columns if c in frame.columns]
    routed = routed.rename(columns={c: f"routed_{c}" for c in clash})
    if progress:
        progress("write", 0, 1)
    if not _append_to_lines(in_path, len(frame), routed, out_path):
        pd.concat([frame, routed], axis=1).to_csv(out_path, index=False)
    if progress:
        progress("write", 1, 1)
    return stats


def _append_to_lines(in_path: Path, rows: int, routed: pd.DataFrame, out_path: Path) -> bool:
    """Write each input line unchanged with the routing columns appended, when every record
    is one physical line (no blank lines, no quoted line breaks); False when it is not, and
    the caller writes through pandas instead. Re-formatting a million input rows costs more
    than routing them."""
    text = in_path.read_text(encoding="utf-8-sig")
    if "\r" in text:  # CRLF line ends: each line without its \r
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # A blank line (pandas skips it) or a quoted line break adds a physical line: the
    # count tells both.
    if len(lines) != rows + 1:
        return False
    header = routed.iloc[:0].to_csv(index=False).rstrip("\n")
    suffix = [header, *_row_texts(routed)]
    with open(out_path, "w", encoding="utf-8", newline="") as out:
        out.write("\n".join(map(",".join, zip(lines, suffix, strict=False))))
        out.write("\n")
    return True


def _row_texts(frame: pd.DataFrame) -> list[str]:
    """Each row of ``frame`` as CSV text (no line break). Routing columns repeat: the points
    inside a community share one text per community, so each distinct row is formatted
    once and the texts are repeated."""
    if frame.empty:
        return []
    group = frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy()
    _, first = np.unique(group, return_index=True)  # the first row of group 0, 1, ...
    texts = csv_text(frame.iloc[first], tuple(frame.columns)).split("\n")[:-1]
    return np.asarray(texts, dtype=object)[group].tolist()


def distances_to_communities(
    engine: Engine, lon: np.ndarray, lat: np.ndarray, codes: list[str], generation_id: int | None = None
) -> np.ndarray:
    """Geodesic distance in metres from each point to the community with the given code (NaN
    when the code is unknown). Used to explain disagreements with someone else's routing."""
    with engine.begin() as conn:
        gen = require_generation(conn, generation_id)
        conn.execute(
            text(
                "CREATE TEMP TABLE explain_pts (id int, lon float8, lat float8, code text) ON COMMIT DROP"
            )
        )
        conn.execute(
            text("INSERT INTO explain_pts VALUES (:id, :lon, :lat, :code)"),
            [
                {"id": i, "lon": float(a), "lat": float(b), "code": c}
                for i, (a, b, c) in enumerate(zip(lon, lat, codes, strict=True))
            ],
        )
        rows = conn.execute(
            text(
                "SELECT p.id, ST_Distance(c.geom::geography,"
                " ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography) AS d"
                " FROM explain_pts p LEFT JOIN community c"
                " ON c.code = p.code AND c.generation_id = :gen ORDER BY p.id"
            ),
            {"gen": gen},
        ).all()
    return np.array([np.nan if r.d is None else float(r.d) for r in rows])
