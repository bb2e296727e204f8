"""Privacy (issue 28): what masking free text costs intake, masking on beside off.

Alone (``python -m bench --only privacy_masking``) it needs only the sample city, no ledger:
a few minutes, for a quiet machine. ``privacy`` (the retention purge) is separate.

* **Over HTTP.** Two ``casegrid serve`` servers on the same database, one with
  ``CASEGRID_PRIVACY_MASK_FREE_TEXT=false``; wrk (``bench/wrk_intake.lua``) drives them in
  alternating rounds (off then on, on then off, ...: an even number, so each mode goes
  first as often) with a description that always holds a phone number, so every case pays
  the whole cost (the pre-check, the scan, the masked copy, the original kept in
  ``personal_text``). Rates count cases committed. Judged on the median of the rounds'
  ratios: each round runs both modes back to back, so a drift of the machine's load over
  the run cancels within a round; the ratio of the two modes' median rates is shown too.
* **In-process** (no HTTP): the CPU per case (this process and PostgreSQL's, from
  ``/proc``) of ``register_cases`` in batches of 32 (what the server's intake batching
  runs), masking on and off in alternating rounds: steadier than rates on a shared machine
  (intake is CPU-bound on two free cores). Beside it, the time of
  :func:`cases.privacy.mask_free_text` per description with a phone and without a number.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable

from sqlalchemy import text

from bench.bench_intake import CLIENTS, WORKERS, _wrk
from bench.cpu import cluster_cpu
from bench.harness import Context, Outcome, Row, Skip, log
from bench.points import generate_points
from bench.server import serve

DESCRIPTION = "文昌路12号楼下广场舞噪音扰民，来电人王先生，电话138 1234 5678，请尽快处理"
# The same complaint with no number in it (the common case: only the pre-check runs).
PLAIN = "文昌路12号楼下广场舞噪音扰民，来电人王先生，晚上八点到十点，请尽快处理"
ADDRESS = "滕州市龙泉街道"
TARGET_LOSS = 0.05
# A server's start limit (bench.server.serve): two workers importing the app on a machine
# shared with other work took longer than serve's default 60 s.
START_S = 240


def masking_cost_us(n: int, description: str = DESCRIPTION) -> float:
    """Microseconds of :func:`cases.privacy.mask_free_text` per description (best of 5)."""
    from cases.privacy import mask_free_text

    texts = [description.replace("5678", f"{i % 10000:04d}") for i in range(n)]
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for t in texts:
            mask_free_text(t, ADDRESS)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def register_cost(ctx: Context, rounds: int, n: int) -> dict[str, dict[str, list[float]]]:
    """``register_cases`` in batches of 32 with masking on and off, alternating which goes
    first each round (every description holds a phone): per mode and round, cases/s and
    the CPU microseconds per case of this process and the cluster's processes together
    (on a shared machine the CPU a case takes is steadier than the wall time it waits)."""
    from casegrid.settings import get_settings
    from cases.intake import NewCase, register_cases
    from cases.tokens import Principal

    principal = Principal(0, "bench privacy", "intake")
    base = get_settings()
    settings = {mode: base.model_copy(update={"privacy_mask_free_text": mode == "on"})
                for mode in ("on", "off")}
    lon, lat = generate_points(n * rounds * 2 + 2048, seed=2828)
    out: dict[str, dict[str, list[float]]] = {m: {"rate": [], "cpu_us": []} for m in settings}

    def cpu() -> float:
        return time.process_time() + sum(cluster_cpu(ctx.cluster.pgdata).values())

    k = 0

    def register(mode: str, n: int) -> None:
        nonlocal k
        for start in range(0, n, 32):
            subs = []
            for _ in range(start, min(n, start + 32)):
                subs.append((NewCase(
                    lon=round(float(lon[k]), 7), lat=round(float(lat[k]), 7),
                    category="0599", channel="platform", external_id=f"privacy-ip-{k}",
                    description=DESCRIPTION.replace("5678", f"{k % 10000:04d}"),
                    address=ADDRESS), principal))
                k += 1
            with ctx.engine.begin() as conn:
                register_cases(conn, subs, settings[mode], search_duplicates=False)

    for mode in settings:  # warm up, then plan on the tables' real sizes
        register(mode, 1024)
    _analyze(ctx)
    for r in range(rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            t0, c0 = time.perf_counter(), cpu()
            register(mode, n)
            out[mode]["rate"].append(n / (time.perf_counter() - t0))
            out[mode]["cpu_us"].append((cpu() - c0) / n * 1e6)
    return out


def _analyze(ctx: Context) -> None:
    """Statistics for the planner after the warm-up: alone, this benchmark starts on an
    empty ledger, and plans made for empty tables slow down as the rounds fill them."""
    with ctx.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _stored(ctx: Context, prefix: str) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM \"case\" WHERE channel = 'platform' AND external_id LIKE :p"),
            {"p": f"{prefix}-%"}).scalar_one()


def _listed(values: list[float], fmt: str = "{:,.0f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def intake_load(ctx: Context) -> Callable[[str, str, float], dict]:
    """``load(base, prefix, seconds)``: wrk's intake against the server at ``base`` with an
    intake token and the bench's points, every description :data:`DESCRIPTION` (the
    privacy benchmarks' one load generator)."""
    from cases.tokens import create_token

    with ctx.engine.begin() as conn:
        _, secret = create_token(conn, "intake", "bench privacy load generator")
    lon, lat = generate_points(ctx.n(200_000, 20_000), seed=29)
    points = ctx.workdir / "privacy_points.txt"
    points.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in zip(lon, lat, strict=True)))

    def load(base: str, prefix: str, secs: float) -> dict:
        return _wrk(base, secs, {"CG_TOKEN": secret, "CG_POINTS": str(points),
                                 "CG_PREFIX": prefix, "CG_DESCRIPTION": DESCRIPTION})

    return load


