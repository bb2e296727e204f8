"""API fuzzing: schemathesis generates requests from casegrid's own OpenAPI document and
sends them in-process (ASGI) to an app on a fresh copy of the sample city, with a valid
token of every role. Every operation must answer without a 5xx and with a body that
conforms to the schema it documents for that status.

Each operation is one test; hypothesis draws the request (valid and invalid ones) and the
role of its token together, so a failure shrinks to the smallest request and role. The run is bounded for CI
(``MAX_EXAMPLES`` per operation, no deadline); regression tests for what the fuzzer found
sit at the bottom of this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.python import asgi as schemathesis_asgi
from sqlalchemy import Engine

from api.app import create_app
from casegrid.db import make_engine
from casegrid.settings import Settings
from cases.intake import NewCase, create_case
from cases.tokens import authenticate, create_token
from tests.helpers.databases import fresh_database
from tests.helpers.intake_api import interior_points

MAX_EXAMPLES = 30
ROLES = ("admin", "dispatcher", "supervisor", "community_officer", "planner", "intake")
CHECKS = [not_a_server_error, response_schema_conformance]

# The document is static: an app that never starts (no database) serves it.
_DOC_APP = create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/unused")
schema = schemathesis.openapi.from_dict(_DOC_APP.openapi())
schema.app = _DOC_APP  # selects the in-process ASGI transport; each call passes the live app


@dataclass
class Fuzzed:
    """The live app on a fresh sample city, and a token per role."""

    app: FastAPI
    engine: Engine
    tokens: dict[str, str]



def _seed_cases(engine: Engine, admin_secret: str) -> None:
    """A handful of routed cases (ids 1..n), so path parameters sometimes hit a real case."""
    points = interior_points(engine)[:6]
    base = datetime.now(UTC) - timedelta(days=3)
    with engine.begin() as conn:
        admin = authenticate(conn, admin_secret)
        for i, (_code, lon, lat) in enumerate(points):
            create_case(conn, NewCase(
                lon=lon, lat=lat, category="0101" if i % 2 else "0504", channel="hotline_12345",
                description=f"fuzz seed {i}", external_id=f"fuzz-{i}",
                reported_at=base + timedelta(hours=i), reporter_name="Seed Reporter",
                reporter_phone="13800000000"), admin)


@pytest.fixture(scope="module")
def fuzzed(pg_cluster, city_template, tmp_path_factory) -> Iterator[Fuzzed]:
    for url in fresh_database(pg_cluster, city_template):
        engine = make_engine(url)
        try:
            officer_community = interior_points(engine)[0][0]
            tokens = {}
            with engine.begin() as conn:
                for role in ROLES:
                    scope = [officer_community] if role == "community_officer" else None
                    tokens[role] = create_token(conn, role, f"fuzz-{role}", scope)[1]
            _seed_cases(engine, tokens["admin"])
            # Uploaded evidence goes to a throwaway store, not the project's data directory.
            files = tmp_path_factory.mktemp("fuzz-files")
            app = create_app(Settings(attachment_dir=files), database_url=url)
            yield Fuzzed(app, engine, tokens)
        finally:
            # schemathesis keeps the app's lifespan running for the process; end it here so
            # the app's engine lets go of the database before it is dropped.
            schemathesis_asgi.shutdown_lifespans()
            engine.dispose()


OPERATIONS = {result.ok().label: result.ok() for result in schema.get_all_operations()}
# Each hotspot request runs a Gi* analysis with permutations (about a second): fewer examples.
EXAMPLES = {"GET /maps/hotspots": 6, "GET /api/v1/hotspots/pois": 6}


def _cases(label: str):
    op = OPERATIONS[label]
    return st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_conforms_to_its_schema(label: str, fuzzed: Fuzzed):
    """Positive and negative requests, any role: never a 5xx, always the documented body."""

    @settings(max_examples=EXAMPLES.get(label, MAX_EXAMPLES), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=_cases(label), role=st.sampled_from(ROLES))
    def run(case, role):
        headers = {**(case.headers or {}), "Authorization": f"Bearer {fuzzed.tokens[role]}"}
        case.call_and_validate(app=fuzzed.app, headers=headers, checks=CHECKS)

    run()


# --- regressions for what the fuzzer found -------------------------------------------------



def _is_error_body(body: dict) -> bool:
    return isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)


def test_stats_without_dates_is_422_naming_the_parameter_not_500(api):
    # Found: `from`/`to` declared with an `= ...` default reached the handler as Ellipsis.
    for query, field in (("", "from"), ("?from=2026-01-01", "to"), ("?to=2026-01-01", "from")):
        r = api.client.get(f"/api/v1/stats{query}", headers=api.headers("admin"))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field


def test_undecodable_body_is_400_in_the_error_shape(api):
    # Found: FastAPI's own 400 body (bytes that are not UTF-8) had no `code`, against the
    # documented ErrorOut.
    for url in ("/api/v1/cases", "/api/v1/cases/1/actions"):
        r = api.client.post(url, content=b'{"action": "\xff\xfe"}', headers={
            **api.headers("admin"), "Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert _is_error_body(r.json()) and r.json()["field"] == "body"


def test_truncated_json_is_422_on_the_body_not_a_character_position(api):
    r = api.client.post("/api/v1/cases", content=b'{"category": "01', headers={
        **api.headers("admin"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "body" and "not valid JSON" in r.json()["detail"]


def test_unknown_path_is_404_in_the_error_shape(api):
    r = api.client.get("/api/v1/nothing-here", headers=api.headers("admin"))
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "url", "allowed"), [
    ("OPTIONS", "/api/v1/cases", "GET, POST"),
    ("DELETE", "/api/v1/categories/0101/time-limits", "GET, PUT"),
    ("PUT", "/open311/v2/requests.json", "GET, POST"),
])
def test_a_wrong_method_is_405_naming_every_method_the_path_serves(api, method, url, allowed):
    # Found by schemathesis (ST205): Allow named the methods of the path's first route only
    # ("POST" for /api/v1/cases, whose GET is another route); RFC 9110 wants them all.
    r = api.client.request(method, url, headers=api.headers("admin"))
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == allowed
    body = r.json()
    assert body["code"] == "method_not_allowed"
    assert method in body["detail"] and allowed.replace(", ", " or ") in body["detail"]


@pytest.mark.parametrize("url", [
    "/api/v1/cases?status=a%00b", "/api/v1/cases?category=%00", "/api/v1/categories/%00/time-limits",
    "/maps/api/cases?bbox=1,2,3,4&category=x%00", "/api/v1/hotspots/pois?kind=%00",
])
def test_nul_in_path_or_query_is_422_naming_the_parameter(api, url):
    # Found: a NUL character reached PostgreSQL, whose text cannot hold one: a 500.
    r = api.client.get(url, headers=api.headers("admin"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert _is_error_body(body) and "NUL" in body["detail"]
    expected = url.split("?")[1].split("=")[0] if "?" in url else "path"
    if "&" in url:
        expected = url.split("&")[1].split("=")[0]
    assert body["field"] == expected


@pytest.mark.parametrize("url", ["/open311/v2/requests.json?service_code=%00",
                                 "/open311/v2/services/%00.json"])
def test_nul_in_open311_query_is_the_specs_400(api, url):
    r = api.client.get(url)
    assert r.status_code == 400, r.text
    assert r.json()[0]["code"] == 400 and "NUL" in r.json()[0]["description"]


@pytest.mark.parametrize("field", ["description", "reporter_name", "address"])
def test_nul_in_a_json_body_is_422_and_nothing_is_written(api, field):
    code, lon, lat = interior_points(api.engine)[0]
    before = api.counts()
    r = api.post_case({"lon": lon, "lat": lat, "category": "0101", "channel": "hotline_12345",
                       field: "noise\u0000at night"})
    assert r.status_code == 422, r.text
    assert "NUL" in r.json()["detail"] and r.json()["code"] == "invalid_input"
    assert api.counts() == before


def test_every_operation_documents_json_error_bodies():
    doc = _DOC_APP.openapi()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            expected = {"400", "403", "404"} if path.startswith("/open311/") else {
                "401", "403", "404", "422", "503"}
            if path == "/health":
                expected = {"503"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for status, response in responses.items():
                if status[0] in "45":
                    assert set(response["content"]) == {"application/json"}, (method, path, status)
                    assert "HTTPValidationError" not in json.dumps(response), (method, path, status)
