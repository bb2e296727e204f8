"""Which cases: the one filter set of the JSON API, the maps, the hotspot statistics, the
workbench's queues, Open311's public reads and the ledger export, its one validation, and
its SQL.

:class:`CaseFilters` checks itself when it is made (a bad value is an ``InvalidInput``
naming the field, which the API answers with a 422), so no caller can skip the check.
:func:`filter_sql` turns it into one SQL condition on ``"case" c`` with bound parameters;
each filter is a small clause function registered with ``@filter_clause``, so a new filter
is one field here plus one clause.

Callers parse their own input (a query string, a form, CLI options) with the helpers
below (:func:`split_list`, :func:`parse_bbox`, :func:`parse_time`, :func:`day_window`),
then build a ``CaseFilters``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta

from casegrid.errors import InvalidInput
from cases.calendar import CITY_TZ
from cases.tokens import Principal
from cases.vocabulary import (
    CHANNELS,
    MAP_STATES,
    STATE_GROUPS,
    STATES,
    UNROUTED_RULES,
    has_complainant_sql,
    open_sql,
    overdue_sql,
    settled_sql,
    state_group_sql,
    unclosed_sql,
)

Box = tuple[float, float, float, float]
# The map groups of cases not closed or rejected: what the maps show unless told otherwise.
OPEN_GROUPS: tuple[str, ...] = tuple(g for g in STATE_GROUPS if g != "closed")
_LISTS = ("status", "state", "category", "community", "subdistrict", "channel", "case_no")


@dataclass(frozen=True)
class CaseFilters:
    """Filters of a set of cases; None means "not filtered" (every field may be None).

    Lists may be given as any sequence; they are kept as tuples (an empty one as None), so
    two equal filter sets compare equal and can key a cache.
    """

    status: tuple[str, ...] | None = None  # the ledger's statuses (cases.vocabulary.STATES)
    # The maps' state groups and "overdue" (cases.vocabulary.MAP_STATES), any of them.
    state: tuple[str, ...] | None = None
    category: tuple[str, ...] | None = None
    community: tuple[str, ...] | None = None
    subdistrict: tuple[str, ...] | None = None
    channel: tuple[str, ...] | None = None
    bbox: Box | None = None  # minlon, minlat, maxlon, maxlat (WGS-84)
    reported_from: datetime | None = None  # inclusive
    reported_to: datetime | None = None  # exclusive
    # Local hours of the report, wrapping past midnight (20 → 5 means 20:00-05:59).
    hour_from: int | None = None
    hour_to: int | None = None
    unrouted: bool | None = None  # True: only unrouted; False: only routed
    overdue: bool | None = None  # True: open and past the current step's due time
    # True: the location needs a look (routed to the nearest community, or near a boundary)
    location_check: bool | None = None
    pending_extension: bool | None = None  # True: an extension request awaits a decision
    # True: not closed yet (closed_at is NULL: a rejected case still waits for its reply)
    open: bool | None = None
    # True: the post has acknowledged (签收) its last dispatch; False: not yet (issue 23)
    acknowledged: bool | None = None
    # True: escalated (督办) by the worker's reminder pass (cases.reminders)
    escalated: bool | None = None
    # True: only what a map can draw (a location) and still stands (not merged into another)
    on_map: bool | None = None
    # True: answered, and no follow-up call (回访) has reached the citizen since the answer
    follow_up_due: bool | None = None
    # The communities the reader is limited to (None: the whole city); see seen_by().
    scope: tuple[str, ...] | None = None
    case_no: tuple[str, ...] | None = None  # case numbers (CG20260000042), any of them
    received_from: datetime | None = None  # inclusive: when the case was received
    received_to: datetime | None = None  # exclusive
    # True: closed, rejected or merged into another (cases.vocabulary.settled_sql); False: not
    settled: bool | None = None

    def __post_init__(self) -> None:
        for name in (*_LISTS, "scope"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, str):  # one value, not its letters
                    value = (value,)
                object.__setattr__(self, name, tuple(value))
            if name != "scope" and not getattr(self, name):
                object.__setattr__(self, name, None)
        _check(self)

    def seen_by(self, principal: Principal) -> CaseFilters:
        """These filters as ``principal`` may apply them: limited to its communities."""
        if principal.sees_all_communities:
            return self
        mine = tuple(principal.communities)
        scope = mine if self.scope is None else tuple(c for c in self.scope if c in mine)
        return replace(self, scope=scope)

    def given(self) -> dict:
        """The fields that are set (for a summary or a log)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


