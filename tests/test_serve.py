"""``casegrid serve --workers N``: stock uvicorn with its own worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.cpu import children
from casegrid.cluster import free_port


def _serve(db_url: str, port: int, workers: int, log: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from casegrid.cli import main; main()", "serve",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env={**os.environ, "DATABASE_URL": db_url, **(env or {})}, stdout=log.open("w"),
        stderr=subprocess.STDOUT, start_new_session=True)


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"no /health within 60 s:\n{log.read_text()}")


def _workers(pid: int) -> set[int]:
    """Worker processes of uvicorn's supervisor (spawn also starts a resource tracker)."""
    found = set()
    for child in children(pid):  # from /proc: no dependency on procps' pgrep
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if b"multiprocessing.spawn" in cmdline:
            found.add(child)
    return found


def test_serve_with_workers_restarts_a_dead_worker_and_stops_cleanly(db_url, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(db_url, port, 2, log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        workers = _workers(proc.pid)
        assert len(workers) == 2, log.read_text()

        # a second server on the same port fails at once, naming the cause
        other = _serve(db_url, port, 2, tmp_path / "other.log")
        assert other.wait(timeout=60) != 0
        assert "address already in use" in (tmp_path / "other.log").read_text().lower()

        # a worker that dies is replaced, and the port keeps answering meanwhile
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _workers(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.3)
        assert len(_workers(proc.pid)) == 2 and victim not in _workers(proc.pid), log.read_text()
        for _ in range(10):
            _wait_healthy(base, proc, log)
        survivors = _workers(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
    for pid in survivors:  # no orphaned worker keeps the port
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/health", timeout=2)


class _Load:
    """``threads`` clients sending ``GET /health`` back to back, each request on a new
    connection (as a reload would meet them: a kept-alive connection belongs to one worker),
    until stopped; what each got."""

    def __init__(self, base: str, threads: int = 4):
        self.base, self.stop, self.outcomes = base, threading.Event(), []
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.outcomes.append(httpx.get(f"{self.base}/health", timeout=30).status_code)
            except httpx.HTTPError as exc:
                self.outcomes.append(repr(exc))

    def __enter__(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def _sighup_under_load(db_url: str, tmp_path: Path, env: dict[str, str]) -> tuple[set, set, list, str]:
    """Serve with 2 workers, send SIGHUP to the supervisor while clients keep asking, and
    wait up to 120 s for both workers to be replaced; the workers before and after, what the
    clients got, and the server's log."""
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(db_url, port, 2, log, env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        before = _workers(proc.pid)
        assert len(before) == 2, log.read_text()
        with _Load(base) as load:
            time.sleep(1)
            os.kill(proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                text = log.read_text()
                after = _workers(proc.pid)
                if ("aborting the restart" in text
                        or (len(after) == 2 and not after & before)):
                    break
                time.sleep(0.3)
            time.sleep(1)  # requests to the new workers too
        after = _workers(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    return before, after, load.outcomes, log.read_text()


def test_sighup_under_load_replaces_every_worker_without_failing_a_request(db_url, tmp_path):
    """A reload (SIGHUP to uvicorn's supervisor, `systemctl reload casegrid`) starts each new
    worker and retires the old one once the new one is serving. The wait for a new worker
    is CASEGRID_SERVE_WORKER_HEALTHCHECK_S (60 s): uvicorn's own 5 s is shorter than a
    worker's start on a busy machine, and uvicorn then gives the restart up."""
    before, after, outcomes, log = _sighup_under_load(db_url, tmp_path, {})
    assert "aborting the restart" not in log, log
    assert len(after) == 2 and not after & before, log
    assert outcomes and set(outcomes) == {200}, [o for o in outcomes if o != 200][:5]
