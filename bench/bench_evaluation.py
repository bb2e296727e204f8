"""Evaluation (issue 25): the posts' evaluation for a year of a million-case ledger beside
``compute_stats`` for the same period and grouping in the same run (target at most 1.5x:
the evaluation is the indicators plus a weighted sum), and the leadership overview's
server time for the last month of the sample year (target under 500 ms).
"""

from __future__ import annotations

from datetime import date

from bench.harness import Context, Outcome, Row, log, median, timed
from bench.ledger import ensure_cases, fill_workflow

YEAR = (date(2025, 11, 1), date(2026, 10, 31))
MONTH = date(2026, 10, 1)


def run(ctx: Context) -> Outcome:
    """Median of repeats, interleaved, of evaluate() and compute_stats(); overview()."""
    from cases.evaluation import evaluate
    from cases.overview import overview
    from cases.stats import compute_stats

    n = ctx.n(1_000_000, 5_000)
    total = ensure_cases(ctx.engine, n, ctx.community_generation, log=log)
    fill_workflow(ctx.engine, log=log)
    repeats = ctx.repeats(3)
    ours, base, page = [], [], []
    for _ in range(repeats):
        with ctx.engine.connect() as conn:
            t, result = timed(lambda conn=conn: evaluate(conn, "post", *YEAR))
            ours.append(t * 1000)
            t, _ = timed(lambda conn=conn: compute_stats(conn, "community", *YEAR))
            base.append(t * 1000)
            t, _ = timed(lambda conn=conn: overview(conn, MONTH))
            page.append(t * 1000)
    e, s, o = median(ours), median(base), median(page)
    log(f"evaluation: {e:.0f} ms beside compute_stats {s:.0f} ms; overview {o:.0f} ms")
    note = f"{total:,} cases, {len(result['ranked'])} posts ranked, median of {repeats}"
    return Outcome([
        Row("evaluation", "evaluate(level=post), a year", e, "ms",
            "compute_stats(group_by=community), same year", s, "≤ 1.5×", e <= 1.5 * s, note=note),
        Row("evaluation", "overview(): the leadership page's data for a month (3 months of "
            "indicators, the evaluation, activities)", o, "ms", "", None, "< 500 ms", o < 500,
            note=f"{total:,} cases"),
    ])