def _known(values: Sequence[str] | None, known: Sequence[str], name: str) -> None:
    for value in values or ():
        if value not in known:
            raise InvalidInput(f"{name} {value!r} is unknown; accepted: {', '.join(known)}",
                               field=name)


def _check(f: CaseFilters) -> None:
    """The one validation of a filter set; ``InvalidInput`` naming the field."""
    _known(f.status, STATES, "status")
    _known(f.state, MAP_STATES, "state")
    _known(f.channel, CHANNELS, "channel")
    if f.bbox is not None:
        check_bbox(f.bbox)
    for start, end in ((f.reported_from, f.reported_to), (f.received_from, f.received_to)):
        if start and end and start >= end:
            raise InvalidInput(
                f"from ({start.isoformat()}) must be before to ({end.isoformat()}); on the "
                "maps: date_from not after date_to", field="from")
    for name in ("hour_from", "hour_to"):
        hour = getattr(f, name)
        if hour is not None and not (isinstance(hour, int) and 0 <= hour <= 23):
            raise InvalidInput(f"{name} must be an hour 0-23, not {hour!r}", field=name)
    if (f.hour_from is None) != (f.hour_to is None):
        raise InvalidInput("give both hour_from and hour_to, or neither",
                           field="hour_to" if f.hour_to is None else "hour_from")


# --- SQL ------------------------------------------------------------------------------------

Clause = Callable[[CaseFilters], "tuple[str, dict] | None"]
FILTER_CLAUSES: list[Clause] = []


def filter_clause(fn: Clause) -> Clause:
    """Register a filter clause (see the module docstring)."""
    FILTER_CLAUSES.append(fn)
    return fn


def _any_of(column: str, key: str, values: tuple[str, ...] | None):
    if values is None:
        return None
    if len(values) == 1:  # an equality: the planner reads a (column, ...) index in order
        return f"{column} = :{key}", {key: values[0]}
    return f"{column} = ANY(:{key})", {key: list(values)}


@filter_clause
def _lists(f: CaseFilters):
    parts = [p for p in (
        _any_of("c.status", "f_status", f.status),
        _any_of("c.category_code", "f_category", f.category),
        _any_of("c.community_code", "f_community", f.community),
        _any_of("c.subdistrict_code", "f_subdistrict", f.subdistrict),
        _any_of("c.channel", "f_channel", f.channel),
        _any_of("c.community_code", "f_scope", f.scope),
        _any_of("c.case_no", "f_case_no", f.case_no),
    ) if p is not None]
    if not parts:
        return None
    return " AND ".join(p[0] for p in parts), {k: v for p in parts for k, v in p[1].items()}


@filter_clause
def _state(f: CaseFilters):
    if f.state is None:
        return None
    groups = [s for s in f.state if s in STATE_GROUPS]
    if set(groups) >= set(STATE_GROUPS):
        return None  # every case is in one of the groups (the group SQL has an ELSE)
    if set(f.state) == set(OPEN_GROUPS):
        # The same rows as the group test, spelled as the predicate of the partial index on
        # open cases (migration 0006) so that the planner can use it.
        return open_sql("c"), {}
    alts, params = [], {}
    if groups:
        alts.append(f"({state_group_sql('c')}) = ANY(:f_groups)")
        params["f_groups"] = groups
    if "overdue" in f.state:
        alts.append(overdue_sql("c"))
    return " OR ".join(alts), params


@filter_clause
def _bbox(f: CaseFilters):
    if f.bbox is None:
        return None
    # && on the GiST index; a point on the box's edge is inside (bounding boxes are closed).
    x0, y0, x1, y1 = f.bbox
    return (
        "c.geom && ST_MakeEnvelope(:f_x0, :f_y0, :f_x1, :f_y1, 4326)",
        {"f_x0": x0, "f_y0": y0, "f_x1": x1, "f_y1": y1},
    )


