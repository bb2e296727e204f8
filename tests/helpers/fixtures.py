"""Fixtures shared by several test files, registered for every test by ``tests/conftest.py``
(``pytest_plugins``); the cluster and database fixtures they build on are in conftest.py.

A test file that needs something else under one of these names defines its own fixture of
that name, which pytest prefers within that file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def conn(city_engine) -> Iterator:
    """A connection to a fresh sample-city database in a transaction, committed when the
    test ends (the ledger tests that call cases/ functions directly)."""
    with city_engine.begin() as c:
        yield c


@pytest.fixture
def api(city_db_url, city_engine) -> Iterator:
    """The intake API on the sample city: a TestClient with a token per role
    (:class:`tests.helpers.intake_api.Api`)."""
    from tests.helpers.intake_api import open_api

    yield from open_api(city_db_url, city_engine)


@pytest.fixture
def site(city_engine, city_db_url) -> Iterator[dict]:
    """The app served by uvicorn on loopback with the sample city, an account per role
    (``tests.helpers.workbench_helpers.make_users``) and an intake token: base, names,
    token, engine."""
    from api.app import create_app
    from casegrid.settings import Settings
    from tests.helpers.server import running_server
    from tests.helpers.workbench_helpers import intake_token, make_users

    names = make_users(city_engine)
    app = create_app(settings=Settings(tiles="none", database_url=city_db_url), database_url=city_db_url)
    with running_server(app) as base:
        yield {"base": base, "names": names, "token": intake_token(city_engine), "engine": city_engine}


@pytest.fixture
def wb(city_engine, city_db_url) -> Iterator:
    """The workbench over HTTP (a TestClient, no browser) with an account per role and two
    cases from the intake API, one in COMM_A and one in COMM_B: ``.ids``, ``.names``,
    ``.token``."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from casegrid.settings import Settings
    from tests.helpers.workbench_helpers import (
        COMM_A,
        COMM_B,
        case_body,
        intake_token,
        make_users,
        point_in,
    )

    names = make_users(city_engine)
    tok = intake_token(city_engine)
    app = create_app(settings=Settings(tiles="none", database_url=city_db_url), database_url=city_db_url)
    with TestClient(app) as client:
        ids = []
        for n, code in enumerate((COMM_A, COMM_B), start=1):
            r = client.post("/api/v1/cases", json=case_body(*point_in(city_engine, code), n=n),
                            headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        client.ids, client.names, client.token = ids, names, tok  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def evaluation_ledger(city_engine):
    """The sample city with the evaluation tests' hand-built ledger
    (:func:`tests.helpers.evaluation_ledger.build_evaluation_ledger`); returns the engine."""
    from tests.helpers.evaluation_ledger import build_evaluation_ledger

    return build_evaluation_ledger(city_engine)
