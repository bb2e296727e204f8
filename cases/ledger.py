"""The work ledger (工作台账) export: one row per case received in a period, with the time of
every step, whether it was on time, the follow-up result and the reply; Chinese headers.

Rows are read through a server-side cursor (``stream_results``) in blocks of
:data:`BLOCK_ROWS` and written as they come, so memory stays flat however long the period:
CSV through a generator (the API streams it), XLSX through ``casegrid.xlsx_stream`` (rows
go into the zip as they come). A sheet holds at most
:data:`SHEET_ROWS` data rows (Excel's 1,048,576 less the header); more continue on
台账(2), 台账(3)...

Who sees what: the reporter's name and phone are columns only for roles that may see them
(``Principal.sees_reporter``: planners never). Free text (description, reply) is exported as
stored, that is masked (``cases.privacy`` masks it when it is written; the text as written
is read only through a recorded reveal). A community officer exports the cases of its own
communities only. Which rows: a :class:`cases.filters.CaseFilters` (:meth:`LedgerQuery.filters`). Times are Beijing time, ``YYYY-MM-DD HH:MM:SS``; every value is
formatted by the database, so the bare ``COPY`` of :func:`ledger_sql` in the benchmark
writes the same text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import Connection, text

from casegrid.errors import Forbidden, InvalidInput
from casegrid.xlsx_stream import XlsxStream
from cases.calendar import CITY_TZ
from cases.filters import CaseFilters, filter_sql
from cases.stats import period_bounds
from cases.tokens import Principal
from cases.workflow import FOLLOW_UP_RESULTS, STATE_ZH

BLOCK_ROWS = 5000
SHEET_ROWS = 1_048_575
SHEET_NAME = "台账"
EXPORT_ROLES = ("admin", "supervisor", "dispatcher", "planner", "community_officer")
CHANNEL_ZH = {"hotline_12345": "12345热线", "platform": "城管平台", "patrol": "巡查上报",
              "app": "手机APP", "open311": "Open311", "walk_in": "窗口受理"}


def _t(col: str) -> str:
    # The city's time zone (settings), an IANA name: safe to write into the SQL.
    return f"to_char({col} AT TIME ZONE '{CITY_TZ.key}', 'YYYY-MM-DD HH24:MI:SS')"


def _label(col: str, labels: dict[str, str]) -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in labels.items())
    return f"CASE {col} {whens} ELSE {col} END"


def _attachments(*stages: str) -> str:
    """SQL: how many images the case has from these attachment stages."""
    listed = ", ".join(f"'{st}'" for st in stages)
    return (f"(SELECT count(*) FROM attachment a WHERE a.case_id = c.id AND a.kind = 'image' "
            f"AND a.stage IN ({listed}))::int")


_INTAKE_PHOTOS = f"({_attachments('intake')} + cardinality(c.photo_urls))"
_HANDLE_PHOTOS = (f"({_attachments('handle')} + coalesce((SELECT sum(jsonb_array_length("
                  "e.data->'photo_urls')) FROM case_event e WHERE e.case_id = c.id "
                  "AND e.action = 'handle' AND jsonb_typeof(e.data->'photo_urls') = 'array'), "
                  "0)::int)")


# (header, SQL expression); the reporter's columns only for roles that may see them.
COLUMNS: list[tuple[str, str]] = [
    ("案件编号", "c.case_no"),
    ("来源", _label("c.channel", CHANNEL_ZH)),
    ("热线工单号", "CASE WHEN c.channel <> 'open311' THEN c.external_id END"),
    ("类别", "cat.name_zh"),
    ("类别编码", "c.category_code"),
    ("问题描述", "c.description"),
    ("地址", "c.address"),
    ("社区", "cm.name"),
    ("街道", "sd.name"),
    ("城市管理岗", "p.name"),
    ("受理时间", _t("c.received_at")),
    ("立案时间", _t("c.reviewed_at")),
    ("派遣时间", _t("c.dispatched_at")),
    ("签收时间", _t("c.acknowledged_at")),     # the post's acknowledgement of the last dispatch
    ("处置时间", _t("c.handled_at")),
    ("核查时间", _t("c.verified_at")),
    ("回复时间", _t("c.replied_at")),
    ("结案时间", _t("c.closed_at")),
    ("状态", _label("c.status", STATE_ZH)),
    ("处置时限", _t("c.handle_due_at")),
    ("是否按期", "CASE WHEN c.handled_at IS NOT NULL THEN CASE WHEN c.handled_at <= "
                 "c.handle_due_at THEN '是' ELSE '否' END WHEN c.handle_due_at < now() "
                 "THEN '否(超期未处置)' END"),
    ("返工次数", "c.rework_count"),
    ("重办次数", "c.reopen_count"),
    ("回访结果", _label("c.follow_up_result", FOLLOW_UP_RESULTS)),
    ("回访时间", _t("c.follow_up_at")),
    ("回复内容", "(SELECT e.data->>'text' FROM case_event e WHERE e.case_id = c.id "
                 "AND e.action = 'reply' ORDER BY e.at DESC, e.id DESC LIMIT 1)"),
    # Photos: those stored with the case (issue 22's attachments, any stage), and the links
    # it came with (intake's photo_urls) or its handling sent (the handle events' photo_urls);
    # then the same per step: reported, handling (before/after), verification.
    ("照片数", f"{_INTAKE_PHOTOS} + {_HANDLE_PHOTOS} + "
               f"{_attachments('verify_pass', 'verify_fail', 'return', 'added')}"),
    ("上报照片数", _INTAKE_PHOTOS),
    ("处置照片数", _HANDLE_PHOTOS),
    ("核查照片数", _attachments("verify_pass", "verify_fail")),
]
REPORTER_COLUMNS: list[tuple[str, str]] = [("来电人", "c.reporter_name"),
                                           ("联系电话", "c.reporter_phone")]


@dataclass
class LedgerQuery:
    """The rows to export: received from ``date_from`` to ``date_to`` (both included), in
    the given communities and categories (empty: all), as ``principal`` may see them."""

    date_from: date
    date_to: date
    principal: Principal
    communities: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def filters(self) -> CaseFilters:
        """The rows as a filter set: received in the period, in the communities and
        categories asked for, within the principal's communities."""
        lo, hi = period_bounds(self.date_from, self.date_to)
        return CaseFilters(received_from=lo, received_to=hi, community=self.communities,
                           category=self.categories).seen_by(self.principal)

    def columns(self) -> list[tuple[str, str]]:
        return COLUMNS + (REPORTER_COLUMNS if self.principal.sees_reporter else [])

    def headers(self) -> list[str]:
        return [h for h, _ in self.columns()]


