"""``GET /health/ready``: readiness for load balancers and monitors (no token needed).

``GET /health`` (in :mod:`api.app`) stays the liveness probe. This one answers 200 when the
database, its schema, the worker and the calendar are all right (:mod:`casegrid.readiness`),
503 otherwise, with each check's detail and the command that fixes it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import calendar_today
from casegrid.readiness import check_readiness

router = APIRouter(tags=["meta"])
ERROR_RESPONSES: dict = {}  # its 503 is the readiness document itself, not an error body


# Left out of the OpenAPI document, like HEAD /health: a probe for machines, whose 503 is a
# normal answer ("not ready"), not a failure of the API that clients call.
@router.api_route("/health/ready", methods=["GET", "HEAD"], include_in_schema=False)
def ready(request: Request) -> JSONResponse:
    """Readiness: database, schema at the migrations' head, the worker's heartbeat, and the
    working calendar's horizon (a warning there keeps the answer 200)."""
    report = check_readiness(request.app.state.engine, request.app.state.settings,
                             calendar_today(request))
    if report["ready"]:
        return JSONResponse(report)
    # casegrid's error shape ({code, detail}) around the checks.
    failed = [f"{name}: {c['detail']}" + (f" (fix: {c['fix']})" if c["fix"] else "")
              for name, c in report["checks"].items() if not c["ok"]]
    return JSONResponse({"code": "not_ready", "detail": "not ready: " + "; ".join(failed),
                         **report}, status_code=503)
