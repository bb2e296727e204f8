"""Intake under load (issue 3): 32 concurrent clients POST ``/api/v1/cases`` to a real
``casegrid serve --workers 2`` (stock uvicorn) over loopback, beside ``GET /health`` of the same server in
the same run.

The load generator is wrk (C, one thread, 32 keep-alive connections, closed loop: each
connection sends its next request when the previous answer arrives), driven by
``bench/wrk_intake.lua``: every request is a new complaint with its own external_id at a
realistic point of the sample city. wrk takes little of the two cores it shares with the
server and PostgreSQL, so the figures measure casegrid rather than the client.

Throughput counts cases routed and committed: rows in the database afterwards, not
responses. Where the time goes is measured separately, in-process: ``create_case`` one at
a time (one transaction per case), and ``register_cases`` in batches of 32 (what the
server's intake batching does under load).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import Engine, text

from bench import pgstat
from bench.cpu import cluster_cpu, cpu_seconds, session_pids, used_between
from bench.harness import Context, Outcome, Row, Skip, log, percentile
from bench.points import generate_points
from bench.proxy import nginx_balancing, nginx_binary
from bench.server import connections_per_process, serve
from casegrid.settings import PROJECT_ROOT

CLIENTS = 32
WORKERS = 2
WRK_SCRIPT = Path(__file__).with_name("wrk_intake.lua")
PREFIX = "bench-load"
PROXY_PREFIX = "bench-proxy"
_CATEGORIES = ("0599", "0599", "0599", "0504", "0102", "0101", "0301", "0508", "0505", "0103")
_RESULT = re.compile(r"CGRESULT (.*)")


def _body(i: int, lon: float, lat: float) -> dict:
    return {"lon": round(lon, 7), "lat": round(lat, 7), "crs": "wgs84",
            "category": _CATEGORIES[i % len(_CATEGORIES)], "channel": "platform",
            "external_id": f"bench-direct-{i}", "description": "基准测试: 夜间噪音扰民",
            "address": "滕州市龙泉街道"}


def _sessions(engine: Engine) -> int:
    """Connections ever opened to the benchmark database (``pg_stat_database.sessions``):
    the difference over a run shows whether the server's pools keep their connections or
    open new ones."""
    time.sleep(1.1)  # backends report their statistics at most once a second
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()")).scalar_one()


def _wrk(base: str, seconds: float, env: dict[str, str]) -> dict:
    """Run wrk against ``base`` for ``seconds``; the figures its ``done()`` printed."""
    cmd = ["wrk", "-t1", f"-c{CLIENTS}", f"-d{seconds:.0f}s", "--timeout", "10s",
           "-s", str(WRK_SCRIPT), base]
    run = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=seconds + 60, check=False)
    found = _RESULT.search(run.stdout)
    if run.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stderr.strip() or run.stdout[-500:]}")
    out = {}
    for pair in found.group(1).split():
        key, value = pair.split("=")
        out[key] = float(value)
    return out


def _in_process(ctx: Context, n: int, lon, lat) -> tuple[float, float, list[str]]:  # noqa: ANN001
    """p50 and p99 ms of ``create_case`` + commit, called directly (no HTTP), and the
    project functions that take the most of it (cProfile, cumulative ms per case)."""
    import cProfile
    import pstats

    from casegrid.settings import get_settings
    from cases.intake import NewCase, create_case
    from cases.tokens import Principal

    principal = Principal(0, "bench in-process", "intake")
    settings = get_settings()
    times = []
    profiler = cProfile.Profile()
    for i in range(n):
        body = NewCase(**_body(10**8 + i, float(lon[i]), float(lat[i])))
        t0 = time.perf_counter()
        profiler.enable()
        with ctx.engine.begin() as conn:
            create_case(conn, body, principal, settings)
        profiler.disable()
        times.append((time.perf_counter() - t0) * 1000)
    stats = pstats.Stats(profiler)
    root = str(PROJECT_ROOT)
    top = []
    for (path, line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if path.startswith(root) and "/bench/" not in path and "/.venv/" not in path:
            top.append((ct, f"{Path(path).relative_to(root)}:{line} {name}"))
    top.sort(reverse=True)
    lines = [f"{ct / n * 1000:.1f} ms `{where}`" for ct, where in top[:10]]
    return percentile(times, 50), percentile(times, 99), lines


def _in_batches(ctx: Context, n: int, lon, lat, size: int = CLIENTS) -> float:  # noqa: ANN001
    """Cases per second of ``register_cases`` in batches of ``size`` (one transaction each)."""
    from casegrid.settings import get_settings
    from cases.intake import NewCase, register_cases
    from cases.tokens import Principal

    principal = Principal(0, "bench in-process", "intake")
    settings = get_settings()
    t0 = time.perf_counter()
    for start in range(0, n, size):
        subs = [(NewCase(**_body(2 * 10**8 + i, float(lon[i]), float(lat[i]))), principal)
                for i in range(start, min(n, start + size))]
        with ctx.engine.begin() as conn:
            register_cases(conn, subs, settings)
    return n / (time.perf_counter() - t0)


def _stored(engine: Engine, prefix: str) -> int:
    """Cases the load generator's requests with ``prefix`` left routed and committed."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM \"case\" WHERE channel = 'platform' AND external_id LIKE :p"
            " AND route_rule IS NOT NULL"), {"p": f"{prefix}-%"}).scalar_one()


