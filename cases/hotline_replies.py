"""Back to 12345: the replies to the hotline's orders, in the hotline's own columns.

The cases are those a hotline import brought in (their ``register`` event names the import
mapping) that have a ticket number and were answered in the period (``replied_at``, Beijing
days, both included); one row per ticket with its current reply. The columns, and the
words for the outcome and the follow-up result, come from the ``[replies]`` tables of the
same mapping file that describes the import (``cases.mappings``), so one file describes
both directions; times are written in the import's ``[reported_at]`` format and time zone.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput
from cases.mappings import Mapping
from cases.stats import period_bounds
from cases.workflow import FOLLOW_UP_RESULTS

RESULTS_ZH = {"handled": "已办结", "rejected": "不予受理", "merged": "合并办理"}

_SQL = """
SELECT c.external_id, c.case_no,
       CASE WHEN c.merged_into IS NOT NULL THEN 'merged'
            WHEN c.dispatched_at IS NULL THEN 'rejected' ELSE 'handled' END AS result,
       (SELECT e.data->>'text' FROM case_event e WHERE e.case_id = c.id AND e.action = 'reply'
        ORDER BY e.at DESC, e.id DESC LIMIT 1) AS text,
       c.replied_at, c.closed_at, c.follow_up_result AS follow_up, p.name AS handled_by
FROM "case" c
LEFT JOIN community_post p ON p.id = c.post_id
WHERE c.replied_at >= :lo AND c.replied_at < :hi AND c.external_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM case_event r WHERE r.case_id = c.id AND r.action = 'register'
              AND r.data->>'mapping' = :mapping)
ORDER BY c.replied_at, c.id
"""


def reply_rows(conn: Connection, mapping: Mapping, date_from: date,
               date_to: date) -> tuple[list[str], list[list]]:
    """The header (the hotline's column names) and one row per answered ticket."""
    if not mapping.reply_columns:
        raise InvalidInput(f"mapping {mapping.name} has no replies.columns table: add one "
                           "naming the hotline's column for each of external_id, result, text, "
                           "replied_at, follow_up", field="mapping")
    if "external_id" not in mapping.reply_columns:
        raise InvalidInput(f"mapping {mapping.name}: replies.columns must name the ticket "
                           "column (external_id)", field="mapping")
    lo, hi = period_bounds(date_from, date_to)
    tz = ZoneInfo(mapping.timezone)
    results = {**RESULTS_ZH, **mapping.reply_result}
    follow = {**FOLLOW_UP_RESULTS, **mapping.reply_follow_up}
    fields = list(mapping.reply_columns)

    def cell(name: str, value):  # noqa: ANN001, ANN202 - a database value
        if value is None:
            return ""
        if name in ("replied_at", "closed_at"):
            local = value.astimezone(tz)
            return (local.isoformat() if mapping.date_format == "ISO8601"
                    else local.strftime(mapping.date_format))
        if name == "result":
            return results.get(value, value)
        if name == "follow_up":
            return follow.get(value, value)
        return value

    rows = conn.execute(text(_SQL), {"lo": lo, "hi": hi, "mapping": mapping.name}).mappings()
    body = [[cell(f, r[f]) for f in fields] for r in rows]
    return [mapping.reply_columns[f] for f in fields], body


def write_replies(conn: Connection, mapping: Mapping, date_from: date, date_to: date,
                  out: Path) -> int:
    """Write the replies to ``out`` (.csv, UTF-8 with BOM, or .xlsx); return the rows."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InvalidInput(f"--out must end in .csv or .xlsx, not {suffix or 'nothing'}",
                           field="out")
    header, rows = reply_rows(conn, mapping, date_from, date_to)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        with out.open("w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
    else:
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("办理结果")
        ws.append(header)
        for row in rows:
            ws.append(row)
        wb.save(out)
    return len(rows)
