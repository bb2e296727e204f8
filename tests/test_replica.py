"""A read replica: with a real streaming standby of the test cluster, the planners' and the
bureau's reads go to it, intake and actions never do, and a standby that is stopped or too
far behind is passed over for the primary without an error to the user."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.cluster import Cluster, free_port
from casegrid.settings import Settings
from cases.tokens import create_token
from tests.helpers.ledger import COMM_A, make_case

STATS = "/api/v1/stats?from=2026-01-01&to=2026-12-31"
POIS = "/api/v1/hotspots/pois?date_from=2026-01-01"


@pytest.fixture(scope="module")
def standby(pg_cluster):
    """A hot standby of the session's cluster (pg_basebackup -R), streaming from it."""
    cluster = Cluster(data_dir=Path(tempfile.mkdtemp(prefix="cg-standby-")), port=free_port())
    cluster.clone_from(pg_cluster)
    assert cluster.is_standby()
    cluster.start(fast=True)
    try:
        yield cluster
    finally:
        cluster.destroy()


def on_standby(standby: Cluster, dbname: str, sql: str):
    with psycopg.connect(host="127.0.0.1", port=standby.port, user="casegrid",
                         dbname=dbname, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def wait_replayed(standby: Cluster, dbname: str, sql: str, want, timeout_s: float = 60) -> None:
    """Wait until ``sql`` on the standby returns ``want`` (the standby has caught up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if on_standby(standby, dbname, sql) == want:
                return
        except psycopg.OperationalError:
            pass  # the database's creation not replayed yet
        assert time.monotonic() < deadline, f"standby never showed {want} for {sql}"
        time.sleep(0.1)


@pytest.fixture
def replicated(standby, city_db_url, city_engine):
    """An app on a fresh sample-city database whose reads may go to the standby."""
    with city_engine.begin() as conn:
        tokens = {r: create_token(conn, r, f"t-{r}")[1] for r in ("admin", "intake", "supervisor")}
        tokens["case"] = make_case(conn, COMM_A)
    dbname = city_db_url.rsplit("/", 1)[1]
    wait_replayed(standby, dbname, "SELECT count(*) FROM api_token", [(3,)])
    settings = Settings(read_database_url=standby.url(dbname), replica_max_lag_s=30)
    app = create_app(settings, database_url=city_db_url)
    with TestClient(app) as client:
        yield client, tokens, dbname


def auth(tokens, who):
    return {"Authorization": f"Bearer {tokens[who]}"}


def sessions(standby: Cluster, dbname: str) -> set[str]:
    return {r[0] for r in on_standby(
        standby, dbname, f"SELECT application_name FROM pg_stat_activity WHERE datname = "
        f"'{dbname}' AND pid <> pg_backend_pid()")}


def test_heavy_reads_go_to_the_standby_and_writes_never_do(replicated, standby, city_engine):
    client, tokens, dbname = replicated
    for url in (STATS, POIS, "/maps/hotspots"):
        r = client.get(url, headers=auth(tokens, "admin"))
        assert r.status_code == 200, r.text
        assert r.headers["x-casegrid-read-source"].startswith("replica"), url
    assert "数据来自只读副本" in r.text  # the planners' page says how fresh its data is
    last = on_standby(standby, dbname, "SELECT query FROM pg_stat_activity WHERE "
                      f"application_name = 'casegrid-read' AND datname = '{dbname}'")
    assert last, "no reading session of casegrid on the standby"
    r = client.post("/api/v1/cases", headers=auth(tokens, "intake"), json={
        "category": "0102", "channel": "hotline_12345", "description": "垃圾",
        "reported_at": "2026-06-01T09:00:00+08:00", "lon": 117.1652, "lat": 35.0871})
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/cases/{tokens['case']}/actions", headers=auth(tokens, "supervisor"),
                    json={"action": "accept", "version": 1})
    assert r.status_code == 200, r.text
    # The writer's sessions are on the primary only; the standby has only the readers.
    assert sessions(standby, dbname) <= {"casegrid-read"}
    with city_engine.connect() as conn:
        writers = conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'casegrid' "
            "AND datname = current_database()")).scalar_one()
    assert writers >= 1
    wait_replayed(standby, dbname, 'SELECT count(*) FROM "case"', [(2,)])
    r = client.get(STATS, headers=auth(tokens, "admin"))
    assert r.json()["total"]["accepted"] == 2  # the new case, read back from the standby


def test_a_standby_too_far_behind_is_passed_over(replicated, standby, city_engine):
    client, tokens, dbname = replicated
    client.app.state.reads.max_lag_s = 0.5
    on_standby(standby, dbname, "SELECT pg_wal_replay_pause()")
    try:
        with city_engine.begin() as conn:
            make_case(conn, COMM_A)
        time.sleep(1.5)
        r = client.get(STATS, headers=auth(tokens, "admin"))
        assert r.status_code == 200
        assert r.headers["x-casegrid-read-source"].startswith("primary")
        assert r.json()["total"]["accepted"] == 2  # the primary sees the new case
    finally:
        on_standby(standby, dbname, "SELECT pg_wal_replay_resume()")


def test_ledger_exports_read_the_standby(replicated, standby, city_engine):
    """With the standby's replay paused, a case added on the primary is not in the export:
    the rows came from the standby (and both the CSV and the workbook say so)."""
    client, tokens, dbname = replicated
    url = "/api/v1/export/ledger.{}?from=2020-01-01&to=2030-12-31"
    first = client.get(url.format("csv"), headers=auth(tokens, "admin"))
    assert first.status_code == 200, first.text
    assert first.headers["x-casegrid-read-source"].startswith("replica")
    rows = first.text.count("\n")
    on_standby(standby, dbname, "SELECT pg_wal_replay_pause()")
    try:
        with city_engine.begin() as conn:
            make_case(conn, COMM_A)
        csv_now = client.get(url.format("csv"), headers=auth(tokens, "admin"))
        assert csv_now.text.count("\n") == rows  # not the new case: read on the standby
        assert csv_now.headers["x-casegrid-read-source"].startswith("replica")
        xlsx = client.get(url.format("xlsx"), headers=auth(tokens, "admin"))
        assert xlsx.status_code == 200
        assert xlsx.headers["x-casegrid-read-source"].startswith("replica")
    finally:
        on_standby(standby, dbname, "SELECT pg_wal_replay_resume()")
    wait_replayed(standby, dbname, 'SELECT count(*) FROM "case"', [(2,)])
    assert client.get(url.format("csv"), headers=auth(tokens, "admin")).text.count("\n") > rows


def test_a_stopped_standby_falls_back_to_the_primary(replicated, standby):
    client, tokens, dbname = replicated
    standby.stop()
    try:
        for url in (STATS, POIS, STATS, "/api/v1/export/ledger.csv?from=2020-01-01&to=2030-12-31"):
            r = client.get(url, headers=auth(tokens, "admin"))
            assert r.status_code == 200, r.text
            assert r.headers["x-casegrid-read-source"].startswith("primary")
    finally:
        standby.start(fast=True)
