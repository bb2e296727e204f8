"""Reading cases: one case, and filtered, keyset-paginated lists.

Which cases a list holds is a :class:`cases.filters.CaseFilters` (the one filter set of the
API, the maps and the queues; its SQL is :func:`cases.filters.filter_sql`).

Visibility is applied here too, so no caller can forget it: a community officer sees only
its own communities' cases (and unrouted cases have no community, so it sees none of those),
and a planner never sees the reporter's name or phone.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Connection, text

from casegrid.db import RawQuery, pipelined
from casegrid.errors import InvalidInput, NotFound
from cases.filters import CaseFilters, filter_sql
from cases.tokens import Principal
from cases.vocabulary import STATES
from geo.boundaries import boundary_name_join

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
# What a role that may not see the reporter (Principal.sees_reporter) never gets: the name,
# the phone, and the links to photos the citizen sent (Open311 media_url, intake's
# photo_urls): a link on someone else's server can name the sender in its path or query,
# and the photo behind it keeps whatever EXIF position the citizen's phone wrote, which
# casegrid cannot strip (the photos uploaded to casegrid are withheld from them likewise:
# cases.attachments).
REPORTER_FIELDS = ("reporter_name", "reporter_phone", "photo_urls")

# {source} is the "case" table, or a CTE with the same columns (intake's INSERT ... RETURNING *,
# so a new case comes back with its names in the same round trip).
CASE_SELECT_TEMPLATE = f"""
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
FROM {{source}} c
JOIN category cat ON cat.code = c.category_code
LEFT JOIN community cm ON cm.generation_id = c.generation_id AND cm.code = c.community_code
LEFT JOIN community_post p ON p.id = c.post_id
{boundary_name_join("subdistrict", "c.subdistrict_code", "sd")}
"""
CASE_SELECT = CASE_SELECT_TEMPLATE.replace("{source}", '"case"')
# Every column of the row as well (what cases.workflow.view_of reads: due times, pending
# extension, ...), in the same statement: the case page's one read of its case. Where a
# name is in both, CASE_SELECT's column comes last and is the one kept (the same value).
_CASE_WHOLE = RawQuery(CASE_SELECT.replace("SELECT c.id,", "SELECT c.*, c.id,", 1)
                       + " WHERE c.id = :id")


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
    """The row as ``principal`` may see it (for planners: :data:`REPORTER_FIELDS` nulled). Free
    text is stored masked for everyone (:mod:`cases.privacy`); what was written is read
    through :func:`cases.personal_text.reveal`."""
    if not principal.sees_reporter:
        for key in REPORTER_FIELDS:
            row[key] = None
    return row


def fetch_case(conn: Connection, case_id: int, whole: bool = False) -> dict | None:
    """One case row with names of its category, community, subdistrict and post (no
    visibility checks: for internal use); ``whole``: with every other column of the row."""
    if whole:
        rows = _CASE_WHOLE.rows(conn, {"id": case_id})
        return rows[0] if rows else None
    row = conn.execute(text(CASE_SELECT + " WHERE c.id = :id"), {"id": case_id}).mappings().first()
    return None if row is None else dict(row)


def get_case(conn: Connection, case_id: int, principal: Principal, whole: bool = False) -> dict:
    """Case ``case_id`` as ``principal`` may see it; ``NotFound`` when it does not exist or
    belongs to a community the principal may not see (the two are indistinguishable on
    purpose). ``whole``: every column of the row too (:func:`fetch_case`)."""
    row = fetch_case(conn, case_id, whole)
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
    """`` WHERE ...`` of the filters as ``principal`` may apply them (its communities only)
    and ``extra`` conditions, with their bound parameters; columns of the case are ``c.``."""
    condition, params = filter_sql(filters.seen_by(principal))
    conditions = [condition]
    for sql, more in extra or ():
        conditions.append(f"({sql})")
        params.update(more)
    return " WHERE " + " AND ".join(conditions), params


# --- work lists: soonest due first ---------------------------------------------------------

# A case without a due time (waiting on nobody's clock) sorts after every dated one.
_DUE_KEY = "coalesce(c.current_due_at, 'infinity'::timestamptz)"
# The same order written as the index case_open_work (status, current_due_at, id) keeps it
# (an ascending index puts NULLs last, where the key above puts them), so that a queue's
# page is read from the index in order instead of sorting every open case of the queue.
_DUE_ORDER = "c.current_due_at, c.id"


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
    sql, params = _due_first_sql(filters, principal, limit, after, exclude)
    return _due_page(conn.execute(text(sql), params).mappings(), principal, limit)


def list_due_first_and_count(conn: Connection, filters: CaseFilters, counted: CaseFilters,
                             principal: Principal, *, limit: int = DEFAULT_LIMIT,
                             after: str | None = None) -> tuple[CasePage, int]:
    """:func:`list_due_first` of ``filters`` and :func:`count_cases` of ``counted`` (a list
    page and its total), sent to the server together: one round trip."""
    sql, params = _due_first_sql(filters, principal, limit, after, None)
    where, count_params = where_sql(counted, principal)
    rows, (total,) = pipelined(conn, [(_raw(sql), params),
                                      (_raw(f'SELECT count(*) AS n FROM "case" c{where}'), count_params)],
                               as_dicts=True)
    return _due_page(rows, principal, limit), total["n"]


@lru_cache(maxsize=256)
def _raw(sql: str) -> RawQuery:
    """A list's statement, compiled once (a queue's filters give a handful of texts)."""
    return RawQuery(sql)


def _due_first_sql(filters: CaseFilters, principal: Principal, limit: int, after: str | None,
                   exclude: int | None) -> tuple[str, dict]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}", field="limit")
    extra: list[tuple[str, dict]] = []
    if after:
        due, case_id = decode_due_cursor(after)
        extra.append((f"({_DUE_KEY}, c.id) > (coalesce(CAST(:aft_due AS timestamptz), "
                      "'infinity'::timestamptz), :aft_id)", {"aft_due": due, "aft_id": case_id}))
    if exclude is not None:
        extra.append(("c.id <> :excl_id", {"excl_id": exclude}))
    # PostgreSQL reads the index in due order for one status at a time: a queue of several
    # statuses is one ordered, limited read per status, merged.
    params: dict = {"limit": limit + 1}
    reads = []
    for i, status in enumerate(filters.status if filters.status and len(filters.status) > 1
                               else (None,)):
        one = filters if status is None else replace(filters, status=(status,))
        where, p = _renamed(*where_sql(one, principal, extra), f"s{i}_")
        params.update(p)
        reads.append(f'(SELECT * FROM "case" c{where} ORDER BY {_DUE_ORDER} LIMIT :limit)')
    source = reads[0] if len(reads) == 1 else (
        f"(SELECT * FROM ({' UNION ALL '.join(reads)}) c ORDER BY {_DUE_ORDER} LIMIT :limit)")
    # The names are joined to the page's rows only, not to every case of the queue.
    return CASE_SELECT_TEMPLATE.replace("{source}", source) + f" ORDER BY {_DUE_ORDER}", params


def _due_page(rows, principal: Principal, limit: int) -> CasePage:  # noqa: ANN001 - row mappings
    items = [redact(dict(r), principal) for r in rows]
    page = CasePage(items=items[:limit])
    if len(items) > limit:
        last = page.items[-1]
        page.next_cursor = encode_due_cursor(last["current_due_at"], last["id"])
    return page


def count_cases(conn: Connection, filters: CaseFilters, principal: Principal) -> int:
    """How many cases ``principal`` may see match ``filters``."""
    where, params = where_sql(filters, principal)
    return conn.execute(text(f'SELECT count(*) FROM "case" c{where}'), params).scalar_one()


def _renamed(sql: str, params: dict, prefix: str) -> tuple[str, dict]:
    """``sql`` and ``params`` with every parameter name prefixed (longest names first, so
    that ``:f_to`` does not rename part of ``:f_to_x``): two conditions of one statement
    may bind the same names."""
    for key in sorted(params, key=len, reverse=True):
        sql = sql.replace(f":{key}", f":{prefix}{key}")
    return sql, {f"{prefix}{k}": v for k, v in params.items()}


def count_each(conn: Connection, named: dict[str, CaseFilters], principal: Principal,
               within: CaseFilters | None = None) -> dict[str, int]:
    """How many cases ``principal`` may see match each named filter set, among the cases
    matching ``within`` (e.g. open cases only), in one statement.

    The cases are read one status at a time (every case has one of :data:`STATES`, the
    schema's check), each filter set counted only in the statuses it names (or in all,
    when it names none) with the rest of its own condition: the same counts as one pass
    testing every set's whole condition on every case, with fewer tests. Above all, a range
    of one status is read from an index led by the status (``case_open_work`` for open
    cases) alone: the planner took a pass over every open case through the narrower
    ``case_open_due``, visiting each case's row (bench/RESULTS.md, issue 21)."""
    if not named:
        return {}
    base = within or CaseFilters()
    params: dict = {}
    ranges = []
    for si, status in enumerate(STATES):
        if base.status is not None and status not in base.status:
            continue
        columns, any_here = [], False
        for qi, f in enumerate(named.values()):
            if f.status is not None and status not in f.status:
                columns.append(f"0::bigint AS n{qi}")
                continue
            any_here = True
            # Each set's parameters get their own names: two sets may filter one field.
            cond, p = _renamed(*filter_sql(replace(f, status=None)), f"s{si}n{qi}_")
            params.update(p)
            columns.append(f"count(*) FILTER (WHERE {cond}) AS n{qi}")
        if not any_here:
            continue
        # The status as a value the planner does not read (an init plan's): each range is
        # costed as an average status's, and read from the status-led index. Written as a
        # plain value, "closed" (most of a ledger, hardly ever an open case) was costed as
        # most of the open cases, and read through case_open_due, visiting every open row.
        where, p = _renamed(*where_sql(replace(base, status=None), principal, [
            ("c.status = (SELECT CAST(:range_status AS text))", {"range_status": status})]),
            f"s{si}_")
        params.update(p)
        ranges.append(f'SELECT {", ".join(columns)} FROM "case" c{where}')
    if not ranges:
        return dict.fromkeys(named, 0)
    sums = ", ".join(f"coalesce(sum(n{i}), 0)::bigint" for i in range(len(named)))
    row = conn.execute(text(f"SELECT {sums} FROM ({' UNION ALL '.join(ranges)}) x"), params).one()
    return {name: row[i] for i, name in enumerate(named)}


# --- reference data the API serves beside cases --------------------------------------------

COMMUNITIES_SQL = f"""
SELECT c.code, c.name, c.subdistrict_code, sd.name AS subdistrict_name, c.area_m2,
       c.generation_id, ST_AsGeoJSON(c.geom, 7) AS geometry,
       p.id AS post_id, p.name AS post_name, p.contact_name AS post_contact_name,
       p.phone AS post_phone, p.address AS post_address, p.hours AS post_hours,
       ST_X(p.geom) AS post_lon, ST_Y(p.geom) AS post_lat
FROM community c
JOIN boundary_generation g ON g.id = c.generation_id AND g.active AND g.level = 'community'
LEFT JOIN community_post p ON p.community_code = c.code
{boundary_name_join("subdistrict", "c.subdistrict_code", "sd")}
ORDER BY c.code
"""


def active_communities(conn: Connection) -> list[dict]:
    """Communities of the active generation with subdistrict name, post contact and
    geometry as a GeoJSON text (7 decimals, about 1 cm)."""
    return [dict(r) for r in conn.execute(text(COMMUNITIES_SQL)).mappings()]
