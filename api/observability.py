"""Per-request observability: one pure ASGI middleware that times each request, counts it
for Prometheus by its route template, and writes one log line (JSON when
``CASEGRID_LOG_FORMAT=json``).

The route is the template the router matched (``/api/v1/cases/{case_id}``), so metrics
have one series per endpoint rather than one per case. The log line names the request id (the client's ``X-Request-ID`` when it is
a plain token, else a new one; echoed on the response), the route, status, duration and
the case id where the path has one. It never carries the query string or the body: a
search for a phone number or a sign-in form would otherwise put personal data in logs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casegrid import metrics

log = logging.getLogger("casegrid.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNMATCHED = "(unmatched)"


def route_template(scope: Scope) -> tuple[str, dict]:
    """The path template of the route that served ``scope`` and its path parameters, from
    the ``route`` and ``path_params`` keys the router puts in the ASGI scope when it
    matches (read after the app returns)."""
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED), scope.get("path_params") or {}


def _case_id(params: dict) -> int | None:
    for key in ("case_id", "id"):
        value = params.get(key)
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return None


class RequestObservability:
    """Time, count and log each HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route, params = route_template(scope)
            method = scope.get("method", "")
            metrics.REQUESTS.labels(method, route, str(status)).inc()
            metrics.LATENCY.labels(method, route).observe(elapsed)
            log.info("%s %s %d %.1fms", method, route, status, elapsed * 1000, extra={
                "request_id": request_id, "method": method, "route": route,
                "status": status, "duration_ms": round(elapsed * 1000, 1),
                "case_id": _case_id(params)})
