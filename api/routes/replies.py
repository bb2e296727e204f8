"""Response templates (常用回复) over HTTP: the rules are ``cases.replies``.

* ``GET /api/v1/response-templates?category=CODE`` – the templates (of one category and
  those for every category); staff who reply (supervisor, dispatcher) and admins.
* ``PUT /api/v1/response-templates`` – body ``{category_code, title, body}``: insert, or
  replace the body of the category's template of that title; admin only.
* ``DELETE /api/v1/response-templates/{id}`` – admin only.
* ``GET /api/v1/cases/{id}/reply-drafts`` – the templates for the case's category with the
  case's facts filled in, for the reply form.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from api.auth import require_roles
from api.deps import ConnDep
from cases import replies
from cases.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["replies"])

Replier = Annotated[Principal, Depends(require_roles("supervisor", "dispatcher"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]


class TemplateIn(BaseModel):
    category_code: str = Field(description="A catalogue code, or * for every category.")
    title: str = Field(description="Short name shown in the reply form.")
    body: str = Field(description="The reply; {field} names a fact of the case: "
                                  + ", ".join("{" + f + "}" for f in replies.FIELDS))


@router.get("/response-templates")
def get_templates(principal: Replier, conn: ConnDep,
                  category: Annotated[str | None, Query(description="a category code")] = None
                  ) -> Any:
    """The response templates, with the fields a body may name."""
    return jsonable_encoder({"fields": replies.FIELDS,
                             "templates": replies.list_templates(conn, category)})


@router.put("/response-templates")
def put_template(body: TemplateIn, principal: Admin, conn: ConnDep) -> Any:
    """Insert a template or replace the body of the category's template of that title."""
    return jsonable_encoder(replies.save_template(conn, body.category_code, body.title,
                                                  body.body, principal.name))


@router.delete("/response-templates/{template_id}", status_code=204)
def delete_template(template_id: int, principal: Admin, conn: ConnDep) -> None:
    """Remove a template."""
    replies.delete_template(conn, template_id)


@router.get("/cases/{case_id}/reply-drafts")
def reply_drafts(case_id: int, principal: Replier, conn: ConnDep) -> Any:
    """The case's templates with its facts filled in."""
    return jsonable_encoder({"case_id": case_id,
                             "drafts": replies.drafts(conn, case_id, principal)})