def http_rates(ctx: Context, rounds: int, seconds: float) -> dict[str, list[float]]:
    """Cases/s committed per round and mode, two servers driven by wrk alternately."""
    load = intake_load(ctx)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    with serve(ctx.url, workers=WORKERS, log_path=ctx.workdir / "serve_off.log",
               extra_env={"CASEGRID_PRIVACY_MASK_FREE_TEXT": "false"}, start_s=START_S) as off, \
            serve(ctx.url, workers=WORKERS, log_path=ctx.workdir / "serve_on.log",
                  extra_env={"CASEGRID_PRIVACY_MASK_FREE_TEXT": "true"}, start_s=START_S) as on:
        for mode, base in (("off", off), ("on", on)):
            load(base, f"privacy-warm-{mode}", 5)
        _analyze(ctx)
        for i in range(rounds):
            order = (("off", off), ("on", on))
            for mode, base in order if i % 2 == 0 else order[::-1]:
                prefix = f"privacy-{mode}-{i}"
                log(f"privacy: intake with masking {mode}, round {i + 1}/{rounds}, {seconds:.0f} s")
                r = load(base, prefix, seconds)
                rates[mode].append(_stored(ctx, prefix) / r["seconds"])
    return rates


def masking_rows(ctx: Context) -> list[Row]:
    """The rows of this benchmark (also what ``privacy`` reported before it was split)."""
    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (apt-get install wrk; `make bench` installs it)")
    rounds, seconds = ctx.repeats(6, 2), (4.0 if ctx.quick else 20.0)
    rates = http_rates(ctx, rounds, seconds)
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    paired = statistics.median(on / off for on, off in zip(rates["on"], rates["off"], strict=True))
    loss = 1 - paired
    mask_us = masking_cost_us(ctx.n(20_000, 2_000))
    plain_us = masking_cost_us(ctx.n(20_000, 2_000), PLAIN)
    ip_rounds, ip_n = ctx.repeats(6, 2), ctx.n(4_096, 256)
    log(f"privacy: register_cases in batches of 32, {ip_rounds} rounds x {ip_n:,} cases "
        "with masking on and off")
    ip = register_cost(ctx, ip_rounds, ip_n)
    cpu_on, cpu_off = (statistics.median(ip[m]["cpu_us"]) for m in ("on", "off"))
    ip_on, ip_off = (statistics.median(ip[m]["rate"]) for m in ("on", "off"))
    cpu_cost = cpu_on / cpu_off - 1
    cpu_paired = statistics.median(
        on / off for on, off in zip(ip["on"]["cpu_us"], ip["off"]["cpu_us"], strict=True)) - 1
    return [
        Row("privacy_masking", f"intake with masking on, cases/s (median of {rounds} rounds of "
            f"{seconds:.0f} s, {CLIENTS} clients, {WORKERS} workers; every description holds a "
            "phone)", on_rate, "/s", "same, masking off (same run, alternating rounds)", off_rate,
            f"≤ {TARGET_LOSS:.0%} lower", loss <= TARGET_LOSS,
            note=f"median of the rounds' ratios {-loss:+.1%} (judged), of the medians "
                 f"{on_rate / off_rate - 1:+.1%}; rounds on {_listed(rates['on'])}, off "
                 f"{_listed(rates['off'])}"),
        Row("privacy_masking", f"CPU per case with masking on, register_cases in batches of 32 "
            f"(in-process: this process + PostgreSQL; median of {ip_rounds} rounds of {ip_n:,}; "
            "every description holds a phone)",
            cpu_on, "µs", "same, masking off (alternating rounds)", cpu_off,
            f"≤ {TARGET_LOSS:.0%} more", cpu_cost <= TARGET_LOSS,
            note=f"CPU {cpu_cost:+.1%} with masking (median of the rounds' ratios "
                 f"{cpu_paired:+.1%}); rounds on {_listed(ip['on']['cpu_us'])}, off "
                 f"{_listed(ip['off']['cpu_us'])} µs; wall rates {ip_on:,.0f} /s on, "
                 f"{ip_off:,.0f} /s off"),
        Row("privacy_masking", "mask_free_text per description with a phone (in-process, best of 5)",
            mask_us, "µs", "", None, "report"),
        Row("privacy_masking", "mask_free_text per description without a number (in-process, best "
            "of 5)", plain_us, "µs", "", None, "report"),
    ]


def run(ctx: Context) -> Outcome:
    return Outcome(masking_rows(ctx))
