"""Case intake: validate a complaint, route it, store it exactly once, find possible duplicates.

Both the HTTP API and the bulk importer's per-row checks go through :class:`NewCase`; the
API calls :func:`create_case`, which runs inside the caller's transaction (one request,
one transaction: a request that fails leaves nothing behind).

Exactly once: the ``(channel, external_id)`` pair is unique in the database, and the insert
is ``ON CONFLICT DO NOTHING``. When two requests race, PostgreSQL makes the second insert
wait for the first transaction; if that commits, the second inserts nothing and then reads
the committed row (each statement gets a fresh snapshot under READ COMMITTED), so both
callers get the same case.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, HttpUrl, field_validator
from sqlalchemy import Connection, text

from casegrid.db import RawQuery, json_param
from casegrid.errors import (
    CasegridError,
    Conflict,
    CoordinateError,
    Forbidden,
    InvalidInput,
)
from casegrid.settings import Settings, get_settings
from casegrid.validators import not_a_timestamp
from cases.calendar_store import load_calendar
from cases.catalogue import categories_from_rows, duplicate_params
from cases.deadlines import initial_deadlines_from
from cases.intake_lookups import IntakeLookups, fetch_intake_lookups
from cases.notices import registered_sql
from cases.privacy import mask_free_text
from cases.queries import CASE_SELECT, CASE_SELECT_TEMPLATE
from cases.tokens import Principal
from cases.vocabulary import CHANNELS, open_sql
from geo.address_match import AddressMatch, match_addresses
from geo.case_locate import store_case_locate
from geo.coords import normalise_crs
from geo.routing import M_PER_DEG, PreparedPoint, RouteResult, prepare_points, route_in_generation

Channel = Literal[CHANNELS]  # type: ignore[valid-type]

INTAKE_CRS = ("wgs84", "gcj02", "bd09")
# Who may register complaints (a community officer only within its own communities).
SUBMITTERS = ("intake", "dispatcher", "supervisor", "admin", "community_officer")
MAX_DESCRIPTION = 4000
MAX_PHOTOS = 10
# Reporters' and servers' clocks differ; a timestamp a little ahead of ours is still real.
CLOCK_SKEW = timedelta(minutes=5)
DUPLICATE_LIMIT = 10
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{2,38}$")


class NewCase(BaseModel):
    """A complaint as submitted. Give ``lon`` + ``lat`` (with ``crs``), or only an
    ``address``: the case is then stored unrouted (route rule ``unlocated``) for a
    dispatcher to place on the map."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lon: float | None = Field(None, description="Longitude (x) in `crs`, decimal degrees.",
                              examples=[117.1652])
    lat: float | None = Field(None, description="Latitude (y) in `crs`, decimal degrees.",
                              examples=[35.0871])
    crs: str = Field("wgs84", description="wgs84 (GPS), gcj02 (Amap, Tencent, WeChat) or "
                     "bd09 (Baidu).", examples=["gcj02"])
    address: str | None = Field(None, max_length=500, description="Address text as reported.")
    category: str = Field(..., description="Category code; see GET /api/v1/categories.",
                          examples=["0599"])
    description: str = Field("", description=f"What is wrong (at most {MAX_DESCRIPTION} characters).")
    channel: Channel = Field(..., description="Where the complaint came in.")
    external_id: str | None = Field(
        None, max_length=200,
        description="The channel's own ticket number; resending the same (channel, "
        "external_id) returns the first case instead of creating another.")
    reported_at: Annotated[datetime | None, BeforeValidator(not_a_timestamp)] = Field(
        None, description="When the citizen reported it, with a UTC offset (default: now).")
    reporter_name: str | None = Field(None, max_length=100)
    reporter_phone: str | None = Field(None, max_length=40)
    photo_urls: list[HttpUrl] = Field(default_factory=list, description=f"At most {MAX_PHOTOS} http(s) URLs.")

    @field_validator("address", "category", "description", "external_id", "reporter_name",
                     "reporter_phone", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL: refuse it here, naming the field, not deep in the DB.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character (\\u0000); remove it")
        return value

    @field_validator("crs", mode="before")
    @classmethod
    def _crs(cls, value: object) -> str:
        if value is None:
            return "wgs84"
        try:
            crs = normalise_crs(str(value))
        except InvalidInput:
            crs = None
        if crs not in INTAKE_CRS:
            raise ValueError(
                f"crs {value!r} is not accepted here; use one of wgs84 (GPS, EPSG:4326), "
                "gcj02 (Amap, Tencent, WeChat) or bd09 (Baidu)")
        return crs

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if len(value) > MAX_DESCRIPTION:
            raise ValueError(
                f"description has {len(value)} characters; the limit is {MAX_DESCRIPTION}: "
                "shorten it (put long material in a photo or attachment URL)")
        return value

    @field_validator("external_id", "address", "reporter_name", "reporter_phone")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("reporter_phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE_RE.match(value):
            raise ValueError(
                f"reporter_phone {value!r} is not a phone number: digits, optionally with a "
                "leading +, spaces, dashes or brackets, e.g. 0632-5512345 or 13800000000")
        return value

    @field_validator("reported_at")
    @classmethod
    def _reported_at(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "reported_at has no UTC offset: add one, e.g. 2025-06-01T21:30:00+08:00")
        if value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(
                f"reported_at {value.isoformat()} is in the future; give the time the citizen "
                "reported, with its UTC offset")
        return value

    @field_validator("photo_urls")
    @classmethod
    def _photos(cls, value: list[HttpUrl]) -> list[HttpUrl]:
        if len(value) > MAX_PHOTOS:
            raise ValueError(f"photo_urls has {len(value)} URLs; at most {MAX_PHOTOS} are accepted")
        return value


@dataclass
class IntakeResult:
    """What :func:`create_case` did: the case row, whether it was new, and possible duplicates."""

    case: dict
    created: bool
    possible_duplicates: list[dict] = field(default_factory=list)
    # What the nearby-duplicates search for this case looks for (register_cases'
    # search_duplicates; add_possible_duplicates runs it).
    duplicate_query: dict | None = field(default=None, repr=False)


@dataclass
class _Location:
    """Where a new case is: validated input, WGS-84 point and routing (or none)."""

    rule: str
    input_lon: float | None = None
    input_lat: float | None = None
    input_crs: str | None = None
    lon: float | None = None
    lat: float | None = None
    routed: RouteResult | None = None
    note: str | None = None
    # An unlocated address's suggestions (geo.address_match), stored as its alternates.
    suggestions: list[dict] = field(default_factory=list)


def locate_all(datas: list[NewCase]) -> list[_Location | PreparedPoint | CasegridError]:
    """Validate each submission's coordinates (or its address-only form): the validated
    point to route, the unrouted location of an address-only complaint, or the
    ``CoordinateError`` naming ``lon``/``lat`` (missing, NaN, out of range, swapped)."""
    out: list[_Location | PreparedPoint | CasegridError | None] = [None] * len(datas)
    located = []
    for i, data in enumerate(datas):
        if data.lon is None and data.lat is None:
            out[i] = _Location(rule="unlocated", note="address only") if data.address else \
                CoordinateError("location is missing: give lon and lat (with crs), or at least "
                                "an address for a dispatcher to place", field="lon")
        else:
            located.append(i)
    points = prepare_points([(datas[i].lon, datas[i].lat, datas[i].crs) for i in located])
    for i, point in zip(located, points, strict=True):
        out[i] = point
    return out  # type: ignore[return-value]


def _locate_by_address(conn: Connection, submissions: list[tuple[NewCase, Principal]],
                       locations: dict[int, _Location], points: dict[int, PreparedPoint]
                       ) -> dict[int, AddressMatch]:
    """Match the addresses of the batch's address-only submissions in one go
    (:mod:`geo.address_match`); a confident answer's point is routed with the others
    (moved from ``locations`` to ``points``), an unsure one keeps the case unlocated with
    its suggestions."""
    asks = [i for i, loc in locations.items() if loc.rule == "unlocated"]
    if not asks:
        return {}
    matches = match_addresses(conn, [submissions[i][0].address or "" for i in asks])
    for i, match in zip(asks, matches, strict=True):
        if match.located:
            del locations[i]
            points[i] = PreparedPoint(match.lon, match.lat, "wgs84", match.lon, match.lat)
        else:
            locations[i].suggestions = [s.to_dict() for s in match.suggestions]
            locations[i].note = f"address only: {match.why}"
    return dict(zip(asks, matches, strict=True))


def _by_address(loc: _Location, match: AddressMatch) -> None:
    """A point found from the address: no input coordinates (none were sent), and the
    address rule when the point routed into a community (else routing's own rule)."""
    loc.input_lon = loc.input_lat = None
    loc.input_crs = None
    if loc.routed is not None and loc.routed.community_code is not None:
        loc.rule = match.rule or loc.rule
    loc.note = f"address: {match.why} (confidence {match.confidence:.2f})"


def _route_all(conn: Connection, points: dict[int, PreparedPoint],
               generation_id: int | None) -> dict[int, _Location]:
    """Route the validated points of a batch in one query, in the active community
    generation ``generation_id`` (read with the batch's lookups)."""
    if not points:
        return {}
    if generation_id is None:
        # No boundaries loaded yet: the complaints are still taken, as unrouted cases.
        return {i: _Location("outside", p.input_lon, p.input_lat, p.input_crs, p.lon, p.lat,
                             note="no community boundaries loaded") for i, p in points.items()}
    routed = route_in_generation(conn, list(points.values()), generation_id)
    return {i: _Location(r.rule, r.input_lon, r.input_lat, r.input_crs, r.lon, r.lat, routed=r)
            for i, r in zip(points, routed, strict=True)}


def routing_summary(loc: _Location) -> dict:
    """The routing facts stored in the case_event of the registration."""
    r = loc.routed
    summary = {
        "rule": loc.rule,
        "community_code": r.community_code if r else None,
        "subdistrict_code": r.subdistrict_code if r else None,
        "post_id": (r.post or {}).get("id") if r else None,
        "generation_id": r.generation_id if r else None,
        "distance_m": r.distance_m if r else None,
        "near_boundary": r.near_boundary if r else False,
        "alternates": [a.get("code") for a in r.alternates] if r else [],
        "input": {"lon": loc.input_lon, "lat": loc.input_lat, "crs": loc.input_crs},
    }
    if loc.note:
        summary["note"] = loc.note
    return summary


# One statement for a whole batch: insert the cases (skipping tickets already known) and
# their first events, and return the inserted cases with their position in the batch. Ids
# are drawn up front so each returned row maps back to its submission without relying on
# the order of RETURNING. Case numbers too, formatted by case_no_of (0010), which the
# planner inlines: the column default next_case_no() is a SQL function that PostgreSQL
# plans again for every row it numbers. The id sequence is named as the constant its
# bigserial column gave it (0001), resolved once when the statement is parsed: a
# pg_get_serial_sequence() call here ran per row, a catalogue search each time.
# The case.registered events of the batch, in the same statement (cases.notices).
OUTBOX_CTE = "), outbox AS (\n    " + registered_sql("ins")
INSERT_SQL = """
WITH src AS MATERIALIZED (
    SELECT r.*, nextval('case_id_seq') AS new_id,
           nextval('case_no_seq') AS new_no
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        ord int, channel text, external_id text, category text, description text, address text,
        reported_at timestamptz, received_at timestamptz, reporter_name text,
        reporter_phone text, photo_urls text[], input_lon float8, input_lat float8,
        input_crs text, lon float8, lat float8, community_code text, subdistrict_code text,
        post_id int, generation_id int, rule text, distance_m float8, near_boundary boolean,
        alternates jsonb, review_due_at timestamptz, reply_due_at timestamptz,
        current_due_at timestamptz, due_provisional boolean, actor text, role text,
        event_data jsonb, originals jsonb)
), ins AS (
    INSERT INTO "case" (id, case_no, channel, external_id, category_code, description, address,
                        reported_at, received_at, reporter_name, reporter_phone, photo_urls,
                        input_lon, input_lat, input_crs, geom,
                        community_code, subdistrict_code, post_id, generation_id,
                        route_rule, route_distance_m, near_boundary, route_alternates,
                        review_due_at, reply_due_at, current_due_at, due_provisional)
    SELECT new_id, case_no_of(new_no), channel, external_id, category, description, address,
           COALESCE(reported_at, now()), received_at, reporter_name, reporter_phone,
           photo_urls, input_lon, input_lat, input_crs,
           CASE WHEN lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END,
           community_code, subdistrict_code, post_id, generation_id,
           rule, distance_m, near_boundary, alternates,
           review_due_at, reply_due_at, current_due_at, due_provisional
    FROM src ORDER BY ord
    ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING *
), ev AS (
    INSERT INTO case_event (case_id, actor, role, action, from_state, to_state, data)
    SELECT ins.id, src.actor, src.role, 'register', NULL, ins.status, src.event_data
    FROM ins JOIN src ON src.new_id = ins.id
), originals AS (
    -- The free text as written, where masking changed it (cases.personal_text).
    INSERT INTO personal_text (case_id, field, original)
    SELECT ins.id, o.key, o.value
    FROM ins JOIN src ON src.new_id = ins.id CROSS JOIN LATERAL jsonb_each_text(src.originals) o
    WHERE src.originals IS NOT NULL
""" + OUTBOX_CTE + """
)
SELECT src.ord, q.* FROM (""" + CASE_SELECT_TEMPLATE.replace("{source}", "ins") + """) q
JOIN src ON src.new_id = q.id
"""
_INSERT = RawQuery(INSERT_SQL)

_BY_TICKETS_SQL = CASE_SELECT + """
WHERE (c.channel, c.external_id) IN (
    SELECT * FROM unnest(CAST(:channels AS text[]), CAST(:external_ids AS text[])))
"""


def _check_scope(actor: Principal, community_code: str | None, *, existing: bool) -> None:
    # A community officer may submit its own patrol finds, but only for its own communities:
    # a case it could not see afterwards would be a case it could not follow up.
    if actor.may_see_community(community_code):
        return
    where = f"routes to community {community_code}" if community_code else "is not routed to any community"
    what = "the case already registered under this external_id" if existing else "this location"
    raise Forbidden(
        f"{what} {where}, which is not one of yours ({', '.join(actor.communities)}); "
        "ask a dispatcher or the hotline to register it",
        field="lon" if not existing else "external_id",
    )


def create_case(
    conn: Connection, data: NewCase, actor: Principal, settings: Settings | None = None
) -> IntakeResult:
    """Register ``data`` as a new case routed to its community post, or return the case
    already registered under the same ``(channel, external_id)`` (``created=False``).

    Writes the case and its ``register`` event in the caller's transaction. Raises
    ``InvalidInput``/``CoordinateError`` (naming the field) before anything is written.
    """
    (result,) = register_cases(conn, [(data, actor)], settings, search_duplicates=True)
    if isinstance(result, CasegridError):
        raise result
    return result


def register_cases(
    conn: Connection,
    submissions: list[tuple[NewCase, Principal]],
    settings: Settings | None = None,
    *,
    search_duplicates: bool = True,
    lookups: IntakeLookups | None = None,
) -> list[IntakeResult | CasegridError]:
    """:func:`create_case` for a batch of submissions, in one transaction (the caller's)
    and a handful of statements whatever the batch size: one for what the batch looks up
    (categories, time limits, generation, calendar: :mod:`cases.intake_lookups`; pass
    ``lookups`` when the caller has read them already, with its tokens), one each for the
    routing, the insert, the tickets already known and the duplicates.

    Returns, in order, each submission's result or the error it alone caused (bad
    category, bad coordinates, outside the submitter's communities...): a bad submission
    is left out and never keeps the others from being registered. Errors of the database
    itself (connection lost, timeout) raise and take the whole batch with them.

    ``search_duplicates=False`` leaves the nearby-duplicates search to the caller, who runs
    :func:`add_possible_duplicates` after committing. Intake batches do: the INSERT's
    statistics trigger locks today's ``case_stat`` rows until COMMIT, and the next batch
    (another worker's) waits for them; the search is a read that need not hold them. Run
    after the COMMIT it also sees the cases of the same batch, as it does in-transaction.
    """
    settings = settings or get_settings()
    out: list[IntakeResult | CasegridError | None] = [None] * len(submissions)
    if lookups is None:
        lookups = fetch_intake_lookups(conn, codes=[d.category for d, _ in submissions],
                                       pairs=[(d.category, d.channel) for d, _ in submissions])
    # NewCase strips whitespace, so each category text is its lookup key as it stands.
    found = categories_from_rows([data.category for data, _ in submissions], lookups.categories)
    categories = [found[data.category] for data, _ in submissions]
    locations: dict[int, _Location] = {}
    points: dict[int, PreparedPoint] = {}
    wheres = locate_all([data for data, _ in submissions])
    for i, (category, where) in enumerate(zip(categories, wheres, strict=True)):
        if isinstance(category, CasegridError) or isinstance(where, CasegridError):
            out[i] = category if isinstance(category, CasegridError) else where
        elif isinstance(where, _Location):
            locations[i] = where
        else:
            points[i] = where
    matched = _locate_by_address(conn, submissions, locations, points)
    locations.update(_route_all(conn, points, lookups.generation_id))
    for i, match in matched.items():
        if match.located:
            _by_address(locations[i], match)

    # The first due times are computed before the INSERT, so each row is written once.
    received_at = datetime.now(UTC)
    due = initial_deadlines_from(
        load_calendar(conn, lookups.calendar_stamp), lookups.limits,
        [(categories[i]["code"], submissions[i][0].channel) for i in locations], received_at)
    rows = []
    for i, loc in sorted(locations.items()):
        data, actor = submissions[i]
        r = loc.routed
        try:
            _check_scope(actor, r.community_code if r else None, existing=False)
        except CasegridError as exc:
            out[i] = exc
            continue
        code = categories[i]["code"]
        rows.append(_insert_row(i, data, actor, loc, code, received_at, due[(code, data.channel)],
                                settings.privacy_mask_free_text))
    inserted = {}
    if rows:
        found = _INSERT.rows(conn, {"rows": json_param(rows)})
        inserted = {row.pop("ord"): row for row in found}
    if matched:
        store_case_locate(conn, [(inserted[i]["id"], m) for i, m in matched.items() if i in inserted])
    cases = _known_tickets(conn, [submissions[r["ord"]][0] for r in rows if r["ord"] not in inserted])
    found_cases: dict[int, dict] = {}
    for r in rows:
        i = r["ord"]
        data, actor = submissions[i]
        case = inserted.get(i) or cases.get((data.channel, data.external_id))
        try:
            if case is None:  # the row vanished between the two statements
                raise Conflict("the case for this external_id changed while registering; retry",
                               field="external_id")
            if i not in inserted:
                _check_scope(actor, case["community_code"], existing=True)
        except CasegridError as exc:
            out[i] = exc
            continue
        found_cases[i] = case
    for i, case in found_cases.items():
        out[i] = IntakeResult(case=case, created=i in inserted, duplicate_query=_duplicate_query(
            case, categories[i], submissions[i][1], settings))
    if search_duplicates:
        add_possible_duplicates(conn, [r for r in out if isinstance(r, IntakeResult)])
    return out  # type: ignore[return-value]


def _insert_row(i: int, data: NewCase, actor: Principal, loc: _Location, category_code: str,
                received_at: datetime, due: dict, mask: bool = True) -> dict:
    """One submission as a row of :data:`INSERT_SQL`'s input (free text masked when
    ``mask``: :func:`cases.privacy.mask_free_text`)."""
    summary = routing_summary(loc)
    description, address, originals = (mask_free_text(data.description, data.address) if mask
                                       else (data.description, data.address, None))
    return {
        "ord": i,
        "channel": data.channel,
        "external_id": data.external_id,
        "category": category_code,
        "description": description,
        "address": address,
        "originals": originals,
        "reported_at": data.reported_at,
        "received_at": received_at,
        "reporter_name": data.reporter_name,
        "reporter_phone": data.reporter_phone,
        "photo_urls": [str(u) for u in data.photo_urls],
        "input_lon": loc.input_lon,
        "input_lat": loc.input_lat,
        "input_crs": loc.input_crs,
        "lon": loc.lon,
        "lat": loc.lat,
        "community_code": summary["community_code"],
        "subdistrict_code": summary["subdistrict_code"],
        "post_id": summary["post_id"],
        "generation_id": summary["generation_id"],
        "rule": loc.rule,
        "distance_m": summary["distance_m"],
        "near_boundary": summary["near_boundary"],
        "alternates": loc.routed.alternates if loc.routed else loc.suggestions,
        "actor": actor.name,
        "role": actor.role,
        "event_data": summary,
        **due,
    }


def _known_tickets(conn: Connection, datas: list[NewCase]) -> dict[tuple[str, str], dict]:
    """The cases already registered under the tickets of ``datas``, by (channel, external_id)."""
    tickets = sorted({(d.channel, d.external_id) for d in datas if d.external_id})
    if not tickets:
        return {}
    rows = conn.execute(text(_BY_TICKETS_SQL), {"channels": [t[0] for t in tickets],
                                                "external_ids": [t[1] for t in tickets]})
    return {(r["channel"], r["external_id"]): dict(r) for r in rows.mappings()}


def add_possible_duplicates(conn: Connection, results: list[IntakeResult]) -> None:
    """Fill ``possible_duplicates`` of each result from its ``duplicate_query``, in one
    query for all of them (the radius and window are the submitted category's)."""
    located = [{"ord": i, **r.duplicate_query} for i, r in enumerate(results) if r.duplicate_query]
    if not located:
        return
    rows = _DUPLICATES.rows(conn, {"queries": json_param(located),
                                   "limit": DUPLICATE_LIMIT})
    for r in results:
        r.possible_duplicates = []
    for row in rows:
        results[row.pop("ord")].possible_duplicates.append(row)


# For each query row: open cases of its category within its radius and window, nearest first.
DUPLICATES_SQL = f"""
SELECT q.ord, d.*
FROM jsonb_to_recordset(CAST(:queries AS jsonb)) AS q(
    ord int, id bigint, lon float8, lat float8, category text, at timestamptz, days int,
    deg float8, deg_lat float8, radius float8, scope text[])
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(q.lon, q.lat), 4326) AS geom) here
CROSS JOIN LATERAL (
    SELECT c.id, c.case_no, c.status, c.reported_at, c.community_code,
           round(ST_Distance(c.geom::geography, here.geom::geography)::numeric, 2)::float8
               AS distance_m
    FROM (
        -- Candidates from the GiST index alone: the box around the point that holds the
        -- radius, deg degrees of longitude and deg_lat of latitude either side (a latitude
        -- degree is the longer one: a square of deg would read a fifth more cases at
        -- Tengzhou's latitude); the geography test below is the exact one. The values come
        -- from rows, so the planner cannot see how selective the box is and would rather
        -- walk the reported_at index over a week of cases; OFFSET 0 keeps it to the box.
        -- "Open" as the partial GiST index case_open_geom_gist (0006) spells it, so that
        -- index answers: in a ledger of mostly closed cases it skips them all. (Keying it
        -- by category too, with btree_gist, would read fewer pages here, but the text
        -- opclass has no sorted GiST build in PostgreSQL 15, so a large first import
        -- would rebuild it many times slower than the other indexes.)
        SELECT c.id, c.case_no, c.status, c.reported_at, c.community_code, c.geom,
               c.merged_into
        FROM "case" c
        WHERE c.category_code = q.category AND c.geom && ST_Expand(here.geom, q.deg, q.deg_lat)
          AND {open_sql("c")}
        OFFSET 0
    ) c
    WHERE c.merged_into IS NULL
      AND c.id <> q.id
      AND c.reported_at > q.at - make_interval(days => q.days)
      AND c.reported_at < q.at + make_interval(days => q.days)
      AND ST_DWithin(c.geom::geography, here.geom::geography, q.radius)
      AND (q.scope IS NULL OR c.community_code = ANY(q.scope))
    ORDER BY distance_m, c.id
    LIMIT :limit
) d
ORDER BY q.ord, d.distance_m, d.id
"""
_DUPLICATES = RawQuery(DUPLICATES_SQL)


def _duplicate_query(case: dict, category: dict, actor: Principal,
                     settings: Settings) -> dict | None:
    """One row of :data:`DUPLICATES_SQL`'s input (None for a case without a location)."""
    if case.get("lon") is None:
        return None
    radius, days = duplicate_params(category, settings)
    lat = float(case["lat"])
    # Degrees that hold the radius (1 % over: M_PER_DEG is a mean, and the geodesic test
    # decides): of longitude, shorter by cos(latitude), and of latitude.
    deg_lat = radius * 1.01 / M_PER_DEG
    deg = deg_lat / max(0.01, math.cos(math.radians(lat)))
    scope = None
    if not actor.sees_all_communities:
        scope = list(actor.communities)
    return {"id": case["id"], "lon": case["lon"], "lat": lat, "category": case["category_code"],
            "at": case["reported_at"], "days": days, "deg": deg, "deg_lat": deg_lat, "radius": radius,
            "scope": scope}
