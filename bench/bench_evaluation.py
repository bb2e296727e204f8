"""Evaluation (issue 25): the posts' evaluation for a year of a million-case ledger beside
``compute_stats`` for the same period and grouping in the same run (target at most 1.5x:
the evaluation is the indicators plus a weighted sum), and the leadership overview page's
server time for the last month of the sample year (target under 500 ms).

The page is asked for as a supervisor would: one ``casegrid serve`` (one worker, JSON logs),
signed in with a session cookie, ``GET /work/overview?month=``; its **server time** is the
``duration_ms`` of the request's own log line (matched by the ``X-Request-ID`` sent), so the
client and the loopback are not counted. ``overview()``, the page's data, is timed
in-process beside it, so the rendering's share is seen.
"""

from __future__ import annotations

import re
from datetime import date

import httpx
from sqlalchemy import text

from bench.harness import Context, Outcome, Row, log, median, percentile, timed
from bench.ledger import ensure_cases, fill_workflow
from bench.server import serve, server_ms

YEAR = (date(2025, 11, 1), date(2026, 10, 31))
MONTH = date(2026, 10, 1)
PAGE = f"/work/overview?month={MONTH:%Y-%m}"
USERNAME = "bench-supervisor"
PASSWORD = "bench overview password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _supervisor(ctx: Context) -> None:
    from cases.users import create_user

    with ctx.engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"),
                        {"u": USERNAME}).first() is None:
            create_user(conn, USERNAME, "supervisor", PASSWORD, display_name="局领导(基准)")


def _page_server_ms(ctx: Context, rounds: int, warm: int) -> list[float]:
    """Server times (ms) of ``rounds`` loads of the overview page after ``warm`` loads."""
    log_path = ctx.workdir / "serve_overview.log"
    with serve(ctx.url, workers=1, log_path=log_path,
               extra_env={"CASEGRID_LOG_FORMAT": "json"}) as base, \
            httpx.Client(base_url=base, timeout=120, follow_redirects=False) as client:
        form = client.get("/login")
        m = _CSRF.search(form.text)
        if m is None:
            raise RuntimeError(f"GET /login answered {form.status_code} without a form token")
        r = client.post("/login", data={"username": USERNAME, "password": PASSWORD,
                                        "csrf_token": m.group(1), "next": "/work"})
        if r.status_code != 303:
            raise RuntimeError(f"POST /login answered {r.status_code}, not 303")
        ids = []
        for i in range(-warm, rounds):
            rid = f"ov-{i}"
            r = client.get(PAGE, headers={"X-Request-ID": rid})
            if r.status_code != 200 or "ov-kpi" not in r.text:
                raise RuntimeError(f"GET {PAGE} answered {r.status_code}: {r.text[:200]}")
            if i >= 0:
                ids.append(rid)
    server = server_ms(log_path, "ov-")
    return [server[r] for r in ids if r in server]


def run(ctx: Context) -> Outcome:
    """Median of repeats, interleaved, of evaluate() and compute_stats(); the overview page
    over HTTP, and its data in-process."""
    from cases.evaluation import evaluate
    from cases.overview import overview
    from cases.stats import compute_stats

    n = ctx.n(1_000_000, 5_000)
    total = ensure_cases(ctx.engine, n, ctx.community_generation, log=log)
    fill_workflow(ctx.engine, log=log)
    repeats = ctx.repeats(5, 1)
    ours, base, data = [], [], []
    for _ in range(repeats):
        with ctx.engine.connect() as conn:
            t, result = timed(lambda conn=conn: evaluate(conn, "post", *YEAR))
            ours.append(t * 1000)
            t, _ = timed(lambda conn=conn: compute_stats(conn, "community", *YEAR))
            base.append(t * 1000)
            t, _ = timed(lambda conn=conn: overview(conn, MONTH))
            data.append(t * 1000)
    e, s, o = median(ours), median(base), median(data)
    log(f"evaluation: {e:.0f} ms beside compute_stats {s:.0f} ms; overview() {o:.0f} ms")
    _supervisor(ctx)
    pages = _page_server_ms(ctx, ctx.repeats(15, 3), warm=2)
    if not pages:
        raise RuntimeError("no server log line for the overview page's requests")
    p50, p95 = percentile(pages, 50), percentile(pages, 95)
    log(f"evaluation: overview page server time p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    note = f"{total:,} cases, {len(result['ranked'])} posts ranked, median of {repeats}"
    return Outcome([
        Row("evaluation", "evaluate(level=post), a year", e, "ms",
            "compute_stats(group_by=community), same year", s, "≤ 1.5×", e <= 1.5 * s, note=note),
        Row("evaluation", f"`GET {PAGE}` (leadership overview page) server time, median",
            p50, "ms", "", None, "< 500 ms", p50 < 500,
            note=f"{total:,} cases; p95 {p95:.0f} ms over {len(pages)} loads, signed in as a "
                 f"supervisor; its data, overview(), in-process {o:.0f} ms (median of "
                 f"{repeats})"),
    ])
