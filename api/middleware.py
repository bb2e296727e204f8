"""Request guards that run before any route: body size limit (413), JSON-only bodies for
the JSON API (415), no NUL characters in the path or query (422).

Install with :func:`install_middleware` right after the app is made. It is plain ASGI
middleware, so it costs a dictionary lookup on requests without a body.

* Size: a ``Content-Length`` over ``settings.max_body_bytes`` is refused before a byte of
  the body is read. A chunked body (no length) is counted as it streams and refused as soon
  as it passes the limit.
* NUL characters in the path or a query parameter are refused (422; Open311: 400 in the
  spec's error format) before any route runs: PostgreSQL text cannot hold them.
* Content type: under ``/api/`` a POST/PUT/PATCH with a body must be JSON
  (``application/json`` or ``application/<something>+json``); Open311 under ``/open311/``
  takes form-encoded bodies and is not affected. A route that needs another type can be
  listed in ``JSON_EXEMPT_PREFIXES``.
* Uploads: on the endpoints that take evidence files (:data:`UPLOAD_PATHS`) a
  ``multipart/form-data`` body is accepted, up to ``attachment_max_request_mb``; the files'
  own limits are checked, naming each file, by ``api.uploads``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from cases import open311

JSON_ONLY_PREFIXES = ("/api/",)
OPEN311_PREFIX = "/open311/"
JSON_EXEMPT_PREFIXES: tuple[str, ...] = ()
# Endpoints that take evidence files as multipart/form-data (api.uploads).
UPLOAD_PATHS = re.compile(
    r"^(?:/api/v1/cases(?:/\d+/(?:actions|attachments))?|/open311/v2/requests\.\w+"
    r"|/api/v1/activities(?:/\d+/attachments)?|/work/activities"
    r"|/work/cases/\d+/(?:actions/\w+|photos))$")  # the last: the case page's forms
_BODY_METHODS = {"POST", "PUT", "PATCH"}

Message = MutableMapping[str, Any]


class BodyTooLarge(HTTPException):
    """Raised from the body stream when a chunked body passes the limit. An HTTPException,
    so FastAPI's body parsing re-raises it instead of turning it into a 400."""

    def __init__(self, limit: int):
        super().__init__(413, detail=_too_large_message(limit))
        self.limit = limit


def _too_large_message(limit: int) -> str:
    return (f"the request body is larger than the limit of {limit} bytes; send less (photos "
            "as URLs, not inline) or, for bulk data, use `casegrid cases import`")


def _too_large_body(limit: int) -> dict:
    return {"detail": _too_large_message(limit), "code": "body_too_large", "field": "body",
            "limit_bytes": limit}


def is_upload(scope: Scope, path: str | None = None) -> bool:
    """Whether the request posts evidence files: a multipart body to an upload endpoint
    (``path``: the app's own path; by default the scope's, less a proxy's ``root_path``)."""
    if path is None:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
    if scope.get("method") != "POST" or not UPLOAD_PATHS.match(path):
        return False
    content_type = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
    return _is_multipart(content_type.decode("latin-1"))


def _is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def send_open311_error(send: Send, path: str, status: int, description: str) -> None:
    """Answer an Open311 request from ASGI middleware in the spec's error format, as XML
    when the path asks for ``.xml``, else JSON (as the routes answer theirs)."""
    fmt = "xml" if path.endswith(".xml") else "json"
    payload = open311.error_document(open311.Open311Error(status, description), fmt)
    await _send_body(send, status, payload, open311.FORMATS[fmt].encode())


async def send_json(send: Send, status: int, body: dict | list, retry_after: str | None = None) -> None:
    """Answer a request from ASGI middleware with a JSON body (and ``Retry-After`` when
    given), before any route runs."""
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    extra = [(b"retry-after", retry_after.encode())] if retry_after is not None else []
    await _send_body(send, status, payload, b"application/json", extra)


async def _send_body(send: Send, status: int, payload: bytes, content_type: bytes,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _nul_refusal(scope: Scope) -> dict | None:
    """A 422 body when the path or a query parameter holds a NUL character (PostgreSQL text
    cannot contain one, so it could only fail deeper down), else None."""
    query = scope.get("query_string", b"")
    if "\x00" in scope.get("path", ""):
        field = "path"
    elif b"%00" in query or b"\x00" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        field = next((k for k, v in pairs if "\x00" in k or "\x00" in v), "query")
        field = field.replace("\x00", "") or "query"
    else:
        return None
    return {"detail": f"{field}: NUL characters (%00) are not accepted; remove them",
            "code": "invalid_input", "field": field}


class RequestGuardMiddleware:
    """Body size limit and JSON content type (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int | None = None):
        self.app = app
        self.body_limit = int(max_body_bytes)
        self.upload_limit = int(max_upload_bytes or max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("path", "")
        open311_path = path.startswith(OPEN311_PREFIX)  # refusals in the spec's error list
        upload = is_upload(scope)
        limit = self.upload_limit if upload else self.body_limit
        length_text = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = None
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                await send_json(send, 400, {"detail": f"Content-Length {length_text!r} is not a number",
                                             "code": "invalid_input", "field": "Content-Length"})
                return
            if length > limit:
                if open311_path:
                    await send_open311_error(send, path, 413, _too_large_message(limit))
                else:
                    await send_json(send, 413, _too_large_body(limit))
                return
        if (refusal := _nul_refusal(scope)) is not None:
            if open311_path:
                await send_open311_error(send, path, 400, refusal["detail"])
            else:
                await send_json(send, 422, refusal)
            return
        has_body = chunked or (length or 0) > 0
        if (has_body and scope.get("method") in _BODY_METHODS
                and path.startswith(JSON_ONLY_PREFIXES) and not path.startswith(JSON_EXEMPT_PREFIXES)
                and not upload and not _is_json(headers.get("content-type", ""))):
            sent = headers.get("content-type") or "none"
            photos = (" (or multipart/form-data with photos)"
                      if scope.get("method") == "POST" and UPLOAD_PATHS.match(path) else "")
            await send_json(send, 415, {
                "detail": f"Content-Type {sent!r} is not accepted here: send the body as JSON "
                          f"with `Content-Type: application/json`{photos}",
                "code": "unsupported_media_type", "field": "Content-Type"})
            return
        if length is not None and not chunked:
            await self.app(scope, receive, send)  # the server enforces Content-Length
            return
        await self.app(scope, self._counting(receive, limit), send)

    def _counting(self, receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted


async def _body_too_large(_request: Request, exc: Exception) -> JSONResponse:
    limit = exc.limit if isinstance(exc, BodyTooLarge) else 0
    return JSONResponse(_too_large_body(limit), status_code=413)


def install_middleware(app: FastAPI) -> None:
    """Add the request guards to ``app`` (idempotent; call before the app starts). The limit
    is ``app.state.settings.max_body_bytes``."""
    if getattr(app.state, "request_guards_installed", False):
        return
    settings = app.state.settings
    app.add_middleware(RequestGuardMiddleware, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=int(settings.attachment_max_request_mb * 1_000_000))
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.state.request_guards_installed = True
