"""Notifications over HTTP: the 督办 queue and the delivery summary.

* ``GET /api/v1/escalations`` – escalated cases still at their post (``cases.reminders``),
  longest first; a community officer sees its own communities'.
* ``GET /api/v1/outbox/summary`` – deliveries by status and events not yet routed (admin).
* ``GET /api/v1/posts`` – the posts with their phone and webhook URL (admin: a webhook URL
  may carry a receiver's secret); ``PUT /api/v1/posts/{community_code}/webhook`` – set or
  clear a post's own webhook (``notify.posts``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from api.auth import require_roles
from api.deps import ConnDep
from cases.reminders import escalated_cases
from cases.tokens import Principal
from notify import outbox, posts

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


class WebhookIn(BaseModel):
    """A post's own webhook: an https URL (http only to this machine), or null to clear."""

    url: str | None = Field(None, max_length=2000,
                            examples=["https://post-370481001001.example.gov.cn/casegrid"])


@router.get("/posts")
def list_posts(principal: Admin, conn: ConnDep) -> Any:
    """Every post: community, contact, phone (SMS) and webhook URL (notifications)."""
    return jsonable_encoder({"posts": posts.list_posts(conn)})


@router.put("/posts/{community_code}/webhook")
def set_post_webhook(community_code: str, body: WebhookIn, principal: Admin, conn: ConnDep) -> Any:
    """Send the post's events to its own webhook (null: back to ``CASEGRID_WEBHOOK_URL``);
    a URL that is not https (or loopback http) is refused with 422, nothing changed."""
    return jsonable_encoder(posts.set_webhook(conn, community_code, body.url))