def _behind_proxy(ctx: Context, secret: str, points_file: Path, seconds: float) -> dict:
    """The same load through nginx over ``WORKERS`` one-worker ``casegrid serve`` instances
    (``least_conn``, kept-alive upstream connections: README's "Serving"), so each request
    goes to the least busy worker instead of the one the kernel gave its connection to."""
    env = {"CG_TOKEN": secret, "CG_POINTS": str(points_file)}
    with ExitStack() as stack:
        ports = [int(stack.enter_context(serve(ctx.url, workers=1)).rsplit(":", 1)[1])
                 for _ in range(WORKERS)]
        base = stack.enter_context(nginx_balancing(ports, ctx.workdir / "nginx"))
        log(f"intake: behind nginx ({WORKERS} one-worker instances, least_conn); warming up")
        _wrk(base, 2, {**env, "CG_PREFIX": f"{PROXY_PREFIX}-warm"})
        log(f"intake: POST /api/v1/cases through nginx, {CLIENTS} clients (wrk), {seconds:.0f} s")
        split: list[int] = []
        look = threading.Timer(2.0, lambda: split.extend(
            n for p in ports for n in connections_per_process(p)))
        look.start()
        r = _wrk(base, seconds, {**env, "CG_PREFIX": PROXY_PREFIX})
        look.join()
    stored = _stored(ctx.engine, PROXY_PREFIX)
    errors = int(r["non2xx"] + r["timeouts"] + r["connect"] + r["read"] + r["write"])
    return {"rate": stored / r["seconds"], "stored": stored, "seconds": r["seconds"],
            "p50": r["p50_ms"], "p99": r["p99_ms"], "errors": errors, "split": split}


