"""Intake batching (group commit): concurrent submissions share a transaction.

Each case costs a handful of statements (the lookups of tokens, categories, time limits and
boundaries in one, the routing, the insert, the duplicates) and a COMMIT with its fsync.
Under load, a worker gathers the submissions that arrive while the database is busy with
the previous batch and registers them together (:func:`cases.intake.register_cases`): the
same statements and one COMMIT per batch instead of per case. With one request at a time a
batch is that one request: nothing ever waits for company (there is no timer), so a quiet
server answers as fast as before.

Each submission keeps its own outcome. A bad token, a role that may not submit, an unknown
category or bad coordinates fail only that submission (401/403/422 in the API). Tokens are
read with the batch's other lookups on the batch's connection, the one connection that
serves the request (the route holds none while it waits). If the database refuses a
value in the batch (a data or integrity error: something one submission carries), the
submissions are retried one per transaction, so one request the database cannot take never
costs the others theirs. Any other failure (database unreachable, statement timeout) goes to
every submission of the batch (a 503 the client retries); nothing was committed, or the
batch was committed entirely.

The API's route (``POST /api/v1/cases``) parses the body with FastAPI, then awaits
:meth:`IntakeBatcher.submit`; its response is sent only after the COMMIT (the futures are
resolved once the transaction is over), as for every other write in the API. The nearby-duplicates search runs after the
COMMIT, so a batch does not hold the statistics rows it updated (which the next batch
needs) while it searches, and the next batch's transaction starts meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from casegrid import metrics
from casegrid.errors import CasegridError
from casegrid.logs import get_logger
from casegrid.settings import Settings
from cases.intake import (
    SUBMITTERS,
    IntakeResult,
    NewCase,
    add_possible_duplicates,
    register_cases,
)
from cases.intake_lookups import fetch_intake_lookups
from cases.tokens import Principal, hash_token, principals_from_rows, role_refusal

log = get_logger("casegrid.intake")


@dataclass
class Accepted:
    """A registered (or already known) case and who submitted it."""

    principal: Principal
    result: IntakeResult


@dataclass
class _Pending:
    secret: str | None
    data: NewCase
    future: asyncio.Future = field(repr=False)


def register_batch(engine: Engine, items: list[tuple[str | None, NewCase]],
                   settings: Settings) -> list[Accepted | CasegridError]:
    """Authenticate and register ``(token secret, submission)`` items in one transaction, then search
    their possible duplicates; each item's outcome in order (exceptions are returned, not
    raised, except the database's own)."""
    with engine.connect() as conn:
        out = register_batch_committed(conn, items, settings)
        search_duplicates_after_commit(conn, out)
    return out


def register_batch_committed(
        conn: Connection, items: list[tuple[str | None, NewCase]],
        settings: Settings) -> list[Accepted | CasegridError]:
    """The transaction of :func:`register_batch`, on ``conn`` (no transaction open):
    outcomes once committed, the accepted cases still without their possible duplicates."""
    out: list[Accepted | CasegridError | None] = [None] * len(items)
    with conn.begin():
        _register(conn, items, settings, out)
    return out  # type: ignore[return-value]


def search_duplicates_after_commit(conn: Connection, outcomes: list) -> None:
    """Fill the possible duplicates of the accepted outcomes of a batch just committed on
    ``conn`` (see :func:`cases.intake.register_cases`). The cases are stored whatever
    happens here, so a failed search leaves their lists empty instead of failing requests
    whose case exists."""
    registered = [o.result for o in outcomes if isinstance(o, Accepted)]
    if not any(r.duplicate_query for r in registered):
        return
    try:
        # A single read, in autocommit, as casegrid.db.single_read: one round trip, no
        # BEGIN/COMMIT around it and no ROLLBACK after it (tests/test_intake_batch.py checks
        # that the statements stay prepared). The pool restores the isolation level when
        # the connection goes back.
        conn.execution_options(isolation_level="AUTOCOMMIT")
        add_possible_duplicates(conn, registered)
    except (SQLAlchemyError, psycopg.Error) as exc:  # the driver's own, e.g. from autocommit=
        log.warning("possible-duplicates search failed after registering %d cases: %s",
                    len(registered), exc)


