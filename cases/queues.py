"""The work lists (queues) of the workbench, defined once.

A queue is a name, its labels, the roles whose home page shows it, and the ledger's own
filters (:class:`cases.filters.CaseFilters`): nothing here is SQL. Every queue lists open
cases soonest due first (:func:`cases.queries.list_due_first`). To add a queue, add one
:class:`Queue` to :data:`QUEUES` (see README, "Workbench: adding a queue or an action form").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from casegrid.errors import NotFound
from cases import queries, reminders
from cases.filters import CaseFilters
from cases.tokens import Principal

# Everyone who works cases; planners read maps and statistics instead.
STAFF = ("dispatcher", "supervisor", "community_officer")


@dataclass(frozen=True)
class Queue:
    """One work list. ``filters`` are the ledger filters of its cases; ``bulk`` names the actions offered on several selected
    rows at once (each still checked per case by :func:`cases.workflow.apply_action`)."""

    name: str
    label_zh: str
    label_en: str
    roles: tuple[str, ...]
    filters: CaseFilters
    bulk: tuple[str, ...] = ()
    hint_zh: str = ""
    hint_en: str = ""
    # A template that adds to each row's address cell (e.g. the matcher's suggestions).
    row_detail: str = ""
    # Adds to the page's rows what the filters cannot carry (e.g. who escalated and why).
    annotate: Callable[[Connection, list[dict]], None] | None = None

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_zh

    def hint(self, lang: str) -> str:
        return self.hint_en if lang == "en" else self.hint_zh

    def visible_to(self, principal: Principal) -> bool:
        return principal.role == "admin" or principal.role in self.roles


def _status(*states: str, **more) -> CaseFilters:  # noqa: ANN003
    return CaseFilters(status=states, **more)


QUEUES: dict[str, Queue] = {q.name: q for q in (
    Queue("review", "待审核", "To review", ("supervisor",), _status("registered"),
          bulk=("accept",), hint_zh="新受理的案件: 立案或不予立案", hint_en="New cases: accept or reject"),
    Queue("dispatch", "待派遣", "To dispatch", ("dispatcher",), _status("reviewed", "returned"),
          bulk=("dispatch",), hint_zh="已立案或被退回的案件: 派遣到社区", hint_en="Accepted or returned cases: dispatch to a post"),
    Queue("locate", "需核实位置", "Check location", ("dispatcher", "supervisor"),
          _status("registered", "reviewed", "returned", location_check=True),
          hint_zh="就近分派或靠近社区边界的案件: 核实位置", hint_en="Routed to the nearest community or near a boundary"),
    Queue("place", "需定位", "To place", ("dispatcher", "supervisor"),
          _status("registered", "reviewed", "returned", unrouted=True), row_detail="queue/suggestions.html",
          hint_zh="没有坐标或不在辖区内、地址未能自动定位的案件: 选择候选位置或在地图上放置",
          hint_en="No point, or outside every community, and the address was not placed: pick a suggestion or place it on the map"),
    # 签收 first: an officer's first list (the queues of a role keep this order).
    Queue("acknowledge", "待签收", "To acknowledge", ("community_officer",),
          _status("dispatched", acknowledged=False), row_detail="queue/ack_due.html",
          annotate=reminders.add_acknowledge_due,
          hint_zh="已派遣到本社区, 尚未签收", hint_en="Dispatched to your post, not yet acknowledged"),
    Queue("handling", "处置中", "Being handled", STAFF, _status("dispatched"),
          hint_zh="已派遣, 等待社区处置", hint_en="Dispatched, waiting for the post to handle"),
    Queue("extension", "延期申请", "Extension requests", ("dispatcher", "supervisor"),
          _status("dispatched", pending_extension=True), bulk=("approve_extension",),
          hint_zh="社区申请延期, 等待批准", hint_en="A post asked for more time"),
    Queue("verify", "待核查", "To verify", ("supervisor",), _status("handled"),
          hint_zh="已处置: 核查通过或返工", hint_en="Handled: pass or send back for rework"),
    Queue("reply", "待回复", "To reply", ("dispatcher", "supervisor"), _status("verified", "rejected"),
          hint_zh="向市民反馈结果", hint_en="Tell the citizen the outcome"),
    Queue("follow_up", "待回访", "To follow up", ("dispatcher", "supervisor"),
          CaseFilters(follow_up_due=True),
          hint_zh="已答复: 回访群众是否满意", hint_en="Answered: call the citizen, record the verdict"),
    Queue("close", "待结案", "To close", ("supervisor",), _status("replied"), bulk=("close",),
          hint_zh="已回复: 结案", hint_en="Replied: close"),
    Queue("overdue", "超期", "Overdue", STAFF, CaseFilters(overdue=True),
          hint_zh="已超过当前环节时限", hint_en="Past the current step's deadline"),
    Queue("escalated", "督办", "Supervised (督办)", ("supervisor", "dispatcher"),
          reminders.ESCALATED, row_detail="queue/escalation.html", annotate=reminders.add_escalations,
          hint_zh="超期未处置, 已自动督办", hint_en="Still unhandled past the deadline: escalated"),
)}


def get_queue(name: str) -> Queue:
    """The queue named ``name``; ``NotFound`` naming the known queues otherwise."""
    queue = QUEUES.get(name)
    if queue is None:
        raise NotFound(f"no queue {name!r}; queues: {', '.join(QUEUES)}", field="name")
    return queue


def queues_for(principal: Principal) -> list[Queue]:
    """The queues ``principal``'s home page shows, in order."""
    return [q for q in QUEUES.values() if q.visible_to(principal)]


