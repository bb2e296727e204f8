"""Statistics (issue 4): with a million cases in the ledger, the indicators for every
grouping over two periods (the whole sample year and its last month), beside a plain
``count(*)`` over the same rows in the same run. One call over HTTP
(``GET /api/v1/stats``) is timed too when that route exists.
"""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import text

from bench.harness import Context, Outcome, Row, Skip, log, median, timed
from bench.ledger import ensure_cases, fill_workflow
from bench.server import serve

PERIODS = {
    "year 2025-11-01..2026-10-31": (date(2025, 11, 1), date(2026, 10, 31)),
    "month 2026-10-01..2026-10-31": (date(2026, 10, 1), date(2026, 10, 31)),
}


def _count(ctx: Context, lo, hi) -> int:  # noqa: ANN001
    with ctx.engine.connect() as conn:
        return conn.execute(text('SELECT count(*) FROM "case" WHERE received_at >= :lo'
                                 " AND received_at < :hi"), {"lo": lo, "hi": hi}).scalar_one()


def _http(ctx: Context, group_by: str, d_from: date, d_to: date) -> tuple[float | None, str]:
    """Seconds of one GET /api/v1/stats (after one warm-up call), or None and why not."""
    from cases.tokens import create_token

    with ctx.engine.begin() as conn:
        _, secret = create_token(conn, "planner", "bench stats")
    with serve(ctx.url, workers=1, log_path=ctx.workdir / "serve_stats.log") as base, \
            httpx.Client(base_url=base, timeout=120,
                         headers={"Authorization": f"Bearer {secret}"}) as client:
        params = {"group_by": group_by, "from": d_from.isoformat(), "to": d_to.isoformat()}
        first = client.get("/api/v1/stats", params=params)
        if first.status_code == 404 and "Not Found" in first.text:
            return None, "GET /api/v1/stats is not served yet"
        if first.status_code != 200:
            return None, f"GET /api/v1/stats answered {first.status_code}: {first.text[:120]}"
        t, resp = timed(lambda: client.get("/api/v1/stats", params=params))
        return t, f"{len(resp.content) / 1024:.0f} KiB"


def run(ctx: Context) -> Outcome:
    """Every grouping x both periods, median of repeats, beside count(*)."""
    try:
        from cases.stats import GROUPS, compute_stats, period_bounds
    except ImportError as exc:
        raise Skip(f"cases.stats is missing ({exc})") from None
    n = ctx.n(1_000_000, 5_000)
    total = ensure_cases(ctx.engine, n, ctx.community_generation, log=log)
    states = fill_workflow(ctx.engine, log=log)
    log(f"stats: ledger of {total:,} cases: {states}")
    repeats = ctx.repeats(3)
    rows: list[Row] = []
    lines = ["## Statistics: every grouping", "",
             f"`cases.stats.compute_stats` on a ledger of {total:,} cases; median of {repeats} "
             "(ms), beside `SELECT count(*)` over the same cohort.", "",
             "| period | cases | group_by | ms | count(*) ms |", "|---|---|---|---|---|"]
    for label, (d_from, d_to) in PERIODS.items():
        lo, hi = period_bounds(d_from, d_to)
        cohort = _count(ctx, lo, hi)
        base = median([timed(lambda lo=lo, hi=hi: _count(ctx, lo, hi))[0] * 1000
                       for _ in range(repeats)])
        worst, worst_by = 0.0, ""
        for group_by in GROUPS:
            times = []
            for _ in range(repeats):
                with ctx.engine.connect() as conn:
                    t, _ = timed(lambda conn=conn, g=group_by, a=d_from, b=d_to: compute_stats(conn, g, a, b))
                times.append(t * 1000)
            ms = median(times)
            log(f"stats: {label} by {group_by}: {ms:.0f} ms (count(*) {base:.0f} ms, {cohort:,} cases)")
            lines.append(f"| {label} | {cohort:,} | {group_by} | {ms:.0f} | {base:.0f} |")
            if ms > worst:
                worst, worst_by = ms, group_by
        rows.append(Row("stats", f"compute_stats, {label}, slowest grouping ({worst_by})", worst,
                        "ms", "SELECT count(*) same cohort", base, "< 500 ms", worst < 500,
                        note=f"{cohort:,} cases, median of {repeats}"))
    d_from, d_to = PERIODS["year 2025-11-01..2026-10-31"]
    t, why = _http(ctx, "community", d_from, d_to)
    if t is None:
        rows.append(Row("stats", "GET /api/v1/stats?group_by=community, year", None, "",
                        target="< 500 ms", note=f"skipped: {why}"))
    else:
        rows.append(Row("stats", "GET /api/v1/stats?group_by=community, year (HTTP)", t * 1000,
                        "ms", "", None, "< 500 ms", t * 1000 < 500, note=why))
    return Outcome(rows, ["\n".join(lines)])
