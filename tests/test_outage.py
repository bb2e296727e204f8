"""Database outage under a steady intake load (issue 6, part 3).

The test starts its OWN PostGIS cluster (stopping the shared session cluster would break
every other test), serves the API from it with uvicorn in a subprocess, drives eight
intake clients, stops PostgreSQL for ten seconds (a fast shutdown, as an operator's restart
or a failover does) and starts it again, with the load running throughout.

What must hold:

* while the database is down every answer is 503 with a ``Retry-After`` header: never a
  500, never a hang (each request completes well within the client timeout);
* afterwards the API recovers by itself (201s again, same server process);
* every case acknowledged with 201 (or 200 for a re-sent ticket) is in the database under
  the id the client was given, and no ``(channel, external_id)`` exists twice, although
  clients re-send every 503 with the same ``external_id``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from casegrid.cluster import Cluster, free_port
from casegrid.db import make_engine, migrate
from cases.tokens import create_token
from tests.helpers.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow

CLIENTS = 8
CLIENT_TIMEOUT_S = 15.0
WARM_S = 5.0
DOWN_S = 10.0
AFTER_S = 10.0
# An impatient client: re-sends a 503 after this long instead of the Retry-After, so the
# outage sees many requests (a stricter test than a polite client).
RETRY_PAUSE_S = 0.25
# After PostgreSQL accepts connections again, every request started this much later must
# succeed (the pool has had time to drop its dead connections).
RECOVERY_GRACE_S = 3.0


# --- the server under test ------------------------------------------------------------------


@dataclass
class Stack:
    """A cluster of our own, its database URL, a running API and an intake token."""

    cluster: Cluster
    url: str
    base: str
    token: str
    server_log: Path


def _start_api(url: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "info"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop_api(proc)
    raise RuntimeError(f"the API did not answer /health within 60 s: {log_path.read_text()}")


def _stop_api(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group only
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def own_city_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, str, str]]:
    """A cluster of our own (durable settings: an acknowledged commit must survive the
    restart), migrated, with the sample city and an intake token: (cluster, url, token)."""
    from casegrid.demo.city import load_sample_city

    cluster = Cluster(data_dir=tmp_path / "pg", port=free_port(), db_name="casegrid")
    try:
        cluster.start()
        cluster.create_database("casegrid")
        url = cluster.url()
        migrate(url)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                load_sample_city(conn)
                _, token = create_token(conn, "intake", "outage test")
        finally:
            engine.dispose()
        yield cluster, url, token
    finally:
        cluster.destroy()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Own cluster with the sample city, API served from a subprocess."""
    with own_city_cluster(tmp_path) as (cluster, url, token):
        log_path = tmp_path / "api.log"
        proc, base = _start_api(url, log_path)
        try:
            yield Stack(cluster, url, base, token, log_path)
        finally:
            _stop_api(proc)


def _points(url: str, n: int) -> list[tuple[float, float]]:
    """Points inside the sample city's communities, computed by PostGIS (not the router)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, 4, 7))).geom AS p "
                "FROM community) s ORDER BY 1, 2 LIMIT :n"), {"n": n}).all()
    finally:
        engine.dispose()
    assert rows, "the sample city has no communities"
    return [(float(x), float(y)) for x, y in rows]


# --- the load -------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP request: when it started and ended (monotonic), what came back."""

    external_id: str
    start: float
    end: float
    status: int  # 0: no response (timeout, connection error)
    retry_after: str | None = None
    case_id: int | None = None
    error: str | None = None


@dataclass
class Load:
    attempts: list[Attempt] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)  # external_id -> case id
    health: list[Attempt] = field(default_factory=list)


async def _client(http: httpx.AsyncClient, k: int, points, stop: asyncio.Event, load: Load) -> None:
    n = 0
    while not stop.is_set():
        ext = f"outage-{k}-{n}"
        lon, lat = points[(k * 7919 + n) % len(points)]
        body = {"lon": lon, "lat": lat, "crs": "wgs84", "category": "0599", "channel": "platform",
                "external_id": ext, "description": "停电演练: 夜间噪音", "address": "滕州市"}
        # Re-send the same ticket until it is acknowledged, even after the load is told to
        # stop: every ticket the client started must end up acknowledged exactly once.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                resp = await http.post("/api/v1/cases", json=body)
            except httpx.HTTPError as exc:
                load.attempts.append(Attempt(ext, t0, time.monotonic(), 0, error=repr(exc)))
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            attempt = Attempt(ext, t0, time.monotonic(), resp.status_code,
                              resp.headers.get("retry-after"))
            load.attempts.append(attempt)
            if resp.status_code in (200, 201):
                attempt.case_id = resp.json()["id"]
                load.acked[ext] = attempt.case_id
                break
            if resp.status_code != 503:
                attempt.error = resp.text[:300]
            await asyncio.sleep(RETRY_PAUSE_S)
        n += 1


