"""Receiving evidence files over HTTP: multipart bodies in, prepared files out.

Shared by every endpoint that takes photos (intake, Open311, workflow actions, adding a
photo to a case). The order is the same everywhere, so that nothing is half-stored:

1. the whole body is received and parsed (a client that hangs up mid-body gets nothing
   stored: no file is written before the body is complete);
2. each file is checked and prepared (:func:`cases.attachments.prepare_all`: type from
   content, size, pixels, decode, re-encode, thumbnail), off the event loop in a small
   pool of threads, so other requests (``/health`` too) are served meanwhile and a burst of
   uploads does not decode more photos at once than there are cores;
3. the files are written to the store, then the rows and the case change are committed in
   one transaction (the caller's), then any file a sweep took meanwhile is put back.

A refusal at step 2 or 3 names the file and the limit (4xx); nothing of the request stays
but, at worst, files no row names, which the sweep removes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from casegrid.db import single_read
from casegrid.errors import FileRefused, FileTooLarge, InvalidInput
from casegrid.settings import Settings
from cases import attachments
from cases.images import Prepared, Upload
from cases.tokens import Principal, authenticate

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_limiter: anyio.CapacityLimiter | None = None
_db_limiter: anyio.CapacityLimiter | None = None
# Uploads do not wait their turn at api.db_gate (they would hold it while decoding); their
# database work (a token read, the transaction) runs at most this many at once instead.
DB_TURNS = 2


def is_multipart(request: Request) -> bool:
    """Whether the request body is ``multipart/form-data``."""
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def multipart_variant(handler: Callable[[Request], Awaitable[Response]]) -> type[APIRoute]:
    """A route class (``route_class_override``) that serves ``multipart/form-data``
    requests with ``handler`` and every other request as the route itself would: one path,
    the JSON body FastAPI validates, and a form with photos beside it."""

    class MultipartVariant(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            declared = super().get_route_handler()

            async def serve(request: Request) -> Response:
                if is_multipart(request):
                    return await handler(request)
                return await declared(request)

            return serve

    return MultipartVariant


def post_with_photos(router: APIRouter, path: str, handler: Callable[[Request], Awaitable[Response]],
                     json_part: str, description: str, **route: Any) -> Callable:
    """Like ``@router.post(path, **route)``, and a ``multipart/form-data`` body (its JSON
    in the part ``json_part``, photos in parts ``photo``) is served by ``handler``."""
    def decorate(endpoint: Callable) -> Callable:
        router.add_api_route(path, endpoint, methods=["POST"],
                             route_class_override=multipart_variant(handler),
                             openapi_extra=form_with_photos(json_part, description), **route)
        return endpoint
    return decorate


def form_with_photos(json_part: str, description: str) -> dict:
    """``openapi_extra`` documenting the multipart variant beside a route's JSON body."""
    return {"requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [json_part], "properties": {
            json_part: {"type": "string", "description": description},
            "photo": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "JPEG, PNG, WebP, HEIC/HEIF or PDF (type from content)."},
        }}}}}}


async def caller(request: Request, *, required: bool = True) -> Principal | None:
    """The request's principal from its bearer token, or from the signed-in person's session
    cookie (the workbench's and the maps' img tags send no header), read on a short
    connection of its own: an upload must not hold a connection while its photos are
    decoded. Without either: 401, or None when not ``required``."""
    from api.web_session import SESSION_COOKIE, session_policy
    from cases.users import session_for

    scheme, secret = get_authorization_scheme_param(request.headers.get("authorization"))
    token = secret if scheme.lower() == "bearer" and secret else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if token is None and cookie is None and not required:
        return None

    def read() -> Principal:
        with single_read(request.app.state.engine) as conn:
            if token is None and cookie:
                session = session_for(conn, cookie, session_policy(request))
                if session is not None:
                    return session.principal
            return authenticate(conn, token)

    return await db_turn(read)


def _db_turns() -> anyio.CapacityLimiter:
    global _db_limiter
    if _db_limiter is None:
        _db_limiter = anyio.CapacityLimiter(DB_TURNS)
    return _db_limiter


def _image_limiter() -> anyio.CapacityLimiter:
    # Decoding a 12-megapixel photo holds ~36 MB and a core for a fraction of a second:
    # more at once than cores only costs memory. Made on first use, on the serving loop.
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
    return _limiter


async def read_form(request: Request, file_parts: tuple[str, ...], settings: Settings,
                    lists: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[Upload]]:
    """The text fields and the files (from the parts named ``file_parts``, in order) of a
    multipart body, read completely; a field named in ``lists`` (a multiple select of an
    HTML form) is a list of its values, every other field its last value. 422 for a
    malformed body or a file in a part of another name; nothing is stored here."""
    form = await parse_form(request, file_parts, settings.attachment_max_per_case + 1)
    try:
        return text_fields(form, lists), await form_files(form, file_parts, settings)
    finally:
        await form.close()