def check_query(conn: Connection, q: LedgerQuery) -> LedgerQuery:
    """Refuse a role that may not export, codes that do not exist, and a community officer
    asking for another's community (its rows are its own communities': :meth:`LedgerQuery.filters`)."""
    if q.principal.role not in EXPORT_ROLES:
        raise Forbidden(f"role {q.principal.role!r} may not export the ledger; allowed: "
                        f"{', '.join(EXPORT_ROLES)}", field="role")
    period_bounds(q.date_from, q.date_to)  # to before from: 422
    for name, codes, sql in (
            ("community", q.communities, "SELECT DISTINCT code FROM community WHERE code = ANY(:c)"),
            ("category", q.categories, "SELECT code FROM category WHERE code = ANY(:c)")):
        known = {r[0] for r in conn.execute(text(sql), {"c": codes})} if codes else set()
        unknown = sorted(set(codes) - known)
        if unknown:
            raise InvalidInput(f"unknown {name} code(s): {', '.join(unknown)}", field=name)
    if not q.principal.sees_all_communities:
        mine = set(q.principal.communities)
        outside = sorted(set(q.communities) - mine)
        if outside:
            raise Forbidden(f"community {outside[0]} is not one of yours", field="community")
    return q


# Each code's name in the active boundaries (or the newest that has it), as cases.stats names.
_NAMES = ("SELECT DISTINCT ON (x.code) x.code, x.name FROM {t} x JOIN boundary_generation g "
          "ON g.id = x.generation_id ORDER BY x.code, g.active DESC, g.id DESC")


