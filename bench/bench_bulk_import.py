"""Bulk import (issue 3): ``cases.bulk_import.import_cases`` on a million 12345 work orders
(committed: these cases become the ledger the statistics and map benchmarks read), beside
the bare COPY of the same file + one ``ST_Covers`` routing join, materialised.

The baseline is the floor of the database work only: no validation, no GCJ-02/BD-09
conversion (it routes the raw coordinates), no deduplication, no insert into the indexed
``case`` table, no history rows, no deadlines. The import does all of those.

Each phase of the import and the baseline are also measured in CPU time (this process and
the cluster's, :mod:`bench.cpu`), with the least wall time the import's CPU allows on this
machine's cores: what separates a slow schedule from too much work.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from bench import pgstat
from bench.cpu import cluster_cpu, cpu_seconds, used_between
from bench.harness import Context, Outcome, Row, log, median, timed
from bench.ledger import MAPPING, case_count, write_hotline_csv

_COLUMNS = ("工单编号", "来源渠道", "诉求类型", "诉求内容", "地址", "经度", "纬度", "坐标系",
            "来电时间", "来电人", "联系电话", "附件", "备注")
_BARE_JOIN = """
CREATE TEMP TABLE bare_routed ON COMMIT DROP AS
SELECT s.ticket, s.category, s.reported, cp.community_id
FROM bare_stage s
JOIN community_piece cp
  ON cp.generation_id = :gen
 AND ST_Covers(cp.geom, ST_SetSRID(ST_MakePoint(s.lon::float8, s.lat::float8), 4326))