async def _health_probe(http: httpx.AsyncClient, stop: asyncio.Event, load: Load) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            resp = await http.get("/health")
            load.health.append(Attempt("health", t0, time.monotonic(), resp.status_code,
                                       resp.headers.get("retry-after")))
        except httpx.HTTPError as exc:
            load.health.append(Attempt("health", t0, time.monotonic(), 0, error=repr(exc)))
        await asyncio.sleep(0.5)


async def _run_outage(st: Stack, points) -> tuple[Load, dict[str, float]]:
    load = Load()
    stop = asyncio.Event()
    marks: dict[str, float] = {}
    limits = httpx.Limits(max_connections=CLIENTS + 2, max_keepalive_connections=CLIENTS + 2)
    headers = {"Authorization": f"Bearer {st.token}"}
    async with httpx.AsyncClient(base_url=st.base, headers=headers, limits=limits,
                                 timeout=CLIENT_TIMEOUT_S) as http:
        tasks = [asyncio.create_task(_client(http, k, points, stop, load)) for k in range(CLIENTS)]
        tasks.append(asyncio.create_task(_health_probe(http, stop, load)))
        await asyncio.sleep(WARM_S)
        marks["stopping"] = time.monotonic()
        await asyncio.to_thread(st.cluster.stop)
        marks["down"] = time.monotonic()
        await asyncio.sleep(DOWN_S)
        marks["starting"] = time.monotonic()
        await asyncio.to_thread(st.cluster.start)
        marks["up"] = time.monotonic()
        await asyncio.sleep(AFTER_S)
        stop.set()
        await asyncio.gather(*tasks)
    marks["end"] = time.monotonic()
    return load, marks


# --- the test -------------------------------------------------------------------------------


def test_intake_survives_a_database_restart(stack: Stack) -> None:
    points = _points(stack.url, 200)
    load, marks = asyncio.run(_run_outage(stack, points))
    log_text = stack.server_log.read_text(errors="replace")

    statuses: dict[int, int] = {}
    for a in load.attempts:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    max_latency = max(a.end - a.start for a in load.attempts + load.health)
    summary = (f"statuses {statuses}, max latency {max_latency:.2f} s, "
               f"acked {len(load.acked)}, marks {marks}")
    print(summary)

    # Never a hang, never a 500: only success, or 503 with a Retry-After a client can use.
    no_answer = [a for a in load.attempts + load.health if a.status == 0]
    assert not no_answer, f"requests without an answer: {no_answer[:3]}; {summary}"
    assert max_latency < CLIENT_TIMEOUT_S, summary
    unexpected = [a for a in load.attempts if a.status not in (200, 201, 503)]
    assert not unexpected, f"unexpected answers: {unexpected[:3]}; {summary}"
    for a in load.attempts + load.health:
        if a.status == 503:
            assert a.retry_after is not None and int(a.retry_after) > 0, a
    assert "Traceback" not in log_text, log_text[-3000:]

    # While it is down, everything is a 503 (the health check too), and there were many.
    down = [a for a in load.attempts if a.start >= marks["down"] and a.end <= marks["starting"]]
    assert len(down) >= CLIENTS * 5, summary
    assert {a.status for a in down} == {503}, summary
    health_down = [a for a in load.health if a.start >= marks["down"] and a.end <= marks["starting"]]
    assert health_down and {a.status for a in health_down} == {503}

    # Before and after: the API works; after the restart it recovered on its own.
    before = [a for a in load.attempts if a.end < marks["stopping"]]
    assert before and {a.status for a in before} <= {200, 201}
    after = [a for a in load.attempts if a.start >= marks["up"] + RECOVERY_GRACE_S]
    assert len(after) >= CLIENTS * 5, summary
    assert {a.status for a in after} <= {200, 201}, summary
    health_after = [a for a in load.health if a.start >= marks["up"] + RECOVERY_GRACE_S]
    assert health_after and {a.status for a in health_after} == {200}

    # Every ticket a client started was acknowledged in the end (retries after the restart).
    started = {a.external_id for a in load.attempts}
    assert started == set(load.acked), started - set(load.acked)

    _assert_ledger_matches(stack.url, load.acked)
    _assert_resend_returns_first_case(stack, load.acked)


