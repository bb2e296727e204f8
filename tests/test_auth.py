"""Tokens on the intake and reading endpoints: 401 for a missing, malformed, unknown or
revoked token (with a WWW-Authenticate header), 403 for a role that may not act, and no row
written by a refused request."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cases.tokens import revoke_token
from tests.helpers.intake_api import body, interior_points

ENDPOINTS = [
    ("POST", "/api/v1/cases"),
    ("GET", "/api/v1/cases"),
    ("GET", "/api/v1/cases/1"),
    ("GET", "/api/v1/route?lon=117.16&lat=35.08"),
    ("GET", "/api/v1/communities"),
    ("GET", "/api/v1/categories"),
]


def _call(api, method, url, headers):
    if method == "POST":
        return api.client.post(url, json=body(117.1652, 35.0871), headers=headers)
    return api.client.get(url, headers=headers)


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize(("headers", "word"), [
    ({}, "missing"),
    ({"Authorization": "Bearer cg_not-a-real-token"}, "unknown"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing"),
    ({"Authorization": "Bearer"}, "missing"),
], ids=["none", "unknown", "basic", "empty"])
def test_requests_without_a_valid_token_are_401(api, method, url, headers, word):
    before = api.counts()
    r = _call(api, method, url, headers)
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert r.json()["field"] == "Authorization" and word in r.json()["detail"]
    assert api.counts() == before


def test_a_revoked_token_stops_working_at_once(api):
    secret = api.token("dispatcher", "soon-revoked")
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/api/v1/cases", headers=headers).status_code == 200
    with api.engine.begin() as conn:
        token_id = conn.execute(
            text("SELECT id FROM api_token WHERE name = 'soon-revoked'")).scalar_one()
        revoke_token(conn, token_id)
    for method, url in ENDPOINTS:
        r = _call(api, method, url, headers)
        assert r.status_code == 401 and "revoked" in r.json()["detail"], (url, r.text)


def test_planner_may_not_submit_403_naming_allowed_roles(api):
    before = api.counts()
    r = api.post_case(body(117.1652, 35.0871), role="planner")
    assert r.status_code == 403
    assert "intake" in r.json()["detail"] and "dispatcher" in r.json()["detail"]
    assert api.counts() == before


@pytest.mark.parametrize("role", ["intake", "dispatcher", "supervisor", "admin"])
def test_submitting_roles_may_submit(api, role):
    code, lon, lat = interior_points(api.engine)[2]
    assert api.post_case(body(lon, lat), role=role).status_code == 201


@pytest.mark.parametrize("role", ["intake", "dispatcher", "supervisor", "admin", "planner"])
def test_every_role_may_read(api, role):
    for url in ("/api/v1/cases", "/api/v1/communities", "/api/v1/categories",
                "/api/v1/route?lon=117.16&lat=35.08"):
        assert api.client.get(url, headers=api.headers(role)).status_code == 200, (role, url)


def test_health_and_docs_need_no_token(api):
    assert api.client.get("/health").status_code == 200
    # Uptime monitors often probe with HEAD; a 405 would read as the service being down.
    head = api.client.head("/health")
    assert head.status_code == 200 and head.content == b""
    spec = api.client.get("/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/cases" in spec.json()["paths"]


def test_intake_docs_show_the_bearer_scheme_body_and_answer(api):
    """POST /api/v1/cases: the document says the bearer scheme, the body and what it answers."""
    spec = api.client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/cases"]["post"]
    assert op["security"] == [{"HTTPBearer": []}]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert {"category", "channel", "lon", "lat"} <= set(schema["properties"])
    for status in ("200", "201"):
        ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/IntakeOut")


@pytest.mark.parametrize(("header", "status"), [
    (None, 401), ("Bearer", 401), ("Bearer ", 401), ("Basic abc", 401), ("Bearer nope", 401)])
def test_intake_reads_the_bearer_header_as_the_rest_of_the_api(api, header, status):
    headers = {} if header is None else {"Authorization": header}
    body = {"lon": 117.16, "lat": 35.08, "category": "0599", "channel": "platform"}
    assert api.client.post("/api/v1/cases", json=body, headers=headers).status_code == status
    assert api.client.get("/api/v1/cases", headers=headers).status_code == status


def test_bearer_scheme_is_case_insensitive_for_intake(api):
    token = api.headers("intake")["Authorization"].split(" ", 1)[1]
    body = {"lon": 117.16, "lat": 35.08, "category": "0599", "channel": "platform"}
    r = api.client.post("/api/v1/cases", json=body, headers={"Authorization": f"bearer  {token}"})
    assert r.status_code == 201, r.text
