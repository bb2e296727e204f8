"""One mapping from domain exceptions to HTTP responses.

Bodies are ``{"detail": <what to fix>, "code": <stable id>, "field": <which input>}``.
Database error text goes to the log only, never to the client, and to the log only as
:func:`casegrid.db_errors.describe` tells it (no values of the row at fault).
"""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from casegrid.db_errors import describe
from casegrid.errors import (
    CasegridError,
    Conflict,
    DatabaseUnavailable,
    FileTooLarge,
    Forbidden,
    ImportFailed,
    InvalidInput,
    NotFound,
    Unauthorized,
    UnsupportedFile,
)
from casegrid.logs import get_logger

log = get_logger("casegrid.api")

STATUS = {
    InvalidInput: 422,
    FileTooLarge: 413,
    UnsupportedFile: 415,
    ImportFailed: 422,
    NotFound: 404,
    Forbidden: 403,
    Unauthorized: 401,
    Conflict: 409,
    DatabaseUnavailable: 503,
}
RETRY_AFTER_S = "5"
# ``code`` of errors raised by the framework itself (Starlette's HTTPException).
HTTP_CODES = {400: "invalid_body", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


class FieldProblem(BaseModel):
    """One invalid input of a 422 (request validation lists them all)."""

    field: str
    message: str


class ErrorOut(BaseModel):
    """Every casegrid error body (the Open311 endpoints use the spec's own shape)."""

    model_config = ConfigDict(extra="allow")
    detail: str = Field(description="What went wrong and what to fix.")
    code: str = Field(description="Stable identifier, e.g. invalid_input, not_found, conflict.")
    field: str | None = Field(None, description="The input at fault, when there is one.")
    errors: list[FieldProblem] | None = Field(None, description="422: every invalid input.")
    current: dict | None = Field(None, description="409: the case's current status and version.")
    limit_bytes: int | None = Field(None, description="413: the body size limit.")


def _documented(description: str) -> dict:
    return {"model": ErrorOut, "description": description}


# Documented once for every casegrid route (app.py includes each router with these), so the
# OpenAPI document describes the bodies the handlers below and the request guards really send.
ERROR_RESPONSES: dict[int | str, dict] = {
    400: _documented("A malformed request (e.g. a Content-Length that is not a number)."),
    401: _documented("No token, an unknown token or a revoked token."),
    403: _documented("The token's role may not do this."),
    404: _documented("No such thing, or it lies outside the caller's communities."),
    409: _documented("The case changed or is in a state where this action does not apply."),
    413: _documented("The request body is over the size limit."),
    415: _documented("The body is not JSON."),
    422: _documented("An input is invalid; `field` names it and `detail` says what to send."),
    503: _documented("The database is unavailable (`database_unavailable`), or the request's query "
                     "ran past the statement timeout (`query_timeout`: narrow the request, e.g. a "
                     "shorter period); retry after `Retry-After` seconds."),
}


class Open311ErrorItem(BaseModel):
    """One error in the Open311 GeoReport v2 error list."""

    code: int
    description: str


# The Open311 endpoints answer errors in the spec's format (a list), never ErrorOut.
OPEN311_ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": list[Open311ErrorItem], "description": text}
    for status, text in ((400, "A missing or invalid parameter."),
                         (403, "A missing or invalid api_key."),
                         (404, "No such service, request, token or format."))
}
# A value the database refuses (e.g. a NUL character in a form field) is answered by the
# app-wide handler below, in casegrid's shape.
OPEN311_ERROR_RESPONSES[422] = _documented("A value the database cannot store.")
# Error documentation by router tag, for routers whose module does not declare its own
# ``ERROR_RESPONSES``; any other router gets casegrid's.
ERROR_RESPONSES_BY_TAG: dict[str, dict[int | str, dict]] = {"open311": OPEN311_ERROR_RESPONSES}


def json_error_bodies(doc: dict) -> dict:
    """Document error bodies as JSON on every operation of an OpenAPI document.

    FastAPI files a route's additional responses under the route's own media type, so an
    HTML page's 404 would claim to be ``text/html``; the handlers above always send JSON.
    """
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content") or {}
                if status[:1] not in ("4", "5") or "application/json" in content or not content:
                    continue
                schemas = [v.get("schema") for v in content.values() if v.get("schema")]
                if schemas:
                    response["content"] = {"application/json": {"schema": schemas[0]}}
    return doc


def error_responses_for(module: object, tags: list[str]) -> dict[int | str, dict]:
    """The error responses to document for a router module's routes."""
    own = getattr(module, "ERROR_RESPONSES", None)
    if own is not None:
        return own
    for tag in tags:
        if tag in ERROR_RESPONSES_BY_TAG:
            return ERROR_RESPONSES_BY_TAG[tag]
    return ERROR_RESPONSES


