"""Privacy (issue 28): the retention purge, and intake beside it.

The purge of ``n`` closed cases (1,000,000 full size), each with a reporter's name and phone
and one in ten with a text as written: its time, and intake's p99 under wrk in back-to-back
windows for as long as it runs (the worst window and the median) beside the p99 of the
same server just before (the purge works in short transactions; intake must not wait
behind it). What masking costs intake is ``privacy_masking`` (bench/bench_privacy_masking.py),
which needs no ledger and runs alone in minutes.
"""

from __future__ import annotations

import math
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import text

from bench.bench_intake import WORKERS
from bench.bench_privacy_masking import intake_load
from bench.harness import Context, Outcome, Row, Skip, log
from bench.ledger import ensure_cases, fill_workflow
from bench.server import serve

# A server's start limit (bench.server.serve): two workers importing the app on a machine
# shared with other work took longer than serve's default 60 s.
START_S = 240


def _closed_ledger(ctx: Context, n: int) -> int:
    """Top the ledger up so that at least ``n`` cases are closed, give every closed case a
    reporter (and one in ten a text as written); the closed cases not yet purged."""
    total = ensure_cases(ctx.engine, math.ceil(n / 0.85), ctx.community_generation, log=log)
    fill_workflow(ctx.engine, log=log)
    log(f"privacy: {total:,} cases; giving the closed ones a reporter")
    with ctx.engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text(
            "UPDATE \"case\" SET reporter_name = '王先生', reporter_phone = '1380000' || "
            "lpad((id % 10000)::text, 4, '0') WHERE closed_at IS NOT NULL AND purged_at IS NULL "
            "AND reporter_phone IS NULL"))
        conn.execute(text(
            "INSERT INTO personal_text (case_id, field, original) SELECT id, 'description', "
            "description || ' 电话13800001234' FROM \"case\" c WHERE closed_at IS NOT NULL "
            "AND purged_at IS NULL AND id % 10 = 0 AND NOT EXISTS "
            "(SELECT 1 FROM personal_text p WHERE p.case_id = c.id)"))
    with ctx.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text('VACUUM (ANALYZE) "case"'))
        return conn.execute(text(
            'SELECT count(*) FROM "case" WHERE closed_at IS NOT NULL AND purged_at IS NULL')
        ).scalar_one()


@contextmanager
def _serving(ctx: Context, log_name: str) -> Iterator[str]:
    """:func:`bench.server.serve`, tried twice: on a machine shared with other work, a
    server right after a VACUUM of a million rows can miss serve's 60 s start limit once."""
    for attempt in (1, 2):
        try:
            cm = serve(ctx.url, workers=WORKERS, log_path=ctx.workdir / log_name, start_s=START_S)
            base = cm.__enter__()
        except RuntimeError:
            if attempt == 2:
                raise
            log("privacy: the server did not start in time; once more")
            continue
        try:
            yield base
        finally:
            cm.__exit__(None, None, None)
        return


def run(ctx: Context) -> Outcome:
    from cases.retention import purge
    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (apt-get install wrk; `make bench` installs it)")
    seconds = 4.0 if ctx.quick else 12.0
    load = intake_load(ctx)

    n = ctx.n(1_000_000, 20_000)
    closed = _closed_ledger(ctx, n)
    log(f"privacy: {closed:,} closed cases with personal data; intake p99 before the purge")
    purge_seconds: list[float] = []
    purged_cases: list[int] = []
    windows: list[dict] = []
    with _serving(ctx, "serve_purge.log") as base:
        load(base, "privacy-warm-purge", 2)
        quiet = load(base, "privacy-quiet", seconds)

        def purging() -> None:
            t0 = time.perf_counter()
            purged = purge(ctx.engine, timedelta(0), commit=True)
            purge_seconds.append(time.perf_counter() - t0)
            purged_cases.append(purged.cases)
            log(f"privacy: purged {purged.cases:,} cases in {purge_seconds[0]:.1f} s "
                f"({purged.batches} transactions)")

        worker = threading.Thread(target=purging)
        log(f"privacy: purge of {closed:,} closed cases, intake under wrk beside it")
        worker.start()
        time.sleep(0.5)
        # Back-to-back windows for as long as the purge runs (at least one): a lock wait
        # at any point of it shows in some window's p99.
        while True:
            windows.append(load(base, f"privacy-busy-{len(windows)}", seconds))
            if not worker.is_alive():
                break
        worker.join()
    took = purge_seconds[0] if purge_seconds else float("nan")
    done = purged_cases[0] if purged_cases else 0
    busy_s = sum(w["seconds"] for w in windows)
    worst = max(w["p99_ms"] for w in windows)
    median_p99 = statistics.median(w["p99_ms"] for w in windows)
    with ctx.engine.connect() as conn:
        left = conn.execute(text(
            'SELECT count(*) FROM "case" WHERE closed_at IS NOT NULL AND reporter_phone IS NOT NULL '
            "AND closed_at < now() - interval '1 minute'")).scalar_one()
    rows = [
        Row("privacy", f"purge of {done:,} closed cases (reporter name and phone, texts as "
            "written, one history entry each)", took, "s", "", None, "report",
            note=f"{done / took:,.0f} cases/s in transactions of 2,000; {left} closed cases "
                 f"left with a phone; {closed:,} closed, the rest closed after the cutoff"),
        Row("privacy", f"intake p99 while the purge runs, worst of {len(windows)} "
            f"back-to-back {seconds:.0f} s windows", worst, "ms",
            "intake p99 just before, same server", quiet["p99_ms"], "report",
            note=f"median window p99 {median_p99:,.0f} ms; p50 "
                 f"{statistics.median(w['p50_ms'] for w in windows):.0f} ms beside "
                 f"{quiet['p50_ms']:.0f} ms; {int(sum(w['requests'] for w in windows)):,} requests "
                 f"in {busy_s:.0f} s of wrk over the purge's {took:.0f} s"),
    ]
    return Outcome(rows)