# The fields a person may narrow a queue by.
NARROWED = ("subdistrict", "community", "category", "channel", "reported_from", "reported_to")


def queue_filters(queue: Queue, narrow: CaseFilters | None = None) -> CaseFilters:
    """The queue's filters, open cases only, narrowed by a person's own choices (``narrow``:
    subdistrict, community, category, channel, period; the queue's own fields win)."""
    f = queue.filters
    chosen = {} if narrow is None else {
        name: getattr(narrow, name) for name in NARROWED if getattr(f, name) is None}
    return replace(f, open=True, **chosen)


def queue_counts(conn: Connection, principal: Principal) -> dict[str, int]:
    """The number of open cases in each of ``principal``'s queues, in one pass."""
    named = {q.name: q.filters for q in queues_for(principal)}
    return queries.count_each(conn, named, principal, within=CaseFilters(open=True))


def queue_count(conn: Connection, queue: Queue, principal: Principal) -> int:
    """The number of open cases in one queue (only its own cases are counted)."""
    return queries.count_cases(conn, queue_filters(queue), principal)


def queue_page(conn: Connection, queue: Queue, principal: Principal, *,
               narrow: CaseFilters | None = None, limit: int = queries.DEFAULT_LIMIT,
               after: str | None = None, exclude: int | None = None) -> queries.CasePage:
    """One page of a queue, soonest due first."""
    page = queries.list_due_first(conn, queue_filters(queue, narrow), principal, limit=limit,
                                  after=after, exclude=exclude)
    if queue.annotate is not None:
        queue.annotate(conn, page.items)
    return page


def queue_page_and_count(conn: Connection, queue: Queue, principal: Principal, *,
                         narrow: CaseFilters | None = None, limit: int = queries.DEFAULT_LIMIT,
                         after: str | None = None) -> tuple[queries.CasePage, int]:
    """:func:`queue_page` and :func:`queue_count` (the queue's whole total, not narrowed)
    in one round trip: what a queue's page shows."""
    page, total = queries.list_due_first_and_count(
        conn, queue_filters(queue, narrow), queue_filters(queue), principal, limit=limit,
        after=after)
    if queue.annotate is not None:
        queue.annotate(conn, page.items)
    return page, total
