"""Load held (issue 6, part 5): mixed traffic at a fixed rate for minutes, per-minute p50/p99.

``python -m bench.soak [--seconds 600] [--rate R] [--workers 2] [--out bench/out/soak.md]``

or, from the harness, :func:`run` ``(seconds, rate) -> dict`` (its ``"markdown"`` entry is
the section for ``bench/RESULTS.md``).

What it does: a throwaway, normally configured PostGIS (fsync on) with the sample city,
``casegrid serve --workers 2`` on it, and an open-loop load generator: request *i* is due
at ``start + i / rate`` whether or not earlier ones have finished, so a slow server shows
as latency and backlog instead of quietly lowering the rate (no coordinated omission:
latency is measured from the time a request was due, not from when it was sent).

The mix (of all requests): intake 80% (``POST /api/v1/cases``, unique ``external_id``,
realistic points from :mod:`bench.points`); reads 15% (case list with filters 6%, case
detail 5%, route dry-run 3%, statistics 1%); workflow 5% (``accept`` by a supervisor of a
case registered during the run, then ``dispatch`` by a dispatcher of an accepted one, each
with the version it was given, so a 409 is an error).

Pass: zero errors (any transport failure, or a status other than the one expected), and
p99 stable (the last minute's p99 at most twice the first minute's). After the run every
acknowledged case is checked to be in the ledger exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.harness import percentile
from casegrid.cluster import Cluster, free_port
from casegrid.db import make_engine, migrate
from casegrid.settings import PROJECT_ROOT

DEFAULT_SECONDS = 600
FALLBACK_RATE = 200.0
WARMUP_S = 10.0
WORKERS = 2
MAX_IN_FLIGHT = 256
CLIENT_TIMEOUT_S = 30.0
STABLE_P99_RATIO = 2.0
OUT_PATH = PROJECT_ROOT / "bench" / "out" / "soak.md"
RESULTS_PATH = PROJECT_ROOT / "bench" / "RESULTS.md"

# kind -> share of all requests (sums to 1).
MIX: dict[str, float] = {
    "intake": 0.80,
    "list": 0.06,
    "detail": 0.05,
    "route": 0.03,
    "stats": 0.01,
    "accept": 0.025,
    "dispatch": 0.025,
}
_CATEGORIES = ("0599", "0599", "0599", "0504", "0102", "0101", "0301", "0508", "0505", "0103")
_CHANNELS = ("platform", "hotline_12345", "app")


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def intake_rate_from_results(path: Path = RESULTS_PATH) -> float | None:
    """The cases/s the intake benchmark reached, from RESULTS.md (None if not there)."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in content.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[0] == "intake" and cells[1].startswith("cases/s"):
            m = re.match(r"([\d,.]+)", cells[2])
            if m:
                return float(m.group(1).replace(",", ""))
    return None


# --- the load -------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request: its kind, when it was due (s from start), latency from then, outcome."""

    kind: str
    due: float
    latency_ms: float
    status: int  # 0: no response
    ok: bool
    note: str = ""


@dataclass
class _State:
    """What the generator learned from earlier answers: cases to read and to act on."""

    tokens: dict[str, str]
    points: list[tuple[float, float]]
    acked: dict[str, int] = field(default_factory=dict)  # external_id -> case id
    ids: list[int] = field(default_factory=list)
    registered: list[tuple[int, int]] = field(default_factory=list)  # (id, version)
    reviewed: list[tuple[int, int]] = field(default_factory=list)
    communities: list[str] = field(default_factory=list)
    seq: int = 0


