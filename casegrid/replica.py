"""Reads that may come from a hot standby, and the embedded cluster's standby.

:class:`ReadSource` hands out a connection for read-heavy work (hotspot analysis,
statistics, map data, exports): the standby's when ``CASEGRID_READ_DATABASE_URL`` is set, it
answers, and it is no further behind than ``CASEGRID_REPLICA_MAX_LAG_S``; the primary's
otherwise, with no error to the user. Every write, and every read that must see the
writer's latest state (a case page after an action, intake's duplicate search, workflow
checks), keeps using the primary's engine and never comes here.

A standby that cannot be reached is not tried again for ``RETRY_AFTER_S``: a dead host
would otherwise cost each request a connection timeout.

How far behind: when the standby has replayed everything its WAL receiver got and the
receiver is streaming, zero; otherwise the age of the last replayed transaction
(``pg_last_xact_replay_timestamp``), which on a disconnected standby grows with the time
since it last heard from the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30.0
LAG_SQL = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() "
    "AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), "
    "'Infinity'::float8) END")


@dataclass(frozen=True)
class Freshness:
    """Where a read came from and how far behind the primary it may be (seconds)."""

    source: str  # "primary" | "replica"
    lag_s: float = 0.0

    def header(self) -> str:
        """The value of the ``X-Casegrid-Read-Source`` response header."""
        return f"{self.source}; lag={self.lag_s:.1f}s"


PRIMARY = Freshness("primary")


class ReadSource:
    """Connections for read-heavy work: the standby when it is usable, else the primary."""

    def __init__(self, primary: Engine, replica: Engine | None, max_lag_s: float):
        self.primary = primary
        self.replica = replica
        self.max_lag_s = max_lag_s
        self._skip_until = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def connect(self, on_primary: Connection | None = None) -> Iterator[tuple[Connection, Freshness]]:
        """A connection in a read-only transaction, and where it reads from. A request
        passes its own primary connection as ``on_primary``, read on when the replica is
        not used, so that it never holds two of the primary's pool at once."""
        conn, fresh = self._replica_connection()
        if conn is None and on_primary is not None:
            yield on_primary, PRIMARY
            return
        if conn is None:
            with self.primary.begin() as conn:
                yield conn, PRIMARY
            return
        try:
            with conn.begin():
                yield conn, fresh
        finally:
            conn.close()

    def _replica_connection(self) -> tuple[Connection | None, Freshness]:
        if self.replica is None or time.monotonic() < self._skip_until:
            return None, PRIMARY
        try:
            conn = self.replica.connect()
        except DBAPIError as exc:
            self._pass_over(f"unreachable ({str(exc.orig).strip().splitlines()[0]})")
            return None, PRIMARY
        try:
            lag = float(conn.execute(LAG_SQL).scalar_one())
            conn.commit()
        except DBAPIError as exc:
            conn.close()
            self._pass_over(f"failed its lag check ({exc.orig})")
            return None, PRIMARY
        if lag > self.max_lag_s:
            conn.close()
            log.info("read replica %.1f s behind (limit %.1f s): reading the primary",
                     lag, self.max_lag_s)
            return None, PRIMARY
        return conn, Freshness("replica", lag)

    def _pass_over(self, why: str) -> None:
        with self._lock:
            self._skip_until = time.monotonic() + RETRY_AFTER_S
        log.warning("read replica %s: reading the primary for %.0f s", why, RETRY_AFTER_S)