def ledger_sql(q: LedgerQuery) -> tuple[str, dict]:
    """The SELECT of the export (columns in header order) and its parameters."""
    where, params = filter_sql(q.filters())
    cols = ",\n       ".join(f'{expr} AS "{h}"' for h, expr in q.columns())
    sql = f"""SELECT {cols}
FROM "case" c
JOIN category cat ON cat.code = c.category_code
LEFT JOIN community_post p ON p.id = c.post_id
LEFT JOIN ({_NAMES.format(t="community")}) cm ON cm.code = c.community_code
LEFT JOIN ({_NAMES.format(t="subdistrict")}) sd ON sd.code = c.subdistrict_code
WHERE {where}
ORDER BY c.received_at, c.id"""
    return sql, params


def count_rows(conn: Connection, q: LedgerQuery) -> int:
    """How many rows the export will have (for a progress bar)."""
    sql, params = ledger_sql(q)
    return conn.execute(text(f"SELECT count(*) FROM ({sql}) AS x"), params).scalar_one()


def iter_blocks(conn: Connection, q: LedgerQuery) -> Iterator[list[tuple]]:
    """The export's rows in blocks, read through a server-side cursor."""
    sql, params = ledger_sql(q)
    # An export is long by design (a year of a city: minutes), while the server's statement
    # timeout (settings.statement_timeout_ms) is set for requests: lifted for this
    # transaction only. A client that hangs up closes the cursor and ends the query.
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    # A server-side cursor (stream_results), as an option of the statement, not of the
    # connection (Connection.execution_options changes the connection in place: its next
    # statements would all go through a server-side cursor). The block size is given to
    # partitions() itself: a statement's yield_per option does not reach a Core result, and
    # partitions() without a size fetched the whole result in one list (a million rows of
    # Python strings held at once).
    result = conn.execute(text(sql).execution_options(stream_results=True), params)
    yield from result.partitions(BLOCK_ROWS)


def csv_chunks(conn: Connection, q: LedgerQuery,
               progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The export as UTF-8 CSV with a BOM (so Excel reads the Chinese), block by block."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(q.headers())
    yield ("\ufeff" + buf.getvalue()).encode("utf-8")
    for block in iter_blocks(conn, q):
        buf.seek(0)
        buf.truncate()
        writer.writerows(block)
        yield buf.getvalue().encode("utf-8")
        if progress:
            progress(len(block))


def write_csv(conn: Connection, q: LedgerQuery, out: Path,
              progress: Callable[[int], None] | None = None) -> int:
    """Write the export to ``out`` (.csv); return the number of rows."""
    n = 0

    def counted(k: int) -> None:
        nonlocal n
        n += k
        if progress:
            progress(k)

    with Path(out).open("wb") as fh:
        for chunk in csv_chunks(conn, q, counted):
            fh.write(chunk)
    return n


def write_xlsx(conn: Connection, q: LedgerQuery, out, progress: Callable[[int], None] | None = None,
               *, sheet_rows: int = SHEET_ROWS) -> int:
    """Write the export to ``out`` (a path or a binary file) as .xlsx, streamed
    (``casegrid.xlsx_stream``); past ``sheet_rows`` rows a new sheet begins. Returns the
    rows."""
    headers = q.headers()
    n = 0
    with XlsxStream(out) as book:
        sheets = 1
        sheet = book.sheet(SHEET_NAME, headers)
        for block in iter_blocks(conn, q):
            rest = block
            while rest:
                room = sheet_rows - (sheet.rows_written - 1)
                if room <= 0:
                    sheets += 1
                    sheet = book.sheet(f"{SHEET_NAME}({sheets})", headers)
                    continue
                sheet.rows(rest[:room])
                rest = rest[room:]
            n += len(block)
            if progress:
                progress(len(block))
    return n


def export(conn: Connection, q: LedgerQuery, out: Path,
           progress: Callable[[int], None] | None = None, *, sheet_rows: int = SHEET_ROWS) -> int:
    """Write the ledger to ``out``: .csv or .xlsx by its suffix. Returns the rows written."""
    suffix = Path(out).suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InvalidInput(f"--out must end in .csv or .xlsx, not {suffix or 'nothing'}",
                           field="out")
    check_query(conn, q)
    if suffix == ".csv":
        return write_csv(conn, q, out, progress)
    return write_xlsx(conn, q, out, progress, sheet_rows=sheet_rows)
