"""``GET /work/activities`` (the activities ledger: the period's activities and, for those
who record them, the form) and ``POST /work/activities`` (record one, through
:func:`cases.activities.create_activity`, the API's own rules)."""

from __future__ import annotations

import contextlib
from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from api.deps import ConnDep
from api.errors import status_for
from api.routes.web import _csrf_refused, _error_page, _html, _lang
from api.web_session import WebSession
from casegrid.errors import CasegridError, InvalidInput
from cases import activities
from cases.calendar import CITY_TZ
from cases.users import Session
from web.activities import KIND_CHOICES, words

router = APIRouter(include_in_schema=False)
FIELDS = ("started_at", "kind", "kind_name", "title", "communities", "place", "staff",
          "volunteers", "reached", "note")


def _communities(conn, session: Session) -> list[dict]:  # noqa: ANN001
    """The communities this person may record for (an officer: their own)."""
    rows = conn.execute(text(
        "SELECT c.code, c.name FROM community c JOIN boundary_generation g "
        "ON g.id = c.generation_id AND g.active ORDER BY c.code")).mappings().all()
    return [dict(r) for r in rows if session.principal.may_see_community(r["code"])]


def _page(request: Request, conn, session: Session, lang: str, *, form: dict | None = None,  # noqa: ANN001
          error: CasegridError | None = None, status: int = 200, month: str | None = None) -> Response:
    today = datetime.now(CITY_TZ).date()
    try:
        first = datetime.strptime(month, "%Y-%m").date() if month else today.replace(day=1)
    except ValueError:
        return _error_page(request, lang, session, InvalidInput(words(lang)["bad_month"],
                                                                field="month"))
    last = (first.replace(year=first.year + 1, month=1) if first.month == 12
            else first.replace(month=first.month + 1))
    last = date.fromordinal(last.toordinal() - 1)
    items = activities.list_activities(conn, session.principal, date_from=first, date_to=last,
                                       limit=500)
    counts = activities.activity_counts(conn, first, last)
    may_record = session.principal.role in activities.RECORDERS
    return _html(request, "activities.html", lang, session, status=status, a=words(lang),
                 items=items, counts=counts, month=first.strftime("%Y-%m"),
                 may_record=may_record, kinds=KIND_CHOICES, kinds_zh=activities.KINDS,
                 communities=_communities(conn, session) if may_record else [],
                 form=form or {}, error=error,
                 request_saved=request.query_params.get("saved") == "1" and not error)


@router.get("/work/activities", response_class=HTMLResponse)
def activities_page(request: Request, conn: ConnDep, session: WebSession,
                    month: str | None = None) -> Response:
    """The month's activities (default: this month) and the form to record one."""
    return _page(request, conn, session, _lang(request), month=month)


@router.post("/work/activities", response_class=HTMLResponse)
async def record_activity(request: Request, conn: ConnDep, session: WebSession) -> Response:
    """Record an activity from the form; the form comes back with the field's error."""
    raw = await request.form()
    lang = _lang(request, dict(raw))
    if not session.csrf_ok(raw.get("csrf_token")):
        return _csrf_refused(request, lang, session)
    form = {k: (raw.get(k) or "").strip() for k in FIELDS if k != "communities"}
    form["communities"] = [c for c in raw.getlist("communities") if c]
    data = dict(form)
    if form["started_at"]:  # <input type=datetime-local> gives local time without offset
        with contextlib.suppress(ValueError):  # if unreadable, check_activity names the field
            data["started_at"] = datetime.fromisoformat(form["started_at"]).replace(
                tzinfo=CITY_TZ).isoformat()
    try:
        activities.create_activity(conn, data, session.principal, source="workbench")
    except CasegridError as exc:  # refused before anything was written
        return _page(request, conn, session, lang, form=form, error=exc, status=status_for(exc),
                     month=form["started_at"][:7] or None)
    month = data["started_at"][:7]
    suffix = "&lang=en" if lang == "en" else ""
    return RedirectResponse(f"/work/activities?month={month}&saved=1{suffix}", status_code=303)