def _assert_ledger_matches(url: str, acked: dict[str, int]) -> None:
    """Nothing lost (every acknowledged id is stored under its ticket), nothing doubled."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = {r.external_id: r.id for r in conn.execute(text(
                "SELECT id, external_id FROM \"case\" "
                "WHERE channel = 'platform' AND external_id LIKE 'outage-%'"))}
            doubled = conn.execute(text(
                "SELECT channel, external_id, count(*) FROM \"case\" "
                "WHERE external_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1")).all()
            events = conn.execute(text(
                "SELECT count(*) FILTER (WHERE n <> 1) FROM (SELECT c.id, "
                "count(e.*) FILTER (WHERE e.action = 'register') AS n FROM \"case\" c "
                "LEFT JOIN case_event e ON e.case_id = c.id GROUP BY c.id) s")).scalar_one()
    finally:
        engine.dispose()
    assert not doubled
    lost = {ext: cid for ext, cid in acked.items() if stored.get(ext) != cid}
    assert not lost, f"acknowledged but not stored as acknowledged: {list(lost.items())[:5]}"
    # No case the clients were never told about (each started ticket was acknowledged).
    assert set(stored) == set(acked)
    assert events == 0, "every case has exactly one register event"


def _assert_resend_returns_first_case(st: Stack, acked: dict[str, int]) -> None:
    """Re-sending acknowledged tickets after the outage gives the first case back (200)."""
    headers = {"Authorization": f"Bearer {st.token}"}
    sample = sorted(acked)[:: max(1, len(acked) // 20)]
    with httpx.Client(base_url=st.base, headers=headers, timeout=CLIENT_TIMEOUT_S) as http:
        for ext in sample:
            resp = http.post("/api/v1/cases", json={
                "lon": 117.16, "lat": 35.09, "category": "0599", "channel": "platform",
                "external_id": ext, "description": "重复提交"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["id"] == acked[ext]


# --- the commit itself fails ------------------------------------------------------------------


def test_case_is_acknowledged_only_after_its_commit(city_db_url, city_engine) -> None:
    """The connection dies between the handler and the COMMIT: the client must not have
    been told 201 (the case is not stored); it gets a 503, and its retry stores the case once.

    A request's transaction is committed by the ``get_conn`` dependency's exit. Were that to
    run after the response is sent, a 201 could go out for a case that is then lost.
    """
    import psycopg
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from api.app import create_app

    with city_engine.begin() as conn:
        _, token = create_token(conn, "intake", "commit test")
    app = create_app(database_url=city_db_url)
    armed = {"on": False}
    killer = psycopg.connect(city_db_url.replace("postgresql+psycopg://", "postgresql://"),
                             autocommit=True)

    def _kill_before_commit(conn) -> None:  # noqa: ANN001 - SQLAlchemy event signature
        if armed["on"]:
            armed["on"] = False
            pid = conn.connection.dbapi_connection.info.backend_pid
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))

    body = {"lon": 117.16, "lat": 35.09, "category": "0599", "channel": "platform",
            "external_id": "commit-dies-1", "description": "提交时断线"}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with TestClient(app) as client:
            event.listen(app.state.engine, "commit", _kill_before_commit)
            armed["on"] = True
            first = client.post("/api/v1/cases", json=body, headers=headers)
            assert not armed["on"], "the commit hook did not run"
            assert first.status_code == 503, first.text
            assert first.headers.get("retry-after")
            with city_engine.connect() as conn:
                assert conn.execute(text(
                    "SELECT count(*) FROM \"case\" WHERE external_id = 'commit-dies-1'")).scalar_one() == 0
            again = client.post("/api/v1/cases", json=body, headers=headers)
            assert again.status_code == 201, again.text
            resent = client.post("/api/v1/cases", json=body, headers=headers)
            assert resent.status_code == 200 and resent.json()["id"] == again.json()["id"]
    finally:
        killer.close()
    with city_engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM \"case\" WHERE external_id = 'commit-dies-1'")).scalar_one() == 1


# --- which database errors are a 503 ------------------------------------------------------------


def test_refused_connection_is_unavailable_not_a_bug(tmp_path) -> None:
    """A real refused connection (nothing listens on the port) is a connection problem."""
    from sqlalchemy.exc import DBAPIError

    from api.errors import is_connection_problem

    engine = make_engine(f"postgresql+psycopg://casegrid@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(DBAPIError) as caught:
            engine.connect()
    finally:
        engine.dispose()
    assert is_connection_problem(caught.value)
    assert is_connection_problem(caught.value.orig)


@pytest.mark.parametrize(("error", "unavailable"), [
    ("AdminShutdown", True),        # 57P01: fast stop ends the session
    ("CrashShutdown", True),        # 57P02
    ("CannotConnectNow", True),     # 57P03: "the database system is starting up"
    ("TooManyConnections", True),   # 53300
    ("ConnectionFailure", True),    # 08006
    ("SqlclientUnableToEstablishSqlconnection", True),  # 08001
    ("UniqueViolation", False),     # a bug or a race the code must handle: not a 503
    ("SyntaxError", False),
    ("UndefinedTable", False),
    ("QueryCanceled", False),       # statement timeout: a slow query, not an outage
])
def test_sqlstate_decides_not_the_message(error: str, unavailable: bool) -> None:
    """The decision rests on SQLSTATE (server messages are localised), for the wrapped and
    the raw driver error alike."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    from api.errors import is_connection_problem

    orig = getattr(psycopg.errors, error)("connection terminated: server closed the connection")
    wrapped = DBAPIError.instance("SELECT 1", {}, orig, psycopg.Error)
    assert is_connection_problem(orig) is unavailable
    assert is_connection_problem(wrapped) is unavailable


