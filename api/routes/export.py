"""The work ledger (台账) over HTTP: ``GET /api/v1/export/ledger.csv`` and ``.xlsx`` with
``from``, ``to`` (days of receipt), ``community`` and ``category`` (repeatable). The rows,
columns and who sees what are ``cases.ledger``'s.

The CSV is streamed block by block from a server-side cursor as it is read; the XLSX is
written block by block to a temporary file (a workbook is a zip: it is complete only at the
end) and sent from there. Either way the export holds one pooled connection of its own
while it runs, because the request's transaction ends before the body is sent.

The rows are read from the read replica when one is configured and fresh enough
(``CASEGRID_READ_DATABASE_URL``, :class:`casegrid.replica.ReadSource`), else from the
primary: an export is the heaviest read there is, and a dispatcher's writes should not
wait for it. Both say where they read from in ``X-Casegrid-Read-Source``, as every reader
of the replica does: the CSV takes its connection before its headers leave.
"""

from __future__ import annotations

import os
import tempfile
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from api.auth import require_roles
from api.deps import EngineDep, PeriodFrom, PeriodTo
from cases.ledger import EXPORT_ROLES, LedgerQuery, check_query, csv_chunks, write_xlsx
from cases.tokens import Principal

router = APIRouter(prefix="/api/v1/export", tags=["export"])

Exporter = Annotated[Principal, Depends(require_roles(*EXPORT_ROLES))]
Codes = Annotated[list[str], Query()]


def _query(engine, principal: Principal, date_from: date, date_to: date,  # noqa: ANN001
           community: list[str], category: list[str]) -> LedgerQuery:
    q = LedgerQuery(date_from, date_to, principal, list(community), list(category))
    with engine.connect() as conn:
        return check_query(conn, q)


def _name(q: LedgerQuery, ext: str) -> str:
    return f"ledger_{q.date_from:%Y%m%d}-{q.date_to:%Y%m%d}.{ext}"


@router.get("/ledger.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "The ledger (CSV)"}})
def ledger_csv(request: Request, principal: Exporter, engine: EngineDep, date_from: PeriodFrom,
               date_to: PeriodTo, community: Codes = [],  # noqa: B006
               category: Codes = []) -> StreamingResponse:  # noqa: B006
    """The ledger as UTF-8 CSV (with a BOM for Excel), streamed."""
    q = _query(engine, principal, date_from, date_to, community, category)
    reads = request.app.state.reads

    def body():
        with reads.connect() as (conn, freshness):
            yield freshness
            yield from csv_chunks(conn, q)

    rows = body()
    # The connection is taken here, before the response starts, so that where it reads
    # from can go in the headers. The started generator holds it from now on: read to the
    # end, failed, or dropped unread (a client gone), it is closed and its with-block gives
    # the connection back.
    freshness = next(rows)
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{_name(q, "csv")}"',
        "X-Casegrid-Read-Source": freshness.header()})


@router.get("/ledger.xlsx", response_class=FileResponse, responses={200: {
    "content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}},
    "description": "The ledger (Excel workbook)"}})
def ledger_xlsx(request: Request, principal: Exporter, engine: EngineDep, date_from: PeriodFrom,
                date_to: PeriodTo, community: Codes = [],  # noqa: B006
                category: Codes = []) -> FileResponse:  # noqa: B006
    """The ledger as an Excel workbook (more than 1,048,575 rows continue on a second sheet)."""
    q = _query(engine, principal, date_from, date_to, community, category)
    fd, path = tempfile.mkstemp(prefix="casegrid-ledger-", suffix=".xlsx")
    os.close(fd)
    try:
        with request.app.state.reads.connect() as (conn, freshness):
            write_xlsx(conn, q, path)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path, filename=_name(q, "xlsx"), background=BackgroundTask(os.unlink, path),
        headers={"X-Casegrid-Read-Source": freshness.header()},
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
