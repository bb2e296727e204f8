"""Workbench (issue 21): the pages people work in, beside the JSON calls that return the
same rows, on a ledger of a million cases with a hundred thousand open.

One ``casegrid serve`` (one worker, JSON logs); a dispatcher signed in with a session
cookie asks for the pages, a dispatcher's API token for the JSON, in interleaved rounds
(page, JSON, page, JSON, ...) so that load from elsewhere on the machine falls on both
alike. **Server time** is the ``duration_ms`` of each request's own log line
(:mod:`api.observability`, matched by the ``X-Request-ID`` sent), so the client and the
loopback are not counted. Pairs:

* ``/work`` (the queues with counts) beside ``GET /api/v1/queues``;
* ``/work/queue/dispatch`` (a page of 50) beside ``GET /api/v1/queues/dispatch?limit=50``
  (the page's list of queues gets its counts in a second request, ``/work/nav``, which
  costs what ``/work`` costs);
* ``/work/cases/{id}`` (cases of that queue, in turn) beside the two JSON calls that return
  the rows it shows, the case and its history (``GET /api/v1/cases/{id}`` and
  ``.../history``, their server times added; the case call alone is in the note);
* ``/work/search?q=`` beside ``GET /api/v1/search?q=`` for address words (street and house
  number), a street name alone, and a reporter's phone (one hit: the page answers with a
  303 to the case).

The section beside the table shows the plans of the search's address and phone queries
(``EXPLAIN ANALYZE`` of the statements :func:`cases.search.search_cases` sends), so the
indexes of migration 0024 are seen at work.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

import httpx
from sqlalchemy import event, text

from bench.harness import Context, Outcome, Row, log, percentile
from bench.ledger import ensure_cases, fill_workflow
from bench.server import serve, server_ms

TARGET_MS = 150.0
TARGET_RATIO = 1.5
QUEUE = "dispatch"
PAGE_SIZE = 50  # Settings.queue_page_size's default, the size the page shows
USERNAME = "bench-dispatcher"
PASSWORD = "bench workbench password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _open_count(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(text('SELECT count(*) FROM "case" WHERE closed_at IS NULL')).scalar_one()


def _people(ctx: Context) -> str:
    """A dispatcher's account (for the pages) and a dispatcher's token (for the JSON)."""
    from cases.tokens import create_token
    from cases.users import create_user

    with ctx.engine.begin() as conn:
        known = conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"),
                             {"u": USERNAME}).first()
        if known is None:
            create_user(conn, USERNAME, "dispatcher", PASSWORD, display_name="调度员(基准)")
        return create_token(conn, "dispatcher", "bench workbench")[1]


def _targets(ctx: Context, rounds: int) -> dict[str, list[str]]:
    """What the rounds ask for: cases of the dispatch queue, address words and phones of
    cases in the ledger (a deterministic spread of them)."""
    from cases import queues
    from cases.tokens import Principal

    who = Principal(None, "bench", "dispatcher")
    with ctx.engine.connect() as conn:
        page = queues.queue_page(conn, queues.get_queue(QUEUE), who, limit=PAGE_SIZE)
        picks = conn.execute(text(
            'SELECT address, reporter_phone FROM "case" WHERE address IS NOT NULL '
            "AND reporter_phone IS NOT NULL AND id % 997 = 1 ORDER BY id LIMIT :n"),
            {"n": rounds}).all()
    if not page.items or not picks:
        raise RuntimeError("the ledger has no dispatchable case or no case with an address "
                           "and a phone: bench.ledger did not fill it")
    words = [a.removeprefix("滕州市") for a, _p in picks]
    streets = sorted({re.sub(r"[0-9]+号$", "", w) for w in words})
    return {"cases": [str(r["id"]) for r in page.items],
            "address": words, "street": streets, "phone": [p for _a, p in picks]}


def _sign_in(client: httpx.Client) -> None:
    form = client.get("/login")
    m = _CSRF.search(form.text)
    if form.status_code != 200 or m is None:
        raise RuntimeError(f"GET /login answered {form.status_code} without a form token")
    r = client.post("/login", data={"username": USERNAME, "password": PASSWORD,
                                    "csrf_token": m.group(1), "next": "/work"},
                    follow_redirects=False)
    if r.status_code != 303:
        raise RuntimeError(f"POST /login answered {r.status_code}, not 303")


def _pairs(targets: dict[str, list[str]], i: int) -> list[tuple[str, str, str | tuple[str, ...]]]:
    """(figure, page URL, JSON URL or URLs) of round ``i``."""
    def pick(kind: str) -> str:
        values = targets[kind]
        return values[i % len(values)]

    case = pick("cases")
    out = [("home", "/work", "/api/v1/queues"),
           ("queue", f"/work/queue/{QUEUE}", f"/api/v1/queues/{QUEUE}?limit={PAGE_SIZE}"),
           ("case", f"/work/cases/{case}?queue={QUEUE}",
            (f"/api/v1/cases/{case}", f"/api/v1/cases/{case}/history"))]
    for kind in ("address", "street", "phone"):
        q = httpx.QueryParams({"q": pick(kind)})
        out.append((f"search_{kind}", f"/work/search?{q}", f"/api/v1/search?{q}"))
    return out


def _drive(base: str, secret: str, targets: dict[str, list[str]], rounds: int,
           warm: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Run the rounds; (figure/kind -> request ids, figure/kind -> rows answered)."""
    ids: dict[str, list[str]] = defaultdict(list)  # "figure/kind/round" -> request ids
    rows: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=120, follow_redirects=False) as page, \
            httpx.Client(base_url=base, timeout=120,
                         headers={"Authorization": f"Bearer {secret}"}) as api:
        _sign_in(page)
        for i in range(-warm, rounds):
            for figure, page_url, json_urls in _pairs(targets, i):
                calls = [("page", page, page_url)] + [
                    ("json", api, u) for u in ((json_urls,) if isinstance(json_urls, str) else json_urls)]
                for n, (kind, client, url) in enumerate(calls):
                    rid = f"wb-{figure}-{kind}-{i}-{n}"
                    r = client.get(url, headers={"X-Request-ID": rid})
                    if r.status_code not in (200, 303):
                        raise RuntimeError(f"GET {url} answered {r.status_code}: {r.text[:200]}")
                    if i >= 0:
                        ids[f"{figure}/{kind}/{i}"].append(rid)
                        if kind == "json" and i == 0 and n == 1:
                            body = r.json()
                            rows[figure] = len(body.get("items") or body.get("queues") or [1])
            if i >= 0 and (i + 1) % max(1, rounds // 4) == 0:
                log(f"workbench: round {i + 1}/{rounds}")
    return ids, rows


def _per_round(ids: dict[str, list[str]], server: dict[str, float], figure: str, kind: str,
               rounds: int, only_first: bool = False) -> list[float]:
    """Server ms of each round's page (or JSON calls, added up), rounds with every line found."""
    out = []
    for i in range(rounds):
        rids = ids.get(f"{figure}/{kind}/{i}", [])[:1 if only_first else None]
        if rids and all(r in server for r in rids):
            out.append(sum(server[r] for r in rids))
    return out


def _plans(ctx: Context, targets: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(what, EXPLAIN ANALYZE text) of the statements the search sends for address words,
    a street name and a phone, as a dispatcher."""
    from cases.search import search_cases
    from cases.tokens import Principal

    who = Principal(None, "bench", "dispatcher")
    out = []
    for what, q in (("address words", targets["address"][0]), ("street name", targets["street"][0]),
                    ("phone", targets["phone"][0])):
        sent: list[tuple[str, object]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many,  # noqa: ANN001
                    sent=sent):
            sent.append((statement, parameters))

        with ctx.engine.connect() as conn:
            event.listen(conn, "before_cursor_execute", capture)
            try:
                search_cases(conn, q, who)
            finally:
                event.remove(conn, "before_cursor_execute", capture)
            statement, params = sent[-1]  # the look-up that answered (or the address words)
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement,
                                        params).scalars().all()
        out.append((f"{what} `{q}` ({len(sent)} statement(s) sent)", "\n".join(plan)))
    return out


def run(ctx: Context) -> Outcome:
    """Serve, sign in, drive the interleaved rounds, read the server's times."""
    n = ctx.n(1_000_000, 20_000)
    total = ensure_cases(ctx.engine, n, ctx.community_generation, log=log)
    fill_workflow(ctx.engine, log=log)
    open_n = _open_count(ctx)
    rounds, warm = ctx.repeats(60, 15), 3
    secret = _people(ctx)
    targets = _targets(ctx, rounds)
    log(f"workbench: {total:,} cases, {open_n:,} open; {rounds} rounds of "
        f"{len(_pairs(targets, 0))} page/JSON pairs")
    log_path = ctx.workdir / "serve_workbench.log"
    t0 = time.perf_counter()
    with serve(ctx.url, workers=1, log_path=log_path,
               extra_env={"CASEGRID_LOG_FORMAT": "json"}) as base:
        ids, answered = _drive(base, secret, targets, rounds, warm)
    log(f"workbench: {sum(len(v) for v in ids.values())} requests in {time.perf_counter() - t0:.0f} s")
    server = server_ms(log_path, "wb-")
    labels = {
        "home": ("`/work` (queues with counts)", "`GET /api/v1/queues`"),
        "queue": (f"`/work/queue/{QUEUE}` ({PAGE_SIZE} rows)",
                  f"`GET /api/v1/queues/{QUEUE}?limit={PAGE_SIZE}`"),
        "case": ("`/work/cases/{id}` (the dispatch queue's cases in turn)",
                 "`GET /api/v1/cases/{id}` + `GET /api/v1/cases/{id}/history`"),
        "search_address": ("`/work/search`, address words (street + house no.)", "`GET /api/v1/search`, same q"),
        "search_street": ("`/work/search`, a street name alone", "`GET /api/v1/search`, same q"),
        "search_phone": ("`/work/search`, a reporter's phone (303 to the case)", "`GET /api/v1/search`, same q"),
    }
    rows: list[Row] = []
    for figure, (page_label, json_label) in labels.items():
        page = _per_round(ids, server, figure, "page", rounds)
        api = _per_round(ids, server, figure, "json", rounds)
        first = _per_round(ids, server, figure, "json", rounds, only_first=True)
        if not page or not api:
            rows.append(Row("workbench", f"{page_label} server p95", None, "",
                            note="failed: no server log lines for its requests"))
            continue
        p95, base95 = percentile(page, 95), percentile(api, 95)
        ok = p95 <= TARGET_MS and p95 <= TARGET_RATIO * base95
        rows.append(Row("workbench", f"{page_label} server p95, {total:,} cases / {open_n:,} open",
                        p95, "ms", json_label, base95, f"≤ {TARGET_MS:.0f} ms and ≤ {TARGET_RATIO}×",
                        ok, note=f"p50 {percentile(page, 50):.1f} beside {percentile(api, 50):.1f} ms; "
                                 f"{len(page)} rounds; JSON rows {answered.get(figure, '?')}"
                                 + (f"; the case call alone p95 {percentile(first, 95):.1f} ms"
                                    if first != api else "")))
    plans = _plans(ctx, targets)
    section = [
        "## Workbench: the search's query plans",
        "",
        f"`EXPLAIN (ANALYZE, BUFFERS)` of the statement `cases.search.search_cases` sent last "
        f"for each kind of query, as a dispatcher, on the same ledger ({total:,} cases):",
        "",
    ]
    for what, plan in plans:
        section += [f"**{what}**", "", "```", plan, "```", ""]
    return Outcome(rows, ["\n".join(section)])
