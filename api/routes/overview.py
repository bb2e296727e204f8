"""``GET /work/overview``: the page a bureau head reads in a minute (supervisors, admins):
this month beside last month and the same month last year, the posts' evaluation, the top
complaint types and places, and the activities; prints on one A4 page."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import ConnDep
from api.routes.web import _error_page, _html, _lang
from api.web_session import WebSession
from casegrid.errors import Forbidden, InvalidInput
from cases.calendar import CITY_TZ
from cases.overview import overview
from web.overview import bar_widths, words

router = APIRouter(include_in_schema=False)
ROLES = ("supervisor", "admin")


def _fmt(value: float | None, rate: bool) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if rate else f"{value:,}"


@router.get("/work/overview", response_class=HTMLResponse)
def overview_page(request: Request, conn: ConnDep, session: WebSession,
                  month: str | None = None) -> Response:
    """The month's overview (``month=YYYY-MM``, default: this month)."""
    lang = _lang(request)
    o = words(lang)
    if session.principal.role not in ROLES:
        return _error_page(request, lang, session, Forbidden(
            "the overview is for supervisors and admins", field="role"))
    if month:
        try:
            day = datetime.strptime(month, "%Y-%m").date()
        except ValueError:
            return _error_page(request, lang, session, InvalidInput(o["bad_month"], field="month"))
    else:
        day = datetime.now(CITY_TZ).date()
    data = overview(conn, date(day.year, day.month, 1))
    return _html(request, "overview.html", lang, session, o=o, data=data, bar=bar_widths,
                 fmt=_fmt)
