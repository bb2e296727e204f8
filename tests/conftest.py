"""Shared fixtures: every test runs against a real, throwaway PostGIS.

One cluster is started per test session in a temporary directory (fsync off: it is thrown
away). The schema is migrated once into a template database; each test that needs the
database gets its own fresh copy (``CREATE DATABASE ... TEMPLATE``), so tests are isolated
and never touch the demo database. Helpers that test files import (a served app, paths,
a fresh database outside a fixture) are in tests/helpers/, not here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from casegrid.cluster import Cluster, free_port
from casegrid.db import migrate
from tests.helpers.databases import engine_on, fresh_database

# Fixtures shared by several test files (api, site, wb, conn, evaluation_ledger).
pytest_plugins = ("tests.helpers.fixtures",)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL + PostGIS cluster for the whole test session."""
    tmp = Path(tempfile.mkdtemp(prefix="casegrid-test-"))
    cluster = Cluster(data_dir=tmp, port=free_port(), db_name="cg_template")
    cluster.start(fast=True)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def template_db(pg_cluster: Cluster) -> str:
    """Name of a migrated template database (schema and seed catalogue, no boundaries)."""
    name = "cg_template"
    pg_cluster.create_database(name)
    migrate(pg_cluster.url(name))
    return name


@pytest.fixture
def db_url(pg_cluster: Cluster, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated, empty database for one test."""
    yield from fresh_database(pg_cluster, template_db)


@pytest.fixture
def engine(db_url: str):
    """An engine on the test's fresh database."""
    with engine_on(db_url) as eng:
        yield eng


@pytest.fixture(scope="session")
def city_template(pg_cluster: Cluster, template_db: str) -> str:
    """A template database with the sample city (boundaries, posts, POIs) loaded."""
    from casegrid.demo.city import load_sample_city

    name = "cg_city_template"
    pg_cluster.create_database(name, template=template_db)
    with engine_on(pg_cluster.url(name)) as eng, eng.begin() as conn:
        load_sample_city(conn)
    return name


@pytest.fixture
def city_db_url(pg_cluster: Cluster, city_template: str) -> Iterator[str]:
    """URL of a fresh database holding the sample city, for one test."""
    yield from fresh_database(pg_cluster, city_template)


@pytest.fixture
def city_engine(city_db_url: str):
    """An engine on a fresh database holding the sample city."""
    with engine_on(city_db_url) as eng:
        yield eng


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, one per test module, for the page tests (launched by
    ``tests.helpers.browser.chromium``; skipped where it is not installed)."""
    from tests.helpers.browser import chromium

    with chromium() as b:
        yield b
