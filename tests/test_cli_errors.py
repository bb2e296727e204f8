"""CLI commands fail with a clear message, not a traceback, when the database is away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from casegrid.cluster import free_port

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
