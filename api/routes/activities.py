"""The activities ledger over HTTP: ``POST /api/v1/activities`` (record one),
``GET /api/v1/activities`` (list, filtered) and ``GET /api/v1/activities/stats`` (held and
people reached by month, type, community and subdistrict)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict

from api.auth import CurrentPrincipal
from api.deps import ConnDep, DateQ, ReadConnDep
from cases import activities

router = APIRouter(prefix="/api/v1", tags=["activities"])


class ActivityIn(BaseModel):
    """An activity; the fields are checked by ``cases.activities.check_activity`` so the
    API, the workbench form and the import refuse the same things with the same words."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": {
        "started_at": "2026-05-20T09:00:00+08:00", "kind": "sorting_outreach",
        "title": "垃圾分类进校园", "communities": ["370481001001"], "place": "实验小学",
        "staff": 3, "volunteers": 12, "reached": 450, "lon": 117.165, "lat": 35.087}})


@router.post("/activities", status_code=201)
def post_activity(body: ActivityIn, principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """Record one activity (officers for their own communities; dispatchers, supervisors,
    admins for any)."""
    return jsonable_encoder(activities.create_activity(conn, dict(body.model_extra or {}),
                                                       principal))


@router.get("/activities")
def get_activities(
    principal: CurrentPrincipal, conn: ConnDep,
    date_from: Annotated[DateQ, Query(alias="from")] = None,
    date_to: Annotated[DateQ, Query(alias="to")] = None,
    kind: str | None = None,
    community: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Activities started in the period, newest first."""
    return jsonable_encoder(activities.list_activities(
        conn, principal, date_from=date_from, date_to=date_to, kind=kind,
        communities=community, limit=limit, offset=offset))


@router.get("/activities/stats")
def get_activity_stats(
    principal: CurrentPrincipal, conn: ReadConnDep,
    date_from: Annotated[date, Query(alias="from", description="First day (YYYY-MM-DD).")],
    date_to: Annotated[date, Query(alias="to", description="Last day, included.")],
) -> Any:
    """Activities held and people reached, by month, type, community and subdistrict."""
    return activities.activity_counts(conn, date_from, date_to)
