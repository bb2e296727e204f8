"""Privacy over HTTP (the rules live in ``cases/publication.py``, ``cases/personal_text.py``).

* ``POST /api/v1/cases/{id}/reveal`` – the free texts of a case as written (description,
  address, notes whose stored form was masked); roles that may see the reporter only, and
  each call is an entry in the case's history.
* ``POST /api/v1/activities/{id}/reveal`` – an activity's title, place and note as written,
  on the same terms; each call is an entry in the activity's history.
* ``GET /api/v1/categories/public`` – every category and whether the public sees its cases.
* ``PUT /api/v1/categories/{code}/public`` – ``{"public": false}`` marks a category
  sensitive (admin).

Approving a description for publication is the workflow action ``publish_description``
(``POST /api/v1/cases/{id}/actions``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, StrictBool

from api.auth import CurrentPrincipal, require_roles
from api.deps import ConnDep
from cases import personal_text, publication
from cases.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["privacy"])
Admin = Annotated[Principal, Depends(require_roles("admin"))]


class PublicIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public: StrictBool


@router.post("/cases/{case_id}/reveal")
def reveal_case_text(case_id: int, principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """What the reporter and staff wrote, unmasked; recorded in the case's history."""
    return jsonable_encoder(personal_text.reveal(conn, case_id, principal))


@router.post("/activities/{activity_id}/reveal")
def reveal_activity_text(activity_id: int, principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """An activity's texts as written, unmasked; recorded in the activity's history."""
    return jsonable_encoder(personal_text.reveal_activity(conn, activity_id, principal))


@router.get("/categories/public")
def list_category_policy(principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """Each category and whether its cases are public (Open311 GET, citizen pages)."""
    return jsonable_encoder(publication.category_policy(conn))


@router.put("/categories/{code}/public")
def put_category_public(code: str, body: PublicIn, principal: Admin, conn: ConnDep) -> Any:
    """Publish a category's cases (coarsened) or withdraw them from the public."""
    return jsonable_encoder(publication.set_category_public(conn, code, body.public))
