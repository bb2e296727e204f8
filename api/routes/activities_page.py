"""``GET /work/activities`` (the activities ledger: the period's activities with their
photos' thumbnails and, for those who record them, the form) and ``POST /work/activities``
(record one with its photos, through :func:`cases.activity_photos.record_with_photos`, the
API's own rules).

The form is ``multipart/form-data`` (photos from the phone's camera or gallery), so the
post is an upload (``api.middleware.UPLOAD_PATHS``): it is received whole, its photos
prepared and written without a connection held, and only then is the activity committed
with its photos' rows (``api.uploads``), as the API does.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from api.deps import ConnDep
from api.errors import status_for
from api.routes.web import _csrf_refused, _error_page, _html, _lang
from api.uploads import commit_with_files, db_turn, prepare_and_store, read_form
from api.web_session import WebSession, current_session, optional_session
from casegrid.db import single_read
from casegrid.errors import CasegridError, InvalidInput
from cases import activities, activity_photos
from cases.calendar import CITY_TZ
from cases.users import Session
from geo.pois import pois_in
from web.activities import KIND_CHOICES, words

router = APIRouter(include_in_schema=False)
FIELDS = ("started_at", "kind", "kind_name", "title", "communities", "place", "poi_id",
          "staff", "volunteers", "reached", "note")


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
    items = activity_photos.with_photos(conn, activities.list_activities(
        conn, session.principal, date_from=first, date_to=last, limit=500))
    counts = activities.activity_counts(conn, first, last)
    may_record = session.principal.role in activities.RECORDERS
    communities = _communities(conn, session) if may_record else []
    names = {c["code"]: c["name"] for c in communities}
    pois = pois_in(conn, list(names)) if communities else []
    for p in pois:
        p["community_name"] = names[p["community_code"]]
    return _html(request, "activities.html", lang, session, status=status, a=words(lang),
                 items=items, counts=counts, month=first.strftime("%Y-%m"),
                 may_record=may_record, kinds=KIND_CHOICES, kinds_zh=activities.KINDS,
                 communities=communities, pois=pois,
                 form=form or {}, error=error,
                 request_saved=request.query_params.get("saved") == "1" and not error)


@router.get("/work/activities", response_class=HTMLResponse)
def activities_page(request: Request, conn: ConnDep, session: WebSession,
                    month: str | None = None) -> Response:
    """The month's activities (default: this month) and the form to record one."""
    return _page(request, conn, session, _lang(request), month=month)


@router.post("/work/activities", response_class=HTMLResponse)
async def record_activity(request: Request) -> Response:
    """Record an activity and its photos from the form; the form comes back with the
    field's (or the photo's) error and nothing stored."""
    settings = request.app.state.settings
    engine = request.app.state.engine

    def signed_in():  # noqa: ANN202 - a Session or None
        with single_read(engine) as conn:
            return optional_session(request, conn)

    session = current_session(request, await db_turn(signed_in))

    def page(lang: str, form: dict | None, exc: CasegridError, month: str | None) -> Response:
        with engine.connect() as conn:
            return _page(request, conn, session, lang, form=form, error=exc,
                         status=status_for(exc), month=month)

    try:
        raw, uploads = await read_form(request, ("photo",), settings, lists=("communities",))
    except CasegridError as exc:  # a photo too large, a malformed body: nothing stored
        return await db_turn(page, _lang(request), None, exc, None)
    lang = _lang(request, raw)
    if not session.csrf_ok(raw.get("csrf_token")):
        return _csrf_refused(request, lang, session)
    form = {k: (raw.get(k) or "").strip() for k in FIELDS if k != "communities"}
    form["communities"] = [c for c in raw["communities"] if c]
    data = dict(form)
    # A point of interest picked as the place: its id (a number), or none; anything else
    # goes on as typed for check_activity to name the field.
    data["poi_id"] = (int(form["poi_id"]) if form["poi_id"].isdigit()
                      else form["poi_id"] or None)
    if form["started_at"]:  # <input type=datetime-local> gives local time without offset
        with contextlib.suppress(ValueError):  # if unreadable, check_activity names the field
            data["started_at"] = datetime.fromisoformat(form["started_at"]).replace(
                tzinfo=CITY_TZ).isoformat()
    month = form["started_at"][:7] or None
    try:
        prepared = await prepare_and_store(uploads, settings)

        def work() -> dict:
            with engine.begin() as conn:
                return activity_photos.record_with_photos(conn, data, session.principal,
                                                          prepared, settings, source="workbench")

        await commit_with_files(work, prepared, settings)
    except CasegridError as exc:  # refused before anything was committed
        return await db_turn(page, lang, form, exc, month)
    suffix = "&lang=en" if lang == "en" else ""
    return RedirectResponse(f"/work/activities?month={data['started_at'][:7]}&saved=1{suffix}",
                            status_code=303)
