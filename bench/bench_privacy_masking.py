"""Privacy (issue 28): what masking free text costs intake, masking on beside off.

Alone (``python -m bench --only privacy_masking``) it needs only the sample city, no ledger
(after ``--only stats`` it runs on that benchmark's million cases): about 8 minutes, for a
quiet machine (32 pairs of 5 s runs over HTTP, 32 pairs of in-process rounds). ``privacy`` (the retention purge) is separate.

Every description holds a phone number, so every case pays the whole cost (the pre-check,
the scan, the masked copy, the original kept in ``personal_text``): the worst case.

* **Over HTTP** (judged: the issue's target is intake's rate). Two ``casegrid serve``
  servers on the same database, one with ``CASEGRID_PRIVACY_MASK_FREE_TEXT=false``, both
  warmed up; wrk (``bench/wrk_intake.lua``) drives them in many short pairs of rounds in
  ABBA order (:mod:`bench.paired`). Each run gets points of its own: with one points file,
  every round put another case of the same category on each of the same points, and the
  nearby-duplicates search after each commit read more of them round after round (the
  later mode of a pair paid for the earlier one's cases). Rates count cases committed.
  Judged on the median of the pairs' ratios, with its bootstrap interval; beside it the CPU
  per case of both servers' processes and the cluster's, per mode, paired likewise.
* **In-process** (no HTTP): ``register_cases`` in batches of 32 (what the server's intake
  batching runs), masking on and off in ABBA pairs of rounds, on one connection: the CPU of
  this process and of that connection's backend (``/proc/<pid>/schedstat``, to the
  nanosecond), per case. Autovacuum, the checkpointer and the WAL writer are left out: they
  work for whichever round they happen to fall in (a million-case ledger just built keeps
  them busy for minutes). The paired difference is what masking costs a case, in µs.
  Beside it, the time of :func:`cases.privacy.mask_free_text` per description with a phone
  and without a number.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from bench.bench_intake import CLIENTS, WORKERS, _wrk
from bench.cpu import cluster_cpu, cpu_seconds, run_seconds, session_pids, used_between
from bench.harness import Context, Outcome, Row, Skip, log
from bench.paired import Paired, abba, differences, paired, ratios
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
# Points per HTTP run: more than a quiet machine's rate over a round, so no point repeats.
POINTS_PER_RUN = 10_000
MODES = {"a": "off", "b": "on"}
# Fewer pairs than this (--quick) make no interval worth reading.
MIN_PAIRS = 8


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


def register_cost(ctx: Context, pairs: int, n: int) -> dict[str, dict[str, list[float]]]:
    """``register_cases`` in batches of 32 with masking on and off, ``pairs`` pairs of
    rounds of ``n`` cases in ABBA order, on one connection (every description holds a
    phone): per mode and round, cases/s and the CPU microseconds per case of this process
    and the connection's backend."""
    from casegrid.settings import get_settings
    from cases.intake import NewCase, register_cases
    from cases.tokens import Principal

    principal = Principal(0, "bench privacy", "intake")
    base = get_settings()
    settings = {mode: base.model_copy(update={"privacy_mask_free_text": mode == "on"})
                for mode in ("on", "off")}
    lon, lat = generate_points(n * pairs * 2 + 4096, seed=2828)
    out: dict[str, dict[str, list[float]]] = {m: {"rate": [], "cpu_us": []} for m in settings}
    k = 0

    with ctx.engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.commit()

        def cpu() -> float:
            return time.process_time() + (run_seconds(backend) or 0.0)

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
                with conn.begin():
                    register_cases(conn, subs, settings[mode], search_duplicates=False)

        for mode in settings:  # warm up, then plan on the tables' real sizes
            register(mode, 1024)
        _analyze(ctx)
        for order in abba(pairs):
            for mode in (MODES[x] for x in order):
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


