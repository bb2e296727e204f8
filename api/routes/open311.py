"""Open311 GeoReport v2 under ``/open311/v2/`` (JSON and XML, the spec's error format).

Reading (discovery, services, requests, tokens) is public, as Open311 practice is; no read
ever returns reporter data. Submitting needs ``api_key``: a casegrid token whose role may
submit cases. Errors are ``[{"code": 400, "description": "..."}]`` (or ``<errors>`` in XML)
with status 400, 403 or 404, never casegrid's own error shape, so Open311 clients can parse
them. The mapping and rendering live in ``cases/open311.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine

from api.deps import EngineDep
from api.middleware import BodyTooLarge
from api.uploads import commit_with_files, db_turn, is_multipart, prepare_and_store, read_form
from casegrid.db import single_read
from casegrid.errors import CasegridError
from cases import open311
from cases.intake import SUBMITTERS
from cases.open311 import Open311Error
from cases.tokens import Principal, authenticate

router = APIRouter(prefix="/open311/v2", tags=["open311"])

FORMATS = open311.FORMATS
_ROOTS = {"discovery": "discovery", "services": "services", "definition": "service_definition",
          "requests": "service_requests"}


def _render(fmt: str, kind: str, payload: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(open311.to_xml(_ROOTS[kind], payload), status_code=status,
                        media_type=FORMATS["xml"])
    return JSONResponse(open311.jsonable(payload), status_code=status)


def _error(fmt: str, err: Open311Error) -> Response:
    return Response(open311.error_document(err, fmt), status_code=err.status,
                    media_type=FORMATS[fmt])


def _answer(fmt: str, kind: str, work: Callable[[], Any], status: int = 200) -> Response:
    """Run ``work`` and render its result, or the spec's error for any input fault."""
    if fmt not in FORMATS:
        return _error("json", Open311Error(404, f"format {fmt!r} is not served: use .json or .xml"))
    try:
        return _render(fmt, kind, work(), status)
    except Open311Error as err:
        return _error(fmt, err)
    except CasegridError as exc:
        return _error(fmt, open311.from_domain(exc))


def _read(fmt: str, kind: str, engine: Engine, read: Callable[[Connection], Any]) -> Response:
    """:func:`_answer` for a read: ``read`` runs on one pooled connection of ``engine``."""
    def work() -> Any:
        with engine.connect() as conn:
            return read(conn)
    return _answer(fmt, kind, work)


@router.get("/discovery.{fmt}")
def get_discovery(fmt: str, request: Request) -> Response:
    """Where the endpoints are and which formats they speak."""
    return _answer(fmt, "discovery", lambda: open311.discovery(str(request.base_url)))


@router.get("/services.{fmt}")
def get_services(fmt: str, engine: EngineDep) -> Response:
    """The service list: one service per active category (service_code = category code)."""
    return _read(fmt, "services", engine, open311.services)


@router.get("/services/{service_code}.{fmt}")
def get_service_definition(service_code: str, fmt: str, engine: EngineDep) -> Response:
    """Attribute definitions of one service (``crs`` and ``time_of_day``, both optional)."""
    return _read(fmt, "definition", engine,
                 lambda conn: open311.service_definition(conn, service_code))


@router.post("/requests.{fmt}")
async def post_request(fmt: str, request: Request, engine: EngineDep) -> Response:
    """Submit a service request (form-encoded, ``api_key`` required)."""
    if fmt not in FORMATS:
        return _error("json", Open311Error(404, f"format {fmt!r} is not served: use .json or .xml"))
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return _error(fmt, Open311Error(
            400, f"content type {content_type or 'none'!r} is not accepted: send the fields "
                 "form-encoded (application/x-www-form-urlencoded)"))
    settings = request.app.state.settings
    media = []
    try:
        if is_multipart(request):  # photos in parts named "media" (as Open311 clients send)
            form, uploads = await read_form(request, ("media",), settings)
        else:
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            uploads = []
    except BodyTooLarge as exc:  # a chunked body past the limit: a 413, not a parse error
        return _error(fmt, Open311Error(413, exc.detail))
    except CasegridError as exc:  # a file or part refused, naming it
        return _error(fmt, open311.from_domain(exc))
    except Exception:  # a malformed body is the client's fault, never a 500
        return _error(fmt, Open311Error(400, "the form body could not be parsed"))
    if uploads:
        # The key first: no photo is decoded or stored for a request that will be refused.
        try:
            await db_turn(_submitter, engine, form)
            media = await prepare_and_store(uploads, settings)
        except Open311Error as err:
            return _error(fmt, err)
        except CasegridError as exc:  # a photo refused, naming it and the limit
            return _error(fmt, open311.from_domain(exc))

    def work():
        # One transaction: a refused request writes nothing.
        with engine.begin() as conn:
            principal = _principal(conn, form)
            return open311.submit(conn, form, principal, media, settings)

    if not is_multipart(request):
        return await run_in_threadpool(_answer, fmt, "requests", work, 201)
    # An upload skips the queue at the pool (api.db_gate): its transaction takes a turn of
    # the uploads' own instead, then any of its files a sweep took meanwhile is put back.
    return await commit_with_files(lambda: _answer(fmt, "requests", work, 201), media, settings)


def _principal(conn: Connection, form: dict[str, str]) -> Principal:
    """The submitter its ``api_key`` names (Open311Error 403 if none, or not a submitter)."""
    try:
        principal = authenticate(conn, form.get("api_key") or None)
    except CasegridError as exc:
        raise Open311Error(403, f"api_key: {exc.message}") from None
    if principal.role not in SUBMITTERS:
        raise Open311Error(403, f"api_key: role {principal.role!r} may not submit "
                                "requests; ask for an intake key")
    return principal


def _submitter(engine: Engine, form: dict[str, str]) -> Principal:
    with single_read(engine) as conn:
        return _principal(conn, form)


def _media_base(request: Request) -> str | None:
    """Where media_url points (the server's own URL), when citizens' photos are published."""
    return str(request.base_url) if request.app.state.settings.attachment_intake_public else None


@router.get("/requests.{fmt}")
def get_requests(fmt: str, request: Request, engine: EngineDep) -> Response:
    """Service requests: filters ``service_request_id``, ``service_code``, ``start_date``,
    ``end_date`` (at most 90 days apart; default the last 90 days) and ``status``."""
    q = request.query_params
    params = {k: q.get(k) for k in ("service_request_id", "service_code", "start_date",
                                    "end_date", "status")}
    return _read(fmt, "requests", engine,
                 lambda conn: open311.find_requests(conn, params, media_base=_media_base(request)))


@router.get("/requests/{service_request_id}.{fmt}")
def get_request(service_request_id: str, fmt: str, request: Request,
                engine: EngineDep) -> Response:
    """One service request (a one-element list, as the spec has it)."""
    return _read(fmt, "requests", engine, lambda conn: open311.get_request(
        conn, service_request_id, media_base=_media_base(request)))


@router.get("/tokens/{token}.{fmt}")
def get_token(token: str, fmt: str, engine: EngineDep) -> Response:
    """The service_request_id a submission token became."""
    return _read(fmt, "requests", engine, lambda conn: open311.get_token(conn, token))
