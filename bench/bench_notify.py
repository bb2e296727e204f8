"""Notifications (issue 23): delivery throughput and lag of one ``casegrid worker``, beside
the receiver's own request rate; and what writing the outbox row costs intake.

* The receiver is a plain ``http.server`` process on loopback (``bench/webhook_receiver.py``)
  answering 200. Its own rate is measured first with wrk (8 keep-alive connections, the
  worker's parallel sends) posting a body of the same size: the ceiling any sender meets.
* Throughput: 100,000 events committed at once, one real ``casegrid worker`` process
  (started beforehand, idle) routes and delivers them; events per second from the first
  to the last arrival at the receiver, every one checked delivered in the database.
* Lag: a producer commits events in batches of 20 at a steady rate (half the measured
  throughput, at most 1,000/s) while the worker runs; lag is the arrival time at the
  receiver minus the producer's commit time, p50 and p99. The events are written as intake
  writes them (no NOTIFY), so an idle worker finds them at its next poll
  (``CASEGRID_WORKER_POLL_S``, 2 s); workflow events wake it at once (LISTEN/NOTIFY).
* Intake: ``register_cases`` in batches of 32 (what the server's intake batching does),
  in-process, alternately with and without the outbox (the baseline runs intake's INSERT
  statement without its ``cases.intake.OUTBOX_CTE``), five rounds each; the median rates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from bench.harness import Context, Outcome, Row, Skip, log, median, percentile
from bench.points import generate_points
from casegrid.cluster import free_port

WRK_SCRIPT = Path(__file__).with_name("wrk_webhook.lua")
CONCURRENCY = 8


def _receiver(ctx: Context, name: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log_path = ctx.workdir / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bench.webhook_receiver", str(port),
                             str(log_path)], cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"{}", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, url, log_path


def _stop_receiver(proc: subprocess.Popen, log_path: Path) -> list[tuple[int, float]]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    out = []
    for line in log_path.read_text().splitlines():
        i, t = line.split()
        if i.isdigit() and i != "0":
            out.append((int(i), float(t)))
    return out


def _wrk_rate(url: str, seconds: int) -> float:
    run = subprocess.run(["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "-s", str(WRK_SCRIPT),
                          url], capture_output=True, text=True, timeout=seconds + 60, check=True)
    for line in run.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"wrk printed no rate: {run.stdout[-300:]}")


def _template_case(ctx: Context) -> int:
    from cases.notices import record

    with ctx.engine.begin() as conn:
        cid = conn.execute(text('SELECT max(id) FROM "case"')).scalar_one()
        if cid is None:
            raise Skip("no case in the ledger to write events about")
        record(conn, "case.registered", [cid])
        conn.execute(text("UPDATE outbox_event SET routed_at = now() WHERE routed_at IS NULL"))
        return cid


_COPY_SQL = """
INSERT INTO outbox_event (type, case_id, recipients, payload)
SELECT type, case_id, recipients, payload
FROM (SELECT * FROM outbox_event WHERE case_id = :c ORDER BY id LIMIT 1) t,
     generate_series(1, :n)
