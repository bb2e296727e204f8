"""No request holds one pooled connection while it waits for another.

A request that took a second connection (one to authenticate with, beside its
transaction's) would deadlock a full pool: every request holding one and waiting for
another, until the pool's timeout turned them all into 503s. Authentication therefore reads
the token on the request's own connection (``ConnDep``, solved once per request), and the
database gate (api/db_gate.py) queues requests on the event loop before they take one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest
from fastapi.routing import APIRoute

from api.app import create_app
from api.auth import current_principal
from api.db_gate import DatabaseGate, gate_slots, waits_its_turn
from api.deps import get_conn
from api.routes.maps import page_principal
from casegrid.settings import Settings
from maps.assets import REQUIRED
from tests.helpers.app_routes import walk_routes
from tests.helpers.map_pages import CITY_BBOX, make_token, seed_cases
from tests.helpers.server import running_server

AUTHENTICATION = {current_principal, page_principal}


def _dependants(dependant) -> list:  # noqa: ANN001 - a FastAPI Dependant
    """Every dependency of ``dependant``, nested ones included."""
    found = []
    for sub in dependant.dependencies:
        found += [sub, *_dependants(sub)]
    return found


def test_every_route_authenticates_on_its_own_single_connection():
    """FastAPI solves a dependency once per request for one (callable, scope): the
    authentication's connection and the handler's ``ConnDep`` must be that same one."""
    app = create_app(settings=Settings(database_url="postgresql://unused/none"),
                     database_url="postgresql://unused/none")
    checked = 0
    for path, route in walk_routes(app):
        if not isinstance(route, APIRoute):
            continue
        found = _dependants(route.dependant)
        if not AUTHENTICATION & {d.call for d in found}:
            continue
        checked += 1
        connections = {(d.call, d.scope) for d in found if d.call is get_conn}
        assert len(connections) == 1, f"{path}: {connections}"
        assert all(d.use_cache for d in found if d.call is get_conn), path
    assert checked >= 15  # the cases, workflow, geo, maps and hotspot routes


@pytest.fixture
def small_pool_server(city_engine, city_db_url):
    """The app with a pool of two connections on a loopback port (requests overlap). The
    queue lets one request at a time through, and a slow machine may take seconds to serve
    them all: a waiting request gets a minute before its 503 (a deadlock still shows as
    503s, after the pool's timeout, which is the same minute)."""
    seed_cases(city_engine, n_per_community=2)
    settings = Settings(database_url=city_db_url, tiles="none", pool_size=2, db_queue_wait_s=60)
    with running_server(create_app(settings=settings, database_url=city_db_url)) as base:
        yield base


def test_more_concurrent_requests_than_pooled_connections_all_succeed(small_pool_server, city_engine):
    with city_engine.connect() as conn:
        case_id = conn.exec_driver_sql('SELECT min(id) FROM "case" WHERE geom IS NOT NULL').scalar_one()
    paths = [f"/maps/api/cases?bbox={CITY_BBOX}", f"/maps/api/cases/{case_id}",
             f"/maps/cases/{case_id}", "/maps/dispatch", "/maps/hotspots",
             "/api/v1/hotspots/pois", f"/api/v1/cases/{case_id}", "/api/v1/cases"]
    headers = {"Authorization": f"Bearer {make_token(city_engine, 'dispatcher')}"}

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=small_pool_server, headers=headers, timeout=120) as client:
            return await asyncio.gather(*[client.get(p) for p in paths for _ in range(2)])

    answers = asyncio.run(fire())
    assert [r.status_code for r in answers] == [200] * len(answers), [
        (str(r.url), r.status_code, r.text[:200]) for r in answers if r.status_code != 200]


# --- the queue in front of the pool (api.db_gate) -------------------------------------------


def test_a_burst_larger_than_the_thread_pool_is_served_not_deadlocked(small_pool_server, city_engine):
    # 60 requests on one worker: more than its 40 threads. Without the queue, threads
    # blocked in the pool starve the requests that hold the connections of a thread to
    # finish on, and the answers are the pool's 503s, after its timeout.
    headers = {"Authorization": f"Bearer {make_token(city_engine, 'dispatcher')}"}

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=small_pool_server, headers=headers, timeout=120,
                                     limits=httpx.Limits(max_connections=60)) as client:
            return await asyncio.gather(*[client.get("/api/v1/cases?limit=5") for _ in range(60)])

    answers = asyncio.run(fire())
    assert [r.status_code for r in answers] == [200] * 60


