"""GET /health/ready: database, schema at head, the worker's heartbeat, the calendar's horizon."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.db import migration_heads
from casegrid.heartbeat import record_heartbeat
from cases.calendar_horizon import FIX_COMMAND


def client_at(db_url: str, today: date | None = None) -> TestClient:
    app = create_app(database_url=db_url)
    if today is not None:
        app.state.today = lambda: today
    return TestClient(app)


def test_not_ready_without_a_worker_then_ready_once_it_beats(engine, db_url):
    with client_at(db_url, date(2026, 6, 1)) as client:
        r = client.get("/health/ready")
        assert r.status_code == 503, r.text
        checks = r.json()["checks"]
        assert checks["database"]["ok"] and checks["schema"]["ok"]
        assert checks["schema"]["revision"] in migration_heads()
        assert not checks["worker"]["ok"]
        assert "casegrid-worker" in checks["worker"]["fix"]
        assert r.json()["code"] == "not_ready" and "worker" in r.json()["detail"]
        # Liveness is unaffected.
        assert client.get("/health").status_code == 200

        with engine.begin() as conn:
            record_heartbeat(conn, "test-worker", {"state": "idle"})
        r = client.get("/health/ready")
        assert r.status_code == 200, r.text
        assert r.json()["ready"] is True
        assert r.json()["checks"]["calendar"]["warning"] is None  # June: 214 days to go

        # A heartbeat older than CASEGRID_WORKER_STALE_S (300 s) is a stopped worker.
        with engine.begin() as conn:
            conn.execute(text("UPDATE worker_heartbeat SET at = at - interval '10 minutes'"))
        r = client.get("/health/ready")
        assert r.status_code == 503
        assert "s ago" in r.json()["checks"]["worker"]["detail"]
        assert client.head("/health/ready").status_code == 503


def test_schema_behind_head_is_not_ready(engine, db_url):
    with engine.begin() as conn:
        record_heartbeat(conn, "test-worker")
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with client_at(db_url, date(2026, 6, 1)) as client:
        r = client.get("/health/ready")
    assert r.status_code == 503
    schema = r.json()["checks"]["schema"]
    assert not schema["ok"] and schema["revision"] == "0001"
    assert schema["fix"] == "casegrid db migrate"


def test_calendar_horizon_warns_at_2026_11_15_without_2027(engine, db_url):
    """The clock at 2026-11-15 and no 2027 notice: the detail says so, with the fix; the
    answer stays 200 (deadlines are computed, provisionally)."""
    with engine.begin() as conn:
        record_heartbeat(conn, "test-worker")
    with client_at(db_url, date(2026, 11, 15)) as client:
        r = client.get("/health/ready")
    assert r.status_code == 200, r.text
    cal = r.json()["checks"]["calendar"]
    assert cal["ok"] is True
    assert cal["first_provisional_day"] == "2027-01-01" and cal["days_left"] == 47
    assert FIX_COMMAND in cal["warning"] and "2027" in cal["warning"]
    assert cal["detail"] == cal["warning"]


def test_database_down_is_not_ready_and_names_no_host():
    app = create_app(database_url="postgresql+psycopg://secretuser:pw@127.0.0.1:1/nowhere")
    with TestClient(app) as client:
        r = client.get("/health/ready")
    assert r.status_code == 503
    body = r.text
    assert not r.json()["ready"] and not r.json()["checks"]["database"]["ok"]
    assert "secretuser" not in body and "127.0.0.1" not in body