RETURNING id
"""


def _intake(ctx: Context, rounds: int, n: int) -> tuple[float, float]:
    """Median cases/s of register_cases in batches of 32, with and without the outbox."""
    import cases.intake as intake
    from casegrid.settings import get_settings
    from cases.intake import NewCase, register_cases
    from cases.tokens import Principal

    principal = Principal(0, "bench notify", "intake")
    settings = get_settings()
    lon, lat = generate_points(n * rounds * 2 + 64, seed=2323)
    from casegrid.db import RawQuery

    real = intake._INSERT
    bare = RawQuery(intake.INSERT_SQL.replace(intake.OUTBOX_CTE, ""))
    rates: dict[bool, list[float]] = {True: [], False: []}
    k = 0
    for r in range(rounds):
        for with_outbox in (True, False) if r % 2 == 0 else (False, True):
            intake._INSERT = real if with_outbox else bare
            try:
                t0 = time.perf_counter()
                for start in range(0, n, 32):
                    subs = []
                    for _ in range(start, min(n, start + 32)):
                        subs.append((NewCase(
                            lon=round(float(lon[k]), 7), lat=round(float(lat[k]), 7),
                            category="0599", channel="platform", external_id=f"bn-{k}",
                            description="基准测试: 通知", address="滕州市"), principal))
                        k += 1
                    with ctx.engine.begin() as conn:
                        register_cases(conn, subs, settings, search_duplicates=False)
                rates[with_outbox].append(n / (time.perf_counter() - t0))
            finally:
                intake._INSERT = real
    return median(rates[True]), median(rates[False])


def _delivered(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM outbox_delivery WHERE status = 'delivered'")).scalar_one()


def _wait_delivered(ctx: Context, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _delivered(ctx) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_delivered(ctx)} of {target} delivered in {timeout:.0f} s")
        time.sleep(0.5)


def run(ctx: Context) -> Outcome:
    """Intake cost first (it fills the ledger), then the receiver alone, then the worker."""
    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (apt-get install wrk)")
    rounds, n_intake = ctx.repeats(5, 2), ctx.n(2_048, 256)
    log(f"notify: intake in batches of 32, {rounds} rounds x {n_intake} cases with and "
        "without the outbox row")
    with_rate, without_rate = _intake(ctx, rounds, n_intake)
    cost = 1 - with_rate / without_rate

    cid = _template_case(ctx)
    rx, url, rx_log = _receiver(ctx, "receiver-wrk")
    try:
        log(f"notify: the receiver's own rate (wrk, {CONCURRENCY} connections)")
        _wrk_rate(url, 2)
        rx_rate = _wrk_rate(url, 5 if ctx.quick else 10)
    finally:
        _stop_receiver(rx, rx_log)

    rx, url, rx_log = _receiver(ctx, "receiver-worker")
    env = {**os.environ, "DATABASE_URL": ctx.url, "CASEGRID_WEBHOOK_URL": url,
           "CASEGRID_WEBHOOK_SECRET": "bench",
           "CASEGRID_WORKER_CONCURRENCY": str(CONCURRENCY), "CASEGRID_WORKER_BATCH": "500",
           "CASEGRID_STATEMENT_TIMEOUT_MS": "0"}
    worker = subprocess.Popen([str(Path(sys.executable).with_name("casegrid")), "worker",
                               "--name", "bench"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # started and idle
        n = ctx.n(100_000, 10_000)
        log(f"notify: {n:,} events committed at once, one worker delivers them")
        with ctx.engine.begin() as conn:
            bulk_ids = set(conn.execute(text(_COPY_SQL), {"c": cid, "n": n}).scalars())
        t0 = time.time()
        _wait_delivered(ctx, n, timeout=1800)
        drain_s = time.time() - t0

        # Lag at a steady rate the worker can keep up with.
        rate = min(1000.0, n / drain_s / 2)
        seconds = 5 if ctx.quick else 20
        log(f"notify: lag at a steady {rate:,.0f} events/s for {seconds} s")
        committed: dict[int, float] = {}
        step = 20 / rate
        start = time.time()
        with ctx.engine.connect() as conn:
            i = 0
            while time.time() - start < seconds:
                with conn.begin():
                    ids = conn.execute(text(_COPY_SQL), {"c": cid, "n": 20}).scalars().all()
                at = time.time()
                committed.update(dict.fromkeys(ids, at))
                i += 1
                pause = start + i * step - time.time()
                if pause > 0:
                    time.sleep(pause)
        _wait_delivered(ctx, n + len(committed), timeout=600)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        seen = _stop_receiver(rx, rx_log)
    arrivals = [t for i, t in seen if i in bulk_ids]
    events_s = len(bulk_ids) / (max(arrivals) - min(arrivals)) if len(arrivals) > 1 else float("nan")
    first: dict[int, float] = {}
    for i, t in seen:
        if i in committed and i not in first:
            first[i] = t
    lags = [(first[i] - c) * 1000 for i, c in committed.items() if i in first]
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    log(f"notify: {events_s:,.0f} events/s (receiver alone {rx_rate:,.0f} req/s), lag p50 "
        f"{p50:.0f} ms p99 {p99:.0f} ms; intake {with_rate:,.0f} vs {without_rate:,.0f} cases/s")
    rows = [
        Row("notify", f"events delivered per s (one worker, {n:,} events, webhook on loopback)",
            events_s, "/s", f"the receiver alone (wrk, {CONCURRENCY} connections), req/s", rx_rate,
            "report", note=f"all {n:,} delivered in {drain_s:.0f} s from commit"),
        Row("notify", f"lag commit → delivery p99 (steady {rate:,.0f} events/s)", p99, "ms",
            "lag p50", p50, "report",
            note=f"{len(lags):,} events in batches of 20, written like intake's (no NOTIFY: "
                 "an idle worker polls every 2 s)"),
        Row("notify", "intake with the outbox row (register_cases, batches of 32), cases/s",
            with_rate, "/s", "the same without the outbox row", without_rate,
            "cost ≤ 10%", cost <= 0.10, note=f"cost {cost * 100:.1f}%, median of {rounds} rounds"),
    ]
    section = "\n".join([
        "## Notifications: delivery and the outbox's cost",
        "",
        f"One `casegrid worker` delivered {n:,} events committed at once to a webhook "
        f"receiver on loopback at **{events_s:,.0f} events/s**; the receiver alone, loaded by "
        f"wrk with {CONCURRENCY} connections, answered {rx_rate:,.0f} requests/s (a plain "
        "Python `http.server`, one thread per connection). Each event costs the worker a "
        "claim (`FOR UPDATE SKIP LOCKED`, 500 at a time), a signed POST (8 in parallel over "
        "kept-alive connections), and its share of one UPDATE and one INSERT of attempts per "
        "batch, besides the routing of the event into its deliveries. At a steady "
        f"{rate:,.0f} events/s the lag from the producer's COMMIT to the receiver was p50 "
        f"{p50:.0f} ms, p99 {p99:.0f} ms. Writing `case.registered` in the intake batch's "
        f"transaction (a CTE of intake's own INSERT statement: no extra round trip) cost intake {cost * 100:.1f}% "
        f"({with_rate:,.0f} against {without_rate:,.0f} cases/s in-process).",
    ])
    return Outcome(rows, [section])

