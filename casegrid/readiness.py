"""Readiness: can this installation do its work right now (``GET /health/ready``)?

Four checks, each ``{"ok": bool, "detail": str, "fix": str | None}``:

* ``database``: it answers a query;
* ``schema``: it is at the head of this code's migrations (else ``casegrid db migrate``);
* ``worker``: a ``casegrid worker`` has shown a sign of life (its heartbeat) within
  ``CASEGRID_WORKER_STALE_S``: without one, nobody is notified and nothing is reminded;
* ``calendar``: the working calendar's horizon (:mod:`cases.calendar_horizon`). Always
  ``ok``: near the horizon deadlines are still computed, provisionally, so a load balancer
  must not take the server out for it; the warning and its fix are in the detail.

The answer is ready when every check is ok. ``GET /health`` stays the liveness probe.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text

from casegrid.db import migration_heads, schema_revision, single_read
from casegrid.heartbeat import last_heartbeat
from casegrid.settings import Settings
from cases.calendar_horizon import current_horizon


def _check(ok: bool, detail: str, fix: str | None = None, **extra) -> dict:
    return {"ok": ok, "detail": detail, "fix": None if ok else fix, **extra}


def check_readiness(engine: Engine, settings: Settings, today: date | None = None) -> dict:
    """Run the checks; ``{"ready": bool, "checks": {name: check}}``. ``today``: the
    calendar's day (default: today in Beijing time)."""
    checks: dict[str, dict] = {}
    try:
        with single_read(engine) as conn:
            conn.execute(text("SELECT 1"))
            checks["database"] = _check(True, "answers")
            checks["schema"] = _schema(conn)
            checks["worker"] = _worker(conn, settings)
            checks["calendar"] = _calendar(conn, settings, today)
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is "not ready"
        # The class only: a driver's message may name hosts and users.
        failed = next((name for name in ("database", "schema", "worker", "calendar")
                       if name not in checks), "database")
        checks[failed] = _check(False, f"failed: {type(exc).__name__}",
                                "check that PostgreSQL runs and DATABASE_URL points at it")
    return {"ready": all(c["ok"] for c in checks.values()) and "calendar" in checks,
            "checks": checks}


def _schema(conn) -> dict:
    current, heads = schema_revision(conn), migration_heads()
    return _check(current in heads, f"at {current or 'no revision'}, code's head "
                  f"{', '.join(heads)}", "casegrid db migrate", revision=current)


def _worker(conn, settings: Settings) -> dict:
    last = last_heartbeat(conn)
    if last is None:
        return _check(False, "no worker has reported a heartbeat",
                      "start the worker: systemctl start casegrid-worker (or casegrid worker)")
    age = conn.execute(text("SELECT extract(epoch FROM clock_timestamp() - :t)"),
                       {"t": last}).scalar_one()
    age = round(float(age), 1)
    return _check(age <= settings.worker_stale_s,
                  f"last heartbeat {age} s ago (stale after {settings.worker_stale_s:g} s)",
                  "the worker is stopped or stuck: systemctl restart casegrid-worker, and see "
                  "journalctl -u casegrid-worker", last_heartbeat=last.isoformat())


def _calendar(conn, settings: Settings, today: date | None) -> dict:
    h = current_horizon(conn, settings.calendar_horizon_days, today)
    detail = h.message() or (f"holiday notices up to {h.first_provisional.year - 1}; "
                             f"first provisional day {h.first_provisional}")
    return {"ok": True, "detail": detail, "fix": None, **h.as_dict()}
