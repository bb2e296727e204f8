"""The multipart variants of intake and of the workflow actions: the same endpoints, with
photos beside the JSON (served through :func:`api.uploads.multipart_variant`).

* ``POST /api/v1/cases``: the case's JSON in a part named ``case``, photos in parts named
  ``photo``. Not batched with the JSON intake (``cases.intake_batch``): the caller is
  authenticated, the photos prepared and written (``api.uploads``), then the case and the
  photos' rows are committed in one transaction (``cases.attachments.register_with_photos``).
  The answer is the JSON intake's, with the ``attachments`` stored.
* ``POST /api/v1/cases/{id}/actions``: the action's JSON in a part named ``action``, photos
  in parts named ``photo`` (handle: after photos; verify_pass/verify_fail: on-site photos;
  return: a photo of why); the action and its photos are committed together.
"""

from __future__ import annotations

import json

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.schemas import intake_json
from api.uploads import caller, commit_with_files, parse_json_part, prepare_and_store, read_form
from casegrid import metrics
from casegrid.errors import CasegridError, FileRefused
from cases import attachments, queries
from cases.intake import SUBMITTERS, IntakeResult, NewCase
from cases.tokens import role_refusal


async def intake_with_photos(request: Request) -> Response:
    """Register a case with its photos; errors are raised for the app's handlers, in the
    JSON intake's order: token, role, then the body."""
    settings = request.app.state.settings
    principal = await caller(request)
    if (refusal := role_refusal(principal, SUBMITTERS)) is not None:
        raise refusal
    fields, uploads = await read_form(request, ("photo",), settings)
    data = parse_json_part(NewCase, fields.get("case"), "case")
    prepared = await prepare_and_store(uploads, settings)
    engine = request.app.state.engine

    def work() -> tuple[IntakeResult, list[dict]]:
        with engine.begin() as conn:
            result = attachments.register_with_photos(conn, data, principal, prepared, settings)
            files = attachments.list_for_case(conn, result.case["id"], principal, settings)
        return result, files

    result, files = await commit_with_files(work, prepared, settings)
    metrics.INTAKE_CASES.labels(data.channel, "created" if result.created else "known").inc()
    if result.created:
        metrics.ROUTING_RULES.labels(result.case.get("route_rule") or "none").inc()
    body = json.loads(intake_json(queries.redact(result.case, principal), result.created,
                                  result.possible_duplicates))
    body["attachments"] = jsonable_encoder(files)
    return JSONResponse(body, status_code=201 if result.created else 200)


async def action_with_photos(request: Request) -> Response:
    """Take a workflow action with its evidence photos (see the module docstring)."""
    from api.routes.workflow import ActionIn  # the JSON variant's model, one definition

    settings = request.app.state.settings
    try:
        case_id = int(request.path_params["case_id"])
    except ValueError:
        raise RequestValidationError([{"type": "int_parsing", "loc": ("path", "case_id"),
                                       "msg": "Input should be a valid integer",
                                       "input": request.path_params["case_id"]}]) from None
    principal = await caller(request)
    fields, uploads = await read_form(request, ("photo",), settings)
    body = parse_json_part(ActionIn, fields.get("action"), "action")
    if uploads and body.action not in attachments.ACTION_STAGES:
        raise FileRefused(f"the action {body.action!r} takes no photos; photos go with "
                          f"{', '.join(attachments.ACTION_STAGES)}", field="photo")
    prepared = await prepare_and_store(uploads, settings)
    engine = request.app.state.engine

    def work() -> dict:
        with engine.begin() as conn:
            case = attachments.act_with_files(conn, case_id, body.action,
                                              dict(body.model_extra or {}), prepared, principal,
                                              body.version, settings)
            case["attachments"] = attachments.list_for_case(conn, case_id, principal, settings)
            return case

    try:
        case = await commit_with_files(work, prepared, settings)
    except CasegridError as exc:
        metrics.WORKFLOW_ACTIONS.labels(body.action, exc.code).inc()
        raise
    metrics.WORKFLOW_ACTIONS.labels(body.action, "done").inc()
    return JSONResponse(jsonable_encoder(case))
