"""The real `casegrid worker` process: killed mid-batch and restarted, every event is
delivered; two at once, no event is sent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from casegrid.heartbeat import last_heartbeat
from tests.helpers.ledger import make_case
from tests.helpers.notify_peers import Receiver

pytestmark = pytest.mark.slow
CASEGRID = str(Path(sys.executable).with_name("casegrid"))


def _events(engine, n: int) -> set[int]:
    """``n`` events of one case in the outbox, as intake would have written them."""
    from cases.notices import record

    with engine.begin() as conn:
        cid = make_case(conn)
        record(conn, "case.registered", [cid])
        conn.execute(text(
            "INSERT INTO outbox_event (type, case_id, recipients, payload) "
            "SELECT type, case_id, recipients, payload FROM outbox_event, generate_series(2, :n)"),
            {"n": n})
        return set(conn.execute(text("SELECT id FROM outbox_event")).scalars())


def _worker(db_url: str, url: str, name: str, **env) -> subprocess.Popen:
    full = {**os.environ, "DATABASE_URL": db_url, "CASEGRID_WEBHOOK_URL": url,
            "CASEGRID_WORKER_POLL_S": "0.1", **{k.upper(): str(v) for k, v in env.items()}}
    return subprocess.Popen([CASEGRID, "worker", "--name", name], env=full,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _delivered(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM outbox_delivery WHERE status = 'delivered'")).scalar_one()


def _wait(check, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_killed_mid_batch_then_restarted_delivers_everything(city_engine, city_db_url):
    ids = _events(city_engine, 300)
    with Receiver(delay_s=0.01) as rx:
        first = _worker(city_db_url, rx.url, "w1", CASEGRID_WORKER_BATCH=50,
                        CASEGRID_WORKER_CONCURRENCY=2)
        try:
            assert rx.wait_for(lambda got: len(got) >= 80, timeout=90), first.stderr
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        stored = _delivered(city_engine)
        assert stored < 300  # the batch it died in was not recorded
        second = _worker(city_db_url, rx.url, "w2", CASEGRID_WORKER_BATCH=50,
                         CASEGRID_WORKER_CONCURRENCY=2)
        try:
            assert _wait(lambda: _delivered(city_engine) == 300)
        finally:
            second.terminate()
            second.wait(timeout=30)
        seen = Counter(int(r.headers["X-Casegrid-Delivery"]) for r in rx.requests)
    assert set(seen) == ids                      # none missing
    assert max(seen.values()) >= 2               # the killed batch was sent again
    assert all(json.loads(r.body)["id"] == int(r.headers["X-Casegrid-Delivery"])
               for r in rx.requests)


def test_two_workers_never_send_an_event_twice(city_engine, city_db_url):
    with Receiver(delay_s=0.005) as rx:
        workers = [_worker(city_db_url, rx.url, f"pair-{i}", CASEGRID_WORKER_BATCH=20,
                           CASEGRID_WORKER_CONCURRENCY=2) for i in range(2)]
        try:
            with city_engine.connect() as conn:  # both running before there is work
                assert _wait(lambda: conn.execute(text(
                    "SELECT count(*) FROM worker_heartbeat")).scalar_one() == 2, timeout=60)
                assert last_heartbeat(conn, "pair-0") is not None
            ids = _events(city_engine, 600)
            assert _wait(lambda: _delivered(city_engine) == 600)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                assert w.wait(timeout=30) == 0   # SIGTERM ends the loop cleanly
        seen = Counter(int(r.headers["X-Casegrid-Delivery"]) for r in rx.requests)
    assert set(seen) == ids and max(seen.values()) == 1
    with city_engine.connect() as conn:
        by_worker = dict(conn.execute(text(
            "SELECT worker, count(*) FROM outbox_attempt GROUP BY worker")).all())
    assert set(by_worker) == {"pair-0", "pair-1"} and sum(by_worker.values()) == 600