def run(ctx: Context) -> Outcome:
    """Health first, then intake, on one server; then the in-process cost per case."""
    from cases.tokens import create_token

    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (apt-get install wrk; `make bench` installs it)")
    seconds = 5.0 if ctx.quick else 30.0
    health_seconds = 3.0 if ctx.quick else 10.0
    with ctx.engine.begin() as conn:
        _, secret = create_token(conn, "intake", "bench load generator")
    lon, lat = generate_points(ctx.n(200_000, 20_000), seed=23)
    points_file = ctx.workdir / "intake_points.txt"
    points_file.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in zip(lon, lat, strict=True)))
    with ctx.engine.connect() as conn:
        before = conn.execute(text('SELECT count(*) FROM "case"')).scalar_one()

    log_path = ctx.workdir / "serve.log"
    server: dict = {}
    with serve(ctx.url, workers=WORKERS, log_path=log_path, info=server) as base:
        # Each measurement right after its own warm-up: the intake's (connections with its
        # statements prepared, its tables cached) would not survive the /health run.
        log(f"intake: server up at {base} ({WORKERS} workers); warming up /health")
        _wrk(base, 2, {})
        log(f"intake: GET /health, {CLIENTS} clients (wrk), {health_seconds:.0f} s")
        opened = _sessions(ctx.engine)
        h = _wrk(base, health_seconds, {})
        opened = _sessions(ctx.engine) - opened
        log("intake: warming up POST /api/v1/cases")
        _wrk(base, 2, {"CG_TOKEN": secret, "CG_POINTS": str(points_file), "CG_PREFIX": "bench-warm"})
        log(f"intake: POST /api/v1/cases, {CLIENTS} clients (wrk), {seconds:.0f} s")
        app_pids = session_pids(server["session"])
        tracked = pgstat.reset(ctx.engine)
        app0, db0 = cpu_seconds(app_pids), cluster_cpu(ctx.cluster.pgdata)
        # How the kernel shared wrk's 32 kept-alive connections between the workers,
        # looked at once they are all open (see the issue 20 section of RESULTS.md).
        split: list[int] = []
        look = threading.Timer(2.0, lambda: split.extend(
            connections_per_process(int(base.rsplit(":", 1)[1]))))
        look.start()
        r = _wrk(base, seconds, {"CG_TOKEN": secret, "CG_POINTS": str(points_file),
                                 "CG_PREFIX": PREFIX})
        look.join()
        app_cpu = used_between(app0, cpu_seconds(app_pids | session_pids(server["session"])))
        db_cpu = used_between(db0, cluster_cpu(ctx.cluster.pgdata))
        statements = pgstat.top(ctx.engine) if tracked else []
    stored = _stored(ctx.engine, PREFIX)
    proxied = None
    if nginx_binary() is not None:
        # Its own points, so that its duplicate searches meet no more cases than the first run's.
        plon, plat = generate_points(ctx.n(200_000, 20_000), seed=29)
        proxy_points = ctx.workdir / "intake_points_proxy.txt"
        proxy_points.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in zip(plon, plat, strict=True)))
        proxied = _behind_proxy(ctx, secret, proxy_points, seconds)
        log(f"intake behind nginx: {proxied['stored']:,} cases stored, {proxied['errors']} errors, "
            f"p99 {proxied['p99']:.0f} ms")
    h_rate = h["requests"] / h["seconds"]
    rate = stored / r["seconds"]
    # CPU per POST (every one stored a case or was a resend), server and database apart.
    posts = max(1.0, r["requests"])
    app_ms, db_ms = app_cpu * 1000 / posts, db_cpu * 1000 / posts
    cores = os.cpu_count() or 1
    ceiling = cores * 1000 / (app_ms + db_ms)
    errors = int(r["non2xx"] + r["timeouts"] + r["connect"] + r["read"] + r["write"])
    log(f"intake: {int(r['requests']):,} requests, {stored:,} cases stored, {errors} errors; "
        f"health {h_rate:,.0f} req/s")
    n_direct = ctx.n(500, 50)
    log(f"intake: {n_direct} create_case calls in-process (no HTTP), one at a time")
    d50, d99, hot = _in_process(ctx, n_direct, lon[-n_direct:], lat[-n_direct:])
    n_batch = ctx.n(2_048, 128)
    log(f"intake: {n_batch} cases in-process in batches of {CLIENTS}")
    batch_rate = _in_batches(ctx, n_batch, lon[:n_batch], lat[:n_batch])
    p50, p99 = r["p50_ms"], r["p99_ms"]
    rows = [
        Row("intake", f"cases routed + committed per s ({CLIENTS} clients, {WORKERS} workers, wrk)",
            rate, "/s", "GET /health requests per s", h_rate, "≥ 600 cases/s", rate >= 600,
            note=f"{stored:,} stored in {r['seconds']:.0f} s, {errors} errors; "
                 f"{before:,} cases in the table before"),
        Row("intake", f"CPU per case: server {app_ms:.2f} ms + PostgreSQL {db_ms:.2f} ms "
            f"(ceiling on {cores} cores with nothing else running)", ceiling, "/s",
            "measured rate", rate, "report",
            note="user+system CPU of the server's processes and the cluster's backends "
                 "during the run (/proc)"),
        Row("intake", "POST /api/v1/cases p50", p50, "ms", "GET /health p50", h["p50_ms"], "report"),
        Row("intake", "POST /api/v1/cases p99", p99, "ms", "GET /health p99", h["p99_ms"],
            "< 100 ms", p99 < 100,
            note=f"{opened} database connections opened during the /health run; "
                 f"connections per worker during intake {'/'.join(map(str, split)) or 'n/a'}"),
        *([Row("intake", f"cases routed + committed per s behind nginx ({CLIENTS} clients, "
               f"{WORKERS} one-worker instances, least_conn: README's deployment)",
               proxied["rate"], "/s", f"the same through uvicorn's --workers {WORKERS} directly",
               rate, "≥ 600 cases/s", proxied["rate"] >= 600,
               note=f"{proxied['stored']:,} stored in {proxied['seconds']:.0f} s, "
                    f"{proxied['errors']} errors; upstream connections per instance "
                    f"{'/'.join(map(str, proxied['split'])) or 'n/a'}"),
           Row("intake", "POST /api/v1/cases p99 behind nginx", proxied["p99"], "ms",
               f"the same through uvicorn's --workers {WORKERS} directly", p99, "< 100 ms",
               proxied["p99"] < 100, note=f"p50 {proxied['p50']:.1f} ms")] if proxied else []),
        Row("intake", f"register_cases in-process, batches of {CLIENTS} (no HTTP)", batch_rate,
            "/s", "create_case one at a time, per s", 1000 / d50, "report",
            note=f"{n_batch} cases"),
        Row("intake", "create_case in-process p50 (no HTTP)", d50, "ms", "HTTP p50 under load",
            p50, "report", note=f"p99 {d99:.1f} ms, {n_direct} calls one at a time"),
    ]
    section = "\n".join([
        "## Intake: where the time goes",
        "",
        f"One case registered alone costs about **{d50:.1f} ms** (p50) of application + "
        "database work when `create_case` is called in-process (validate, route with the "
        "`route_sql` query, community details, INSERT of the case and its register event, "
        "initial deadlines, nearby-duplicate search, commit with fsync): at most "
        f"{2 * 1000 / d50:,.0f} cases/s on two cores, one transaction per case. The server "
        "therefore registers concurrent submissions together (`cases/intake_batch.py`: what "
        "arrives while the database is busy joins the next batch; a lone request is a batch "
        "of one): the same statements and one COMMIT per batch, then the nearby-duplicate "
        "search, after the COMMIT so the batch no longer holds the statistics rows the next "
        "batch updates. The batch's statements run prepared, on cached generic plans. The "
        "server is stock uvicorn with its own `--workers` (one shared listening socket). "
        "In-process, batches of "
        f"{CLIENTS} reach **{batch_rate:,.0f} cases/s**. Over HTTP with {CLIENTS} clients the "
        f"server stored {rate:,.0f} cases/s at p50 {p50:.0f} ms and p99 {p99:.0f} ms, beside "
        f"`GET /health` at {h_rate:,.0f} req/s (p99 {h['p99_ms']:.0f} ms); HTTP parsing, "
        "the access log and the JSON response cost the rest, in two worker processes sharing two "
        f"cores with PostgreSQL and wrk. The CPU accounting of the run: {app_ms:.2f} ms in "
        f"the server and {db_ms:.2f} ms in PostgreSQL per case, so {cores} cores cannot "
        f"register more than about {ceiling:,.0f} cases/s this way, however the work is "
        "scheduled.",
        "",
        *([f"PostgreSQL's time by statement during the {seconds:.0f} s under wrk "
           "(`pg_stat_statements`, top-level statements, so a trigger's work counts in the "
           "INSERT that fired it; wall time inside the server, waits for a CPU included), "
           f"per case over the {int(r['requests']):,} POSTs:", "",
           *pgstat.table(statements, int(r["requests"]), "case"), ""] if statements else []),
        "Cumulative time per case in the project's own functions, one at a time (cProfile "
        "over the in-process calls; nested, so the lines overlap):",
        "",
        *[f"- {h}" for h in hot],
    ])
    return Outcome(rows, [section])
