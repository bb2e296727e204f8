"""``GET /api/v1/evaluation`` (考核: ranked posts or subdistricts with each score explained)
and ``GET|PUT /api/v1/evaluation/weights`` (the composite's weights; admins change them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_roles
from api.deps import ConnDep, PeriodFrom, PeriodTo, ReadConnDep
from cases import evaluation
from cases.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["evaluation"])
Reader = Annotated[Principal, Depends(require_roles("supervisor", "dispatcher", "planner"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]


class IndicatorChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float | None = Field(None, ge=0, le=1000, strict=True)
    direction: Literal["higher", "lower"] | None = None


class WeightsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    indicators: dict[str, IndicatorChange] = Field(default_factory=dict)
    scale: float | None = Field(None, gt=0, strict=True)
    min_cases: int | None = Field(None, ge=0, strict=True)


@router.get("/evaluation")
def get_evaluation(
    principal: Reader,
    conn: ReadConnDep,
    date_from: PeriodFrom,
    date_to: PeriodTo,
    level: Literal["post", "subdistrict"] = "post",
) -> Any:
    """Scores of the cases received from `from` to `to`, ranked, each explained (value,
    normalised value and weight of every indicator); units with fewer cases than the
    minimum are listed apart in `too_few`."""
    return jsonable_encoder(evaluation.evaluate(conn, level, date_from, date_to))


@router.get("/evaluation/weights")
def get_weights(principal: Reader, conn: ConnDep) -> Any:
    """The composite's indicators, weights and directions, scale and minimum case count."""
    return evaluation.load_weights(conn).as_dict()


@router.put("/evaluation/weights")
def put_weights(body: WeightsIn, principal: Admin, conn: ConnDep) -> Any:
    """Change weights or directions (and the scale or the minimum); all or nothing."""
    changes = {k: v.model_dump(exclude_none=True) for k, v in body.indicators.items()}
    return evaluation.set_weights(conn, changes, principal.name, scale=body.scale,
                                  min_cases=body.min_cases).as_dict()