def status_for(exc: CasegridError) -> int:
    """HTTP status of a domain error (most specific class wins)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_body(exc: CasegridError) -> dict:
    """The JSON body for a domain error."""
    body = {"detail": exc.message, "code": exc.code}
    if exc.field:
        body["field"] = exc.field
    current = getattr(exc, "current", None)
    if current is not None:
        body["current"] = current
    return body


# SQLSTATEs that mean "the database cannot serve you right now", not "your request is bad":
# class 08 (connection exception), too many connections, and the server shutting down
# (57P01 admin_shutdown: a fast stop ends our sessions; 57P02 crash_shutdown) or not yet
# accepting connections (57P03 cannot_connect_now: "the database system is starting up").
_UNAVAILABLE_SQLSTATES = ("53300", "57P01", "57P02", "57P03")


def is_connection_problem(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unreachable or restarting (a 503 the client
    can retry), False for an error in what was asked (a bug: 500).

    Decided on the SQLSTATE and on SQLAlchemy's disconnect detection, never on message text
    (which is localised by the server's lc_messages and changes between versions)."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        # No server answer at all: the client library failed to connect, or the socket broke
        # (connection refused, timeout, "server closed the connection unexpectedly").
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in _UNAVAILABLE_SQLSTATES


# SQLSTATE 57014 query_canceled: the server stopped the statement, in practice because it ran
# past ``statement_timeout`` (casegrid never cancels its own queries otherwise). The request
# was valid and the database is up, so neither a 422 nor a 500: a 503 that says what to do.
QUERY_CANCELED = "57014"


def _is_statement_timeout(exc: BaseException) -> bool:
    """True when ``exc`` (wrapped or raw) is a statement stopped by the server's timeout."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig
    return isinstance(exc, psycopg.Error) and exc.sqlstate == QUERY_CANCELED


def _timeout_response(request: Request, exc: BaseException) -> JSONResponse:
    settings = getattr(request.app.state, "settings", None)
    limit_ms = getattr(settings, "statement_timeout_ms", 0) or 0
    limit = f" of {limit_ms / 1000:g} s" if limit_ms else ""
    log.warning("statement timeout on %s %s: %s", request.method, request.url.path, describe(exc))
    return JSONResponse(
        {"detail": f"The request took longer than the database time limit{limit} and was stopped; "
                   "narrow it (a shorter period, fewer categories, a smaller area) or retry later.",
         "code": "query_timeout"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )


def _unavailable_response(exc: BaseException) -> JSONResponse:
    log.warning("database unavailable: %s", describe(exc))
    return JSONResponse(
        {"detail": "The database is unavailable; retry shortly.", "code": "database_unavailable"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app serves at the request's path, in sorted order.
    Each is tried on the router's public ``matches`` (an included router keeps its routes
    to itself, so a route's own ``methods`` cannot all be read from the top)."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                   for route in routes)]


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(CasegridError)
    async def _domain(_request: Request, exc: CasegridError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if isinstance(exc, DatabaseUnavailable) else None
        headers = headers or ({"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None)
        return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Framework-level refusals (an unparsable JSON body, an unknown path, a wrong
        # method) get the same body shape as every other error.
        code = HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        field = "body" if code == "invalid_body" else None
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            # Starlette's Allow names the methods of the first route on the path only (POST,
            # where GET /api/v1/cases is another route); RFC 9110 wants all of them.
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            detail = (f"{request.method} is not served at {request.url.path}; "
                      f"use {' or '.join(allowed)}")
        body = {"detail": detail, "code": code, **({"field": field} if field else {})}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                # Its loc is the character position, not a field.
                at = e.get("loc", ("body", "?"))[-1]
                errors.append({"field": "body", "message": f"not valid JSON (at character {at})"})
                continue
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form")]
            errors.append({"field": ".".join(loc) or "body", "message": e.get("msg", "invalid")})
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return JSONResponse(
            {
                "detail": f"{first['field']}: {first['message']}",
                "code": "invalid_input",
                "field": first["field"],
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_connection_problem(exc):
            return _unavailable_response(exc)
        if _is_statement_timeout(exc):
            return _timeout_response(request, exc)
        if isinstance(exc, DataError):
            # A value PostgreSQL cannot take (a NUL character in text, a number out of range,
            # text that is not a valid number or date): the request is at fault, not the server.
            log.warning("database refused a request value: %s", describe(exc))
            nul = "NUL" in str(exc.orig or exc)
            detail = ("text values may not contain NUL (\\u0000) characters; remove them" if nul else
                      "a value in the request cannot be stored or compared (out of range or "
                      "not of the expected type); check the inputs")
            return JSONResponse({"detail": detail, "code": "invalid_input"}, status_code=422)
        log.exception("database error")
        return JSONResponse(
            {"detail": "Internal error; it has been logged.", "code": "internal_error"}, status_code=500
        )

    # A driver error SQLAlchemy did not wrap (raised from a connection hook, for one).
    @app.exception_handler(psycopg.Error)
    async def _driver(request: Request, exc: psycopg.Error) -> JSONResponse:
        if is_connection_problem(exc):
            return _unavailable_response(exc)
        if _is_statement_timeout(exc):
            return _timeout_response(request, exc)
        log.exception("database driver error")
        return JSONResponse(
            {"detail": "Internal error; it has been logged.", "code": "internal_error"}, status_code=500
        )

    @app.exception_handler(PoolTimeout)
    async def _pool(_request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("connection pool exhausted: %s", describe(exc))
        return JSONResponse(
            {"detail": "The server is busy or the database is unavailable; retry shortly.",
             "code": "database_unavailable"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )
