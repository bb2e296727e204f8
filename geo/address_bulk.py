"""Address-only rows of a bulk import, located set-based.

The import stages a row without coordinates but with an address with NULL ``lon``/``lat``
(and NULL ``input_lon``). After each chunk is copied, :func:`locate_lines` takes the
chunk's distinct addresses (one query), matches those not seen in an earlier chunk
(``geo.address_match``: a few queries for all of them), copies the answers into
``cg_addr`` and writes the located points into the staging rows with one join; the
import's routing then routes them like any other point. Before the routing table gets its
key, :func:`finish` gives each address-only row its rule (the address rule where its point
routed into a community) and each unlocated one a routing row with its suggestions as
alternates; the matcher's answer per case (``case_locate``) is written by the exclusive
path's INSERT itself (:meth:`AddressLocator.answers_cte`), or after the row path's insert
(:meth:`AddressLocator.store_answers`). No statement runs per row or per address.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from sqlalchemy import Connection, text

from casegrid.csv_text import copy_csv
from geo.address_match import match_addresses

_COLUMNS = ("address", "lon", "lat", "rule", "confidence", "normalized", "why", "reasons",
            "suggestions")


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


class AddressLocator:
    """The address work of one import transaction (module docstring)."""

    def __init__(self, conn: Connection, table: str = "cg_stage") -> None:
        self.conn = conn
        self.table = table
        # The addresses matched so far: their answers are in cg_addr, not kept in Python
        # (a million-row import has hundreds of thousands, each answer a few objects that
        # every collection of the cycle collector would walk, the reader thread's included).
        self.seen: set[str] = set()
        self.rows = 0
        conn.execute(text(
            "DROP TABLE IF EXISTS cg_addr; CREATE TEMP TABLE cg_addr (address text PRIMARY KEY,"
            " lon float8, lat float8, rule text, confidence float8, normalized text, why text,"
            " reasons jsonb, suggestions jsonb) ON COMMIT DROP"))

    def locate_lines(self, first: int, last: int) -> int:
        """Locate the address-only rows with lines ``first`` to ``last``; how many."""
        span = {"first": first, "last": last}
        todo = self.conn.execute(text(
            f"SELECT DISTINCT address FROM {self.table} WHERE line BETWEEN :first AND :last"
            " AND input_lon IS NULL AND lon IS NULL AND address IS NOT NULL"), span
        ).scalars().all()
        if not todo:
            return 0
        new = [a for a in todo if a not in self.seen]
        if new:
            with _no_cycle_collection():
                self._match(new)
        located = self.conn.execute(text(f"""
            UPDATE {self.table} s SET lon = a.lon, lat = a.lat
            FROM cg_addr a
            WHERE s.line BETWEEN :first AND :last AND s.input_lon IS NULL AND s.lon IS NULL
              AND a.address = s.address AND a.lon IS NOT NULL"""), span).rowcount
        self.rows += located
        return located

    def _match(self, new: list[str]) -> None:
        """Match ``new`` (addresses not seen before) and copy their answers into cg_addr
        (with the cycle collector paused by the caller: the answers' frame allocates as
        much as the matching). cg_addr is analysed once, by :meth:`finish`: the staged
        rows' UPDATE probes its key whatever its statistics say."""
        matches = match_addresses(self.conn, new)
        self.seen.update(new)
        frame = pd.DataFrame({
            "address": new,
            "lon": [m.lon if m.located else None for m in matches],
            "lat": [m.lat if m.located else None for m in matches],
            "rule": [m.rule for m in matches],
            "confidence": [round(m.confidence, 3) for m in matches],
            "normalized": [m.normalized for m in matches],
            "why": [m.why for m in matches],
            "reasons": [json.dumps(m.reasons, ensure_ascii=False) for m in matches],
            "suggestions": [json.dumps([s.to_dict() for s in m.suggestions],
                                       ensure_ascii=False) if m.suggestions else "[]"
                            for m in matches],
        })
        raw = self.conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                f"COPY cg_addr ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT csv)") as cp:
            cp.write(copy_csv(frame, _COLUMNS))

    def finish(self, table: str = "cg_new") -> None:
        """The address rule of each located row, a routing row for each unlocated one
        (before ``geo.route_cells.finish``)."""
        # The import analyses the columns it deduplicates by; without statistics on these
        # the planner takes "no coordinates" for a rare row and probes indexes row by row
        # here and in store_answers (seconds per 100,000 rows) instead of hashing.
        self.conn.execute(text(f"ANALYZE {table} (input_lon, lon, address)"))
        self.conn.execute(text("ANALYZE cg_addr"))
        self.conn.execute(text(f"""
            UPDATE cg_routed r SET rule = a.rule
            FROM {table} s JOIN cg_addr a ON a.address = s.address
            WHERE r.id = s.line AND s.input_lon IS NULL AND a.lon IS NOT NULL
              AND r.community_id IS NOT NULL"""))
        self.conn.execute(text(f"""
            INSERT INTO cg_routed (id, rule, distance_m, community_id, alternates, near_boundary)
            SELECT s.line, 'unlocated', NULL, NULL, COALESCE(a.suggestions, '[]'), false
            FROM {table} s LEFT JOIN cg_addr a ON a.address = s.address
            WHERE s.lon IS NULL"""))

    def store_answers(self, table: str = "cg_new") -> None:
        """The matcher's answer for each address-only case the import stored (the row
        path; the exclusive path writes them in its INSERT: :meth:`answers_cte`)."""
        if self.seen:
            self.conn.execute(text(_ANSWERS_SQL.format(
                case_id="c.id", rows=f"{table} s JOIN \"case\" c ON c.channel = s.channel"
                                     " AND c.external_id = s.external_id")
                + " ON CONFLICT (case_id) DO NOTHING"))

    def answers_cte(self) -> str:
        """:meth:`store_answers` as a clause of the exclusive path's one INSERT
        (``cases.bulk_import.first_load.INSERT_LOCKED_SQL``, whose ``src`` holds each new
        row with its ``case_id``); empty when the import had no address-only row."""
        if not self.seen:
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