def _window(column: str, keys: tuple[str, str], start: datetime | None, end: datetime | None):
    """``start <= column < end`` (either bound may be missing) under the parameter names
    ``keys``."""
    given = [(f"{column} {op} :{key}", key, value) for op, key, value
             in ((">=", keys[0], start), ("<", keys[1], end)) if value is not None]
    if not given:
        return None
    return " AND ".join(g[0] for g in given), {key: value for _, key, value in given}


@filter_clause
def _reported(f: CaseFilters):
    return _window("c.reported_at", ("f_from", "f_to"), f.reported_from, f.reported_to)


@filter_clause
def _received(f: CaseFilters):
    return _window("c.received_at", ("f_received_from", "f_received_to"), f.received_from,
                   f.received_to)


@filter_clause
def _hours(f: CaseFilters):
    if f.hour_from is None or f.hour_to is None:
        return None
    hour = f"extract(hour FROM c.reported_at AT TIME ZONE '{CITY_TZ.key}')"
    op = "AND" if f.hour_from <= f.hour_to else "OR"
    return (f"{hour} >= :f_hour_from {op} {hour} <= :f_hour_to",
            {"f_hour_from": f.hour_from, "f_hour_to": f.hour_to})


@filter_clause
def _unrouted(f: CaseFilters):
    if f.unrouted is None:
        return None
    sql = "c.route_rule = ANY(:f_unrouted)" if f.unrouted else (
        "c.route_rule IS NOT NULL AND NOT (c.route_rule = ANY(:f_unrouted))"
    )
    return sql, {"f_unrouted": list(UNROUTED_RULES)}


@filter_clause
def _overdue(f: CaseFilters):
    if f.overdue is None:
        return None
    clause = overdue_sql("c")
    return (clause if f.overdue else f"NOT ({clause}) OR c.current_due_at IS NULL"), {}


# "Check the location": the same two flags the dispatcher map marks (geo.map_data).
LOCATION_CHECK_SQL = "c.route_rule = 'nearest' OR c.near_boundary"


@filter_clause
def _location_check(f: CaseFilters):
    if f.location_check is None:
        return None
    return (LOCATION_CHECK_SQL if f.location_check
            else f"NOT coalesce({LOCATION_CHECK_SQL}, false)"), {}


@filter_clause
def _pending_extension(f: CaseFilters):
    if f.pending_extension is None:
        return None
    return ("c.pending_extension IS NOT NULL" if f.pending_extension
            else "c.pending_extension IS NULL"), {}


@filter_clause
def _open(f: CaseFilters):
    if f.open is None:
        return None
    return (unclosed_sql("c") if f.open else f"NOT ({unclosed_sql('c')})"), {}


@filter_clause
def _acknowledged(f: CaseFilters):
    if f.acknowledged is None:
        return None
    return ("c.acknowledged_at IS NOT NULL" if f.acknowledged else "c.acknowledged_at IS NULL"), {}


@filter_clause
def _escalated(f: CaseFilters):
    if f.escalated is None:
        return None
    return ("c.escalated_at IS NOT NULL" if f.escalated else "c.escalated_at IS NULL"), {}


@filter_clause
def _on_map(f: CaseFilters):
    if f.on_map is None:
        return None
    sql = "c.geom IS NOT NULL AND c.merged_into IS NULL"
    return (sql if f.on_map else f"NOT ({sql})"), {}


@filter_clause
def _follow_up_due(f: CaseFilters):
    # 待回访: a complainant (not patrol: nobody to call, as cases.stats counts 应回访) answered,
    # with no follow-up since the latest answer, or only attempts that did not reach them
    # (未能联系). After a reopen the new answer needs a new call: hence follow_up_at.
    if not f.follow_up_due:
        return None
    return (f"c.replied_at IS NOT NULL AND {has_complainant_sql('c')} AND (c.follow_up_at IS NULL "
            "OR c.follow_up_at < c.replied_at OR c.follow_up_result = 'unreachable')"), {}


