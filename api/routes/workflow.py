"""The case ledger over HTTP: actions, history, indicators, time limits.

* ``POST /api/v1/cases/{id}/actions`` – body ``{"action": ..., "version": N, ...payload}``;
  the rules (who may do what, in which state) are ``cases.workflow.RULES``. 403 for a role
  that may not, 404 for a case outside the caller's communities, 409 with ``current``
  (status and version) when the case changed or the action does not fit its state.
* ``GET /api/v1/cases/{id}/history`` – the append-only events, oldest first.
* ``GET /api/v1/stats?group_by=...&from=YYYY-MM-DD&to=YYYY-MM-DD`` – indicators
  (``cases.stats``): admin, supervisor, dispatcher, planner.
* ``GET|PUT /api/v1/categories/{code}/time-limits`` – per-step limits; PUT is admin only;
  ``code`` may be ``*`` for the defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import CurrentPrincipal, require_roles
from api.deps import ConnDep, PeriodFrom, PeriodTo, ReadConnDep
from api.evidence_forms import action_with_photos
from api.uploads import post_with_photos
from casegrid import metrics
from casegrid.errors import CasegridError
from cases import deadlines, stats, workflow
from cases.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["ledger"])

StatsReader = Annotated[Principal, Depends(require_roles("supervisor", "dispatcher", "planner"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]


class ActionIn(BaseModel):
    """An action and its payload; other fields are the action's payload (see the docs of
    each action: ``note``, ``reason``, ``community_code``, ``main_case_id``, ``photo_urls``,
    ``amount``/``unit``, ``channel``/``text``/``satisfaction``...)."""

    model_config = ConfigDict(extra="allow")
    action: Literal[workflow.ACTIONS]  # type: ignore[valid-type]
    version: int | None = Field(None, description="The version you read; 409 if it changed.")


class LimitIn(BaseModel):
    step: Literal[deadlines.STEPS]  # type: ignore[valid-type]
    amount: float = Field(ge=0, le=deadlines.MAX_AMOUNT)
    unit: Literal["working_hours", "working_days", "calendar_hours", "calendar_days"]
    channel: str = "*"
    note: str | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_a_number(cls, value: object) -> object:
        # pydantic would take false as 0 and true as 1: a time limit nobody meant.
        if isinstance(value, bool):
            raise ValueError(f"amount must be a number of hours or days, not {str(value).lower()}")
        return value


class LimitsIn(BaseModel):
    limits: list[LimitIn] = Field(min_length=1)


# A multipart body (the action in a part "action", photos in parts "photo") is served by
# api.evidence_forms.action_with_photos on the same path.
@post_with_photos(router, "/cases/{case_id}/actions", action_with_photos, "action",
                  "The action as JSON (the JSON body's fields); photos go with handle, "
                  "verify_pass, verify_fail, return.")
def take_action(case_id: int, body: ActionIn, principal: CurrentPrincipal,
                conn: ConnDep) -> Any:
    """Take one action on a case; returns the case with its due times and next actions."""
    payload = dict(body.model_extra or {})
    try:
        case = workflow.apply_action(conn, case_id, body.action, payload, principal, body.version)
    except CasegridError as exc:
        metrics.WORKFLOW_ACTIONS.labels(body.action, exc.code).inc()
        raise
    metrics.WORKFLOW_ACTIONS.labels(body.action, "done").inc()
    return jsonable_encoder(case)


@router.get("/cases/{case_id}/history")
def case_history(case_id: int, principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """Who did what to the case, when, from which state to which."""
    return jsonable_encoder({"case_id": case_id,
                             "events": workflow.history(conn, case_id, principal)})


@router.get("/stats")
def get_stats(
    principal: StatsReader,
    conn: ReadConnDep,
    # Required without a default: an ``= ...`` default reached the handler as Ellipsis
    # (a 500) when the parameter was missing.
    date_from: PeriodFrom,
    date_to: PeriodTo,
    group_by: Literal["community", "subdistrict", "category", "channel", "month"] = "community",
) -> Any:
    """Indicators of the cases received from `from` to `to` (both days included)."""
    return jsonable_encoder(stats.compute_stats(conn, group_by, date_from, date_to))


@router.get("/categories/{code}/time-limits")
def get_limits(code: str, principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """A category's own limits and the effective limit per step and channel."""
    return jsonable_encoder(deadlines.get_time_limits(conn, code))


@router.put("/categories/{code}/time-limits")
def put_limits(code: str, body: LimitsIn, principal: Admin, conn: ConnDep) -> Any:
    """Set (insert or replace) a category's limits; applies to deadlines set from now on."""
    items = [item.model_dump() for item in body.limits]
    return jsonable_encoder(deadlines.set_time_limits(conn, code, items, principal.name))
