"""The work ledger (台账) export of a million cases (issue 24): the CSV beside a bare
``COPY (SELECT <the same columns>) TO STDOUT`` in the same run, the XLSX, and the peak memory
of each.

Each export runs in a subprocess of its own (``python -m bench.bench_ledger_export
csv|xlsx|copy URL OUT``), which reports its wall time, rows and peak resident memory
(VmHWM: the interpreter, the imports and the export together), so the
figures are the process's, not the harness's. The subprocess imports what the CLI's export
imports (casegrid, cases.ledger) and the small harness module, not the ledger generator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from bench.harness import Context, Outcome, Row, Skip, log

PERIOD = (date(2025, 11, 1), date(2026, 10, 31))   # the sample year: every case
TIME_RATIO = 3.0
MEMORY_MB = 300.0


def _query():  # noqa: ANN202 - cases.ledger.LedgerQuery
    from cases.ledger import LedgerQuery
    from cases.tokens import Principal

    return LedgerQuery(*PERIOD, Principal(0, "bench", "admin"))


def _copy_sql(url: str) -> str:
    """The export's SELECT with its parameters bound client-side (COPY takes none)."""
    import psycopg

    from cases.ledger import ledger_sql

    sql, params = ledger_sql(_query())
    # :name (SQLAlchemy's text() style) -> %(name)s; casts (::int) and times (HH24:MI) are
    # not parameters.
    sql = re.sub(r"(?<![:\w]):([a-z_]+)\b", r"%(\1)s", sql)
    with psycopg.connect(url) as conn:
        return psycopg.ClientCursor(conn).mogrify(sql, params)


def _worker(kind: str, url: str, out: str) -> dict:
    """One export in this process; its figures as a dict."""
    if kind == "copy":
        import psycopg

        sql = _copy_sql(url.replace("postgresql+psycopg://", "postgresql://"))
        t0 = time.perf_counter()
        size = 0
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn, \
                conn.cursor().copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy, \
                open(out, "wb") as fh:
            for data in copy:
                fh.write(data)
                size += len(data)
        seconds = time.perf_counter() - t0
        rows = None   # (a line count would miscount text with line breaks)
    else:
        from casegrid.db import make_engine
        from cases.ledger import export

        engine = make_engine(url)
        t0 = time.perf_counter()
        with engine.connect() as conn:
            rows = export(conn, _query(), Path(out))
        seconds = time.perf_counter() - t0
        size = Path(out).stat().st_size
    return {"seconds": seconds, "rows": rows, "bytes": size, "peak_mb": _peak_mb()}


def _peak_mb() -> float:
    """This process's peak resident memory: VmHWM of /proc/self/status. (getrusage's
    ru_maxrss is not used: Linux carries it over fork and exec, so a subprocess would report
    its parent's peak if that was larger.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _run_worker(ctx: Context, kind: str, suffix: str) -> dict:
    out = ctx.workdir / f"ledger_{kind}{suffix}"
    proc = subprocess.run([sys.executable, "-m", "bench.bench_ledger_export", kind, ctx.url,
                           str(out)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} export failed: {proc.stderr[-2000:]}")
    out.unlink(missing_ok=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"ledger_export: {kind}: {result['rows'] or '-'} rows in {result['seconds']:.1f} s, "
        f"{result['bytes'] / 1e6:.0f} MB, peak {result['peak_mb']:.0f} MB")
    return result


def run(ctx: Context) -> Outcome:
    """CSV and COPY (same run), XLSX; peak memory of each."""
    try:
        import cases.ledger  # noqa: F401
    except ImportError as exc:
        raise Skip(f"cases.ledger is missing ({exc})") from None
    # Imported here, not at the top: bench.ledger brings the sample-city generator (about
    # 100 MB of imports), which the export's subprocesses would otherwise count as theirs.
    from bench.ledger import ensure_cases, fill_replies, fill_workflow

    n = ctx.n(1_000_000, 5_000)
    total = ensure_cases(ctx.engine, n, ctx.community_generation, log=log)
    fill_workflow(ctx.engine, log=log)
    fill_replies(ctx.engine, log=log)
    copy = _run_worker(ctx, "copy", ".csv")
    csv_ = _run_worker(ctx, "csv", ".csv")
    xlsx = _run_worker(ctx, "xlsx", ".xlsx")
    rows = [
        Row("ledger_export", f"CSV export, {csv_['rows']:,} cases (casegrid export ledger)",
            csv_["seconds"], "s", "COPY (SELECT same columns) TO STDOUT", copy["seconds"],
            f"≤ {TIME_RATIO:g}× COPY", csv_["seconds"] <= TIME_RATIO * copy["seconds"],
            note=f"{csv_['bytes'] / 1e6:.0f} MB; ledger of {total:,}"),
        Row("ledger_export", "CSV export peak memory (process RSS)", csv_["peak_mb"], "MB",
            "COPY client peak", copy["peak_mb"], f"< {MEMORY_MB:g} MB",
            csv_["peak_mb"] < MEMORY_MB),
        Row("ledger_export", f"XLSX export, {xlsx['rows']:,} cases (casegrid.xlsx_stream)",
            xlsx["seconds"], "s", "CSV export", csv_["seconds"], "report", None,
            note=f"{xlsx['bytes'] / 1e6:.0f} MB"),
        Row("ledger_export", "XLSX export peak memory (process RSS)", xlsx["peak_mb"], "MB",
            "", None, f"< {MEMORY_MB:g} MB", xlsx["peak_mb"] < MEMORY_MB),
    ]
    if csv_["rows"] != xlsx["rows"]:
        raise RuntimeError(f"row counts differ: csv {csv_['rows']}, xlsx {xlsx['rows']}")
    return Outcome(rows)


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], sys.argv[2], sys.argv[3])))
