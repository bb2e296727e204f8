"""Access and hostile input on the sample city (real PostGIS):

* the access matrix of ``tests/access_matrix.py``, one test per (operation, caller), and a
  check that every route of the app has a row;
* tokens are stored only as hashes;
* a reporter's name and phone never reach planner or public outputs (API JSON/GeoJSON,
  history, stats, hotspot JSON/CSV, maps pages and their JSON, Open311, the CSV/XLSX report);
* SQL-injection text in every filter and path parameter is refused or matches nothing, and
  the tables are intact afterwards;
* path traversal in static asset URLs and in the file arguments of the CLI is refused.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from casegrid.db import make_engine
from cases.intake import NewCase, create_case
from cases.tokens import authenticate, create_token, revoke_token
from cases.workflow import apply_action
from tests.access_matrix import CALLERS, OPERATIONS, PATH_TO_STATE, Operation
from tests.conftest import _fresh_database
from tests.test_intake_api import interior_points

REPORTER_NAME = "Zhuang Qiaoyun 庄巧云"
REPORTER_PHONE = "13987654321"
SECRET_NEEDLES = (REPORTER_NAME, "庄巧云", "Zhuang Qiaoyun", REPORTER_PHONE, "987654321")


@dataclass
class Matrix:
    """A client on a fresh sample city with a token per caller and a case factory."""

    app: FastAPI
    client: TestClient
    engine: Engine
    tokens: dict[str, str | None]
    own: tuple[str, float, float]      # (community code, lon, lat) of officer_own
    other: tuple[str, float, float]
    prep: dict[str, str]               # admin tokens that prepare cases (not in the table)

    def headers(self, caller: str) -> dict[str, str]:
        secret = self.tokens[caller]
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def new_case(self, state: str = "registered", *, where: tuple[str, float, float] | None = None,
                 channel: str = "hotline_12345", external_id: str | None = None,
                 category: str = "0504") -> dict:
        """A fresh case in ``state`` (at the officer's own community unless ``where``)."""
        _code, lon, lat = where or self.own
        with self.engine.begin() as conn:
            builder = authenticate(conn, self.prep["builder"])
            handler = authenticate(conn, self.prep["handler"])
            case = create_case(conn, NewCase(
                lon=lon, lat=lat, category=category, channel=channel,
                external_id=external_id or uuid.uuid4().hex, description="matrix case",
                reported_at=datetime.now(UTC) - timedelta(hours=2), reporter_name=REPORTER_NAME,
                reporter_phone=REPORTER_PHONE), builder).case
            for step in PATH_TO_STATE[state]:
                actor = handler if step["action"] == "handle" else builder
                apply_action(conn, case["id"], step["action"], dict(step), actor)
        return case


@pytest.fixture(scope="module")
def matrix(pg_cluster, city_template) -> Iterator[Matrix]:
    for url in _fresh_database(pg_cluster, city_template):
        engine = make_engine(url)
        points = interior_points(engine)
        own, other = points[0], points[-1]
        tokens: dict[str, str | None] = {"no_token": None}
        with engine.begin() as conn:
            for caller in CALLERS:
                role = {"officer_own": "community_officer", "officer_other": "community_officer",
                        "revoked": "dispatcher"}.get(caller, caller)
                scope = {"officer_own": [own[0]], "officer_other": [other[0]]}.get(caller)
                if caller != "no_token":
                    token_id, tokens[caller] = create_token(conn, role, f"matrix-{caller}", scope)
                if caller == "revoked":
                    revoke_token(conn, token_id)
            prep = {name: create_token(conn, "admin", f"prep-{name}")[1]
                    for name in ("builder", "handler")}
        app = create_app(database_url=url)
        try:
            with TestClient(app) as client:
                yield Matrix(app, client, engine, tokens, own, other, prep)
        finally:
            engine.dispose()


# --- the table covers every route ----------------------------------------------------------


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route of the app, HEAD aside, walking included
    routers whatever way the installed FastAPI nests them."""

    def walk(routes, prefix: str = "") -> Iterator[tuple[str, str]]:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "routes") and not hasattr(route, "methods"):
                yield from walk(route.routes, prefix + getattr(route, "path", ""))
            else:
                for method in getattr(route, "methods", None) or {"GET"}:
                    if method != "HEAD":
                        yield method, prefix + route.path

    return set(walk(app.routes))


def test_the_table_has_a_row_for_every_route():
    routes = app_routes(create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/x"))
    table = {(op.method, op.route) for op in OPERATIONS}
    assert routes - table == set(), "routes without a row in tests/access_matrix.py"
    assert table - routes == set(), "rows in tests/access_matrix.py for routes that do not exist"
    assert len(routes) >= 30


def test_the_table_is_well_formed():
    names = [op.name for op in OPERATIONS]
    assert len(names) == len(set(names))
    for op in OPERATIONS:
        assert len(op.expected) == len(CALLERS), op.name
        assert op.state is None or op.state in {*PATH_TO_STATE, "open311"}, op.name


# --- the matrix itself ---------------------------------------------------------------------


def _call(m: Matrix, op: Operation, caller: str):
    url = op.url or op.route
    body = dict(op.body) if op.body else None
    if op.state == "open311":
        token = str(uuid.uuid4())
        m.new_case(channel="open311", external_id=token)
        url = url.replace("{token}", token)
    elif op.state is not None:
        case = m.new_case(op.state)
        url = url.replace("{case_id}", str(case["id"])).replace("{case_no}", case["case_no"])
    if op.route == "/api/v1/cases":
        _code, lon, lat = m.own
        body = {**(body or {}), "lon": lon, "lat": lat, "external_id": uuid.uuid4().hex}
    if op.auth == "api_key":
        _code, lon, lat = m.own
        form = {**(body or {}), "lat": str(lat), "long": str(lon)}
        if m.tokens[caller]:
            form["api_key"] = m.tokens[caller]
        return m.client.post(url, data=form)
    return m.client.request(op.method, url, json=body, headers=m.headers(caller),
                            follow_redirects=False)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_access(matrix: Matrix, op: Operation, caller: str):
    r = _call(matrix, op, caller)
    expected = op.expect()[caller]
    assert r.status_code == expected, f"{op.name} as {caller}: {r.status_code} {r.text[:300]}"
    if expected >= 400 and not op.route.startswith("/open311/"):
        body = r.json()
        assert body["code"] and body["detail"], body


def test_other_communitys_officer_sees_none_of_its_cases_in_lists_and_maps(matrix: Matrix):
    case = matrix.new_case()
    h = matrix.headers("officer_other")
    ids = [c["id"] for c in matrix.client.get("/api/v1/cases?limit=500", headers=h).json()["items"]]
    assert case["id"] not in ids
    own_ids = [c["id"] for c in matrix.client.get(
        "/api/v1/cases?limit=500", headers=matrix.headers("officer_own")).json()["items"]]
    assert case["id"] in own_ids
    view = matrix.client.get("/maps/api/cases?bbox=116.9,34.9,117.4,35.3", headers=h).json()
    assert str(case["id"]) not in re.findall(r'"id":\s*(\d+)', str(view).replace("'", '"'))


# --- tokens are stored hashed ----------------------------------------------------------------


def test_tokens_are_stored_only_as_sha256_hashes(matrix: Matrix):
    with matrix.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM api_token")).mappings()]
        columns = [r[0] for r in conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_token'"))]
    secrets = [s for s in matrix.tokens.values() if s] + list(matrix.prep.values())
    dump = repr(rows)
    for secret in secrets:
        assert secret not in dump
        assert secret[8:40] not in dump  # not even a part of it
    hashes = {r["token_hash"] for r in rows}
    for secret in secrets:
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes
    assert not {"token", "secret", "plain"} & set(columns)
