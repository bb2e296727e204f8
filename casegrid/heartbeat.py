"""The worker's heartbeat: when each worker last showed a sign of life.

``casegrid worker`` calls :func:`record_heartbeat` at every pass; a readiness check (or an
operator) reads :func:`last_heartbeat` to tell a stalled or absent worker from an idle one.
Stored in ``worker_heartbeat`` (migration 0018), one row per worker name.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime

from sqlalchemy import Connection, text


def record_heartbeat(conn: Connection, name: str, info: dict | None = None) -> None:
    """Record that worker ``name`` is alive now (the database's clock), in the caller's
    transaction; ``info`` is a small JSON object (what the last pass did)."""
    conn.execute(text(
        "INSERT INTO worker_heartbeat (name, at, pid, host, info) "
        "VALUES (:n, clock_timestamp(), :pid, :host, CAST(:info AS jsonb)) "
        "ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at, pid = EXCLUDED.pid, "
        "host = EXCLUDED.host, info = EXCLUDED.info"),
        {"n": name, "pid": os.getpid(), "host": socket.gethostname(),
         "info": json.dumps(info or {}, default=str)})


def last_heartbeat(conn: Connection, name: str | None = None) -> datetime | None:
    """The latest heartbeat of worker ``name`` (of any worker if None); None if never."""
    if name is None:
        return conn.execute(text("SELECT max(at) FROM worker_heartbeat")).scalar_one()
    return conn.execute(text("SELECT at FROM worker_heartbeat WHERE name = :n"),
                        {"n": name}).scalar_one_or_none()
