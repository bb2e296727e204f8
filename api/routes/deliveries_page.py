"""The admins' failed notifications on the workbench (issue 23): ``GET /work/deliveries``
lists the deliveries the worker gave up on, with the last error, and ``POST
/work/deliveries/{id}/retry`` sends one again at the worker's next pass. The rules are
:mod:`notify.outbox`'s (:func:`~notify.outbox.list_deliveries`, :func:`~notify.outbox.retry`),
the same as ``casegrid outbox list --failed`` and ``casegrid outbox retry ID``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ConnDep
from api.routes.web import _csrf_refused, _error_page, _html, _lang, _nav
from api.web_session import WebSession
from casegrid.errors import CasegridError, Forbidden
from cases.notices import LABELS_ZH
from cases.users import Session
from notify import outbox
from web import i18n
from web.render import page_url

router = APIRouter(include_in_schema=False)
SHOWN = 200  # the newest failed deliveries on the page; the CLI lists more


def _admin_only(session: Session) -> None:
    if session.principal.role != "admin":
        raise Forbidden("failed notifications are for administrators", field="role")


@router.get("/work/deliveries", response_class=HTMLResponse)
def failed_deliveries(request: Request, conn: ConnDep, session: WebSession) -> Response:
    """The failed deliveries, newest first, each with its error and a send-again button."""
    lang = _lang(request)
    try:
        _admin_only(session)
    except CasegridError as exc:
        return _error_page(request, lang, session, exc)
    retried = request.query_params.get("retried", "")
    flash = ({"text": i18n.strings(lang)["delivery_retried"].format(id=retried), "tone": "ok"}
             if retried.isdigit() else None)
    return _html(request, "deliveries.html", lang, session,
                 rows=outbox.list_deliveries(conn, failed_only=True, limit=SHOWN),
                 total=outbox.failed_count(conn), labels_zh=LABELS_ZH, flash=flash,
                 nav=_nav(conn, session, counts=False))


@router.post("/work/deliveries/{delivery_id}/retry")
def retry_delivery(request: Request, conn: ConnDep, session: WebSession, delivery_id: int,
                   csrf_token: Annotated[str, Form()] = "", lang: Annotated[str, Form()] = "") -> Response:
    """Send a failed delivery again (its give-up clock starts afresh); back to the list."""
    lang = i18n.check_lang(lang or request.query_params.get("lang"))
    if not session.csrf_ok(csrf_token):
        return _csrf_refused(request, lang, session)
    try:
        _admin_only(session)
        outbox.retry(conn, delivery_id)
    except CasegridError as exc:
        return _error_page(request, lang, session, exc)
    return RedirectResponse(page_url("/work/deliveries", lang, retried=delivery_id), status_code=303)
