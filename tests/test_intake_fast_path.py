"""POST /api/v1/cases served by api.intake_fast_path instead of the router: every answer,
good or bad, must be the one the route gives, and the request guards must still run first."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import api.intake_fast_path as fast_path
from api.app import create_app
from cases.tokens import create_token
from tests.test_intake_api import interior_points


def _app(db_url: str, *, fast: bool):
    app = create_app(database_url=db_url)
    if not fast:  # the same app, served by its router alone
        app.user_middleware = [m for m in app.user_middleware if m.cls is not fast_path.IntakeFastPath]
    return app


@pytest.fixture
def tokens(city_engine) -> dict[str, str]:
    with city_engine.begin() as conn:
        return {role: create_token(conn, role, f"fast-{role}")[1] for role in ("intake", "planner")}


def _requests(tokens: dict[str, str], lon: float, lat: float, ticket: str) -> list[tuple[str, dict]]:
    """(label, keyword arguments of client.post) for every kind of answer intake gives."""
    good = {"lon": lon, "lat": lat, "category": "0599", "channel": "hotline_12345",
            "external_id": ticket, "description": "广场舞噪音", "reporter_name": "王"}
    auth = {"Authorization": f"Bearer {tokens['intake']}"}
    return [
        ("created", {"json": good, "headers": auth}),
        ("same ticket again", {"json": good, "headers": auth}),
        ("planner may not submit", {"json": good, "headers": {
            "Authorization": f"Bearer {tokens['planner']}"}}),
        ("no token", {"json": good}),
        ("unknown token", {"json": good, "headers": {"Authorization": "Bearer nope"}}),
        ("bad coordinates", {"json": {**good, "lat": 95.0}, "headers": auth}),
        ("unknown category", {"json": {**good, "category": "0999"}, "headers": auth}),
        ("not JSON", {"content": b"{lon:", "headers": {**auth, "Content-Type": "application/json"}}),
        ("not UTF-8", {"content": b'{"a": "\xff"}', "headers": {**auth, "Content-Type": "application/json"}}),
        ("empty body", {"content": b"", "headers": {**auth, "Content-Type": "application/json"}}),
        ("form body", {"data": {"lon": "1"}, "headers": auth}),
        ("too large", {"content": b"{" + b" " * 2_000_000 + b"}",
                       "headers": {**auth, "Content-Type": "application/json"}}),
        ("NUL in query", {"json": good, "headers": auth, "params": {"x": "a\x00b"}}),
    ]


def _comparable(response) -> tuple:  # noqa: ANN001
    """Status, content type, auth challenge and body; of a stored case (its id, times and
    place differ between the two apps) the fields and whether it was created."""
    body = response.json()
    if response.status_code < 300:
        body = {"fields": sorted(body), "created": body["created"]}
    return (response.status_code, response.headers.get("content-type"),
            response.headers.get("www-authenticate"), json.dumps(body, sort_keys=True))


def test_every_answer_is_the_route_s_answer(city_db_url, city_engine, tokens):
    points = interior_points(city_engine)
    answers = {}
    for fast, (_code, lon, lat) in ((True, points[0]), (False, points[3])):
        with TestClient(_app(city_db_url, fast=fast)) as client:
            answers[fast] = [(label, _comparable(client.post("/api/v1/cases", **kwargs)))
                             for label, kwargs in _requests(tokens, lon, lat, f"FP-{fast}")]
    statuses = [a[1][0] for a in answers[True]]
    assert statuses == [201, 200, 403, 401, 401, 422, 422, 422, 400, 422, 415, 413, 422]
    for (label, fast_answer), (_, routed_answer) in zip(answers[True], answers[False], strict=True):
        assert fast_answer == routed_answer, label


def test_the_fast_path_serves_intake_and_leaves_everything_else_to_the_router(
        city_db_url, city_engine, tokens, monkeypatch):
    calls = []
    real = fast_path.intake_response

    async def counted(request):  # noqa: ANN001
        calls.append(request.url.path)
        return await real(request)

    monkeypatch.setattr(fast_path, "intake_response", counted)
    (_code, lon, lat), = interior_points(city_engine)[1:2]
    auth = {"Authorization": f"Bearer {tokens['intake']}"}
    with TestClient(_app(city_db_url, fast=True)) as client:
        created = client.post("/api/v1/cases", headers=auth, json={
            "lon": lon, "lat": lat, "category": "0599", "channel": "app", "external_id": "FP-route"})
        assert created.status_code == 201
        case_id = created.json()["id"]
        assert client.get(f"/api/v1/cases/{case_id}", headers=auth).json()["id"] == case_id
        assert client.put("/api/v1/cases", headers=auth, json={}).status_code == 405
        slash = client.post("/api/v1/cases/", headers=auth, json={}, follow_redirects=False)
        assert slash.status_code == 307  # the router's redirect, as before
    assert calls == ["/api/v1/cases"]


def test_the_request_guards_run_before_the_fast_path(city_db_url):
    app = create_app(database_url=city_db_url)
    order = [m.cls.__name__ for m in app.user_middleware]  # outermost first
    assert order.index("RequestGuardMiddleware") < order.index("IntakeFastPath")