async def parse_form(request: Request, file_parts: tuple[str, ...], max_files: int) -> FormData:
    """The multipart body parsed (files spooled, not yet read); :class:`InvalidInput` for
    a malformed body or more than ``max_files`` files. The caller closes it."""
    try:
        return await request.form(max_files=max_files, max_fields=100)
    except ClientDisconnect:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed body is the client's fault
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        raise InvalidInput(f"the multipart body could not be read ({detail}); send "
                           "multipart/form-data with the files in parts named "
                           f"{' or '.join(file_parts)}", field="body") from None


def text_fields(form: FormData, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """The form's text fields: those named in ``lists`` as lists of their values, every
    other its last value."""
    fields: dict[str, Any] = {name: [] for name in lists}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if key in lists:
            fields[key].append(value)
        else:
            fields[key] = value
    return fields


async def form_files(form: FormData, file_parts: tuple[str, ...],
                     settings: Settings) -> list[Upload]:
    """The files of ``form`` from the parts named ``file_parts``, in order, each read up to
    the per-file limit (:class:`FileTooLarge` naming the file past it); at most
    ``attachment_max_per_case`` of them (:class:`FileRefused`). A file in a part of another
    name is refused; an HTML form's file input left empty sends a nameless empty part,
    which is no file."""
    max_files = settings.attachment_max_per_case
    sent: list[tuple[Upload, UploadFile]] = []
    counts: dict[str, int] = {}
    for key, value in form.multi_items():
        if not isinstance(value, UploadFile):
            continue
        if key not in file_parts:
            raise InvalidInput(f"a file came in a part named {key!r}; send files in "
                               f"parts named {' or '.join(file_parts)}", field=key)
        if not value.filename and not value.size:
            continue
        index = counts.get(key, 0)
        counts[key] = index + 1
        sent.append((Upload(key, index, value.filename, b""), value))
    if len(sent) > max_files:
        raise FileRefused(f"{len(sent)} files were sent; a case holds at most {max_files} "
                          "files: send fewer", field=file_parts[0])
    for upload, file in sent:
        upload.data = await _read_limited(file, upload, settings)
    return [upload for upload, _file in sent]


async def _read_limited(file: UploadFile, upload: Upload, settings: Settings) -> bytes:
    # One byte past the limit is enough to know; never more of it in memory.
    limit = int(settings.attachment_max_file_mb * 1_000_000)
    data = await file.read(limit + 1)
    if len(data) > limit:
        size = file.size if file.size is not None else len(data)
        raise FileTooLarge(
            f"{upload.label} is {size / 1_000_000:.1f} MB; the limit is "
            f"{limit / 1_000_000:g} MB per file: send a smaller photo (most phones can share "
            "a reduced size)", field=upload.field)
    return data


async def prepare_and_store(uploads: list[Upload], settings: Settings) -> list[Prepared]:
    """Check and prepare ``uploads`` and write their files to the store, off the event loop
    (step 2 and the first half of step 3 of the module docstring)."""
    if not uploads:
        return []
    prepared = await anyio.to_thread.run_sync(attachments.prepare_all, uploads, settings,
                                              limiter=_image_limiter())
    store = attachments.store_for(settings)
    await anyio.to_thread.run_sync(attachments.write_files, store, prepared)
    return prepared


async def db_turn(fn: Callable[..., T], *args: Any) -> T:
    """Run the database work ``fn(*args)`` of an upload in a thread, at most
    :data:`DB_TURNS` at once."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_db_turns())


async def commit_with_files(work: Callable[[], T], prepared: list[Prepared],
                            settings: Settings) -> T:
    """Run the transaction ``work`` in a thread, then make sure its files are stored."""
    result = await db_turn(work)
    if prepared:
        await anyio.to_thread.run_sync(attachments.ensure_files,
                                       attachments.store_for(settings), prepared)
    return result


def parse_json_part(model: type[M], raw: str | bytes | None, part: str) -> M:
    """A JSON form part (or body) as ``model``, with the 422 FastAPI gives for a JSON body
    (locations start at ``body``, then the part's name)."""
    loc: tuple[Any, ...] = ("body", part) if part else ("body",)
    if raw is None or not str(raw).strip():
        raise RequestValidationError([{"type": "missing", "loc": loc, "msg": "Field required",
                                       "input": None}])
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            # FastAPI's answer to bytes that are not text.
            raise HTTPException(400, "the request body is not UTF-8 text; send JSON encoded "
                                     "as UTF-8") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        pos = getattr(exc, "pos", 0)
        raise RequestValidationError([{"type": "json_invalid", "loc": (*loc, pos),
                                       "msg": "JSON decode error", "input": {}}]) from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors()]) from None
