"""The activities ledger over HTTP: ``POST /api/v1/activities`` (record one: a JSON body,
or ``multipart/form-data`` with the JSON in a part named ``activity`` and photos in parts
named ``photo``), ``POST /api/v1/activities/{id}/attachments`` (add photos with a caption),
``GET /api/v1/activities`` (list, filtered, each with its photos) and
``GET /api/v1/activities/stats`` (held and people reached by month, type, community and
subdistrict).

Photos go the evidence files' way (:mod:`api.uploads`: received whole, prepared off the
event loop without a connection, written, then committed with the activity's rows;
:mod:`cases.activity_photos`), and are served at ``/api/v1/attachments/{id}``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from api.auth import BearerCredentials, CurrentPrincipal
from api.deps import ConnDep, DateQ, ReadConnDep
from api.uploads import (
    caller,
    commit_with_files,
    is_multipart,
    parse_json_part,
    post_with_photos,
    prepare_and_store,
    read_form,
)
from casegrid.errors import InvalidInput
from cases import activities, activity_photos

router = APIRouter(prefix="/api/v1", tags=["activities"])


class ActivityIn(BaseModel):
    """An activity; the fields are checked by ``cases.activities.check_activity`` so the
    API, the workbench form and the import refuse the same things with the same words."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": {
        "started_at": "2026-05-20T09:00:00+08:00", "kind": "sorting_outreach",
        "title": "垃圾分类进校园", "communities": ["370481001001"], "place": "实验小学",
        "staff": 3, "volunteers": 12, "reached": 450, "lon": 117.165, "lat": 35.087}})


async def activity_with_photos(request: Request) -> Response:
    """The multipart variant of ``POST /api/v1/activities``: the activity and its photos
    are committed together, or nothing is."""
    settings = request.app.state.settings
    principal = await caller(request)
    fields, uploads = await read_form(request, ("photo",), settings)
    body = parse_json_part(ActivityIn, fields.get("activity"), "activity")
    prepared = await prepare_and_store(uploads, settings)
    engine = request.app.state.engine

    def work() -> dict:
        with engine.begin() as conn:
            return activity_photos.record_with_photos(conn, dict(body.model_extra or {}),
                                                      principal, prepared, settings)

    item = await commit_with_files(work, prepared, settings)
    return JSONResponse(jsonable_encoder(item), status_code=201)


@post_with_photos(router, "/activities", activity_with_photos, "activity",
                  "The activity as JSON (the JSON body's fields).", status_code=201)
def post_activity(body: ActivityIn, principal: CurrentPrincipal, conn: ConnDep) -> Any:
    """Record one activity (officers for their own communities; dispatchers, supervisors,
    admins for any). With photos: send ``multipart/form-data``, the activity's JSON in a
    part named ``activity`` and the photos in parts named ``photo``."""
    item = activities.create_activity(conn, dict(body.model_extra or {}), principal)
    return jsonable_encoder(activity_photos.with_photos(conn, [item])[0])


_UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["photo"], "properties": {
        "photo": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "JPEG, PNG, WebP, HEIC/HEIF or PDF (a sign-in sheet, say); "
                                 "type from content."},
        "caption": {"type": "string"}}}}}}}


@router.post("/activities/{activity_id}/attachments", status_code=201,
             openapi_extra=_UPLOAD_DOC)
async def add_activity_photos(activity_id: int, request: Request,
                              creds: BearerCredentials) -> Any:  # creds: documents the scheme
    """Add photos (with an optional caption) to an activity you may record for; returns
    the activity with all its photos. A refusal names the file and the limit, and stores
    nothing."""
    settings = request.app.state.settings
    principal = await caller(request)
    if not is_multipart(request):
        raise InvalidInput("send multipart/form-data with the photos in parts named photo "
                           "(and an optional caption)", field="Content-Type")
    fields, uploads = await read_form(request, ("photo",), settings)
    if not uploads:
        raise InvalidInput("no file was sent: attach at least one in a part named photo",
                           field="photo")
    prepared = await prepare_and_store(uploads, settings)
    engine = request.app.state.engine

    def work() -> dict:
        with engine.begin() as conn:
            return activity_photos.add_photos(conn, activity_id, prepared, principal, settings,
                                              fields.get("caption"))

    return jsonable_encoder(await commit_with_files(work, prepared, settings))


@router.get("/activities")
def get_activities(
    principal: CurrentPrincipal, conn: ConnDep,
    date_from: Annotated[DateQ, Query(alias="from")] = None,
    date_to: Annotated[DateQ, Query(alias="to")] = None,
    kind: str | None = None,
    community: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Activities started in the period, newest first, each with its photos."""
    return jsonable_encoder(activity_photos.with_photos(conn, activities.list_activities(
        conn, principal, date_from=date_from, date_to=date_to, kind=kind,
        communities=community, limit=limit, offset=offset)))


@router.get("/activities/stats")
def get_activity_stats(
    principal: CurrentPrincipal, conn: ReadConnDep,
    date_from: Annotated[date, Query(alias="from", description="First day (YYYY-MM-DD).")],
    date_to: Annotated[date, Query(alias="to", description="Last day, included.")],
) -> Any:
    """Activities held and people reached, by month, type, community and subdistrict."""
    return activities.activity_counts(conn, date_from, date_to)
