"""Photos from the workbench's case page, over HTTP (the rules are in ``cases.attachments``).

* ``POST /work/cases/{id}/actions/{action}`` as ``multipart/form-data``: an action form
  with its photos (handle: after photos; verify: on-site photos; return: a photo of why),
  the multipart variant of :func:`api.routes.web.case_action`.
* ``POST /work/cases/{id}/photos``: photos or documents added to the case with a caption.

Both go the way of every upload (:mod:`api.uploads`): the session is read on a short
connection, the body completely, the files checked and written off the event loop without
a connection held, then the action (or the addition) and the files' rows are committed in
one transaction. A refused file (type, size, count), a refused action (422) or a case
changed meanwhile (409) stores no row and changes nothing: the page comes back with the
message at its form. Without a session: to /login; without the form token: 403, nothing
stored.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from api.errors import status_for
from api.routes import web as pages
from api.uploads import (
    commit_with_files,
    db_turn,
    form_files,
    is_multipart,
    parse_form,
    prepare_and_store,
    text_fields,
)
from api.web_session import SESSION_COOKIE, SignInRequired, session_policy
from casegrid.db import single_read
from casegrid.errors import CasegridError, FileRefused, InvalidInput, NotFound
from cases import attachments
from cases.images import Prepared
from cases.users import Session, session_for
from web import evidence, forms, i18n
from web.render import page_url

router = APIRouter(include_in_schema=False)
PARTS = ("photo",)


async def _session(request: Request) -> Session:
    """The signed-in person (on a connection of its own, given back at once)."""
    def read() -> Session | None:
        with single_read(request.app.state.engine) as conn:
            return session_for(conn, request.cookies.get(SESSION_COOKIE), session_policy(request))

    session = await db_turn(read)
    if session is None:
        raise SignInRequired("/work")
    return session


class _Posted:
    """A page form's text fields, its files read and checked, or the refusal of one."""

    def __init__(self, fields: dict[str, str], names: list[str | None]):
        self.fields = fields
        self.names = names
        self.prepared: list[Prepared] = []
        self.refusal: FileRefused | None = None


async def _receive(request: Request, session: Session, *, takes_files: bool = True) -> _Posted | Response:
    """Read the form: its fields always (they are shown again after a refusal); then, if
    the form token is right (a 403 page otherwise), its files, checked and written to the
    store. ``takes_files`` false: files are refused unread."""
    settings = request.app.state.settings
    if not is_multipart(request):
        form = await request.form()
        posted = _Posted(text_fields(form), [])
        return posted if session.csrf_ok(posted.fields.get("csrf_token")) else \
            pages._csrf_refused(request, _lang(request, posted.fields), session)
    # More files than a case holds are counted by form_files, with the fields kept, rather
    # than refused by the parser.
    form = await parse_form(request, PARTS, 4 * settings.attachment_max_per_case)
    try:
        posted = _Posted(text_fields(form), [
            v.filename for k, v in form.multi_items()
            if k in PARTS and isinstance(v, UploadFile) and (v.filename or v.size)])
        if not session.csrf_ok(posted.fields.get("csrf_token")):
            return pages._csrf_refused(request, _lang(request, posted.fields), session)
        if not takes_files:
            if posted.names:
                posted.refusal = FileRefused(
                    i18n.strings(_lang(request, posted.fields))["photo_not_taken"], field="_")
            return posted
        try:
            uploads = await form_files(form, PARTS, settings)
        except FileRefused as exc:
            posted.refusal = exc
            return posted
    finally:
        await form.close()
    try:
        posted.prepared = await prepare_and_store(uploads, settings)
    except FileRefused as exc:
        posted.refusal = exc
    return posted


def _lang(request: Request, fields: dict[str, str]) -> str:
    return i18n.check_lang(fields.get("lang") or request.query_params.get("lang"))


