"""Address-only rows of a bulk import, located set-based.

The import stages a row without coordinates but with an address with NULL ``lon``/``lat``
(and NULL ``input_lon``). After each chunk is copied, :func:`locate_lines` takes the
chunk's distinct addresses (one query), matches those not seen in an earlier chunk
(``geo.address_match``: a few queries for all of them), copies the answers into
``cg_addr`` and writes the located points into the staging rows with one join; the
import's routing then routes them like any other point. Before the routing table gets its
key, :func:`finish` gives each address-only row its rule (the address rule where its point
routed into a community) and each unlocated one a routing row with its suggestions as
alternates; after the insert, :func:`store_answers` keeps the matcher's answer per case
(``case_locate``). No statement runs per row or per address.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import Connection, text

from casegrid.csv_text import copy_csv
from geo.address_match import AddressMatch, match_addresses

_COLUMNS = ("address", "lon", "lat", "rule", "confidence", "normalized", "why", "suggestions")


class AddressLocator:
    """The address work of one import transaction (module docstring)."""

    def __init__(self, conn: Connection, table: str = "cg_stage") -> None:
        self.conn = conn
        self.table = table
        self.cache: dict[str, AddressMatch] = {}
        self.rows = 0
        conn.execute(text(
            "DROP TABLE IF EXISTS cg_addr; CREATE TEMP TABLE cg_addr (address text PRIMARY KEY,"
            " lon float8, lat float8, rule text, confidence float8, normalized text, why text,"
            " suggestions jsonb) ON COMMIT DROP"))

    def locate_lines(self, first: int, last: int) -> int:
        """Locate the address-only rows with lines ``first`` to ``last``; how many."""
        span = {"first": first, "last": last}
        todo = [r[0] for r in self.conn.execute(text(
            f"SELECT DISTINCT address FROM {self.table} WHERE line BETWEEN :first AND :last"
            " AND input_lon IS NULL AND lon IS NULL AND address IS NOT NULL"), span)]
        if not todo:
            return 0
        new = [a for a in todo if a not in self.cache]
        if new:
            matches = match_addresses(self.conn, new, cache=self.cache)
            frame = pd.DataFrame({
                "address": new,
                "lon": [m.lon if m.located else None for m in matches],
                "lat": [m.lat if m.located else None for m in matches],
                "rule": [m.rule for m in matches],
                "confidence": [round(m.confidence, 3) for m in matches],
                "normalized": [m.normalized for m in matches],
                "why": [m.why for m in matches],
                "suggestions": [json.dumps([s.to_dict() for s in m.suggestions],
                                           ensure_ascii=False) for m in matches],
            })
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(
                    f"COPY cg_addr ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT csv)") as cp:
                cp.write(copy_csv(frame, _COLUMNS))
            self.conn.execute(text("ANALYZE cg_addr"))
        located = self.conn.execute(text(f"""
            UPDATE {self.table} s SET lon = a.lon, lat = a.lat
            FROM cg_addr a
            WHERE s.line BETWEEN :first AND :last AND s.input_lon IS NULL AND s.lon IS NULL
              AND a.address = s.address AND a.lon IS NOT NULL"""), span).rowcount
        self.rows += located
        return located

    def finish(self, table: str = "cg_new") -> None:
        """The address rule of each located row, a routing row for each unlocated one
        (before ``geo.route_cells.finish``)."""
        # The import analyses the columns it deduplicates by; without statistics on these
        # the planner takes "no coordinates" for a rare row and probes indexes row by row
        # here and in store_answers (seconds per 100,000 rows) instead of hashing.
        self.conn.execute(text(f"ANALYZE {table} (input_lon, lon, address)"))
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
        """The matcher's answer for each address-only case the import stored."""
        self.conn.execute(text(f"""
            INSERT INTO case_locate (case_id, rule, confidence, normalized, why, suggestions)
            SELECT c.id, a.rule, a.confidence, a.normalized, a.why, a.suggestions
            FROM {table} s
            JOIN cg_addr a ON a.address = s.address
            JOIN "case" c ON c.channel = s.channel AND c.external_id = s.external_id
            WHERE s.input_lon IS NULL
            ON CONFLICT (case_id) DO NOTHING"""))