def intake_load(ctx: Context) -> Callable[..., dict]:
    """``load(base, prefix, seconds, points=None)``: wrk's intake against the server at
    ``base`` with an intake token, every description :data:`DESCRIPTION` (the privacy
    benchmarks' one load generator), at ``points`` (a file of "lon lat" lines; default: one
    file of the bench's points for every run)."""
    from cases.tokens import create_token

    with ctx.engine.begin() as conn:
        _, secret = create_token(conn, "intake", "bench privacy load generator")
    lon, lat = generate_points(ctx.n(200_000, 20_000), seed=29)
    shared = ctx.workdir / "privacy_points.txt"
    _write_points(shared, lon, lat)

    def load(base: str, prefix: str, secs: float, points: Path | None = None) -> dict:
        return _wrk(base, secs, {"CG_TOKEN": secret, "CG_POINTS": str(points or shared),
                                 "CG_PREFIX": prefix, "CG_DESCRIPTION": DESCRIPTION})

    return load


def _write_points(path: Path, lon, lat) -> Path:  # noqa: ANN001 - numpy arrays
    path.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in zip(lon, lat, strict=True)))
    return path


def http_rates(ctx: Context, pairs: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    """Per mode and run: cases/s committed and CPU µs per case (both servers' processes and
    the cluster's), two servers driven by wrk in ``pairs`` ABBA pairs of runs, each run at
    points of its own."""
    load = intake_load(ctx)
    runs = 2 * pairs + 4  # the measured runs and the warm-ups
    lon, lat = generate_points(runs * POINTS_PER_RUN, seed=2829)
    files = iter([_write_points(ctx.workdir / f"privacy_points_{i}.txt",
                                lon[i * POINTS_PER_RUN:(i + 1) * POINTS_PER_RUN],
                                lat[i * POINTS_PER_RUN:(i + 1) * POINTS_PER_RUN])
                  for i in range(runs)])
    out: dict[str, dict[str, list[float]]] = {m: {"rate": [], "cpu_us": []} for m in ("off", "on")}
    info: dict[str, dict] = {"off": {}, "on": {}}
    with serve(ctx.url, workers=WORKERS, log_path=ctx.workdir / "serve_off.log",
               extra_env={"CASEGRID_PRIVACY_MASK_FREE_TEXT": "false"}, start_s=START_S,
               info=info["off"]) as off, \
            serve(ctx.url, workers=WORKERS, log_path=ctx.workdir / "serve_on.log",
                  extra_env={"CASEGRID_PRIVACY_MASK_FREE_TEXT": "true"}, start_s=START_S,
                  info=info["on"]) as on:
        bases = {"off": off, "on": on}
        servers = {m: session_pids(info[m]["session"]) for m in bases}

        def cpu() -> dict[int, float]:
            return cpu_seconds(servers["off"] | servers["on"]) | cluster_cpu(ctx.cluster.pgdata)

        # Both servers warm (imports, pools, prepared statements), then plans on real sizes.
        for mode in ("off", "on"):
            load(bases[mode], f"privacy-warm-{mode}", 5, next(files))
        _analyze(ctx)
        for mode in ("on", "off"):
            load(bases[mode], f"privacy-warm2-{mode}", 3, next(files))
        for i, order in enumerate(abba(pairs)):
            for mode in (MODES[x] for x in order):
                prefix = f"privacy-{mode}-{i}"
                log(f"privacy: intake with masking {mode}, pair {i + 1}/{pairs}, {seconds:.0f} s")
                before = cpu()
                r = load(bases[mode], prefix, seconds, next(files))
                used = used_between(before, cpu())
                stored = _stored(ctx, prefix)
                out[mode]["rate"].append(stored / r["seconds"])
                out[mode]["cpu_us"].append(used / max(1, stored) * 1e6)
    return out


def _interval(p: Paired, fmt: str) -> str:
    return f"{fmt.format(p.median)} (95% interval {fmt.format(p.low)} to {fmt.format(p.high)})"


def _strength(loss: Paired) -> str:
    """What the interval says about the verdict on the median."""
    if loss.n < MIN_PAIRS:  # a bootstrap of a handful of pairs only spans their values
        return f"{loss.n} pairs are too few for an interval to mean anything"
    if loss.high <= TARGET_LOSS:
        return f"all of it at or under {TARGET_LOSS:.0%}: met beyond the noise"
    if loss.low > TARGET_LOSS:
        return f"all of it over {TARGET_LOSS:.0%}: missed beyond the noise"
    return f"it holds {TARGET_LOSS:.0%}: the run cannot tell"


def masking_rows(ctx: Context) -> list[Row]:
    """The rows of this benchmark."""
    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (apt-get install wrk; `make bench` installs it)")
    pairs, seconds = ctx.repeats(32, 2), (3.0 if ctx.quick else 5.0)
    http = http_rates(ctx, pairs, seconds)
    rate = {m: http[m]["rate"] for m in http}
    # Loss = 1 - on/off per pair; its interval is the ratio's, mirrored.
    ratio = paired(ratios(rate["on"], rate["off"]))
    loss = Paired(1 - ratio.median, 1 - ratio.high, 1 - ratio.low, ratio.n)
    http_cpu = paired(ratios(http["on"]["cpu_us"], http["off"]["cpu_us"]))
    mask_us = masking_cost_us(ctx.n(20_000, 2_000))
    plain_us = masking_cost_us(ctx.n(20_000, 2_000), PLAIN)
    ip_pairs, ip_n = ctx.repeats(32, 2), ctx.n(1_024, 256)
    log(f"privacy: register_cases in batches of 32, {ip_pairs} pairs of rounds x {ip_n:,} "
        "cases, masking on and off")
    ip = register_cost(ctx, ip_pairs, ip_n)
    cpu = {m: ip[m]["cpu_us"] for m in ip}
    extra = paired(differences(cpu["on"], cpu["off"]))
    ip_ratio = paired(ratios(cpu["on"], cpu["off"]))
    off_rate = statistics.median(rate["off"])
    # What the in-process µs would cost the HTTP rate if intake were CPU-bound: their share
    # of the core time a case took over HTTP with masking off.
    http_off_cpu = statistics.median(http["off"]["cpu_us"])
    return [
        Row("privacy_masking", f"intake with masking on, cases/s (median of {pairs} ABBA "
            f"pairs of {seconds:.0f} s runs, {CLIENTS} clients, {WORKERS} workers; every "
            "description holds a phone)", statistics.median(rate["on"]), "/s",
            "same, masking off (same run, paired runs)", off_rate,
            f"≤ {TARGET_LOSS:.0%} lower", loss.median <= TARGET_LOSS,
            note=f"rate {-loss.median:+.1%} with masking, median of the pairs' ratios (judged; "
                 f"95% interval {-loss.high:+.1%} to {-loss.low:+.1%}: {_strength(loss)}); "
                 f"CPU per case over HTTP (both servers + cluster) "
                 f"{statistics.median(http['on']['cpu_us']):,.0f} / {http_off_cpu:,.0f} µs, "
                 f"paired {_interval(http_cpu, '{:.3f}')}; runs on {_listed(rate['on'])}, "
                 f"off {_listed(rate['off'])}"),
        Row("privacy_masking", "CPU per case with masking on, register_cases in batches of 32 "
            f"(in-process: this process + its backend; median of {ip_pairs} ABBA pairs of "
            f"rounds of {ip_n:,}; every description holds a phone)",
            statistics.median(cpu["on"]), "µs", "same, masking off (paired rounds)",
            statistics.median(cpu["off"]), "report",
            note=f"masking costs {_interval(extra, '{:+.1f}')} µs per case (median of the "
                 f"pairs' differences), {_interval(ip_ratio, '{:.3f}')}× of register_cases "
                 f"alone; {extra.median / http_off_cpu:.1%} of a case's CPU over HTTP "
                 f"({http_off_cpu:,.0f} µs, masking off); rounds on {_listed(cpu['on'])}, "
                 f"off {_listed(cpu['off'])} µs"),
        Row("privacy_masking", "mask_free_text per description with a phone (in-process, best of 5)",
            mask_us, "µs", "", None, "report"),
        Row("privacy_masking", "mask_free_text per description without a number (in-process, best "
            "of 5)", plain_us, "µs", "", None, "report"),
    ]


def run(ctx: Context) -> Outcome:
    return Outcome(masking_rows(ctx))
