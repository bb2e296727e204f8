"""Address-only rows of a bulk import, located set-based, before they are staged.

The import's reader hands over each chunk's rows without coordinates but with an address
(:meth:`AddressLocator.locate`): their distinct addresses not seen in an earlier chunk are
matched (``geo.address_match``: a few queries for all of them), and each row gets its
address's point and rule, from the answers kept in Python (a point and a rule per
address, in arrays); the answers of the new addresses come back as CSV, which
:meth:`AddressLocator.store` copies into ``cg_addr`` on the import's connection. The rows
are then staged with their points and routed like rows with coordinates; the routing gives
a located row its address rule where its point lies in a community (``geo.route_cells``).
Nothing rewrites a staged row. Before the routing table gets its key, :func:`finish` gives
each unlocated row a routing row with its suggestions as alternates; the matcher's answer
per case (``case_locate``) is written by the exclusive path's INSERT itself
(:meth:`AddressLocator.answers_cte`), or after the row path's insert
(:meth:`AddressLocator.store_answers`). No statement runs per row or per address.

The matching may read on another connection than the import's (:func:`matcher_connection`),
so that an import that owns its transaction matches the next chunk in a thread of its own
while the server stages and routes this one.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from casegrid.csv_text import copy_csv
from geo.address_match import match_addresses

# The whole answer of each address matched, for case_locate and the unlocated rows'
# suggestions (the points are staged with the rows: AddressLocator.locate).
_COLUMNS = ("address", "rule", "confidence", "normalized", "why", "reasons", "suggestions")


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused (``gc.disable``) while a chunk's addresses are
    matched, then as it was. The matcher allocates many small objects and makes no
    reference cycles (reference counting frees them), yet its allocation bursts set off
    collections that walk every object alive: about a third of the matcher's CPU time in a
    bulk import (bench/RESULTS.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def matcher_connection(engine: Engine) -> Iterator[Connection]:
    """A connection of its own for an import's matching, in a read-only transaction without
    a statement timeout (one chunk's matching can outlast the interactive timeout, as the
    import's own statements can); rolled back and handed back to the pool at exit.

    It answers exactly as the import's connection would: the matcher reads committed tables
    only (the gazetteer, the address memory, the communities and their pieces, the boundary
    generations), no temporary table of the import, and its one setting (pg_trgm's
    threshold) is ``set_config(..., true)``, local to the transaction that sets it. Only
    for an import that owns its transaction: a caller's transaction may hold gazetteer or
    memory rows not committed yet, which another connection cannot see. The import must
    close it before it locks tables (``cases.bulk_import.first_load``): its transaction
    holds share locks on what it read."""
    with engine.connect() as conn:
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        yield conn


class AddressLocator:
    """The address work of one import transaction (module docstring). :meth:`locate`
    keeps what it learns in this object and writes nothing to the database: one thread
    calls it, chunk after chunk, and the others read ``known`` only after that thread
    ended."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # Each address matched so far -> its place in the point arrays (NaN and None where
        # it was not located). Its whole answer is in cg_addr: a million-row import has
        # hundreds of thousands, each answer a few objects that every collection of the
        # cycle collector would walk, the reader thread's included; a dict of texts to ints
        # and numpy arrays it does not walk.
        self.known: dict[str, int] = {}
        self.lon = np.empty(0)
        self.lat = np.empty(0)
        self.rule = np.empty(0, dtype=object)
        conn.execute(text(
            "DROP TABLE IF EXISTS cg_addr; CREATE TEMP TABLE cg_addr (address text PRIMARY KEY,"
            " rule text, confidence float8, normalized text, why text, reasons jsonb,"
            " suggestions jsonb) ON COMMIT DROP"))

    def locate(self, rows: pd.DataFrame, conn: Connection | None = None
               ) -> tuple[pd.DataFrame, bytes]:
        """``rows`` (address-only rows of a chunk) with ``lon``, ``lat`` and
        ``address_rule`` set where the matcher locates their address (left missing where
        it does not), and the CSV of the answers of the addresses not seen before (b''
        when none) for :meth:`store`. The matcher reads on ``conn`` (the import's
        connection by default; :func:`matcher_connection`)."""
        codes, distinct = pd.factorize(rows["address"])
        # Sorted, the matcher's queries read the memory's and the names' indexes in key
        # order: less server time than in file order (bench/RESULTS.md). The answers do
        # not depend on the order (tests/test_address_bulk.py).
        new = sorted(a for a in distinct if a not in self.known)
        answers = b""
        if new:
            with _no_cycle_collection():
                answers = self._match(self.conn if conn is None else conn, new)
        at = np.fromiter((self.known[a] for a in distinct), dtype=np.int64,
                         count=len(distinct))
        # A row without an address (code -1) gets no point: the position past the arrays.
        where = np.append(at, len(self.known))[codes]
        return rows.assign(lon=np.append(self.lon, np.nan)[where],
                           lat=np.append(self.lat, np.nan)[where],
                           address_rule=np.append(self.rule, None)[where]), answers

    def _match(self, conn: Connection, new: list[str]) -> bytes:
        """Match ``new`` (addresses not seen before) on ``conn``, keep their points and
        rules, and return their answers as CSV for cg_addr (with the cycle collector paused
        by the caller: the answers' frame allocates as much as the matching)."""
        matches = match_addresses(conn, new)
        self.known.update(zip(new, range(len(self.known), len(self.known) + len(new)),
                              strict=True))
        frame = pd.DataFrame({
            "address": new,
            "rule": [m.rule for m in matches],
            "confidence": [round(m.confidence, 3) for m in matches],
            "normalized": [m.normalized for m in matches],
            "why": [m.why for m in matches],
            "reasons": [json.dumps(m.reasons, ensure_ascii=False) for m in matches],
            "suggestions": [json.dumps([s.to_dict() for s in m.suggestions],
                                       ensure_ascii=False) if m.suggestions else "[]"
                            for m in matches],
        })
        self.lon = np.append(self.lon, np.array(
            [m.lon if m.located else np.nan for m in matches], dtype=float))
        self.lat = np.append(self.lat, np.array(
            [m.lat if m.located else np.nan for m in matches], dtype=float))
        self.rule = np.append(self.rule, np.array(
            [m.rule if m.located else None for m in matches], dtype=object))
        return copy_csv(frame, _COLUMNS)

    def store(self, answers: bytes) -> None:
        """Copy answers of :meth:`locate` into cg_addr, on the import's connection (the
        temporary table is its own). cg_addr is analysed once, by :meth:`finish`."""
        if not answers:
            return
        raw = self.conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                f"COPY cg_addr ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT csv)") as cp:
            cp.write(answers)

    def finish(self, table: str = "cg_new") -> None:
        """A routing row for each unlocated row, with its suggestions as alternates
        (before ``geo.route_cells.finish``)."""
        # The import analyses the columns it deduplicates by; without statistics on these
        # the planner takes "no coordinates" for a rare row and probes indexes row by row
        # here and in the answers' INSERT (seconds per 100,000 rows) instead of hashing.
        self.conn.execute(text(f"ANALYZE {table} (input_lon, lon, address)"))
        self.conn.execute(text("ANALYZE cg_addr"))
        self.conn.execute(text(f"""
            INSERT INTO cg_routed (id, rule, distance_m, community_id, alternates, near_boundary)
            SELECT s.line, 'unlocated', NULL, NULL, COALESCE(a.suggestions, '[]'), false
            FROM {table} s LEFT JOIN cg_addr a ON a.address = s.address
            WHERE s.lon IS NULL"""))

    def store_answers(self, table: str = "cg_new") -> None:
        """The matcher's answer for each address-only case the import stored (the row
        path; the exclusive path writes them in its INSERT: :meth:`answers_cte`)."""
        if self.known:
            self.conn.execute(text(_ANSWERS_SQL.format(
                case_id="c.id", rows=f"{table} s JOIN \"case\" c ON c.channel = s.channel"
                                     " AND c.external_id = s.external_id")
                + " ON CONFLICT (case_id) DO NOTHING"))

    def answers_cte(self) -> str:
        """:meth:`store_answers` as a clause of the exclusive path's one INSERT
        (``cases.bulk_import.first_load.INSERT_LOCKED_SQL``, whose ``src`` holds each new
        row with its ``case_id``); empty when the import had no address-only row."""
        if not self.known:
            return ""
        return f""",
located AS (
{_ANSWERS_SQL.format(case_id="s.case_id", rows="src s")}
)"""


# The answers of the address-only rows of {rows} (aliased s, with the case id as {case_id}).
_ANSWERS_SQL = """INSERT INTO case_locate (case_id, rule, confidence, normalized, why, reasons,
                         suggestions)
SELECT {case_id}, a.rule, a.confidence, a.normalized, a.why, a.reasons, a.suggestions
FROM {rows}
JOIN cg_addr a ON a.address = s.address
WHERE s.input_lon IS NULL"""