def test_statement_error_on_a_live_database_is_a_500(city_db_url) -> None:
    """A failing statement on a healthy connection stays a 500 (it is a bug to fix)."""
    from sqlalchemy.exc import DBAPIError

    from api.errors import is_connection_problem

    engine = make_engine(city_db_url)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()
    assert not is_connection_problem(caught.value)


# --- the bulk import, cut off halfway ----------------------------------------------------------

IMPORT_ROWS = 30_000
PREFIX_ROWS = 1_000


def _casegrid_cli() -> list[str]:
    script = Path(sys.executable).parent / "casegrid"
    return [str(script)] if script.exists() else [sys.executable, "-m", "casegrid.cli"]


def _import_cmd(path: Path, tmp_path: Path) -> list[str]:
    return [*_casegrid_cli(), "cases", "import", str(path), "--mapping", "hotline12345_zh",
            "--rejects", str(tmp_path / f"{path.stem}.rejects.csv"), "--commit"]


def _ledger(engine) -> tuple[int, int, int, dict[str, int]]:  # noqa: ANN001
    """(cases, distinct tickets, register events, {external_id: id} of the prefix)."""
    with engine.connect() as conn:
        cases, tickets = conn.execute(text(
            "SELECT count(*), count(DISTINCT (channel, external_id)) FROM \"case\"")).one()
        events = conn.execute(text(
            "SELECT count(*) FROM case_event WHERE action = 'register'")).scalar_one()
        first = dict(conn.execute(text(
            "SELECT external_id, id FROM \"case\" ORDER BY id LIMIT :n"), {"n": PREFIX_ROWS}).all())
    return cases, tickets, events, first


def _wait_blocked_insert(engine, blocker_pid: int, proc: subprocess.Popen) -> int:  # noqa: ANN001
    """Wait until the import's INSERT INTO "case" waits on the blocker's row lock: it is then
    halfway through writing the cases (rows in file order, the blocked ticket in the middle).
    Returns the import backend's pid."""
    deadline = time.monotonic() + 300
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the import ended ({proc.returncode}) before it blocked"
            row = conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE :b = ANY(pg_blocking_pids(pid)) "
                "AND query LIKE '%INSERT INTO \"case\"%'"), {"b": blocker_pid}).first()
            conn.rollback()
            if row:
                return row.pid
            time.sleep(0.05)
    raise AssertionError("the import never reached its INSERT within 300 s")