@filter_clause
def _settled(f: CaseFilters):
    if f.settled is None:
        return None
    return (settled_sql("c") if f.settled else f"NOT {settled_sql('c')}"), {}


def filter_sql(f: CaseFilters) -> tuple[str, dict]:
    """One SQL condition on ``"case" c`` for the filters (``"true"`` when none is set), with
    its bound parameters (named ``f_...``)."""
    conditions: list[str] = []
    params: dict = {}
    for clause in FILTER_CLAUSES:
        part = clause(f)
        if part is not None:
            conditions.append(f"({part[0]})")
            params.update(part[1])
    return (" AND ".join(conditions) or "true"), params


# --- parsing input (shared by the API, the pages and the CLI) -------------------------------


def split_list(value: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b,c"]`` to ``["a", "b", "c"]``; None/empty to None."""
    if value is None:
        return None
    parts = [value] if isinstance(value, str) else list(value)
    items = [p.strip() for part in parts for p in part.split(",") if p.strip()]
    return items or None


_BBOX_FIX = ("give bbox=minlon,minlat,maxlon,maxlat in WGS-84 degrees, "
             "e.g. bbox=117.10,35.05,117.20,35.12")


def check_bbox(box: Box, field: str = "bbox") -> Box:
    """A (west, south, east, north) WGS-84 box, checked: finite, in range, minimum below
    maximum; ``InvalidInput`` naming what is wrong."""
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        raise InvalidInput(f"{field} values must be finite numbers: {_BBOX_FIX}", field=field)
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        hint = " (latitude first? longitude comes first)" if abs(y0) > 90 or abs(y1) > 90 else ""
        raise InvalidInput(
            f"{field} {','.join(f'{v:g}' for v in box)} is out of range: longitudes within "
            f"[-180, 180], latitudes within [-90, 90]{hint}; {_BBOX_FIX}", field=field)
    if x0 >= x1 or y0 >= y1:
        raise InvalidInput(f"{field} {','.join(f'{v:g}' for v in box)}: the minimum must be "
                           f"below the maximum; {_BBOX_FIX}", field=field)
    return box


def parse_bbox(value: str | None, field: str = "bbox") -> Box | None:
    """``"minlon,minlat,maxlon,maxlat"`` (WGS-84 degrees) to a checked tuple; None when
    empty; ``InvalidInput`` naming what is wrong otherwise."""
    if value is None or not value.strip():
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 4:
        raise InvalidInput(f"{field} has {len(parts)} values, not 4: {_BBOX_FIX}", field=field)
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"{field} {value!r} holds a value that is not a number: {_BBOX_FIX}",
                           field=field) from None
    return check_bbox(box, field)  # type: ignore[arg-type]


def parse_time(value: str | None, field_name: str) -> datetime | None:
    """An ISO 8601 date or date-time; without an offset it is the city's local time (people
    type "from=2025-06-01" meaning local)."""
    if value is None or not value.strip():
        return None
    raw = value.strip()
    try:
        if len(raw) == 10:
            parsed = datetime.combine(date.fromisoformat(raw), time())
        else:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise InvalidInput(
            f"{field_name} {value!r} is not an ISO 8601 date or date-time; e.g. 2025-06-01 or "
            "2025-06-01T20:00:00+08:00 (a '+' in a URL must be sent as %2B)",
            field=field_name,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CITY_TZ)


def day_start(day: date) -> datetime:
    """Midnight of ``day`` in the city's time zone."""
    return datetime.combine(day, time(), tzinfo=CITY_TZ)


def day_window(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Whole local days ``first`` to ``last`` (both included) as the ``reported_from`` /
    ``reported_to`` of :class:`CaseFilters`."""
    return (day_start(first) if first else None,
            day_start(last + timedelta(days=1)) if last else None)


def window_days(f: CaseFilters) -> tuple[date | None, date | None]:
    """The local days a filter's report window spans (the inverse of :func:`day_window`)."""
    last = f.reported_to.astimezone(CITY_TZ) - timedelta(microseconds=1) if f.reported_to else None
    return (f.reported_from.astimezone(CITY_TZ).date() if f.reported_from else None,
            last.date() if last else None)
