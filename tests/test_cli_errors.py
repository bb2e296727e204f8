"""CLI commands fail with a clear message, not a traceback, when the database is away."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from casegrid.cluster import PORT_WAIT_S, free_port, port_is_free

ROOT = Path(__file__).resolve().parent.parent


def test_unreachable_database_is_a_clear_error():
    env = {**os.environ, "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"}
    proc = subprocess.run(
        [sys.executable, "-m", "casegrid.cli", "route", "117.16", "35.09"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 3
    assert "database is unavailable" in proc.stderr
    assert "Nothing was stored" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_taken_database_port_is_a_clear_error_before_anything_is_set_up(tmp_path):
    # The embedded default port (55432) lies in Linux's range of ephemeral ports, and any
    # program may hold it. Found when `make run` met it taken: pg_ctl's failure came out as
    # a traceback that pointed at the server log.
    data_dir = tmp_path / "cluster"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env |= {"CASEGRID_DATA_DIR": str(data_dir), "CASEGRID_DB_PORT": str(port)}
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "casegrid.cli", "db", "start"],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        waited = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"port {port}" in message and "in use" in message and "CASEGRID_DB_PORT" in message
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (data_dir / "pgdata").exists()  # nothing initialised for a server that cannot listen
    assert waited >= PORT_WAIT_S  # a port held only for a moment is waited for


def test_port_is_free_tells_a_listening_port_from_a_free_one():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)


def test_free_ports_lie_below_the_ephemeral_range():
    # A test's database is stopped and started again on its port; an outgoing connection of
    # any program (wrk, a client pool) can be given an ephemeral port meanwhile. Seen in CI.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(p < low for p in ports)
    assert all(port_is_free(p) for p in ports)
