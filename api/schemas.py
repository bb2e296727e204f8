"""HTTP shapes of cases: response models (for the OpenAPI docs) and the functions that turn
case rows from ``cases.queries`` into them, as JSON or as RFC 7946 GeoJSON features.

The request body of ``POST /api/v1/cases`` is :class:`cases.intake.NewCase` itself, so the
API and the domain validate the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pydantic_core
from pydantic import BaseModel, Field

# 7 decimal places of a degree are about 1 cm: more is noise (RFC 7946 section 11.2).
COORD_DECIMALS = 7
GEOJSON_MEDIA_TYPE = "application/geo+json"


class PostOut(BaseModel):
    """A community's city-management post (its public sign)."""

    id: int
    name: str
    contact_name: str | None = None
    phone: str | None = None
    address: str | None = None
    hours: str | None = None
    lon: float | None = None
    lat: float | None = None


class RoutingOut(BaseModel):
    """Where a case was routed, frozen at intake."""

    rule: str | None = Field(description="inside | on_boundary | nearest | outside | unlocated")
    community_code: str | None = None
    community_name: str | None = None
    subdistrict_code: str | None = None
    subdistrict_name: str | None = None
    post: PostOut | None = None
    distance_m: float | None = Field(None, description="Distance to the community (nearest rule).")
    near_boundary: bool = False
    alternates: list[dict[str, Any]] = Field(default_factory=list)
    generation_id: int | None = None


class LocationOut(BaseModel):
    """The stored WGS-84 point and what the reporter sent."""

    lon: float | None = None
    lat: float | None = None
    input_lon: float | None = None
    input_lat: float | None = None
    input_crs: str | None = None
    address: str | None = None


class DuplicateOut(BaseModel):
    """An open case of the same category nearby."""

    id: int
    case_no: str
    status: str
    reported_at: datetime
    distance_m: float


class CaseOut(BaseModel):
    """A case as the caller may see it (planners get null reporter fields)."""

    id: int
    case_no: str
    status: str
    version: int
    category_code: str
    category_name_zh: str
    category_name_en: str
    channel: str
    external_id: str | None = None
    description: str
    reported_at: datetime
    received_at: datetime
    reporter_name: str | None = None
    reporter_phone: str | None = None
    photo_urls: list[str] = Field(default_factory=list)
    location: LocationOut
    routing: RoutingOut
    merged_into: int | None = None
    current_due_at: datetime | None = None
    due_provisional: bool = False
    due_status: str | None = Field(
        None, description="on_time | due_soon | overdue (open cases); done_on_time | done_late (closed)."
    )
    closed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class IntakeOut(CaseOut):
    """The answer to ``POST /api/v1/cases``."""

    created: bool = Field(description="False when the same (channel, external_id) was already registered.")
    possible_duplicates: list[DuplicateOut] = Field(default_factory=list)


class CaseListOut(BaseModel):
    """One page of cases, newest reported first."""

    items: list[CaseOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


_FLAT = (
    "id", "case_no", "status", "version", "category_code", "category_name_zh",
    "category_name_en", "channel", "external_id", "description", "reported_at", "received_at",
    "reporter_name", "reporter_phone", "photo_urls", "merged_into", "current_due_at",
    "due_provisional", "closed_at", "created_at", "updated_at",
)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), COORD_DECIMALS)


def post_out(row: dict, prefix: str = "post_") -> dict | None:
    """The post of a row with ``post_id``/``post_name``/... columns, or None."""
    if row.get(f"{prefix}id") is None:
        return None
    return {
        "id": row[f"{prefix}id"],
        "name": row[f"{prefix}name"],
        "contact_name": row[f"{prefix}contact_name"],
        "phone": row[f"{prefix}phone"],
        "address": row[f"{prefix}address"],
        "hours": row[f"{prefix}hours"],
        "lon": _round(row[f"{prefix}lon"]),
        "lat": _round(row[f"{prefix}lat"]),
    }


def routing_out(row: dict) -> dict:
    """The routing block of a case row."""
    return {
        "rule": row["route_rule"],
        "community_code": row["community_code"],
        "community_name": row["community_name"],
        "subdistrict_code": row["subdistrict_code"],
        "subdistrict_name": row["subdistrict_name"],
        "post": post_out(row),
        "distance_m": row["route_distance_m"],
        "near_boundary": row["near_boundary"],
        "alternates": row["route_alternates"] or [],
        "generation_id": row["generation_id"],
    }


def case_out(row: dict) -> dict:
    """A case row (``cases.queries.CASE_SELECT``) as the JSON the API returns."""
    out = {key: row[key] for key in _FLAT}
    out["photo_urls"] = list(row["photo_urls"] or [])
    out["location"] = {
        "lon": _round(row["lon"]),
        "lat": _round(row["lat"]),
        "input_lon": row["input_lon"],
        "input_lat": row["input_lat"],
        "input_crs": row["input_crs"],
        "address": row["address"],
    }
    out["routing"] = routing_out(row)
    out["due_status"] = _due_status(row)
    return out


_DUPLICATE_FIELDS = tuple(DuplicateOut.model_fields)


def intake_json(row: dict, created: bool, duplicates: list[dict]) -> bytes:
    """The body of an intake answer (:class:`IntakeOut`) for a case row already redacted
    for the caller, as JSON bytes.

    Every value comes from casegrid's own database row in the type the model declares, so
    the dict is serialized by pydantic-core directly: validating it into an ``IntakeOut``
    first cost as much again as the serialization, on every intake answer (a test compares
    the two answers, parsed)."""
    out = case_out(row)
    out["created"] = created
    out["possible_duplicates"] = [{k: d[k] for k in _DUPLICATE_FIELDS} for d in duplicates]
    return pydantic_core.to_json(out)


def _due_status(row: dict) -> str | None:
    """Where the case stands against the due time of its current step."""
    due = row.get("current_due_at")
    if due is None:
        return None
    from datetime import UTC

    from cases.calendar import due_status

    return due_status(due, datetime.now(UTC), row.get("closed_at"))


def case_feature(row: dict) -> dict:
    """A case row as an RFC 7946 Feature: WGS-84 ``[lon, lat]``; geometry null when the case
    has no location yet."""
    props = case_out(row)
    loc = props.pop("location")
    geometry = None
    if loc["lon"] is not None:
        geometry = {"type": "Point", "coordinates": [loc["lon"], loc["lat"]]}
    props["address"] = loc["address"]
    props["input"] = {"lon": loc["input_lon"], "lat": loc["input_lat"], "crs": loc["input_crs"]}
    return {"type": "Feature", "id": row["id"], "geometry": geometry, "properties": props}


def feature_collection(features: list[dict], **foreign: Any) -> dict:
    """A FeatureCollection; ``foreign`` members (e.g. ``next_cursor``) sit beside
    ``features``, as RFC 7946 section 6.1 allows."""
    return {"type": "FeatureCollection", "features": features, **foreign}