async def _in_transaction(request: Request, fn: Callable, prepared: list[Prepared]) -> Response:
    """``fn(conn)`` in one transaction (the files' rows with it), then the files checked."""
    engine = request.app.state.engine

    def work() -> Response:
        with engine.begin() as conn:
            return fn(conn)

    return await commit_with_files(work, prepared, request.app.state.settings)


def _case_id(request: Request) -> int | None:
    raw = request.path_params.get("case_id", "")
    return int(raw) if str(raw).isdigit() else None


async def action_with_photos(request: Request) -> Response:
    """An action form posted with its photos (see the module docstring)."""
    session = await _session(request)
    settings = request.app.state.settings
    action = request.path_params["action"]
    case_id = _case_id(request)
    if case_id is None:
        return pages._error_page(request, _lang(request, {}), session,
                                 NotFound("no such case", field="id"))
    posted = await _receive(request, session, takes_files=forms.takes_photos(action))
    if isinstance(posted, Response):
        return posted
    fields, lang = posted.fields, _lang(request, posted.fields)
    if posted.refusal is not None:
        refusal = posted.refusal
        state = forms.FormState(action, {k: v for k, v in fields.items() if k != "csrf_token"})
        if refusal.field == "_":  # photos on an action that takes none
            state.errors["_"] = refusal.message
        else:
            state.errors["photo"] = evidence.refusal_text(refusal, posted.names, lang, settings)
        return await _in_transaction(request, lambda conn: pages._retry(
            request, conn, session, case_id, lang, fields.get("queue") or None, fields, state,
            status_for(refusal)), [])
    return await _in_transaction(request, lambda conn: pages._take_action(
        request, conn, session, case_id, action, fields, posted.prepared), posted.prepared)


@router.post("/work/cases/{case_id}/photos", response_class=HTMLResponse)
async def add_photos(request: Request, case_id: int) -> Response:
    """Photos or documents added to the case with a caption, by staff who may add
    evidence (``cases.attachments.may_add``). Success: 303 back to the case's photos; a
    refusal: the page again with the message at the form and the caption kept."""
    session = await _session(request)
    settings = request.app.state.settings
    posted = await _receive(request, session)
    if isinstance(posted, Response):
        return posted
    fields, lang = posted.fields, _lang(request, posted.fields)
    t = i18n.strings(lang)
    caption = fields.get("caption", "")
    queue = fields.get("queue") or None

    def page(conn, message: str, status: int) -> Response:  # noqa: ANN001
        try:
            return pages._case_page(request, conn, session, case_id, lang, queue_name=queue,
                                    params=pages._carried(fields), status=status, extra={
                                        "photo_form": {"caption": caption, "error": message}})
        except CasegridError as exc:
            return pages._error_page(request, lang, session, exc)

    if posted.refusal is not None or not posted.prepared:
        refusal = posted.refusal or FileRefused("no file was chosen", field="photo")
        message = (evidence.refusal_text(refusal, posted.names, lang, settings)
                   if posted.refusal is not None else t["photo_none"])
        return await _in_transaction(
            request, lambda conn: page(conn, message, status_for(refusal)), [])

    def add(conn) -> Response:  # noqa: ANN001
        try:
            with conn.begin_nested():
                ids = attachments.add_to_case(conn, case_id, posted.prepared, session.principal,
                                              settings, caption)
        except FileRefused as exc:
            text = (exc.message if exc.field == "caption"
                    else evidence.refusal_text(exc, posted.names, lang, settings))
            return page(conn, text, status_for(exc))
        except InvalidInput as exc:
            return page(conn, exc.message, status_for(exc))
        except CasegridError as exc:  # another community's case (404), a reading role (403)
            return pages._error_page(request, lang, session, exc)
        target = page_url(f"/work/cases/{case_id}", lang, queue=queue, photos_added=len(ids),
                          **pages._carried(fields))
        return RedirectResponse(target + "#evidence", status_code=303)

    return await _in_transaction(request, add, posted.prepared)
