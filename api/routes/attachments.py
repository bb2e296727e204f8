"""Evidence files over HTTP.

* ``POST /api/v1/cases/{id}/attachments`` – multipart: files in parts named ``photo`` (or
  ``file``), an optional ``caption``: added to the case (stage ``added``).
* ``GET /api/v1/cases/{id}/attachments`` – the case's files the caller may see.
* ``GET /api/v1/attachments/{id}`` and ``/thumb`` – the file (re-encoded without metadata)
  or its thumbnail, with its content type, an ETag from its SHA-256 and an immutable
  cache lifetime (a stored file never changes). The case's access rules apply (another
  community's file is a 404); see ``cases.attachments``.

Uploads are received and prepared by :mod:`api.uploads`; the rules live in
:mod:`cases.attachments`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from api.auth import BearerCredentials, CurrentPrincipal
from api.deps import ConnDep
from api.uploads import caller, commit_with_files, is_multipart, prepare_and_store, read_form
from casegrid.db import single_read
from casegrid.errors import InvalidInput, NotFound
from casegrid.filestore import MissingFile
from cases import attachments

log = logging.getLogger("casegrid.attachments")
router = APIRouter(prefix="/api/v1", tags=["evidence"])
FILE_PARTS = ("photo", "file")
# Private: every file is behind the case's access rules, so no shared cache may keep it.
CACHE_CONTROL = "private, max-age=31536000, immutable"

_UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "photo": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "JPEG, PNG, WebP, HEIC/HEIF or PDF; type from content."},
        "caption": {"type": "string", "maxLength": attachments.MAX_CAPTION},
    },
    "required": ["photo"],
}}}}}


@router.post("/cases/{case_id}/attachments", status_code=201, openapi_extra=_UPLOAD_DOC)
async def add_attachments(case_id: int, request: Request, creds: BearerCredentials) -> Any:
    """Add photos or documents (with a caption) to a case you may see. Limits per file,
    per case and in pixels are settings; a refusal names the file and the limit, and
    stores nothing."""
    settings = request.app.state.settings
    # Authenticated on a short connection of its own (api.uploads.caller), not ConnDep: the
    # request must hold no connection while its photos are decoded.
    principal = await caller(request)
    if not is_multipart(request):
        raise InvalidInput("send multipart/form-data with the files in parts named photo "
                           "(and an optional caption)", field="Content-Type")
    fields, uploads = await read_form(request, FILE_PARTS, settings)
    if not uploads:
        raise InvalidInput("no file was sent: attach at least one in a part named photo",
                           field="photo")
    prepared = await prepare_and_store(uploads, settings)
    engine = request.app.state.engine

    def work() -> list[dict]:
        with engine.begin() as conn:
            attachments.add_to_case(conn, case_id, prepared, principal, settings,
                                    fields.get("caption"))
            return attachments.list_for_case(conn, case_id, principal, settings)

    items = await commit_with_files(work, prepared, settings)
    return jsonable_encoder({"case_id": case_id, "attachments": items})


@router.get("/cases/{case_id}/attachments")
def list_attachments(case_id: int, request: Request, principal: CurrentPrincipal,
                     conn: ConnDep) -> Any:
    """The case's files you may see, oldest first; staff also see where and when each
    photo was taken (from its EXIF) and how far that is from the reported point."""
    items = attachments.list_for_case(conn, case_id, principal, request.app.state.settings)
    return jsonable_encoder({"case_id": case_id, "attachments": items})


async def _serve(request: Request, attachment_id: int, thumb: bool) -> Response:
    settings = request.app.state.settings
    engine = request.app.state.engine

    actor = await caller(request, required=False)

    def find() -> attachments.Servable:
        with single_read(engine) as conn:
            return attachments.servable(conn, attachment_id, actor, settings, thumb=thumb)

    found = await anyio.to_thread.run_sync(find)
    headers = {"ETag": found.etag, "Cache-Control": CACHE_CONTROL,
               "X-Content-Type-Options": "nosniff"}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    try:
        data = await anyio.to_thread.run_sync(attachments.store_for(settings).read, found.name)
    except MissingFile:
        # Never expected (files are written before their rows): say so in the log.
        log.error("attachment %s names file %s, which the store does not hold",
                  attachment_id, found.name)
        raise NotFound(f"the file of attachment {attachment_id} is missing from the store",
                       field="id") from None
    return Response(data, media_type=found.media_type, headers=headers)


_FILE_DOC = {200: {"content": {"image/jpeg": {}, "image/png": {}, "application/pdf": {}},
                   "description": "The file."}, 304: {"description": "Not modified (ETag)."}}


@router.get("/attachments/{attachment_id}", response_class=Response, responses=_FILE_DOC)
async def get_attachment(attachment_id: int, request: Request,
                         creds: BearerCredentials) -> Response:  # creds: documents the scheme
    """The file, without its metadata. A token is needed, except for citizens' photos when
    the server makes them public (Open311 ``media_url``)."""
    return await _serve(request, attachment_id, thumb=False)


@router.get("/attachments/{attachment_id}/thumb", response_class=Response, responses=_FILE_DOC)
async def get_thumbnail(attachment_id: int, request: Request,
                        creds: BearerCredentials) -> Response:
    """The file's thumbnail (JPEG); 404 for a PDF, which has none."""
    return await _serve(request, attachment_id, thumb=True)