"""


def bare_copy_join(engine: Engine, csv_path: Path, gen: int) -> int:
    """COPY the raw export into a text table and route it with one join; matched rows."""
    cols = ("ticket", "channel", "category", "description", "address", "lon", "lat", "crs",
            "reported", "name", "phone", "photos", "remark")
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TEMP TABLE bare_stage ({', '.join(c + ' text' for c in cols)})"
                          " ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                f"COPY bare_stage ({', '.join(cols)}) FROM STDIN (FORMAT csv, HEADER true)") as copy, \
                csv_path.open("rb") as fh:
            fh.read(3)  # the UTF-8 BOM Excel wants; COPY would keep it in the header line
            while block := fh.read(1 << 20):
                copy.write(block)
        conn.execute(text("ANALYZE bare_stage"))
        conn.execute(text(_BARE_JOIN), {"gen": gen})
        return conn.execute(text("SELECT count(*) FROM bare_routed")).scalar_one()


@dataclass
class _Mark:
    """Where a phase began: its name, the time and the CPU readings of this process (the
    import and its reader thread) and of the cluster."""

    phase: str
    at: float
    python: dict[int, float]
    postgres: dict[int, float]


def _mark(ctx: Context, phase: str) -> _Mark:
    return _Mark(phase, time.perf_counter(), cpu_seconds({os.getpid()}),
                 cluster_cpu(ctx.cluster.pgdata))


def _cpu_table(marks: list[_Mark]) -> list[str]:
    """Markdown rows, one per phase between consecutive marks (the last mark ends the last
    phase): wall time, CPU of Python and of PostgreSQL, and how many cores were busy."""
    rows = []
    for here, after in zip(marks, marks[1:], strict=False):
        wall = after.at - here.at
        py = used_between(here.python, after.python)
        pg = used_between(here.postgres, after.postgres)
        rows.append(f"| {here.phase} | {wall:.1f} | {py:.1f} | {pg:.1f} | "
                    f"{(py + pg) / wall if wall > 0 else 0:.2f} |")
    return rows


# The import's progress phases, folded as its report times them ("read" and "validate+copy"
# alternate chunk by chunk; the last "insert" event comes after the indexes).
_PHASES = {"read": "read, validate, COPY, route", "validate+copy": "read, validate, COPY, route"}


def _cancel_other_queries(engine: Engine) -> int:
    """Cancel the running statements of the other sessions of this (benchmark-only)
    database: the bulk import, which then rolls back. Returns how many were cancelled."""
    with engine.connect() as conn:
        return len(conn.execute(text(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state = 'active'"
        )).all())


def _import_with_budget(ctx: Context, csv_path: Path, budget_s: float, phase: list[str],
                        marks: list[_Mark]) -> tuple[float, object | None, str | None]:
    """Run the import in a thread; past ``budget_s`` cancel it. (seconds, report, error).
    ``marks`` gets where each phase began, and the end."""
    from cases.bulk_import import import_cases

    box: dict[str, object] = {}

    last = [time.perf_counter()]

    def progress(name: str, done: float, total: float | None) -> None:
        if name not in phase:  # each phase once (read and validate+copy alternate per chunk)
            phase.append(name)
            log(f"bulk_import:   {name}")
        folded = _PHASES.get(name, name)
        if folded not in {m.phase for m in marks}:
            marks.append(_mark(ctx, folded))
        if name == "indexes" and done:  # each rebuilt index or foreign key, with its time
            now = time.perf_counter()
            log(f"bulk_import:     index {done:.0f}/{total}: {now - last[0]:.1f} s")
        last[0] = time.perf_counter()

    def work() -> None:
        try:
            box["report"] = import_cases(
                ctx.engine, csv_path, MAPPING, commit=True, backdate=True, actor="bench",
                rejects_path=ctx.workdir / "rejects.csv", progress=progress)
        except Exception as exc:  # noqa: BLE001 - reported as the benchmark's outcome
            box["error"] = exc

    marks.append(_mark(ctx, _PHASES["read"]))
    t0 = time.perf_counter()
    thread = threading.Thread(target=work, name="bulk-import", daemon=True)
    thread.start()
    thread.join(budget_s)
    marks.append(_mark(ctx, "end"))
    if thread.is_alive():
        log(f"bulk_import: still running after {budget_s:.0f} s (phase {phase[-1] if phase else '?'}):"
            " cancelling it")
        while thread.is_alive():
            _cancel_other_queries(ctx.engine)
            thread.join(5)
        return time.perf_counter() - t0, None, f"stopped after {budget_s:.0f} s"
    elapsed = time.perf_counter() - t0
    if "error" in box:
        return elapsed, None, f"{type(box['error']).__name__}: {str(box['error']).splitlines()[0][:160]}"
    return elapsed, box["report"], None


def run(ctx: Context) -> Outcome:
    """Import the file once (committed), baseline before and after; median baseline. An
    import still running at 8x the baseline (the floor, issue 20; the 3x target of issue 3 is retired) is stopped and rolled back,
    so the run goes on; below that it reports a finished figure, met or not."""
    import cases.bulk_import  # noqa: F401 - a missing module is a skip, not a failure

    n = ctx.n(1_000_000, 5_000)
    csv_path = ctx.workdir / "hotline_export.csv"
    log(f"bulk_import: writing {n:,} work orders ({MAPPING} format)")
    write_hotline_csv(csv_path, n)
    base = []
    t, matched = timed(lambda: bare_copy_join(ctx.engine, csv_path, ctx.community_generation))
    base.append(t)
    log(f"bulk_import: bare COPY + join {t:.1f} s ({matched:,} matched)")
    # Past 20x the baseline the import is stopped (a run must end); up to there it reports a
    # finished figure even where it misses the 8x floor, so a slow import is measured (on a
    # quiet machine the bare join takes ~12 s and the import over 100 s).
    budget = max(120.0, 20 * t)
    before = case_count(ctx.engine)
    log(f"bulk_import: import_cases on {n:,} rows (committed, backdated; budget {budget:.0f} s)")
    phase: list[str] = []
    marks: list[_Mark] = []
    tracked = pgstat.reset(ctx.engine)
    t_imp, report, error = _import_with_budget(ctx, csv_path, budget, phase, marks)
    statements = pgstat.top(ctx.engine, 10) if tracked else []
    stored = case_count(ctx.engine) - before
    base_marks = [_mark(ctx, "bare COPY + join (baseline)")]
    t, _ = timed(lambda: bare_copy_join(ctx.engine, csv_path, ctx.community_generation))
    base_marks.append(_mark(ctx, "end"))
    base.append(t)
    log(f"bulk_import: bare COPY + join {t:.1f} s")
    csv_path.unlink(missing_ok=True)
    b = median(base)
    if report is None:
        where = phase[-1] if phase else "start"
        log(f"bulk_import: did not finish: {error} (phase {where})")
        return Outcome([Row(
            "bulk_import", f"import_cases, {n:,} rows: DID NOT FINISH ({error}, in phase '{where}')",
            t_imp, "s", "bare COPY + ST_Covers join", b, "≤ 8× baseline", False,
            note=f"phases reached: {' → '.join(phase)}; rolled back, {stored:,} stored")])
    log(f"bulk_import:   {t_imp:.1f} s: read {report.read:,}, inserted {report.inserted:,}, "
        f"rejected {report.rejected:,}, routed {report.routed}, phases {report.seconds}")
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    rows = [
        Row("bulk_import", f"import_cases, {n:,} rows committed", t_imp, "s",
            "bare COPY + ST_Covers join", b, "≤ 8× baseline", t_imp <= 8 * b,
            note=f"{stored:,} cases stored; {phases}"),
        Row("bulk_import", "import throughput", n / t_imp, "rows/s", "bare COPY + join",
            n / b, "report"),
    ]
    # All the CPU the import used, spread perfectly over the cores: no schedule of the same
    # work finishes sooner, so its ratio to the baseline bounds the import's from below.
    py_cpu = used_between(marks[0].python, marks[-1].python)
    pg_cpu = used_between(marks[0].postgres, marks[-1].postgres)
    cores = os.cpu_count() or 1
    rows.append(Row(
        "bulk_import", f"import's CPU time ÷ {cores} cores: the least wall time this work could "
        f"take (Python {py_cpu:.0f} s + PostgreSQL {pg_cpu:.0f} s of CPU)",
        (py_cpu + pg_cpu) / cores, "s", "bare COPY + ST_Covers join", b, "report"))
    cpu = [*_cpu_table(marks), *_cpu_table(base_marks)]
    for line in cpu:
        log(f"bulk_import:   {line}")
    sections = ["\n".join([
        "## Bulk import: where the time goes", "",
        f"Each phase of the {n:,}-row import, then the baseline measured after it: wall time, "
        "and the CPU time of the benchmark's own process (the import and its reader thread) "
        "and of the cluster's processes (backends with their parallel workers, WAL writer, "
        f"checkpointer; from /proc). Cores busy = CPU / wall, of {cores}:", "",
        "| phase | wall s | Python CPU s | PostgreSQL CPU s | cores busy |",
        "|---|---|---|---|---|", *cpu])]
    if statements:
        sections.append("\n".join([
            "## Bulk import: PostgreSQL's time by statement", "",
            f"The {n:,}-row import's statements that took the most time (`pg_stat_statements`, "
            "top-level statements; the import's own transaction, so its COPY chunks, routing, "
            "INSERT and each rebuilt index appear apart), per 1,000 rows:", "",
            *pgstat.table(statements, max(1, n // 1000), "1,000 rows")]))
    return Outcome(rows, sections)
