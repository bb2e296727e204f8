"""Notifications over HTTP: the 督办 queue and the delivery summary.

* ``GET /api/v1/escalations`` – escalated cases still at their post (``cases.reminders``),
  longest first; a community officer sees its own communities'.
* ``GET /api/v1/outbox/summary`` – deliveries by status and events not yet routed (admin).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from api.auth import require_roles
from api.deps import ConnDep
from cases.reminders import escalated_cases
from cases.tokens import Principal
from notify import outbox

router = APIRouter(prefix="/api/v1", tags=["notifications"])

QueueReader = Annotated[Principal, Depends(require_roles("supervisor", "dispatcher",
                                                         "community_officer"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]


@router.get("/escalations")
def escalations(principal: QueueReader, conn: ConnDep) -> Any:
    """The 督办 queue: escalated cases not yet handled."""
    return jsonable_encoder({"cases": escalated_cases(conn, principal)})


@router.get("/outbox/summary")
def outbox_summary(principal: Admin, conn: ConnDep) -> Any:
    """Deliveries by status (pending, delivered, failed) and events waiting to be routed."""
    return outbox.stats(conn)
