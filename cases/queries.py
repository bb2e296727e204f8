"""Reading cases: one case, and filtered, keyset-paginated lists.

The list query is assembled from small filter clauses. Each clause is a function of the
:class:`CaseFilters` that returns one SQL condition with its bound parameters, or None when
its filter is not set; the ``@filter_clause`` decorator registers it. Adding a filter
(for example the ledger's ``overdue``) is therefore one field on ``CaseFilters`` plus one
decorated function here (and a query parameter in ``api/routes/cases.py``).

Visibility is applied here too, so no caller can forget it: a community officer sees only
its own communities' cases (and unrouted cases have no community, so it sees none of those),
and a planner never sees the reporter's name or phone.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput, NotFound
from cases.calendar import CITY_TZ
from cases.tokens import Principal
from cases.vocabulary import CHANNELS, STATES, UNROUTED_RULES, overdue_sql

# Times without an offset in list filters are the city's local time (the database session
# runs in the same zone, see casegrid/db.py): people type "from=2025-06-01" meaning local.
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
REPORTER_FIELDS = ("reporter_name", "reporter_phone")

# {source} is the "case" table, or a CTE with the same columns (intake's INSERT ... RETURNING *,
# so a new case comes back with its names in the same round trip).
CASE_SELECT_TEMPLATE = """
SELECT c.id, c.case_no, c.status, c.version, c.category_code,
       cat.name_zh AS category_name_zh, cat.name_en AS category_name_en,
       c.channel, c.external_id, c.description, c.address,
       c.reported_at, c.received_at, c.reporter_name, c.reporter_phone, c.photo_urls,
       c.input_lon, c.input_lat, c.input_crs, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
       c.community_code, cm.name AS community_name,
       c.subdistrict_code, sd.name AS subdistrict_name,
       c.post_id, p.name AS post_name, p.contact_name AS post_contact_name,
       p.phone AS post_phone, p.address AS post_address, p.hours AS post_hours,
       ST_X(p.geom) AS post_lon, ST_Y(p.geom) AS post_lat,
       c.generation_id, c.route_rule, c.route_distance_m, c.near_boundary, c.route_alternates,
       c.merged_into, c.current_due_at, c.due_provisional,
       c.reviewed_at, c.dispatched_at, c.handled_at, c.verified_at, c.replied_at, c.closed_at,
       c.rework_count, c.extension_count, c.created_at, c.updated_at
