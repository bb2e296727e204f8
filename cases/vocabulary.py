"""The ledger's vocabulary, written once: channels, states, the map's state groups, and the
SQL conditions for open, overdue and closed cases.

Every module that names a channel or a state, or selects open, overdue or closed cases,
takes it from here (the API's enums, the list filters, the map data, intake's model, the
import mappings, Open311, the metrics), so a new channel or state is one edit. The open
condition is spelled exactly as the predicate of the partial index ``case_open_geom_gist``
(migration 0006), so the planner can use that index; keep them in step.
"""

from __future__ import annotations

# Where a complaint came in (the case.channel check constraint of the schema agrees).
CHANNELS: tuple[str, ...] = ("hotline_12345", "platform", "patrol", "app", "open311", "walk_in")

# The ledger's statuses (cases.workflow moves a case between them).
STATES: tuple[str, ...] = ("registered", "reviewed", "rejected", "dispatched", "returned",
                           "handled", "verified", "replied", "closed")
# Statuses after which nothing more happens to a case.
CLOSED_STATES: tuple[str, ...] = ("closed", "rejected")

# Groups of statuses the maps colour and filter by; "overdue" is orthogonal (open and past
# the due time of the step the case waits for).
STATE_GROUPS: dict[str, tuple[str, ...]] = {
    "new": ("registered", "reviewed"),
    "dispatched": ("dispatched", "returned"),
    "handled": ("handled", "verified", "replied"),
    "closed": CLOSED_STATES,
}
MAP_STATES: tuple[str, ...] = (*STATE_GROUPS, "overdue")

# What staff read for each channel and status, (Chinese, English): the workbench's pages, the
# dispatch map and the ledger's status column, so a new channel or status brings its words
# here with it. (The citizen's tracking page words a status for its reporter, cases.track.)
CHANNEL_LABELS: dict[str, tuple[str, str]] = {
    "hotline_12345": ("12345热线", "12345 hotline"), "platform": ("智慧城管平台", "Smart platform"),
    "patrol": ("巡查上报", "Patrol"), "app": ("手机应用", "App"), "open311": ("Open311", "Open311"),
    "walk_in": ("来访", "Walk-in"),
}
STATE_LABELS: dict[str, tuple[str, str]] = {
    "registered": ("已受理", "Registered"), "reviewed": ("已立案", "Accepted"),
    "rejected": ("不予立案", "Rejected"), "dispatched": ("已派遣", "Dispatched"),
    "returned": ("已退单", "Returned"), "handled": ("已处置", "Handled"),
    "verified": ("已核查", "Verified"), "replied": ("已回复", "Replied"),
    "closed": ("已结案", "Closed"),
}

# The zone of the day the statistics (case_stat) count a case on: its received_at there.
# The statistics triggers of migrations 0003, 0013 and 0022 spell it in their SQL, so the
# statements that add to case_stat beside them (cases.workflow's acknowledgements, the bulk
# import's first load) spell the same zone, not the settings' CITY_TZ; a city in another
# zone needs a migration that redefines those triggers with it first.
STATS_DAY_ZONE = "Asia/Shanghai"

# The channel of the city's own inspectors' finds: nobody to answer or call back, so these
# cases count in no reply or follow-up figure (cases.stats, the 待回访 list). The statistics
# triggers of the migrations spell the same condition in their SQL; keep them in step.
INSPECTION_CHANNEL = "patrol"

# Route rules of cases no community took.
UNROUTED_RULES: tuple[str, ...] = ("outside", "unlocated")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _p(alias: str) -> str:
    return f"{alias}." if alias else ""


def open_sql(alias: str = "c") -> str:
    """Still being worked: neither closed nor rejected (the predicate of the partial index
    ``case_open_geom_gist``). Narrower than :func:`unclosed_sql`."""
    p = _p(alias)
    return f"{p}closed_at IS NULL AND {p}status NOT IN ({_quoted(CLOSED_STATES)})"


def is_open(status: str, closed_at: object) -> bool:
    """:func:`open_sql` for a case already read (its ``status`` and ``closed_at``)."""
    return closed_at is None and status not in CLOSED_STATES


def unclosed_sql(alias: str = "c") -> str:
    """The loop not closed yet: no closing time. Besides the open cases this holds the
    rejected ones, which still owe the complainant their reply (reply, then close, follow a
    rejection). What the ``open`` list filter, the live indicators, overdue and retention
    count; a case leaves it only when it is closed."""
    return f"{_p(alias)}closed_at IS NULL"


def has_complainant_sql(alias: str = "c") -> str:
    """A complainant to answer and call back: any channel but :data:`INSPECTION_CHANNEL`."""
    return f"{_p(alias)}channel <> '{INSPECTION_CHANNEL}'"


def closed_sql(alias: str = "c") -> str:
    """Closed or rejected (the negation of :func:`open_sql`)."""
    p = _p(alias)
    return f"({p}status IN ({_quoted(CLOSED_STATES)}) OR {p}closed_at IS NOT NULL)"


def settled_sql(alias: str = "c") -> str:
    """Closed, rejected or merged into another case: nothing more happens under its own
    number (Open311's ``closed``; the public form of a case says so)."""
    p = _p(alias)
    return f"({p}status IN ({_quoted(CLOSED_STATES)}) OR {p}merged_into IS NOT NULL)"


def overdue_sql(alias: str = "c") -> str:
    """Not closed (:func:`unclosed_sql`) and past the deadline of the step it waits for
    (the partial index case_open_due serves it)."""
    p = _p(alias)
    return f"({unclosed_sql(alias)} AND {p}current_due_at < now())"


def state_group_sql(alias: str = "c") -> str:
    """A case's map group (:data:`STATE_GROUPS`); statuses a future ledger adds count as
    "new" until mapped."""
    p = _p(alias)
    whens = " ".join(f"WHEN {p}status IN ({_quoted(states)}) THEN '{group}'"
                     for group, states in STATE_GROUPS.items() if group not in ("new", "closed"))
    return f"CASE WHEN {closed_sql(alias)} THEN 'closed' {whens} ELSE 'new' END"
