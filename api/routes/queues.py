"""The work lists as JSON: ``GET /api/v1/queues`` (the caller's queues with counts) and
``GET /api/v1/queues/{name}`` (a page of one, soonest due first): the rows the workbench's
pages show, for other tools (and the workbench benchmark's comparison)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import CurrentPrincipal
from api.deps import ConnDep
from api.schemas import case_out
from casegrid.errors import NotFound
from cases import queries, queues

router = APIRouter(prefix="/api/v1", tags=["cases"])


@router.get("/queues")
def list_queues(principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """The caller's work lists with the number of open cases in each."""
    counts = queues.queue_counts(conn, principal)
    return {"queues": [{"name": q.name, "label_zh": q.label_zh, "label_en": q.label_en,
                        "count": counts[q.name]} for q in queues.queues_for(principal)]}


@router.get("/queues/{name}")
def queue_rows(
    name: str, principal: CurrentPrincipal, conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    after: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> Any:
    """One page of a work list: open cases, soonest due first."""
    queue = queues.get_queue(name)
    if not queue.visible_to(principal):
        raise NotFound(f"no queue {name!r} for role {principal.role!r}", field="name")
    page = queues.queue_page(conn, queue, principal, limit=limit, after=after)
    return {"items": [case_out(r) for r in page.items], "next_cursor": page.next_cursor}