FROM {source} c
JOIN category cat ON cat.code = c.category_code
LEFT JOIN community cm ON cm.generation_id = c.generation_id AND cm.code = c.community_code
LEFT JOIN community_post p ON p.id = c.post_id
LEFT JOIN LATERAL (
    -- subdistricts are their own generations: prefer the active one's name
    SELECT s.name FROM subdistrict s JOIN boundary_generation g ON g.id = s.generation_id
    WHERE s.code = c.subdistrict_code ORDER BY g.active DESC, g.id DESC LIMIT 1
) sd ON true
"""
CASE_SELECT = CASE_SELECT_TEMPLATE.replace("{source}", '"case"')


# --- filters ------------------------------------------------------------------------------


@dataclass
class CaseFilters:
    """Filters of the case list; None (or empty) means "not filtered"."""

    status: list[str] | None = None
    category: list[str] | None = None
    community: list[str] | None = None
    subdistrict: list[str] | None = None
    channel: list[str] | None = None
    bbox: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat
    reported_from: datetime | None = None  # inclusive
    reported_to: datetime | None = None  # exclusive
    unrouted: bool | None = None  # True: only unrouted; False: only routed
    overdue: bool | None = None  # True: open and past the current step's due time
    # True: the location needs a look (routed to the nearest community, or near a boundary)
    location_check: bool | None = None
    pending_extension: bool | None = None  # True: an extension request awaits a decision
    open: bool | None = None  # True: not closed yet (closed_at is NULL)


Clause = Callable[[CaseFilters], "tuple[str, dict] | None"]
FILTER_CLAUSES: list[Clause] = []


def filter_clause(fn: Clause) -> Clause:
    """Register a filter clause (see the module docstring)."""
    FILTER_CLAUSES.append(fn)
    return fn


@filter_clause
def _status(f: CaseFilters):
    return ("c.status = ANY(:f_status)", {"f_status": f.status}) if f.status else None


@filter_clause
def _category(f: CaseFilters):
    return ("c.category_code = ANY(:f_category)", {"f_category": f.category}) if f.category else None


@filter_clause
def _community(f: CaseFilters):
    if not f.community:
        return None
    return "c.community_code = ANY(:f_community)", {"f_community": f.community}


@filter_clause
def _subdistrict(f: CaseFilters):
    if not f.subdistrict:
        return None
    return "c.subdistrict_code = ANY(:f_subdistrict)", {"f_subdistrict": f.subdistrict}


@filter_clause
def _channel(f: CaseFilters):
    return ("c.channel = ANY(:f_channel)", {"f_channel": f.channel}) if f.channel else None


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


@filter_clause
def _reported_from(f: CaseFilters):
    if f.reported_from is None:
        return None
    return "c.reported_at >= :f_from", {"f_from": f.reported_from}


@filter_clause
def _reported_to(f: CaseFilters):
    return ("c.reported_at < :f_to", {"f_to": f.reported_to}) if f.reported_to else None


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
    return ("c.closed_at IS NULL" if f.open else "c.closed_at IS NOT NULL"), {}


def _scope(principal: Principal) -> tuple[str, dict] | None:
    if principal.sees_all_communities:
        return None
    return "c.community_code = ANY(:scope_communities)", {
        "scope_communities": list(principal.communities)
    }


# --- parsing query-string values (shared by the API and the CLI) -------------------------


def split_list(value: str | list[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b,c"]`` to ``["a", "b", "c"]``; None/empty to None."""
    if value is None:
        return None
    parts = value if isinstance(value, list) else [value]
    items = [p.strip() for part in parts for p in part.split(",") if p.strip()]
    return items or None


def parse_channels(value: str | list[str] | None) -> list[str] | None:
    """Channel filter values, each checked against the known channels."""
    return _known_values(value, CHANNELS, "channel")


def parse_statuses(value: str | list[str] | None) -> list[str] | None:
    """Status filter values, each checked against the ledger's states (a typo would
    otherwise silently match nothing)."""
    return _known_values(value, STATES, "status")


def _known_values(value: str | list[str] | None, known, field: str) -> list[str] | None:  # noqa: ANN001
    items = split_list(value)
    for item in items or ():
        if item not in known:
            raise InvalidInput(f"{field} {item!r} is unknown; accepted: {', '.join(known)}",
                               field=field)
    return items


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``"minlon,minlat,maxlon,maxlat"`` (WGS-84 degrees) to a tuple; ``InvalidInput`` naming
    what is wrong otherwise."""
    if value is None or not value.strip():
        return None
    fix = "give bbox=minlon,minlat,maxlon,maxlat in WGS-84 degrees, e.g. bbox=117.10,35.05,117.20,35.12"
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 4:
        raise InvalidInput(f"bbox has {len(parts)} values, not 4: {fix}", field="bbox")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"bbox {value!r} holds a value that is not a number: {fix}",
                           field="bbox") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InvalidInput(f"bbox values must be finite numbers: {fix}", field="bbox")
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        hint = " (latitude first? longitude comes first)" if abs(y0) > 90 or abs(y1) > 90 else ""
        raise InvalidInput(
            f"bbox {value!r} is out of range: longitudes within [-180, 180], latitudes within "
            f"[-90, 90]{hint}; {fix}", field="bbox")
    if x0 > x1 or y0 > y1:
        raise InvalidInput(
            f"bbox {value!r}: minimum greater than maximum; {fix}", field="bbox")
    return x0, y0, x1, y1


def parse_time(value: str | None, field_name: str) -> datetime | None:
    """An ISO 8601 date or date-time; without an offset it is the city's local time."""
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


def check_time_range(start: datetime | None, end: datetime | None) -> None:
    """``InvalidInput`` when ``from`` is not before ``to``."""
    if start and end and start >= end:
        raise InvalidInput(
            f"from ({start.isoformat()}) must be before to ({end.isoformat()})", field="from"
        )


