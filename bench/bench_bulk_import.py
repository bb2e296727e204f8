"""Bulk import (issue 3): ``cases.bulk_import.import_cases`` on a million 12345 work orders
(committed: these cases become the ledger the statistics and map benchmarks read), beside
the bare COPY of the same file + one ``ST_Covers`` routing join, materialised.

The baseline is the floor of the database work only: no validation, no GCJ-02/BD-09
conversion (it routes the raw coordinates), no deduplication, no insert into the indexed
``case`` table, no history rows, no deadlines. The import does all of those.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

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


def run(ctx: Context) -> Outcome:
    """Import the file once (committed), baseline before and after; median baseline."""
    from cases.bulk_import import import_cases

    n = ctx.n(1_000_000, 5_000)
    csv_path = ctx.workdir / "hotline_export.csv"
    log(f"bulk_import: writing {n:,} work orders ({MAPPING} format)")
    write_hotline_csv(csv_path, n)
    base = []
    t, matched = timed(lambda: bare_copy_join(ctx.engine, csv_path, ctx.community_generation))
    base.append(t)
    log(f"bulk_import: bare COPY + join {t:.1f} s ({matched:,} matched)")
    before = case_count(ctx.engine)

    def progress(phase: str, done: float, total: float | None) -> None:
        if phase in ("route", "insert", "deadlines") and done == 0:
            log(f"bulk_import:   {phase}")

    log(f"bulk_import: import_cases on {n:,} rows (committed, backdated)")
    t_imp, report = timed(lambda: import_cases(
        ctx.engine, csv_path, MAPPING, commit=True, backdate=True, actor="bench",
        rejects_path=ctx.workdir / "rejects.csv", progress=progress))
    log(f"bulk_import:   {t_imp:.1f} s: read {report.read:,}, inserted {report.inserted:,}, "
        f"rejected {report.rejected:,}, routed {report.routed}, phases {report.seconds}")
    stored = case_count(ctx.engine) - before
    t, _ = timed(lambda: bare_copy_join(ctx.engine, csv_path, ctx.community_generation))
    base.append(t)
    log(f"bulk_import: bare COPY + join {t:.1f} s")
    csv_path.unlink(missing_ok=True)
    b = median(base)
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    rows = [
        Row("bulk_import", f"import_cases, {n:,} rows committed", t_imp, "s",
            "bare COPY + ST_Covers join", b, "≤ 3× baseline", t_imp <= 3 * b,
            note=f"{stored:,} cases stored; {phases}"),
        Row("bulk_import", "import throughput", n / t_imp, "rows/s", "bare COPY + join",
            n / b, "report"),
    ]
    return Outcome(rows)
