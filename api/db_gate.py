"""A first-come, first-served queue in front of the connection pool.

A worker's sync handlers run in a pool of 40 threads and take their connections from a
pool of ``pool_size`` (15). Without a queue in front, a burst of requests larger than the
pool turns into threads blocked inside ``QueuePool`` (each for up to its 10 s timeout),
which goes wrong two ways:

* the pool is not fair: a connection given back goes to whichever thread asks next, so
  some requests wait many times over;
* the threads run out: a request takes its connection (``ConnDep``, authentication
  included) in one thread and runs its handler in another. With every thread blocked in
  the pool, the requests that hold the connections never get a thread to finish on, and
  nothing moves until the pool's timeouts answer 503. Authentication reading the token on
  the request's own connection does not change this (tests/test_pool_waits.py: a burst
  larger than the thread pool deadlocks without the gate).

:class:`DatabaseGate` lets at most ``slots`` requests of a worker past it at once and queues
the rest on the event loop, in arrival order, where waiting costs no thread and no
connection. ``slots`` is the pool less the connections the intake batcher may hold, so a
request past the gate finds a connection free (each request holds at most one at a time:
tests/test_pool_waits.py). A request that waits longer than ``wait_s`` for its turn gets
the 503 the pool's timeout would have given, with ``Retry-After``.

Not queued: ``POST /api/v1/cases`` (the intake batcher registers those on its own
connections, :mod:`cases.intake_batch`); uploads of evidence files (``api.uploads``: they
spend most of their time decoding photos, without a connection, and take one only for a
short read and their transaction, two uploads at a time at most); and the static files
and API documentation, which need no database. A request's turn starts once its body has arrived (the gate reads it and
hands it on unchanged), so a client that sends a form or an action slowly, or stalls
halfway, waits on the event loop instead of holding a turn that the next dispatcher needs;
one that hangs up before its body is complete is not served at all. A turn ends when the
response starts: the handler has given its connection back by then (a streaming response
that reads the database while it sends would need its turn until the end; casegrid has
none).
"""

from __future__ import annotations

from collections import deque

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RETRY_AFTER_S
from api.middleware import is_upload, send_json
from api.routes.cases import INTAKE_PATH, PREFIX

NO_DATABASE_PREFIXES = ("/static/", "/docs", "/redoc", "/openapi.json")


def gate_slots(pool_size: int, intake_batches_in_flight: int) -> int:
    """Requests a worker lets at its pool at once: the pool less the intake batcher's
    connections (a batch's transaction and, beside the next one, its duplicate search),
    at least one."""
    return max(1, pool_size - 2 * intake_batches_in_flight)


def waits_its_turn(scope: Scope) -> bool:
    """Whether a request waits its turn at the gate (see the module docstring)."""
    if scope["type"] != "http":
        return False
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):  # behind a proxy's prefix: the app's own path
        path = path[len(root):]
    if path == PREFIX + INTAKE_PATH and scope.get("method") == "POST":
        return False
    if is_upload(scope, path):
        return False
    return not path.startswith(NO_DATABASE_PREFIXES)


class DatabaseGate:
    """ASGI middleware: at most ``slots`` requests at a time, first come first served;
    a request that waits past ``wait_s`` is answered 503."""

    def __init__(self, app: ASGIApp, slots: int, wait_s: float):
        self.app = app
        self.slots = slots
        self.wait_s = wait_s
        self._turns: anyio.Semaphore | None = None  # made on the serving event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not waits_its_turn(scope):
            await self.app(scope, receive, send)
            return
        if _has_body(scope):
            receive = await _received_body(receive)
            if receive is None:  # the client hung up before its body was complete
                return
        if self._turns is None:
            # anyio's semaphore hands a released turn to the longest waiter (no barging).
            self._turns = anyio.Semaphore(self.slots, fast_acquire=True)
        try:
            with anyio.fail_after(self.wait_s):
                await self._turns.acquire()
        except TimeoutError:
            await send_json(send, 503, {
                "detail": f"The server is busy: this request waited {self.wait_s:g} s for a "
                          "database connection; retry shortly.",
                "code": "database_unavailable"}, retry_after=RETRY_AFTER_S)
            return
        turns, released = self._turns, False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                turns.release()

        async def send_then_release(message: Message) -> None:
            # A response starts after its handler has given its connection back (ConnDep
            # commits before the response is sent): the turn ends here, so a client slow
            # to read a large answer does not keep others from the pool.
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a length above zero, or chunked)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            if value.strip().lstrip(b"0"):  # "0" is no body
                return True
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


async def _received_body(receive: Receive) -> Receive | None:
    """Read the request's body to its end, and return a ``receive`` that hands the app the
    same messages, then whatever the server sends next (a disconnect). None when the client
    disconnected first. An error while reading (the request guard's ``BodyTooLarge`` on a
    chunked body past the limit) is raised to the app at the point it was met, so the app's
    own handler answers it as before."""
    messages: deque[Message] = deque()
    error: Exception | None = None
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            messages.append(message)
            if not message.get("more_body", False):
                break
    except Exception as exc:  # noqa: BLE001 - handed on unchanged, see the docstring
        error = exc

    async def replay() -> Message:
        nonlocal error
        if messages:
            return messages.popleft()
        if error is not None:
            raised, error = error, None
            raise raised
        return await receive()

    return replay
