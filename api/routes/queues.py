"""The work lists as JSON: ``GET /api/v1/queues`` (the caller's queues with counts),
``GET /api/v1/queues/{name}`` (a page of one, soonest due first) and ``GET /api/v1/search``
(the workbench's search box): the rows the workbench's pages show, for other tools (and
the workbench benchmark's comparison)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import CurrentPrincipal
from api.deps import ConnDep
from api.schemas import case_out
from casegrid.errors import NotFound
from cases import queries, queues, search

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


@router.get("/search")
def search_cases(
    principal: CurrentPrincipal, conn: ConnDep,
    q: Annotated[str, Query(min_length=1, max_length=search.MAX_QUERY,
                            description="A case number, a channel's ticket number, the "
                            "reporter's phone (not for planners) or words of the address.")],
) -> Any:
    """Cases matching what a person has at hand, newest first (at most 30): the rows of
    the workbench's search page. An address word shorter than three characters is searched
    by the known place names holding it (``address_names``; ``more_names``: more hold it),
    or not at all (``too_short``: type more)."""
    found = search.search(conn, q, principal)
    return {"items": [case_out(r) for r in found.rows], "address_names": found.names,
            "more_names": found.more_names, "too_short": found.too_short}
