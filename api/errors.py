"""One mapping from domain exceptions to HTTP responses.

Bodies are ``{"detail": <what to fix>, "code": <stable id>, "field": <which input>}``.
Database error text goes to the log only, never to the client.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from casegrid.errors import (
    CasegridError,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    ImportFailed,
    InvalidInput,
    NotFound,
    Unauthorized,
)

log = logging.getLogger("casegrid.api")

STATUS = {
    InvalidInput: 422,
    ImportFailed: 422,
    NotFound: 404,
    Forbidden: 403,
    Unauthorized: 401,
    Conflict: 409,
    DatabaseUnavailable: 503,
}
RETRY_AFTER_S = "5"


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


def _is_connection_problem(exc: BaseException) -> bool:
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


def _unavailable_response(exc: BaseException) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return JSONResponse(
        {"detail": "The database is unavailable; retry shortly.", "code": "database_unavailable"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(CasegridError)
    async def _domain(_request: Request, exc: CasegridError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if isinstance(exc, DatabaseUnavailable) else None
        headers = headers or ({"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None)
        return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
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
    async def _database(_request: Request, exc: DBAPIError) -> JSONResponse:
        if _is_connection_problem(exc):
            return _unavailable_response(exc)
        log.exception("database error")
        return JSONResponse(
            {"detail": "Internal error; it has been logged.", "code": "internal_error"}, status_code=500
        )

    # A driver error SQLAlchemy did not wrap (raised from a connection hook, for one).
    @app.exception_handler(psycopg.Error)
    async def _driver(_request: Request, exc: psycopg.Error) -> JSONResponse:
        if _is_connection_problem(exc):
            return _unavailable_response(exc)
        log.exception("database driver error")
        return JSONResponse(
            {"detail": "Internal error; it has been logged.", "code": "internal_error"}, status_code=500
        )

    @app.exception_handler(PoolTimeout)
    async def _pool(_request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("connection pool exhausted: %s", exc)
        return JSONResponse(
            {"detail": "The server is busy or the database is unavailable; retry shortly.",
             "code": "database_unavailable"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )
