"""``/track``: the citizen's page (public, no token). ``GET`` shows the form; ``POST`` with
``number`` (case number or hotline ticket) and ``digits`` (last four of the phone) shows the
case's account for its reporter (``cases.track``, under ``cases.publication``'s policy: also
for a category kept from the public, never its point) or, for a wrong number and for wrong
digits alike, the form again with one and the same message. Failed look-ups are counted per client
address and per number (``cases.throttle``, limits in settings ``track_*``); past either
limit the answer is a 429 with ``Retry-After``, whether the number exists or not.

A page for people, answering its errors as pages (HTML), so it is left out of the OpenAPI
document, whose error bodies are JSON throughout.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import ConnDep
from cases import throttle, track
from maps.track import render_track

router = APIRouter(tags=["citizens"])

Lang = Literal["zh", "en"]
_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _page(html: str, status: int = 200, extra: dict | None = None) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={**_HEADERS, **(extra or {})})


@router.get("/track", response_class=HTMLResponse, include_in_schema=False)
def track_form(lang: Annotated[Lang, Query(description="zh (default) or en")] = "zh"
               ) -> HTMLResponse:
    """The form: case number (or hotline ticket) and the last 4 digits of the phone."""
    return _page(render_track(lang))


@router.post("/track", response_class=HTMLResponse, include_in_schema=False)
def track_lookup(request: Request, conn: ConnDep,
                 number: Annotated[str, Form(max_length=64)] = "",
                 digits: Annotated[str, Form(max_length=16)] = "",
                 lang: Annotated[Lang, Form()] = "zh") -> HTMLResponse:
    """The case's public steps, reply and post, if the number and the digits match."""
    settings = request.app.state.settings
    number = number.strip()
    digits = digits.strip()
    if not (len(digits) == 4 and digits.isdigit()) or not number:
        return _page(render_track(lang, message="bad_digits", number=number), 422)
    address = request.client.host if request.client else "unknown"
    keys = {("address", address): settings.track_failures_per_address,
            ("number", number.upper()): settings.track_failures_per_number}
    wait = throttle.wait_seconds(conn, keys, settings.track_window_s)
    if wait:
        return _page(render_track(lang, message="throttled", number=number,
                                  minutes=max(1, -(-wait // 60))), 429,
                     {"Retry-After": str(wait)})
    case_no = track.find_for_track(conn, number, digits)
    view = track.track_view(conn, case_no) if case_no else None
    if view is None:
        # Unknown, or wrong digits: one answer for both.
        throttle.record_failure(conn, list(keys), settings.track_window_s)
        return _page(render_track(lang, message="not_found", number=number))
    return _page(render_track(lang, case=view))
