"""Routing (issue 2): ``route-file`` on a million points beside the bare PostGIS join of the
same points; single ``route`` lookups beside a bare single-point ``ST_Covers``; and the
piece-size sweep that picks ``Settings.subdivide_max_vertices``.

Runs alternate (candidate, baseline, candidate, ...) so a burst of load from other users of
the machine hits both; the median of the repeats is reported.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, text

from bench.harness import Context, Outcome, Row, log, median, percentile, timed
from bench.points import generate_points, write_points_csv
from casegrid.settings import get_settings
from geo.boundaries import subdivide_generation
from geo.route_file import route_file
from geo.routing import route, route_sql

SWEEP_VERTICES = (8, 16, 32, 64, 128, 256)
_BARE_JOIN = """
CREATE TEMP TABLE bare_routed ON COMMIT DROP AS
SELECT p.id, cp.community_id
FROM bare_pts p
JOIN community_piece cp
  ON cp.generation_id = :gen
 AND ST_Covers(cp.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
"""
_BARE_ONE = """
SELECT community_id FROM community_piece
WHERE generation_id = :gen AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
LIMIT 1
"""


def bare_join(engine: Engine, csv_path: Path, gen: int) -> int:
    """The baseline: COPY the CSV into a table, one ST_Covers join, materialised. Returns
    the number of matched rows."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE bare_pts (id bigint, lon float8, lat float8)"
                          " ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                "COPY bare_pts (id, lon, lat) FROM STDIN (FORMAT csv, HEADER true)") as copy, \
                csv_path.open("rb") as fh:
            while block := fh.read(1 << 20):
                copy.write(block)
        conn.execute(text("ANALYZE bare_pts"))
        conn.execute(text(_BARE_JOIN), {"gen": gen})
        return conn.execute(text("SELECT count(*) FROM bare_routed")).scalar_one()


def _phases(start: float, end: float, marks: dict[str, float]) -> str:
    """route-file's phases from its progress calls: read CSV, check and convert the
    coordinates, COPY and route (chunk by chunk, on two connections), then building and
    writing the output CSV."""
    read_end = marks.get("read:end", start)
    query_start = marks.get("route:start", read_end)
    query_end = marks.get("route:end", query_start)
    return (f"read {read_end - start:.0f} s, convert {query_start - read_end:.0f} s, "
            f"COPY + route {query_end - query_start:.0f} s, write {end - query_end:.0f} s")


def _routing_query(engine: Engine, csv_path: Path, gen: int) -> float:
    """Seconds of the production routing query alone (route_sql) on the staged points."""
    s = get_settings()
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE sweep_pts (id bigint PRIMARY KEY, lon float8,"
                          " lat float8) ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                "COPY sweep_pts (id, lon, lat) FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(csv_path.read_bytes())
        conn.execute(text("ANALYZE sweep_pts"))
        points = "SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS geom FROM sweep_pts"
        t0 = time.perf_counter()
        conn.execute(text(f"CREATE TEMP TABLE sweep_routed ON COMMIT DROP AS {route_sql(points)}"),
                     {"gen": gen, "tol_m": s.gap_tolerance_m, "margin_m": s.near_boundary_margin_m})
        return time.perf_counter() - t0


def _bulk(ctx: Context) -> list[Row]:
    n = ctx.n(1_000_000, 5_000)
    # Three runs each, interleaved, compared by their medians: one run each (about 15 s
    # and 7 s) put route-file at 1.60x and then 2.52x in two full runs an hour apart, the
    # parallel routing being the more exposed to the machine's other users.
    repeats = ctx.repeats(3)
    csv_path = ctx.workdir / "route_points.csv"
    log(f"routing: writing {n:,} points to {csv_path.name}")
    write_points_csv(csv_path, n)
    out = ctx.workdir / "route_points_routed.csv"
    cand, base = [], []
    matched = 0
    for i in range(repeats):
        log(f"routing: route-file on {n:,} points (run {i + 1}/{repeats})")
        marks: dict[str, float] = {}

        def progress(phase: str, done: int, total: int, marks=marks) -> None:
            key = f"{phase}:{'end' if done >= total else 'start'}"
            marks.setdefault(key, time.perf_counter())

        t0 = time.perf_counter()
        t, report = timed(lambda progress=progress: route_file(
            ctx.engine, csv_path, out, lon_col="lon", lat_col="lat", progress=progress))
        cand.append(t)
        phases = _phases(t0, t0 + t, marks)
        log(f"routing:   {t:.1f} s {report.by_rule}; {phases}")
        log(f"routing: bare COPY + ST_Covers join on the same points (run {i + 1}/{repeats})")
        t, matched = timed(lambda: bare_join(ctx.engine, csv_path, ctx.community_generation))
        base.append(t)
        log(f"routing:   {t:.1f} s ({matched:,} rows matched)")
    out.unlink(missing_ok=True)
    c, b = median(cand), median(base)
    return [Row("routing", f"route-file, {n:,} points", c, "s",
                "bare COPY + ST_Covers join (CREATE TABLE AS)", b, "≤ 2× baseline", c <= 2 * b,
                note=f"median of {repeats} runs each, interleaved; the last route-file: {phases}")]


def _single(ctx: Context) -> list[Row]:
    n = ctx.n(2_000, 200)
    lon, lat = generate_points(n, seed=7)
    gen = ctx.community_generation
    ours, bare = [], []
    log(f"routing: {n:,} single route() lookups beside a bare single-point ST_Covers")
    with ctx.engine.connect() as conn:
        for x, y in zip(lon.tolist(), lat.tolist(), strict=True):
            t0 = time.perf_counter()
            route(conn, x, y)
            t1 = time.perf_counter()
            conn.execute(text(_BARE_ONE), {"gen": gen, "lon": x, "lat": y}).first()
            t2 = time.perf_counter()
            ours.append((t1 - t0) * 1000)
            bare.append((t2 - t1) * 1000)
        conn.rollback()
    rows = []
    for p in (50, 99):
        rows.append(Row("routing", f"single route() p{p}, {n:,} lookups", percentile(ours, p), "ms",
                        f"bare single-point ST_Covers p{p}", percentile(bare, p), "report",
                        note="includes the community/post details query"))
    return rows


def _sweep(ctx: Context) -> tuple[list[Row], str]:
    n = ctx.n(200_000, 5_000)
    repeats = ctx.repeats(5)
    csv_path = ctx.workdir / "sweep_points.csv"
    write_points_csv(csv_path, n, seed=11)
    gen = ctx.community_generation
    pieces: dict[int, int] = {}
    times: dict[int, list[float]] = {nv: [] for nv in SWEEP_VERTICES}
    configured = get_settings().subdivide_max_vertices
    try:
        # Round robin (every N once per round) so a burst of load from the machine's other
        # users lands on all piece sizes alike instead of on one.
        for rnd in range(repeats):
            for nv in SWEEP_VERTICES:
                with ctx.engine.begin() as conn:
                    pieces[nv] = subdivide_generation(conn, gen, max_vertices=nv)
                with ctx.engine.connect() as conn:
                    conn.execute(text("ANALYZE community_piece"))
                    conn.commit()
                times[nv].append(_routing_query(ctx.engine, csv_path, gen))
            log(f"routing: sweep round {rnd + 1}/{repeats}: "
                + ", ".join(f"N={nv} {times[nv][-1]:.2f} s" for nv in SWEEP_VERTICES))
    finally:  # the later benchmarks run on the shipped setting
        with ctx.engine.begin() as conn:
            subdivide_generation(conn, gen, max_vertices=configured)
            conn.execute(text("ANALYZE community_piece"))
    # Each size is judged by its fastest run: the query does the same work every time, and
    # the machine's other users only ever add time (runs of one size spread by up to 1.8x on
    # this shared machine), so the minimum is the estimate of its own cost that noise
    # disturbs least (timeit's convention); the median is shown beside it.
    results = {nv: (pieces[nv], min(times[nv]), times[nv]) for nv in SWEEP_VERTICES}
    best = min(results, key=lambda k: results[k][1])
    lines = [
        "## Routing: piece size sweep",
        "",
        f"The production routing query (`geo.routing.route_sql`, CREATE TABLE AS) on {n:,} "
        f"staged points, after re-subdividing the sample city with `ST_Subdivide(geom, N)`; "
        f"fastest of {repeats} runs. The shipped setting is "
        f"`Settings.subdivide_max_vertices = {configured}`.",
        "",
        "| max vertices N | pieces | min s | median s | runs s |",
        "|---|---|---|---|---|",
    ]
    for nv, (count, fastest, runs) in results.items():
        mark = " **fastest**" if nv == best else ""
        lines.append(f"| {nv}{mark} | {count} | {fastest:.2f} | {median(runs):.2f} | "
                     f"{', '.join(f'{t:.2f}' for t in runs)} |")
    spread = max(r[1] for r in results.values()) / results[best][1]
    lines += ["", f"Fastest by its fastest run: N = {best} (slowest/fastest = {spread:.2f}×). "
              "The sizes are timed round robin, so a burst of load lands on all of them alike; "
              "the query does the same work every run and other users' load only ever adds "
              "time, so each size's fastest run is the cleanest view of its own cost (the "
              "median is beside it). Differences under ~10% are noise on this shared machine."]
    shipped = results[configured][1] if configured in results else None
    row = Row("routing", f"piece-size sweep: fastest max_vertices = {best}", results[best][1], "s",
              f"shipped N = {configured}", shipped, "shipped within 10% of the fastest",
              shipped is not None and shipped <= 1.1 * results[best][1],
              note=f"{n:,} points, fastest of {repeats} runs each")
    return [row], "\n".join(lines)


def run(ctx: Context) -> Outcome:
    """All routing figures."""
    rows = _bulk(ctx)
    rows += _single(ctx)
    sweep_rows, section = _sweep(ctx)
    return Outcome(rows + sweep_rows, [section])

