"""The benchmark harness: a throwaway PostGIS, the benchmarks in order, ``RESULTS.md``.

Every figure is measured beside a baseline taken in the same run on the same server, so
the ratio means something on a shared, noisy machine even when absolute times drift.
A benchmark module exposes ``run(ctx: Context) -> Outcome``; if its entry point (or the
project module it measures) does not exist yet, the harness records "skipped: <reason>"
instead of failing the whole run.
"""

from __future__ import annotations

import importlib
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text

from bench.pgstat import PRELOAD
from casegrid.cluster import Cluster, free_port
from casegrid.db import make_engine, migrate
from casegrid.settings import PROJECT_ROOT, Settings

# Name on the command line -> module; the order is the run order (later benchmarks reuse
# the ledger the bulk import filled).
BENCHES: dict[str, str] = {
    "routing": "bench.bench_routing",
    "bulk_import": "bench.bench_bulk_import",
    # After stats, which moves the million cases through the workflow: intake then meets a
    # ledger shaped like a city's year (most cases closed), not a million open imports.
    "stats": "bench.bench_stats",
    "intake": "bench.bench_intake",
    "maps": "bench.bench_maps",
    "ops": "bench.bench_ops",
    "evaluation": "bench.bench_evaluation",
    "privacy_masking": "bench.bench_privacy_masking",
    "privacy": "bench.bench_privacy",
    "notify": "bench.bench_notify",
    "evidence": "bench.bench_evidence",
    "address": "bench.bench_address",
    "ledger_export": "bench.bench_ledger_export",
    "workbench": "bench.bench_workbench",
}
DEFAULT_OUT = PROJECT_ROOT / "bench" / "RESULTS.md"


class Skip(Exception):  # noqa: N818 - reads as "raise Skip(reason)"
    """Raised by a benchmark that cannot run here; the message is the reason."""


@dataclass
class Row:
    """One figure of RESULTS.md, with its same-run baseline and target."""

    bench: str
    figure: str
    value: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline (None without a baseline or when it is zero)."""
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    @classmethod
    def skipped(cls, bench: str, reason: str) -> Row:
        return cls(bench, "skipped", None, "", note=f"skipped: {reason}")


@dataclass
class Outcome:
    """What a benchmark returns: table rows and optional extra Markdown sections."""

    rows: list[Row] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What a benchmark gets: the throwaway cluster's database, a work dir and the sizes."""

    cluster: Cluster
    url: str
    engine: Engine
    workdir: Path
    quick: bool = False
    scale: float = 1.0
    community_generation: int = 0

    def n(self, full: int, quick: int) -> int:
        """A size: ``full`` normally, ``quick`` with --quick, times --scale, at least 1."""
        return max(1, int(round((quick if self.quick else full) * self.scale)))

    def repeats(self, full: int, quick: int = 1) -> int:
        return quick if self.quick else full


# --- timing helpers ----------------------------------------------------------------------


