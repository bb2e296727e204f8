"""``GET /metrics``: Prometheus' text format, for the monitoring a city's IT staff run.

Who may scrape is a setting (``CASEGRID_METRICS``): ``loopback`` (default) answers only
requests from this machine, ``token`` only a bearer token equal to
``CASEGRID_METRICS_TOKEN``, ``off`` nobody. Refused scrapes get the 404 of an unknown path,
so the endpoint does not announce itself.
"""

from __future__ import annotations

import ipaddress
import secrets

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.auth import BearerCredentials
from casegrid import metrics
from casegrid.errors import NotFound

router = APIRouter(tags=["meta"])


def _allowed(request: Request, creds: BearerCredentials) -> bool:
    settings = request.app.state.settings
    if settings.metrics == "token":
        given = creds.credentials if creds else ""
        return bool(settings.metrics_token) and secrets.compare_digest(
            given.encode(), settings.metrics_token.encode())
    if settings.metrics == "loopback":
        host = request.client.host if request.client else ""
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request, creds: BearerCredentials) -> Response:
    """Every metric of the server processes and the ledger's gauges."""
    if not _allowed(request, creds):
        raise NotFound("no such page", code="not_found")
    body, content_type = await run_in_threadpool(metrics.render, request.app.state.engine)
    return Response(body, media_type=content_type)