def test_a_request_that_waits_too_long_for_its_turn_gets_a_503_to_retry(city_engine, city_db_url):
    # A pool of two leaves the queue one slot; the case table locked holds it.
    settings = Settings(database_url=city_db_url, tiles="none", pool_size=2, db_queue_wait_s=0.5)
    headers = {"Authorization": f"Bearer {make_token(city_engine, 'dispatcher')}"}
    with running_server(create_app(settings=settings, database_url=city_db_url)) as base, \
            httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        assert client.get("/health").status_code == 200
        with city_engine.connect() as locker, ThreadPoolExecutor(1) as pool:
            locker.exec_driver_sql('LOCK TABLE "case" IN ACCESS EXCLUSIVE MODE')
            held = pool.submit(client.get, "/api/v1/cases?limit=5")
            deadline = time.monotonic() + 10
            while not _waiting_on_lock(city_engine) and time.monotonic() < deadline:
                time.sleep(0.05)
            busy = client.get("/health")
            asset = client.get(f"/static/vendor/leaflet/{REQUIRED['leaflet'][0]}")
            docs = client.get("/openapi.json")
            locker.rollback()
            assert held.result(timeout=20).status_code == 200
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] and busy.json()["code"] == "database_unavailable"
    assert "retry" in busy.json()["detail"]
    # Files and the API's documentation need no connection and do not queue.
    assert asset.status_code == 200 and docs.status_code == 200


def _waiting_on_lock(engine) -> bool:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()").scalar_one() > 0


def test_the_gate_admits_its_slots_in_arrival_order():
    inside, most, order = [0], [0], []

    async def app(scope, receive, send):  # noqa: ANN001 - ASGI
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        order.append(scope["path"])
        await anyio.sleep(0.01)
        inside[0] -= 1

    gate = DatabaseGate(app, slots=3, wait_s=5)

    async def burst() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(gate, {"type": "http", "method": "GET", "path": f"/r{i}"}, None, None)
                await anyio.sleep(0)  # arrive one after the other

    anyio.run(burst)
    assert most[0] == 3
    assert order == [f"/r{i}" for i in range(20)]


@pytest.mark.parametrize(("method", "path", "queued"), [
    ("POST", "/api/v1/cases", False),  # the intake batcher has connections of its own
    ("GET", "/api/v1/cases", True),
    ("GET", "/static/vendor/leaflet/leaflet.js", False),
    ("GET", "/docs", False),
    ("GET", "/health", True),
    ("POST", "/open311/v2/requests.json", True),
])
def test_which_requests_queue(method, path, queued):
    assert waits_its_turn({"type": "http", "method": method, "path": path}) is queued
    # The same behind a proxy that serves the app under a prefix.
    scope = {"type": "http", "method": method, "path": "/casegrid" + path, "root_path": "/casegrid"}
    assert waits_its_turn(scope) is queued


def test_gate_slots_leave_the_intake_batcher_its_connections():
    assert gate_slots(15, 1) == 13
    assert gate_slots(15, 3) == 9
    assert gate_slots(2, 1) == 1  # never none


def test_a_turn_ends_when_the_response_starts():
    # The second request gets the only slot while the first is still sending its answer
    # (a slow client reading a large GeoJSON) and no longer needs the database.
    entered, sent = [], []
    finish = None

    async def app(scope, receive, send):  # noqa: ANN001 - ASGI
        entered.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/slow":
            await finish.wait()
        await send({"type": "http.response.body", "body": b""})

    async def record(message) -> None:  # noqa: ANN001
        sent.append(message["type"])

    gate = DatabaseGate(app, slots=1, wait_s=2)

    async def two() -> None:
        nonlocal finish
        finish = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate, {"type": "http", "method": "GET", "path": "/slow"}, None, record)
            await anyio.sleep(0.01)
            with anyio.fail_after(5):
                await gate({"type": "http", "method": "GET", "path": "/next"}, None, record)
            assert entered == ["/slow", "/next"]
            finish.set()

    anyio.run(two)
    assert sent.count("http.response.start") == 2


# --- a request's turn starts when its body has arrived -------------------------------------


def _body_app(entered: list, bodies: dict):
    """An ASGI app that reads the whole body, then answers; it records arrivals."""

    async def app(scope, receive, send):  # noqa: ANN001 - ASGI
        entered.append(scope["path"])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        bodies[scope["path"]] = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def _post(path: str, length: int | None = None) -> dict:
    headers = [(b"content-length", str(length).encode())] if length is not None else [
        (b"transfer-encoding", b"chunked")]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


