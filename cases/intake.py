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

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from sqlalchemy import Connection, text

from casegrid.errors import Conflict, CoordinateError, Forbidden, InvalidInput, NotFound
from casegrid.settings import Settings, get_settings
from cases.catalogue import duplicate_params, get_category
from cases.deadlines import initial_deadlines
from cases.queries import CASE_SELECT_TEMPLATE, fetch_case_by_ticket
from cases.tokens import Principal
from geo.coords import check_point, normalise_crs, snap_tiny, to_wgs84
from geo.routing import RouteResult, route

# Same values as cases.queries.CHANNELS (tests check they agree).
Channel = Literal["hotline_12345", "platform", "patrol", "app", "open311", "walk_in"]

INTAKE_CRS = ("wgs84", "gcj02", "bd09")
MAX_DESCRIPTION = 4000
MAX_PHOTOS = 10
# Reporters' and servers' clocks differ; a timestamp a little ahead of ours is still real.
CLOCK_SKEW = timedelta(minutes=5)
DUPLICATE_LIMIT = 10
_M_PER_DEG = 111_320.0
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
    reported_at: datetime | None = Field(
        None, description="When the citizen reported it, with a UTC offset (default: now).")
    reporter_name: str | None = Field(None, max_length=100)
    reporter_phone: str | None = Field(None, max_length=40)
    photo_urls: list[HttpUrl] = Field(default_factory=list, description=f"At most {MAX_PHOTOS} http(s) URLs.")

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


def locate(conn: Connection, data: NewCase) -> _Location:
    """Validate the coordinates (or the address-only form) and route them.

    Raises ``CoordinateError`` naming ``lon``/``lat`` for missing, NaN, out-of-range or
    swapped values.
    """
    if data.lon is None and data.lat is None:
        if not data.address:
            raise CoordinateError(
                "location is missing: give lon and lat (with crs), or at least an address "
                "for a dispatcher to place", field="lon")
        return _Location(rule="unlocated", note="address only")
    try:
        # route() validates first: missing/NaN/out-of-range/swapped values name their field.
        result = route(conn, data.lon, data.lat, data.crs)
    except NotFound as exc:
        if exc.field != "generation":
            raise
        # No boundaries loaded yet: the complaint is still taken, as an unrouted case.
        wlon, wlat = to_wgs84([data.lon], [data.lat], data.crs)
        lon, lat = check_point(snap_tiny(float(wlon[0])), snap_tiny(float(wlat[0])))
        return _Location("outside", data.lon, data.lat, data.crs, lon, lat,
                         note="no community boundaries loaded")
    return _Location(result.rule, result.input_lon, result.input_lat, result.input_crs,
                     result.lon, result.lat, routed=result)


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


# One statement: insert the case (or nothing, if the ticket is known) and its first event.
INSERT_SQL = """
WITH ins AS (
    INSERT INTO "case" (channel, external_id, category_code, description, address,
                        reported_at, received_at, reporter_name, reporter_phone, photo_urls,
                        input_lon, input_lat, input_crs, geom,
                        community_code, subdistrict_code, post_id, generation_id,
                        route_rule, route_distance_m, near_boundary, route_alternates,
                        review_due_at, reply_due_at, current_due_at, due_provisional)
    VALUES (:channel, :external_id, :category, :description, :address,
            COALESCE(CAST(:reported_at AS timestamptz), now()), CAST(:received_at AS timestamptz),
            :reporter_name, :reporter_phone,
            CAST(:photo_urls AS text[]),
            :input_lon, :input_lat, :input_crs,
            CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
            :community_code, :subdistrict_code, :post_id, :generation_id,
            :rule, :distance_m, :near_boundary, CAST(:alternates AS jsonb),
            :review_due_at, :reply_due_at, :current_due_at, :due_provisional)
    ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING *
), ev AS (
    INSERT INTO case_event (case_id, actor, role, action, from_state, to_state, data)
    SELECT id, :actor, :role, 'register', NULL, status, CAST(:event_data AS jsonb) FROM ins
)
""" + CASE_SELECT_TEMPLATE.replace("{source}", "ins")


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
    category = get_category(conn, data.category)
    loc = locate(conn, data)
    r = loc.routed
    _check_scope(actor, r.community_code if r else None, existing=False)
    summary = routing_summary(loc)
    params = {
        "channel": data.channel,
        "external_id": data.external_id,
        "category": category["code"],
        "description": data.description,
        "address": data.address,
        "reported_at": data.reported_at,
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
        "alternates": json.dumps(r.alternates if r else [], ensure_ascii=False),
        "actor": actor.name,
        "role": actor.role,
        "event_data": json.dumps(summary, ensure_ascii=False),
    }
    # The first due times are computed before the INSERT, so the row is written once.
    received_at = datetime.now(UTC)
    params["received_at"] = received_at
    params.update(initial_deadlines(conn, category["code"], data.channel, received_at))
    inserted = conn.execute(text(INSERT_SQL), params).mappings().first()
    created = inserted is not None
    if created:
        case = dict(inserted)
    else:
        case = fetch_case_by_ticket(conn, data.channel, data.external_id)
        if case is None:  # the row vanished between the two statements
            raise Conflict("the case for this external_id changed while registering; retry",
                           field="external_id")
        _check_scope(actor, case["community_code"], existing=True)
    duplicates = find_duplicates(conn, case, category, actor=actor, settings=settings)
    return IntakeResult(case=case, created=created, possible_duplicates=duplicates)


DUPLICATES_SQL = """
WITH here AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geom)
SELECT c.id, c.case_no, c.status, c.reported_at, c.community_code,
       round(ST_Distance(c.geom::geography, here.geom::geography)::numeric, 2)::float8 AS distance_m
FROM "case" c, here
WHERE c.category_code = :category
  AND c.closed_at IS NULL AND c.merged_into IS NULL
  AND c.id <> :id
  AND c.reported_at > CAST(:at AS timestamptz) - make_interval(days => :days)
  AND c.reported_at < CAST(:at AS timestamptz) + make_interval(days => :days)
  -- degree prefilter on the GiST index (a longitude degree is the shorter one, so this
  -- box is never too small), then the exact geodesic test
  AND ST_DWithin(c.geom, here.geom, :deg)
  AND ST_DWithin(c.geom::geography, here.geom::geography, :radius)
  {scope}
ORDER BY distance_m, c.id
LIMIT :limit
"""


def find_duplicates(
    conn: Connection,
    case: dict,
    category: dict,
    *,
    actor: Principal | None = None,
    settings: Settings | None = None,
    limit: int = DUPLICATE_LIMIT,
) -> list[dict]:
    """Open cases of the same category within the category's radius and time window of
    ``case`` (a row as :func:`cases.queries.fetch_case` returns it), nearest first, never
    ``case`` itself. Cases the ``actor`` may not see are left out."""
    if case.get("lon") is None:
        return []
    radius, days = duplicate_params(category, settings or get_settings())
    lat = float(case["lat"])
    deg = radius * 1.01 / (_M_PER_DEG * max(0.01, math.cos(math.radians(lat))))
    scope = ""
    params = {
        "lon": case["lon"], "lat": lat, "category": case["category_code"], "id": case["id"],
        "at": case["reported_at"], "days": days, "deg": deg, "radius": radius, "limit": limit,
    }
    if actor is not None and not actor.sees_all_communities:
        scope = "AND c.community_code = ANY(:scope)"
        params["scope"] = list(actor.communities)
    rows = conn.execute(text(DUPLICATES_SQL.replace("{scope}", scope)), params).mappings()
    return [dict(r) for r in rows]