# --- cursors ------------------------------------------------------------------------------


def encode_cursor(reported_at: datetime, case_id: int) -> str:
    """An opaque cursor pointing just after the given row in newest-first order."""
    raw = json.dumps([reported_at.isoformat(), case_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor stands for; ``InvalidInput(field='cursor')`` if it is not one
    this server issued."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, case_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = datetime.fromisoformat(at), int(case_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not a value this server issued: pass next_cursor from the previous page "
            "unchanged, or leave cursor out to start from the newest case",
            field="cursor",
        ) from None
    if position[0].tzinfo is None:
        raise InvalidInput("cursor is malformed; leave it out to start again", field="cursor")
    return position


# --- reading ------------------------------------------------------------------------------


def redact(row: dict, principal: Principal) -> dict:
    """The row as ``principal`` may see it (for planners: reporter fields nulled). Free
    text is stored masked for everyone (:mod:`cases.privacy`); what was written is read
    through :func:`cases.personal_text.reveal`."""
    if not principal.sees_reporter:
        for key in REPORTER_FIELDS:
            row[key] = None
    return row


def fetch_case(conn: Connection, case_id: int) -> dict | None:
    """One case row with names of its category, community, subdistrict and post (no
    visibility checks: for internal use)."""
    row = conn.execute(text(CASE_SELECT + " WHERE c.id = :id"), {"id": case_id}).mappings().first()
    return None if row is None else dict(row)


def get_case(conn: Connection, case_id: int, principal: Principal) -> dict:
    """Case ``case_id`` as ``principal`` may see it; ``NotFound`` when it does not exist or
    belongs to a community the principal may not see (the two are indistinguishable on
    purpose)."""
    row = fetch_case(conn, case_id)
    if row is None or not principal.may_see_community(row["community_code"]):
        raise NotFound(f"no case with id {case_id}", field="id")
    return redact(row, principal)


@dataclass
class CasePage:
    """One page of the case list; ``next_cursor`` is None on the last page."""

    items: list[dict] = field(default_factory=list)
    next_cursor: str | None = None


def list_cases(
    conn: Connection,
    filters: CaseFilters,
    principal: Principal,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> CasePage:
    """Cases matching ``filters`` that ``principal`` may see, newest reported first, keyset
    paginated on ``(reported_at, id)`` (stable while cases are being added)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}", field="limit")
    extra = []
    if cursor:
        at, case_id = decode_cursor(cursor)
        extra.append(("(c.reported_at, c.id) < (:cur_at, :cur_id)", {"cur_at": at, "cur_id": case_id}))
    where, params = where_sql(filters, principal, extra)
    params["limit"] = limit + 1
    sql = CASE_SELECT + where + " ORDER BY c.reported_at DESC, c.id DESC LIMIT :limit"
    rows = [redact(dict(r), principal) for r in conn.execute(text(sql), params).mappings()]
    page = CasePage(items=rows[:limit])
    if len(rows) > limit:
        last = page.items[-1]
        page.next_cursor = encode_cursor(last["reported_at"], last["id"])
    return page


def where_sql(filters: CaseFilters, principal: Principal,
              extra: list[tuple[str, dict]] | None = None) -> tuple[str, dict]:
    """`` WHERE ...`` (or "") of the filters, the principal's scope and ``extra`` conditions,
    with their bound parameters; columns of the case are ``c.``."""
    conditions: list[str] = []
    params: dict = {}
    parts = [clause(filters) for clause in FILTER_CLAUSES] + [_scope(principal)] + (extra or [])
    for part in parts:
        if part is not None:
            conditions.append(part[0])
            params.update(part[1])
    return ((" WHERE " + " AND ".join(f"({c})" for c in conditions)) if conditions else ""), params


# --- work lists: soonest due first ---------------------------------------------------------

# A case without a due time (waiting on nobody's clock) sorts after every dated one.
_DUE_KEY = "coalesce(c.current_due_at, 'infinity'::timestamptz)"


def encode_due_cursor(due_at: datetime | None, case_id: int) -> str:
    """An opaque cursor pointing just after the given row in soonest-due-first order."""
    raw = json.dumps([due_at.isoformat() if due_at else None, case_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_due_cursor(cursor: str) -> tuple[datetime | None, int]:
    """The position a due cursor stands for; ``InvalidInput(field='after')`` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, case_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        due = datetime.fromisoformat(at) if at is not None else None
        if due is not None and due.tzinfo is None:
            raise ValueError
        return due, int(case_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("after is not a position this server issued: follow the page's "
                           "'next' link, or leave it out to start at the top", field="after") from None


def list_due_first(conn: Connection, filters: CaseFilters, principal: Principal, *,
                   limit: int = DEFAULT_LIMIT, after: str | None = None,
                   exclude: int | None = None) -> CasePage:
    """Cases matching ``filters`` that ``principal`` may see, soonest due first (then by
    id), keyset paginated on ``(due, id)``: the order of every work list."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}", field="limit")
    extra: list[tuple[str, dict]] = []
    if after:
        due, case_id = decode_due_cursor(after)
        extra.append((f"({_DUE_KEY}, c.id) > (coalesce(CAST(:aft_due AS timestamptz), "
                      "'infinity'::timestamptz), :aft_id)", {"aft_due": due, "aft_id": case_id}))
    if exclude is not None:
        extra.append(("c.id <> :excl_id", {"excl_id": exclude}))
    where, params = where_sql(filters, principal, extra)
    params["limit"] = limit + 1
    sql = CASE_SELECT + where + f" ORDER BY {_DUE_KEY}, c.id LIMIT :limit"
    rows = [redact(dict(r), principal) for r in conn.execute(text(sql), params).mappings()]
    page = CasePage(items=rows[:limit])
    if len(rows) > limit:
        last = page.items[-1]
        page.next_cursor = encode_due_cursor(last["current_due_at"], last["id"])
    return page


def count_each(conn: Connection, named: dict[str, CaseFilters], principal: Principal,
               within: CaseFilters | None = None) -> dict[str, int]:
    """How many cases ``principal`` may see match each named filter set, in one pass over
    the cases matching ``within`` (e.g. open cases only)."""
    if not named:
        return {}
    where, params = where_sql(within or CaseFilters(), principal)
    columns = []
    for i, f in enumerate(named.values()):
        cond, p = where_sql(f, principal)
        # Each set's parameters get their own names: two sets may filter one field.
        for key in sorted(p, key=len, reverse=True):
            cond = cond.replace(f":{key}", f":n{i}_{key}")
        params.update({f"n{i}_{k}": v for k, v in p.items()})
        columns.append(f"count(*) FILTER (WHERE {cond.removeprefix(' WHERE ') or 'true'}) AS n{i}")
    row = conn.execute(text(f'SELECT {", ".join(columns)} FROM "case" c{where}'), params).one()
    return {name: row[i] for i, name in enumerate(named)}


# --- reference data the API serves beside cases --------------------------------------------

COMMUNITIES_SQL = """
SELECT c.code, c.name, c.subdistrict_code, sd.name AS subdistrict_name, c.area_m2,
       c.generation_id, ST_AsGeoJSON(c.geom, 7) AS geometry,
       p.id AS post_id, p.name AS post_name, p.contact_name AS post_contact_name,
       p.phone AS post_phone, p.address AS post_address, p.hours AS post_hours,
       ST_X(p.geom) AS post_lon, ST_Y(p.geom) AS post_lat
FROM community c
JOIN boundary_generation g ON g.id = c.generation_id AND g.active AND g.level = 'community'
LEFT JOIN community_post p ON p.community_code = c.code
LEFT JOIN LATERAL (
    SELECT s.name FROM subdistrict s JOIN boundary_generation sg ON sg.id = s.generation_id
    WHERE s.code = c.subdistrict_code ORDER BY sg.active DESC, sg.id DESC LIMIT 1
) sd ON true
ORDER BY c.code
"""


def active_communities(conn: Connection) -> list[dict]:
    """Communities of the active generation with subdistrict name, post contact and
    geometry as a GeoJSON text (7 decimals, about 1 cm)."""
    return [dict(r) for r in conn.execute(text(COMMUNITIES_SQL)).mappings()]