def test_a_body_that_arrives_slowly_does_not_hold_a_turn():
    # The only turn goes to a request whose body is complete, not to one still waiting for
    # its second half; the slow one then gets its body whole and in order, and whatever the
    # server says after it (here a disconnect) still reaches the app.
    entered, bodies, after = [], {}, []
    second_half = None

    async def slow_receive():  # noqa: ANN202
        if not after:
            after.append("first")
            return {"type": "http.request", "body": b"abc", "more_body": True}
        if after == ["first"]:
            await second_half.wait()
            after.append("second")
            return {"type": "http.request", "body": b"def", "more_body": False}
        return {"type": "http.disconnect"}

    async def quick_receive():  # noqa: ANN202
        return {"type": "http.request", "body": b"xyz", "more_body": False}

    async def nothing(message) -> None:  # noqa: ANN001
        return None

    app = _body_app(entered, bodies)

    async def then_disconnect(scope, receive, send):  # noqa: ANN001 - ASGI
        await app(scope, receive, send)
        if scope["path"] == "/slow":
            after.append((await receive())["type"])

    gate = DatabaseGate(then_disconnect, slots=1, wait_s=2)

    async def two() -> None:
        nonlocal second_half
        second_half = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate, _post("/slow", 6), slow_receive, nothing)
            await anyio.sleep(0.01)
            with anyio.fail_after(5):
                await gate(_post("/quick", 3), quick_receive, nothing)
            assert entered == ["/quick"]
            second_half.set()

    anyio.run(two)
    assert entered == ["/quick", "/slow"]
    assert bodies == {"/quick": b"xyz", "/slow": b"abcdef"}
    assert after == ["first", "second", "http.disconnect"]


def test_a_client_that_hangs_up_mid_body_is_not_served_and_takes_no_turn():
    entered, bodies = [], {}
    gate = DatabaseGate(_body_app(entered, bodies), slots=1, wait_s=2)
    messages = iter([{"type": "http.request", "body": b"ab", "more_body": True},
                     {"type": "http.disconnect"}])

    async def receive():  # noqa: ANN202
        return next(messages)

    async def whole():  # noqa: ANN202
        return {"type": "http.request", "body": b"ok", "more_body": False}

    sent = []

    async def record(message) -> None:  # noqa: ANN001
        sent.append(message["type"])

    async def run() -> None:
        await gate(_post("/gone"), receive, record)
        with anyio.fail_after(2):  # the one turn is still free
            await gate(_post("/next", 2), whole, record)

    anyio.run(run)
    assert entered == ["/next"] and bodies == {"/next": b"ok"}
    assert sent == ["http.response.start", "http.response.body"]  # the next one's only


def test_an_error_met_while_reading_the_body_reaches_the_app_where_it_happened():
    # The request guard raises BodyTooLarge from receive() when a chunked body passes the
    # limit; the app must meet it after the chunks before it, and answer it itself.
    from api.middleware import BodyTooLarge

    met = []

    async def receive():  # noqa: ANN202
        if not met:
            met.append("chunk")
            return {"type": "http.request", "body": b"12", "more_body": True}
        if met == ["chunk"]:
            met.append("raised")
            raise BodyTooLarge(2)
        return {"type": "http.disconnect"}  # the server's next word: not the error again

    async def app(scope, receive, send):  # noqa: ANN001 - ASGI
        met.append((await receive())["body"])
        try:
            await receive()
        except BodyTooLarge as exc:
            met.append(exc.status_code)

    anyio.run(DatabaseGate(app, slots=1, wait_s=2), _post("/big"), receive, None)
    assert met == ["chunk", "raised", b"12", 413]


def test_a_stalled_upload_leaves_the_only_turn_to_others(small_pool_server):
    # A pool of two leaves one turn. A form whose body stops halfway (a phone losing its
    # signal) waits for the rest without it: /health is answered at once. Before, the
    # stalled form held the turn and /health waited for the queue's minute.
    host, port = small_pool_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as stalled, \
            httpx.Client(base_url=small_pool_server, timeout=30) as client:
        stalled.sendall(b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 200\r\n\r\napi_key=abc&service_code=")
        time.sleep(0.3)  # the server has the headers and half the body
        started = time.monotonic()
        health = client.get("/health")
        waited = time.monotonic() - started
    assert health.status_code == 200
    assert waited < 20, f"/health waited {waited:.1f} s behind a stalled upload"