def _hold_ticket(engine, channel: str, external_id: str):  # noqa: ANN001, ANN202
    """Open a transaction that registers ``external_id`` and does not commit: the import's
    INSERT ... ON CONFLICT must wait for it when it reaches that ticket."""
    from cases.intake import NewCase, create_case
    from cases.tokens import Principal

    conn = engine.connect()
    conn.begin()
    create_case(conn, NewCase(address="滕州市 (blocker)", category="0599", channel=channel,
                              external_id=external_id, description="lock holder"),
                Principal(0, "outage test", "admin"))
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return conn, pid


def test_bulk_import_cut_off_halfway_then_rerun_stores_each_row_once(tmp_path: Path) -> None:
    """``casegrid cases import --commit`` stopped in the middle of writing the cases, first
    by SIGKILL, then by stopping PostgreSQL under it: nothing of it stays; a re-run stores
    every row exactly once, and cases committed before keep their ids.

    The import is caught halfway deterministically (no race with a fast machine): another
    transaction holds the ticket of the middle row, so the INSERT, which writes rows in file
    order, waits there with half the cases written and not committed.
    """
    import csv as csv_module

    from casegrid.demo.complaints import write_sample_csv
    from cases.mappings import load_mapping

    big = write_sample_csv(tmp_path / "big.csv", n=IMPORT_ROWS, seed=29)
    with big.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv_module.DictReader(fh))
    assert len(rows) == IMPORT_ROWS
    prefix = tmp_path / "prefix.csv"
    with prefix.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv_module.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:PREFIX_ROWS])
    mapping = load_mapping("hotline12345_zh")
    middle = rows[IMPORT_ROWS // 2]
    mid_channel = mapping.channel_map.get(middle["来源渠道"].strip(), mapping.channel_default)
    mid_ticket = middle["工单编号"]

    with own_city_cluster(tmp_path) as (cluster, url, _token):
        env = dict(os.environ, DATABASE_URL=url)
        done = subprocess.run(_import_cmd(prefix, tmp_path), env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        engine = make_engine(url)
        try:
            before = _ledger(engine)
            assert before[:3] == (PREFIX_ROWS, PREFIX_ROWS, PREFIX_ROWS)

            # 1. SIGKILL while the INSERT is halfway.
            holder, holder_pid = _hold_ticket(engine, mid_channel, mid_ticket)
            proc = subprocess.Popen(_import_cmd(big, tmp_path), env=env, cwd=PROJECT_ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                backend = _wait_blocked_insert(engine, holder_pid, proc)
                proc.send_signal(signal.SIGKILL)  # our own child, by its pid
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                holder.rollback()
                holder.close()
            # The orphaned backend finishes its statement, finds its client gone, rolls back.
            deadline = time.monotonic() + 120
            with engine.connect() as conn:
                while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                   {"p": backend}).scalar_one():
                    conn.rollback()
                    assert time.monotonic() < deadline, "the killed import's backend lingers"
                    time.sleep(0.1)
            assert _ledger(engine) == before

            # 2. PostgreSQL stops (fast shutdown) while the INSERT is halfway.
            holder, holder_pid = _hold_ticket(engine, mid_channel, mid_ticket)
            proc = subprocess.Popen(_import_cmd(big, tmp_path), env=env, cwd=PROJECT_ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_blocked_insert(engine, holder_pid, proc)
                cluster.stop()
                proc.wait(timeout=60)  # fails promptly, never hangs
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                holder.invalidate()
                holder.close()
            assert proc.returncode != 0, "an import cut off by the outage must not report success"
            cluster.start()
            engine.dispose()  # connections of the stopped server are dead
            assert _ledger(engine) == before

            # 3. Re-run to the end: every row once, the earlier cases untouched.
            done = subprocess.run(_import_cmd(big, tmp_path), env=env, cwd=PROJECT_ROOT,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr
            cases, tickets, events, first = _ledger(engine)
            assert (cases, tickets, events) == (IMPORT_ROWS, IMPORT_ROWS, IMPORT_ROWS)
            assert first == before[3]
        finally:
            engine.dispose()