def _pick(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


def _request(kind: str, st: _State, rng: random.Random) -> tuple[str, str, dict, str, tuple[int, ...]]:
    """(method, path, kwargs, role, expected statuses) for one request of ``kind``; a kind
    that has nothing to work on yet (no case registered) falls back to intake."""
    if kind == "accept" and not st.registered:
        kind = "intake"
    if kind == "dispatch" and not st.reviewed:
        kind = "accept" if st.registered else "intake"
    if kind == "detail" and not st.ids:
        kind = "route"
    if kind == "intake":
        st.seq += 1
        lon, lat = st.points[st.seq % len(st.points)]
        body = {"lon": round(lon, 7), "lat": round(lat, 7), "crs": "wgs84",
                "category": rng.choice(_CATEGORIES), "channel": rng.choice(_CHANNELS),
                "external_id": f"soak-{st.seq}", "description": "持续负载: 夜间噪音扰民",
                "address": "滕州市龙泉街道", "reporter_phone": "13800000000"}
        return "POST", "/api/v1/cases", {"json": body}, "intake", (201,)
    if kind == "list":
        params: dict = {"limit": 50}
        roll = rng.random()
        if roll < 0.4:
            params["status"] = "registered,reviewed"
        elif roll < 0.7 and st.communities:
            params["community"] = rng.choice(st.communities)
        else:
            params["category"] = rng.choice(_CATEGORIES)
            params["bbox"] = "117.10,35.04,117.22,35.14"
        return "GET", "/api/v1/cases", {"params": params}, "dispatcher", (200,)
    if kind == "detail":
        case_id = rng.choice(st.ids[-2000:])
        return "GET", f"/api/v1/cases/{case_id}", {}, "dispatcher", (200,)
    if kind == "route":
        lon, lat = rng.choice(st.points)
        return "GET", "/api/v1/route", {"params": {"lon": lon, "lat": lat}}, "dispatcher", (200,)
    if kind == "stats":
        today = date.today()
        params = {"group_by": rng.choice(("community", "category", "subdistrict")),
                  "from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()}
        return "GET", "/api/v1/stats", {"params": params}, "planner", (200,)
    if kind == "accept":
        case_id, version = st.registered.pop(rng.randrange(len(st.registered)))
        return ("POST", f"/api/v1/cases/{case_id}/actions",
                {"json": {"action": "accept", "version": version}}, "supervisor", (200,))
    case_id, version = st.reviewed.pop(rng.randrange(len(st.reviewed)))
    return ("POST", f"/api/v1/cases/{case_id}/actions",
            {"json": {"action": "dispatch", "version": version}}, "dispatcher", (200,))


def _learn(kind: str, body: dict, st: _State) -> None:
    """Remember what a successful answer makes possible next."""
    if kind == "intake":
        st.acked[body["external_id"]] = body["id"]
        st.ids.append(body["id"])
        if (body.get("routing") or {}).get("community_code"):  # dispatchable
            st.registered.append((body["id"], body["version"]))
    elif kind == "accept":
        st.reviewed.append((body["id"], body["version"]))


def _kind_of(method: str, path: str, kwargs: dict) -> str:
    if path == "/api/v1/cases":
        return "intake" if method == "POST" else "list"
    if path.endswith("/actions"):
        return kwargs["json"]["action"]
    return {"/api/v1/route": "route", "/api/v1/stats": "stats"}.get(path, "detail")


async def _one(http: httpx.AsyncClient, st: _State, rng: random.Random, kind: str, due: float,
               t0: float, samples: list[Sample] | None) -> None:
    method, path, kwargs, role, expected = _request(kind, st, rng)
    kind = _kind_of(method, path, kwargs)
    headers = {"Authorization": f"Bearer {st.tokens[role]}"}
    status, note, body = 0, "", None
    try:
        resp = await http.request(method, path, headers=headers, **kwargs)
        status = resp.status_code
        if status in expected:
            body = resp.json()
        else:
            note = resp.text[:200]
    except httpx.HTTPError as exc:
        note = repr(exc)[:200]
    latency = (time.perf_counter() - (t0 + due)) * 1000
    ok = status in expected
    if ok and body is not None:
        _learn(kind, body, st)
    if samples is not None:
        samples.append(Sample(kind, due, latency, status, ok, note))


async def _drive(base: str, st: _State, seconds: float, rate: float, seed: int,
                 samples: list[Sample] | None) -> dict:
    """Send ``rate`` requests per second for ``seconds`` on an open-loop schedule."""
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    in_flight: set[asyncio.Task] = set()
    loadavg: list[float] = []  # 1-minute load average at the end of each minute
    shed = 0
    max_lag = 0.0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=CLIENT_TIMEOUT_S) as http:
        t0 = time.perf_counter()
        total = int(seconds * rate)
        for i in range(total):
            due = i / rate
            delay = t0 + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
            if i and i % int(60 * rate) == 0:
                loadavg.append(os.getloadavg()[0])
            kind = _pick(rng)
            if len(in_flight) >= MAX_IN_FLIGHT:
                # The server is this far behind: count the request as failed instead of
                # letting the backlog grow without bound.
                shed += 1
                if samples is not None:
                    samples.append(Sample(kind, due, 0.0, 0, False, "shed: too many in flight"))
                continue
            task = asyncio.create_task(_one(http, st, rng, kind, due, t0, samples))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.gather(*in_flight)
        elapsed = time.perf_counter() - t0
    loadavg.append(os.getloadavg()[0])
    return {"elapsed": elapsed, "shed": shed, "max_schedule_lag_s": max_lag, "loadavg": loadavg}


# --- setup ----------------------------------------------------------------------------------


def _points(n: int) -> list[tuple[float, float]]:
    from bench.points import generate_points

    lon, lat = generate_points(n, seed=61)
    return [(float(x), float(y)) for x, y in zip(lon, lat, strict=True)]


def _prepare(url: str) -> tuple[dict[str, str], list[str]]:
    """Sample city and one token per role the load uses; the community codes."""
    from casegrid.demo.city import load_sample_city
    from cases.tokens import create_token

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            load_sample_city(conn)
            tokens = {role: create_token(conn, role, f"soak {role}")[1]
                      for role in ("intake", "dispatcher", "supervisor", "planner")}
            communities = [r[0] for r in conn.execute(text(
                "SELECT DISTINCT code FROM community ORDER BY code"))]
    finally:
        engine.dispose()
    return tokens, communities


def _check_ledger(url: str, acked: dict[str, int]) -> dict:
    """Every acknowledged case stored under its ticket, none twice."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(text(
                "SELECT external_id, id FROM \"case\" WHERE external_id LIKE 'soak-%'")).all())
            doubled = conn.execute(text(
                "SELECT count(*) FROM (SELECT 1 FROM \"case\" WHERE external_id IS NOT NULL "
                "GROUP BY channel, external_id HAVING count(*) > 1) d")).scalar_one()
    finally:
        engine.dispose()
    lost = sum(1 for ext, cid in acked.items() if stored.get(ext) != cid)
    return {"acknowledged": len(acked), "stored": len(stored), "lost": lost, "doubled": doubled}


# --- the report -----------------------------------------------------------------------------


def summarise(samples: list[Sample], seconds: float, rate: float) -> dict:
    """Per-minute and overall figures of the measured samples."""
    minutes = []
    n_min = max(1, int(-(-seconds // 60)))
    for m in range(n_min):
        part = [s for s in samples if m * 60 <= s.due < (m + 1) * 60]
        span = min(60.0, seconds - m * 60)
        lat = [s.latency_ms for s in part if s.ok]
        minutes.append({
            "minute": m + 1, "requests": len(part), "rate": len(part) / span if span else 0.0,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else float("nan"),
            "errors": sum(1 for s in part if not s.ok),
        })
    kinds = {}
    for kind in MIX:
        part = [s for s in samples if s.kind == kind]
        lat = [s.latency_ms for s in part if s.ok]
        kinds[kind] = {"requests": len(part), "share": len(part) / max(1, len(samples)),
                       "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                       "errors": sum(1 for s in part if not s.ok)}
    ok_lat = [s.latency_ms for s in samples if s.ok]
    errors = [s for s in samples if not s.ok]
    error_kinds: dict[str, int] = {}
    for s in errors:
        key = f"{s.kind} {s.status or 'no answer'}"
        error_kinds[key] = error_kinds.get(key, 0) + 1
    first, last = minutes[0]["p99_ms"], minutes[-1]["p99_ms"]
    ratio = last / first if first and first == first and last == last else float("nan")
    p99s = sorted(m["p99_ms"] for m in minutes if m["p99_ms"] == m["p99_ms"])
    worst = max(minutes, key=lambda m: m["p99_ms"] if m["p99_ms"] == m["p99_ms"] else -1.0)
    return {
        "seconds": seconds, "rate": rate, "requests": len(samples),
        "achieved_rate": len(samples) / seconds if seconds else 0.0,
        "errors": len(errors), "error_kinds": error_kinds,
        "error_examples": [f"{s.kind} {s.status}: {s.note}" for s in errors[:5]],
        "p50_ms": percentile(ok_lat, 50), "p99_ms": percentile(ok_lat, 99),
        "max_ms": max(ok_lat) if ok_lat else float("nan"),
        "minutes": minutes, "kinds": kinds, "p99_last_over_first": ratio,
        "worst_minute": worst["minute"],
        "worst_over_median_p99": (worst["p99_ms"] / p99s[len(p99s) // 2]) if p99s else float("nan"),
        "zero_errors": not errors, "p99_stable": ratio <= STABLE_P99_RATIO,
    }


def _f(v: float, digits: int = 1) -> str:
    return "n/a" if v != v else f"{v:,.{digits}f}"


def render(result: dict) -> str:
    """The Markdown section for RESULTS.md."""
    r = result
    verdict = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    lines = [
        "## Load held: mixed traffic for "
        f"{r['seconds'] / 60:.0f} minutes at {r['rate']:g} requests/s",
        "",
        f"`python -m bench.soak --seconds {r['seconds']:g} --rate {r['rate']:g}`: "
        f"`casegrid serve --workers {r.get('workers', WORKERS)}` on a throwaway PostGIS "
        "(fsync on) with the sample city; open-loop schedule (latency counted from when a "
        "request was due, so a backlog shows); mix "
        + ", ".join(f"{k} {v:.0%}" for k, v in MIX.items())
        + f"; a {WARMUP_S:.0f} s warm-up is not counted.",
        "",
        "| minute | requests | req/s | p50 ms | p99 ms | max ms | errors | machine load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    loads = r.get("loadavg") or []
    for i, m in enumerate(r["minutes"]):
        load = f"{loads[i]:.2f}" if i < len(loads) else "—"
        lines.append(f"| {m['minute']} | {m['requests']:,} | {_f(m['rate'])} | {_f(m['p50_ms'])} "
                     f"| {_f(m['p99_ms'])} | {_f(m['max_ms'])} | {m['errors']} | {load} |")
    lines += [
        f"| **all** | {r['requests']:,} | {_f(r['achieved_rate'])} | {_f(r['p50_ms'])} "
        f"| {_f(r['p99_ms'])} | {_f(r['max_ms'])} | {r['errors']} | |",
        "",
        "| kind | requests | share | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for kind, k in r["kinds"].items():
        lines.append(f"| {kind} | {k['requests']:,} | {k['share']:.1%} | {_f(k['p50_ms'])} "
                     f"| {_f(k['p99_ms'])} | {k['errors']} |")
    ledger = r.get("ledger", {})
    lines += [
        "",
        f"- zero errors: {verdict(r['zero_errors'])} ({r['errors']} errors"
        + (f": {r['error_kinds']}" if r["errors"] else "") + ")",
        f"- p99 stable (last minute ≤ {STABLE_P99_RATIO:g}× first): "
        f"{verdict(r['p99_stable'])} ({_f(r['minutes'][-1]['p99_ms'])} ms vs "
        f"{_f(r['minutes'][0]['p99_ms'])} ms, {_f(r['p99_last_over_first'], 2)}×)",
        f"- worst minute: {r['worst_minute']}, p99 {_f(r['worst_over_median_p99'], 1)}× the median "
        "minute's (a spike between first and last minute shows here, not in the criterion above)",
    ]
    if ledger:
        lines.append(f"- ledger: {ledger['acknowledged']:,} cases acknowledged, "
                     f"{ledger['stored']:,} stored, {ledger['lost']} lost, "
                     f"{ledger['doubled']} doubled")
    if r.get("max_schedule_lag_s") is not None:
        lines.append(f"- load generator: largest lag behind schedule "
                     f"{r['max_schedule_lag_s'] * 1000:.0f} ms, {r.get('shed', 0)} requests shed")
    if r.get("load_before") and r.get("load_after"):
        lines.append(f"- machine load average (1 min) before/after: {r['load_before']:.2f} / "
                     f"{r['load_after']:.2f} (shared machine, 2 cores)")
    return "\n".join(lines) + "\n"


# --- entry points ---------------------------------------------------------------------------


def run(seconds: float = DEFAULT_SECONDS, rate: float | None = None, workers: int = WORKERS,
        out: Path | None = OUT_PATH, seed: int = 6) -> dict:
    """Run the soak and return its figures (``"markdown"``: the RESULTS.md section, also
    written to ``out`` unless it is None). ``rate`` defaults to the intake benchmark's
    cases/s from RESULTS.md, else 200 requests/s."""
    from bench.server import serve

    rate = rate or intake_rate_from_results() or FALLBACK_RATE
    workdir = Path(tempfile.mkdtemp(prefix="casegrid-soak-"))
    cluster = Cluster(data_dir=workdir / "pg", port=free_port(), db_name="casegrid_soak")
    load_before = os.getloadavg()[0]
    try:
        log(f"starting a throwaway PostgreSQL on port {cluster.port}")
        cluster.start()
        cluster.create_database("casegrid_soak")
        url = cluster.url()
        migrate(url)
        tokens, communities = _prepare(url)
        state = _State(tokens, _points(20_000), communities=communities)
        with serve(url, workers=workers, log_path=workdir / "serve.log") as base:
            log(f"server up at {base} ({workers} workers); warm-up {WARMUP_S:.0f} s at {rate:g}/s")
            asyncio.run(_drive(base, state, WARMUP_S, rate, seed, None))
            log(f"measuring {seconds:.0f} s at {rate:g} requests/s")
            samples: list[Sample] = []
            drive = asyncio.run(_drive(base, state, seconds, rate, seed + 1, samples))
        result = summarise(samples, seconds, rate)
        result.update(drive, workers=workers, load_before=load_before,
                      load_after=os.getloadavg()[0])
        result["ledger"] = _check_ledger(url, state.acked)
        if result["ledger"]["lost"] or result["ledger"]["doubled"]:
            result["zero_errors"] = False
    finally:
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    result["markdown"] = render(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result["markdown"], encoding="utf-8")
        result["out_path"] = str(out)
    return result


def merge_section(results: Path, section: str) -> None:
    """Put the load-held section into ``results``, replacing the one an earlier run wrote."""
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    start = text.find("## Load held")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    results.write_text(text.rstrip() + "\n\n" + section.strip() + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """CLI: run, print the Markdown section; exit 1 when a requirement is not met."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                        help=f"measured duration (default {DEFAULT_SECONDS})")
    parser.add_argument("--rate", type=float, default=None,
                        help="requests/s (default: the intake benchmark's cases/s from "
                             f"RESULTS.md, else {FALLBACK_RATE:g})")
    parser.add_argument("--workers", type=int, default=WORKERS, help="uvicorn workers (default 2)")
    parser.add_argument("--out", type=Path, default=OUT_PATH, help="where to write the section")
    parser.add_argument("--results", type=Path, default=None,
                        help="also put the section into this RESULTS.md (replacing an earlier one)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or (args.rate is not None and args.rate <= 0):
        parser.error("--seconds and --rate must be positive")
    result = run(args.seconds, args.rate, args.workers, args.out)
    print(result["markdown"])
    if args.results:
        merge_section(args.results, result["markdown"])
    for example in result["error_examples"]:
        print(f"error: {example}", file=sys.stderr)
    return 0 if result["zero_errors"] and result["p99_stable"] else 1


if __name__ == "__main__":
    sys.exit(main())