def log(msg: str) -> None:
    """Progress on stdout, with the wall-clock time."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- machine description -----------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(engine: Engine) -> dict[str, str]:
    """CPU, cores, RAM, load, PostgreSQL/PostGIS/Python versions and the server settings
    that matter for the figures (fsync and commit durability above all)."""
    with engine.connect() as conn:
        pg = conn.execute(text("SELECT version()")).scalar_one()
        postgis = conn.execute(text("SELECT postgis_full_version()")).scalar_one()
        settings = {
            name: conn.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
                         "work_mem", "max_wal_size", "jit")
        }
    postgis_short = " ".join(postgis.split()[:2]).replace('"', "")
    load = os.getloadavg()
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": f"{_ram_gib():.1f} GiB",
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load),
        "PostgreSQL": pg.split(" on ")[0],
        "PostGIS": postgis_short,
        "Python": platform.python_version(),
        "OS": platform.platform(),
        "server settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
    }


# --- RESULTS.md ---------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if v != v:  # NaN
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def render_results(rows: list[Row], sections: list[str], info: dict[str, str], argv: list[str],
                   seconds: float) -> str:
    """RESULTS.md: the table, extra sections, the machine and how to reproduce."""
    lines = [
        "# casegrid benchmark results",
        "",
        "Written by `make bench` (`python -m bench`). Every figure is measured beside its "
        "baseline **in the same run, on the same throwaway PostGIS** (a normally configured "
        "server: fsync and synchronous commit on), so the ratio is comparable even when the "
        "shared machine is busy. Lower is better unless the unit is a rate.",
        "",
        "| benchmark | figure | value | baseline | baseline value | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.figure == "skipped" or r.value is None:
            lines.append(f"| {r.bench} | {r.figure} | {r.note or '—'} | | | | {r.target} | — |")
            continue
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        base = f"{_fmt(r.baseline_value)} {r.unit}" if r.baseline_value is not None else "—"
        figure = r.figure + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.bench} | {figure} | {_fmt(r.value)} {r.unit} | {r.baseline or '—'} "
                     f"| {base} | {ratio} | {r.target or '—'} | {met} |")
    lines.append("")
    for s in sections:
        lines += [s.rstrip(), ""]
    lines += ["## Machine", ""]
    lines += [f"- **{k}**: {v}" for k, v in info.items()]
    lines += [
        f"- **whole run**: {seconds / 60:.1f} min",
        "",
        "## How to reproduce",
        "",
        "```sh",
        "make bench                                   # everything, full size (~20 min on 2 cores)",
        ".venv/bin/python -m bench --only routing     # one benchmark (names: "
        + ", ".join(BENCHES) + ")",
        ".venv/bin/python -m bench --quick            # small sizes, a minute or two",
        ".venv/bin/python -m bench --scale 0.5        # half the sizes",
        "```",
        "",
        f"This file was written by: `python -m bench {' '.join(argv)}`.",
        "",
    ]
    return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------


@contextmanager
def throwaway_database(workdir: Path) -> Iterator[tuple[Cluster, str]]:
    """A normally configured cluster (not the tests' fast mode) with a migrated database;
    destroyed afterwards, also on failure or Ctrl-C."""
    cluster = Cluster(data_dir=workdir / "pg", port=free_port(), db_name="casegrid_bench")
    try:
        log(f"starting a throwaway PostgreSQL on port {cluster.port} in {cluster.data_dir}")
        # pg_stat_statements loaded: benchmarks can show which statements took the time.
        cluster.start(settings=PRELOAD)
        cluster.create_database("casegrid_bench")
        url = cluster.url("casegrid_bench")
        migrate(url)
        yield cluster, url
    finally:
        log("destroying the throwaway cluster")
        cluster.destroy()


def bench_settings() -> Settings:
    """The application's settings, with the interactive statement timeout lifted: the
    benchmarks' own baseline queries over a million rows run longer than 30 s."""
    return Settings(statement_timeout_ms=0)


def _sigterm(_signum, _frame) -> None:  # noqa: ANN001 - signal handler signature
    raise KeyboardInterrupt  # so the finally blocks stop servers and destroy the cluster


def run(only: list[str] | None = None, quick: bool = False, scale: float = 1.0,
        out: Path = DEFAULT_OUT, argv: list[str] | None = None) -> list[Row]:
    """Run the chosen benchmarks (default: all, in order) and write ``out``."""
    names = only or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.perf_counter()
    rows: list[Row] = []
    sections: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="casegrid-bench-"))
    try:
        with throwaway_database(workdir) as (cluster, url):
            engine = make_engine(url, bench_settings())
            try:
                from casegrid.demo.city import load_sample_city

                with engine.begin() as conn:
                    counts = load_sample_city(conn)
                log(f"sample city loaded: {counts['communities']} communities")
                info = machine(engine)
                ctx = Context(cluster=cluster, url=url, engine=engine, workdir=workdir,
                              quick=quick, scale=scale,
                              community_generation=counts["community_generation"])
                for name in BENCHES:
                    if name not in names:
                        continue
                    outcome = _run_one(name, ctx)
                    rows += outcome.rows
                    sections += outcome.sections
                    # Written after every benchmark: a long run stopped halfway keeps its figures.
                    _write(out, rows, sections, info, argv or [], time.perf_counter() - started)
            finally:
                engine.dispose()
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min; wrote {out}")
    return rows


def _write(out: Path, rows: list[Row], sections: list[str], info: dict[str, str],
           argv: list[str], seconds: float) -> None:
    info = dict(info)
    info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_results(rows, sections, info, argv, seconds), encoding="utf-8")


def _run_one(name: str, ctx: Context) -> Outcome:
    log(f"=== {name}")
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(BENCHES[name])
        outcome = module.run(ctx)
    except Skip as exc:
        log(f"{name}: skipped: {exc}")
        return Outcome([Row.skipped(name, str(exc))])
    except ImportError as exc:  # the module it measures has not landed yet
        log(f"{name}: skipped: {exc}")
        return Outcome([Row.skipped(name, f"entry point missing ({exc})")])
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others
        traceback.print_exc()
        log(f"{name}: FAILED: {exc}")
        return Outcome([Row(name, "failed", None, "", note=f"failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}")])
    for r in outcome.rows:
        ratio = f" ({r.ratio:.2f}× {r.baseline})" if r.ratio is not None else ""
        log(f"{name}: {r.figure}: {_fmt(r.value)} {r.unit}{ratio} target {r.target or '—'} "
            f"met={r.met}")
    log(f"{name} took {time.perf_counter() - t0:.0f} s")
    return outcome
