"""Case intake and reading: ``POST /api/v1/cases``, ``GET /api/v1/cases/{id}``,
``GET /api/v1/cases``.

Who may do what:

* submit: intake, dispatcher, supervisor, admin; and a community officer for locations in
  its own communities (patrol finds; a location elsewhere is refused with 403 before
  anything is written, because the officer could not follow the case up);
* read: every role; a community officer sees only its communities' cases (another
  community's case is a 404, as if it did not exist); planners get null reporter name/phone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.auth import BearerCredentials, CurrentPrincipal
from api.deps import ConnDep
from api.evidence_forms import intake_with_photos
from api.schemas import (
    GEOJSON_MEDIA_TYPE,
    CaseListOut,
    CaseOut,
    IntakeOut,
    case_feature,
    case_out,
    feature_collection,
    intake_json,
)
from api.uploads import post_with_photos
from casegrid import metrics
from cases import queries
from cases.calendar import CITY_TZ
from cases.filters import CaseFilters, parse_bbox, parse_time, split_list
from cases.intake import NewCase

PREFIX = "/api/v1"
INTAKE_PATH = "/cases"
router = APIRouter(prefix=PREFIX, tags=["cases"])



# Intake is the hot path (every complaint of the city arrives here, in bursts): the handler
# hands the token and the parsed body to the intake batcher (cases.intake_batch), which
# authenticates and registers concurrent submissions in one transaction, and returns a
# finished Response, so FastAPI does not validate and serialize the answer a second time.
# A multipart body (the case in a part "case", photos in parts "photo") is served by
# api.evidence_forms.intake_with_photos on the same path.
@post_with_photos(
    router, INTAKE_PATH, intake_with_photos, "case", "The case as JSON (the JSON body's fields).",
    status_code=201,
    response_model=IntakeOut,
    responses={
        200: {"description": "This (channel, external_id) was registered before: the first case.",
              "model": IntakeOut},
    },  # error bodies (413 too large, 415 not JSON, ...) are documented app-wide
)
async def submit_case(data: NewCase, request: Request, creds: BearerCredentials) -> Response:
    """Register a complaint, routed to its community post on arrival.

    Resending the same `(channel, external_id)` returns the case registered first (200),
    never a second one. `possible_duplicates` lists open cases of the same category nearby.
    Roles: intake, dispatcher, supervisor, admin, community_officer (own communities only).
    """
    accepted = await request.app.state.intake.submit(creds.credentials if creds else None, data)
    result = accepted.result
    metrics.INTAKE_CASES.labels(data.channel, "created" if result.created else "known").inc()
    if result.created:
        metrics.ROUTING_RULES.labels(result.case.get("route_rule") or "none").inc()
    body = intake_json(queries.redact(result.case, accepted.principal), result.created,
                       result.possible_duplicates)
    return Response(body, status_code=201 if result.created else 200,
                    media_type="application/json")


@router.get("/cases/{case_id}", response_model=CaseOut)
def read_case(case_id: int, principal: CurrentPrincipal, conn: ConnDep) -> dict:
    """One case (404 if it does not exist or belongs to a community the caller may not see)."""
    return case_out(queries.get_case(conn, case_id, principal))


@router.get(
    "/cases",
    response_model=CaseListOut,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}},
                     "description": "JSON page, or a GeoJSON FeatureCollection with format=geojson."}},
)
def list_cases(
    principal: CurrentPrincipal,
    conn: ConnDep,
    status: Annotated[str | None, Query(description="Comma-separated statuses.")] = None,
    category: Annotated[str | None, Query(description="Comma-separated category codes.")] = None,
    community: Annotated[str | None, Query(description="Comma-separated community codes.")] = None,
    subdistrict: Annotated[str | None, Query(description="Comma-separated subdistrict codes.")] = None,
    channel: Annotated[str | None, Query(description="Comma-separated channels.")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS-84).")] = None,
    from_: Annotated[str | None, Query(alias="from", description=(
        f"Reported at or after (ISO 8601; without offset: {CITY_TZ.key})."))] = None,
    to: Annotated[str | None, Query(description="Reported before (ISO 8601).")] = None,
    unrouted: Annotated[bool | None, Query(description=(
        "true: only cases no community took (rule outside/unlocated); false: only routed."))] = None,
    overdue: Annotated[bool | None, Query(description=(
        "true: only open cases past the due time of their current step; false: the others."))] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    format: Annotated[Literal["json", "geojson"], Query()] = "json",
):
    """Cases the caller may see, newest reported first, keyset-paginated."""
    filters = CaseFilters(
        status=split_list(status),
        category=split_list(category),
        community=split_list(community),
        subdistrict=split_list(subdistrict),
        channel=split_list(channel),
        bbox=parse_bbox(bbox),
        reported_from=parse_time(from_, "from"),
        reported_to=parse_time(to, "to"),
        unrouted=unrouted,
        overdue=overdue,
    )
    page = queries.list_cases(conn, filters, principal, limit=limit, cursor=cursor)
    if format == "geojson":
        body = feature_collection([case_feature(r) for r in page.items], next_cursor=page.next_cursor)
        return JSONResponse(jsonable_encoder(body), media_type=GEOJSON_MEDIA_TYPE)
    return {"items": [case_out(r) for r in page.items], "next_cursor": page.next_cursor}
