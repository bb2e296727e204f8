"""The indicator report: an Excel workbook with one sheet per grouping (Chinese headers),
a sheet ranking the community posts, and the same tables as UTF-8 CSV files beside it.

Reports carry only aggregate figures from :mod:`cases.stats`: never a reporter's name or
phone, nor any single case.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import Connection

from cases.activities import activity_counts, activity_rows
from cases.evaluation import evaluate, evaluation_rows
from cases.stats import COUNTS, GROUPS, LABELS_ZH, RATES, compute_stats

SHEET_ZH = {"community": "按社区", "subdistrict": "按街道", "category": "按类别",
            "channel": "按渠道", "month": "按月份", "ranking": "社区排名", "total": "合计",
            "evaluation": "考核", "activities": "活动台账"}
COLUMNS = ["key", "name", *COUNTS, *RATES, "avg_handle_hours", "p90_handle_hours"]
RANK_COLUMNS = ["rank", "key", "name", "post_name", "due_to_close", "closed", "closed_on_time",
                "close_rate", "on_time_close_rate", "reply_rate", "satisfaction_rate"]


def build_tables(conn: Connection, date_from: date, date_to: date) -> dict[str, list[list]]:
    """Every table of the report as rows (first row: Chinese headers)."""
    tables: dict[str, list[list]] = {}
    ranking: list[dict] = []
    total: dict = {}
    for group_by in GROUPS:
        result = compute_stats(conn, group_by, date_from, date_to)
        tables[group_by] = [[LABELS_ZH[c] for c in COLUMNS]] + [
            [g.get(c) for c in COLUMNS] for g in result["groups"]]
        ranking, total = result["ranking"], result["total"]
    tables["ranking"] = [[LABELS_ZH.get(c, "社区编码") if c != "key" else "社区编码"
                          for c in RANK_COLUMNS]] + [
        [r.get("community_code") if c == "key" else r.get(c) for c in RANK_COLUMNS]
        for r in ranking]
    tables["total"] = [[LABELS_ZH[c] for c in COLUMNS[2:]], [total.get(c) for c in COLUMNS[2:]]]
    tables["evaluation"] = evaluation_rows(evaluate(conn, "post", date_from, date_to))
    tables["activities"] = activity_rows(activity_counts(conn, date_from, date_to))
    return tables


def write_report(conn: Connection, date_from: date, date_to: date, out: Path) -> list[Path]:
    """Write ``out`` (.xlsx) and one CSV per table beside it; return the paths written."""
    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        out = out.with_suffix(".xlsx")
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = build_tables(conn, date_from, date_to)
    wb = Workbook()
    wb.remove(wb.active)
    info = wb.create_sheet("说明")
    info.append(["统计期间(受理日期)", f"{date_from.isoformat()} 至 {date_to.isoformat()}"])
    info.append(["口径", "见 cases/stats.py: 立案率=立案数/受理数, 结案率=结案数/应结案数, "
                 "按期结案率=按期结案数/应结案数, 返工率=返工数/应结案数, 延期率=延期数/应结案数, "
                 "回复率=按期回复数/应回复数, 按时签收率=按时签收数/派遣数, "
                 "回访率=回访数/应回访数, 满意率=(满意+基本满意)/回访数, 重办率=重办数/应回访数"])
    written = [out]
    for name, rows in tables.items():
        ws = wb.create_sheet(SHEET_ZH[name])
        for row in rows:
            ws.append(row)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for i, header in enumerate(rows[0], start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, len(str(header)) * 2 + 2)
        ws.freeze_panes = "A2"
        path = out.with_name(f"{out.stem}_{name}.csv")
        # utf-8-sig: Excel opens Chinese CSV correctly only with the BOM
        with path.open("w", newline="", encoding="utf-8-sig") as fh:
            csv.writer(fh).writerows(["" if v is None else v for v in row] for row in rows)
        written.append(path)
    wb.save(out)
    return written
