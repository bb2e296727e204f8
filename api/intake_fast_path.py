"""``POST /api/v1/cases`` answered without the router: the intake hot path.

Every complaint of the city arrives at this one endpoint, in bursts, and for each request
Starlette and FastAPI would run their exception middleware, the dependency exit stack, a
route lookup over every route of the app, and the route's request and exception wrappers,
before and after the few lines that do the work. Under load that machinery was a
noticeable share of a worker's time (``py-spy`` of a worker under ``wrk``).

:class:`IntakeFastPath` is an ASGI middleware placed inside the request guards
(:mod:`api.middleware`: body size, JSON content type, NUL characters run first, as for
every request). It answers ``POST /api/v1/cases`` itself with the function the route uses
(:func:`api.routes.cases.intake_response`) and turns its errors into responses with the
app's own exception handlers (:mod:`api.errors`), looked up as Starlette looks them up, so
every answer, error bodies included, is the one the route gives. Anything else (another
path or method, a ``root_path`` deployment) goes on to the router, and an error no handler
takes goes up to Starlette's server-error middleware, as before. The route stays declared:
it documents the endpoint and serves it wherever this middleware is not installed.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routes.cases import INTAKE_PATH, PREFIX, intake_response

PATH = PREFIX + INTAKE_PATH


class IntakeFastPath:
    """Serves ``POST`` :data:`PATH` directly (see the module docstring)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST"
                or scope.get("root_path")):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await intake_response(request)
        except Exception as exc:
            handler = _handler_for(scope["app"], exc)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)


def _handler_for(app: FastAPI, exc: Exception):  # noqa: ANN202 - a Starlette exception handler
    """The app's handler for ``exc``, found as Starlette's exception middleware finds it: by
    status code for an HTTPException, then by the exception's class and its bases."""
    handlers = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


def install_intake_fast_path(app: FastAPI) -> None:
    """Add the middleware to ``app``. Call it before :func:`api.middleware.install_middleware`
    (the middleware added last runs first, and the request guards must run before it)."""
    app.add_middleware(IntakeFastPath)
