"""``casegrid serve`` as a subprocess on a free loopback port, for the HTTP benchmarks.

The server gets the benchmark database through ``DATABASE_URL`` (as an operator would set
it). It runs in its own process group so that stopping it also stops uvicorn's workers;
only that group, which this module started, is signalled.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from casegrid.cluster import free_port


def _casegrid_command() -> list[str]:
    script = Path(sys.executable).parent / "casegrid"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from casegrid.cli import main; main()"]


@contextmanager
def serve(database_url: str, workers: int = 1, log_path: Path | None = None,
          extra_env: dict[str, str] | None = None, info: dict | None = None,
          start_s: float = 60, script: Path | None = None) -> Iterator[str]:
    """Start the API, wait until ``/health`` answers, yield its base URL, stop it.
    ``info`` (when given) gets ``session``: the server's session id, for CPU accounting.
    ``script``: another virtualenv's ``casegrid`` script (a lab's other interpreter);
    by default this interpreter's."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, **(extra_env or {}))
    out = log_path.open("w") if log_path else subprocess.DEVNULL
    command = [str(script)] if script else _casegrid_command()
    proc = subprocess.Popen(
        [*command, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    if info is not None:
        info["session"] = proc.pid  # start_new_session: the server leads its own session
    try:
        deadline = time.monotonic() + start_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"casegrid serve exited with {proc.returncode}"
                                   + (f"; see {log_path}" if log_path else ""))
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"casegrid serve did not answer /health within {start_s:.0f} s")
            time.sleep(0.3)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log_path:
            out.close()  # type: ignore[union-attr]


def server_ms(log_path: Path, request_prefix: str) -> dict[str, float]:
    """Request id -> the server's own ``duration_ms``, from the JSON log lines of a server
    started with ``serve(log_path=...)``, for the requests whose id starts with
    ``request_prefix`` (the benchmark's own; other lines and non-JSON lines are skipped)."""
    found = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        rid = str(doc.get("request_id") or "")
        if rid.startswith(request_prefix) and "duration_ms" in doc:
            found[rid] = float(doc["duration_ms"])
    return found


def connections_per_process(port: int) -> list[int]:
    """Established TCP connections to ``port`` on this machine per serving process, largest
    first (``ss -tnp``; empty when ss is missing): how uvicorn's workers shared the clients."""
    try:
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)
