"""Routing on connections of its own, so that PostgreSQL routes on more than one core.

A statement runs on one backend, and one backend uses one core; the routing of many
points (``geo.route_cells``) writes temporary tables, which PostgreSQL's parallel query
cannot scan. So ``route-file`` opens two :class:`RouteConnection` and gives each chunks of
points: each stages its chunks and routes them in its own transaction, on its own backend.
Each connection keeps its own cell cache (``cg_cells``), so a cell whose points fall in
chunks on both connections is probed twice (one probe per cell and connection).

A routing connection only reads what other transactions committed (the boundary pieces
of the generation it is given) and writes nothing but its temporary tables; its
transaction is rolled back when it closes. The bulk import routes on its own connection:
its caller's transaction may hold boundaries that no other connection can see yet, and on
the two-core machine a second routing connection made the import no faster (the reader
thread's Python keeps the second core busy already; one-off figures in the issue notes).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine, text

from geo import route_cells

# PostgreSQL's binary COPY format: built with numpy, staging a million points costs a few
# milliseconds of Python instead of a million formatted text lines.
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PGCOPY_TRAILER = b"\xff\xff"
_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("id", ">i8"), ("l2", ">i4"), ("x", ">f8"),
                 ("l3", ">i4"), ("y", ">f8")])


def _binary_rows(ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> bytes:
    """Rows (bigint, float8, float8) in binary COPY encoding (without header or trailer)."""
    rec = np.empty(len(ids), dtype=_ROW)
    rec["n"], rec["l1"], rec["l2"], rec["l3"] = 3, 8, 8, 8
    rec["id"], rec["x"], rec["y"] = ids, lon, lat
    return rec.tobytes()


class RouteConnection:
    """A connection of its own that routes chunks of points into its temporary
    ``cg_routed`` (``geo.route_cells``): :meth:`route` a chunk, read the results on
    :attr:`conn`, then :meth:`close` (rolls back). Used by one thread at a time."""

    def __init__(self, engine: Engine, params: dict):
        """``params``: ``gen``, ``margin_m`` and ``tol_m``, as route_cells takes them."""
        self.params = params
        self.conn = engine.connect()
        try:
            self.conn.begin()
            # A million points take longer than the interactive statement timeout.
            self.conn.execute(text("SET LOCAL statement_timeout = 0"))
            self.conn.execute(text(
                "CREATE TEMP TABLE route_points (line bigint PRIMARY KEY, lon float8,"
                " lat float8) ON COMMIT DROP"))
            route_cells.begin(self.conn, params)
        except BaseException:
            self.conn.close()
            raise

    def route(self, lines: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> int:
        """Stage and route one chunk: ``lines`` unique and ascending, none routed on this
        connection before, ``lon``/``lat`` WGS-84. Returns how many went by their cell."""
        if not len(lines):
            return 0
        raw = self.conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                "COPY route_points (line, lon, lat) FROM STDIN (FORMAT binary)") as copy:
            copy.write(_PGCOPY_HEADER + _binary_rows(lines, lon, lat) + _PGCOPY_TRAILER)
        return route_cells.route_lines(self.conn, self.params, "route_points",
                                       int(lines[0]), int(lines[-1]))

    def close(self) -> None:
        """Roll back (the temporary tables go with it) and give the connection back."""
        self.conn.close()

    def __enter__(self) -> RouteConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