def _register(conn: Connection, items: list[tuple[str | None, NewCase]], settings: Settings,
              out: list) -> None:
    """The transactional part of :func:`register_batch`: each item's outcome into ``out``.
    The tokens are read with everything else the submissions need, in one statement
    (:mod:`cases.intake_lookups`); a refused token or role is the answer, whatever the
    submission."""
    datas = [data for _secret, data in items]
    lookups = fetch_intake_lookups(
        conn, token_hashes=[hash_token(s) for s, _ in items if s],
        codes=[d.category for d in datas], pairs=[(d.category, d.channel) for d in datas])
    principals = principals_from_rows([secret for secret, _ in items], lookups.tokens)
    accepted: list[tuple[int, Principal]] = []
    submissions: list[tuple[NewCase, Principal]] = []
    for i, (secret, data) in enumerate(items):
        who = principals[secret]
        refusal = who if isinstance(who, CasegridError) else role_refusal(who, SUBMITTERS)
        if refusal is not None:
            out[i] = refusal
            continue
        accepted.append((i, who))
        submissions.append((data, who))
    results = register_cases(conn, submissions, settings, search_duplicates=False,
                             lookups=lookups)
    for (i, who), result in zip(accepted, results, strict=True):
        out[i] = result if isinstance(result, CasegridError) else Accepted(who, result)


class IntakeBatcher:
    """Gathers submissions and registers them in batches; see the module docstring.

    ``max_batch`` caps a batch; ``in_flight`` batch transactions may be open at once (while
    one waits for its COMMIT, the next one is routed). A committed batch's duplicate search
    does not count: it runs beside the next transaction.
    """

    def __init__(self, engine: Engine, settings: Settings, *, max_batch: int = 64,
                 in_flight: int = 1):
        self.engine = engine
        self.settings = settings
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self.batches = 0
        self.cases = 0

    async def start(self) -> None:
        """Start gathering (call from the app's lifespan, on its event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._gather())

    async def stop(self) -> None:
        """Finish the batches at the database, then refuse what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the server is shutting down"))

    async def submit(self, secret: str | None, data: NewCase) -> Accepted:
        """Register one submission presented with token ``secret``; raises its own error
        (``CasegridError``, or the database's)."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(secret, data, future))
        return await future

    async def _gather(self) -> None:
        slots = asyncio.Semaphore(self.in_flight)
        while True:
            await slots.acquire()
            batch = [await self._queue.get()]
            # Whatever queued up while the previous batches were at the database rides along.
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.get_running_loop().create_task(self._run(batch, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Pending], slots: asyncio.Semaphore) -> None:
        items = [(p.secret, p.data) for p in batch]
        loop = asyncio.get_running_loop()

        def release() -> None:  # from the worker thread, once the transaction is over
            loop.call_soon_threadsafe(slots.release)

        try:
            outcomes = await anyio.to_thread.run_sync(self._register_and_search, items, release)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            outcomes = [exc] * len(batch)
        self.batches += 1
        self.cases += len(batch)
        metrics.INTAKE_BATCH.observe(len(batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the client went away
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def _register_and_search(self, items: list[tuple[str | None, NewCase]],
                             release: Callable[[], None]) -> list:
        """Register the batch, call ``release`` as soon as its transaction is over
        (committed or failed: the next batch may go to the database), then search the
        duplicates on the same connection."""
        try:
            conn = self.engine.connect()
        except BaseException:
            release()
            raise
        with conn:
            try:
                outcomes = self._register(conn, items)
            finally:
                release()
            search_duplicates_after_commit(conn, outcomes)
        return outcomes

    def _register(self, conn: Connection, items: list[tuple[str | None, NewCase]]) -> list:
        try:
            return register_batch_committed(conn, items, self.settings)
        except (DataError, IntegrityError) as exc:
            # A value one submission carries (the database's own check, not ours); any other
            # failure (unreachable, timed out, a bug) would only repeat per submission.
            if len(items) == 1:
                raise
            log.warning("intake batch of %d refused (%s); retrying one by one", len(items), exc)
        outcomes: list = []
        for item in items:
            try:
                outcomes.extend(register_batch_committed(conn, [item], self.settings))
            except Exception as exc:  # noqa: BLE001 - this submission's own error
                outcomes.append(exc)
        return outcomes
