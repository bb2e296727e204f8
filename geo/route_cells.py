"""Routing of many points at once, set-based: most by the cell they fall in, the rest by
``geo.routing.route_sql``, with the same result as route_sql alone (tests compare them).

Used by the bulk import (``cases.bulk_import``) and ``route-file`` (``geo.route_file``): the
points are in a table with columns ``line`` (a unique number), ``lon`` and ``lat`` (WGS-84);
the results collect in the temporary table ``cg_routed`` (id = line, rule, distance_m,
community_id, alternates, near_boundary), dropped at commit.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from geo.routing import M_PER_DEG, route_sql

# Most points lie well inside one community, and route_sql spends as much on grouping and
# joining every point as on its index probe. So the points are first binned into cells of
# ROUTE_CELL_DEG degrees, and each cell (not each point) is probed once: the boundary
# pieces within the margin of the cell, with the radius route_sql uses for a point at the
# cell's latitude farthest from the equator (the largest; a little more for rounding), and
# the box a little larger than the cell so that floor() cannot put a point outside its
# cell. Where all those pieces belong to one community, route_sql's first probe for any
# point of the cell finds only pieces of that community; a point one of them covers
# (ST_Covers of their collection: the point-in-polygon test per part) is then 'inside' it,
# at distance 0, not near a boundary, without alternates. A cell with no piece within the
# margin nor within the gap tolerance (the same conservative radius) is far from every
# community: its points are 'outside'. Every other point goes through route_sql. Tests
# compare the result with route_sql alone.
ROUTE_CELL_DEG = 0.0005
_CELL = {"s": ROUTE_CELL_DEG, "eps": 1e-9, "mpd": M_PER_DEG}
# A caller routes chunk by chunk (rows with lines :first to :last), e.g. the bulk import as
# soon as it has staged a chunk, while its reader thread validates the next. The routing
# tables collect the chunks: cg_cells every cell probed so far (cid and pieces NULL where
# the pieces within the margin belong to more than one community or to none; far true where
# none lies within the tolerance either), so a cell is probed once per transaction;
# cg_routed every routed point. cg_chunk holds the chunk's points and cg_easy those of them
# routed by their cell, both emptied for each chunk (a cumulative cg_easy was scanned
# whole, twice, for every chunk), each with its own statistics for the plans.
_ROUTE_DDL = """
DROP TABLE IF EXISTS cg_cells, cg_chunk, cg_easy, cg_routed;
CREATE TEMP TABLE cg_cells (i int, j int, cid int, pieces geometry, far boolean,
                             PRIMARY KEY (i, j))
    ON COMMIT DROP;
CREATE TEMP TABLE cg_chunk (line bigint, lon double precision, lat double precision,
                            rule text)
    ON COMMIT DROP;
CREATE TEMP TABLE cg_easy (id bigint, cid int, rule text) ON COMMIT DROP
"""
# Rows without a point (an address the matcher could not place) are not routed here.
# A row's own rule (the bulk import's address rule: the point is where the address is,
# not where a device was) replaces the geometric one where the point lies in a community.
_CHUNK_SQL = ("INSERT INTO cg_chunk SELECT line, lon, lat, {rule} FROM {table}"
              " WHERE line BETWEEN :first AND :last AND lon IS NOT NULL")
_ENVELOPE = ("ST_MakeEnvelope(c.i * {s} - {eps}, c.j * {s} - {eps},"
             " (c.i + 1) * {s} + {eps}, (c.j + 1) * {s} + {eps}, 4326)")
# Degrees that hold a radius of {metres} at the cell's latitude farthest from the equator.
_DEGREES = ("{metres} * (1 + 1e-6)"
            " / ({mpd} * cos(radians(greatest(abs(c.j * {s}), abs((c.j + 1) * {s})) + {eps})))")
_CELLS_SQL = """
INSERT INTO cg_cells (i, j, cid, pieces, far)
SELECT c.i, c.j,
       CASE WHEN min(cp.community_id) = max(cp.community_id) THEN min(cp.community_id) END,
       CASE WHEN min(cp.community_id) = max(cp.community_id) THEN ST_Collect(cp.geom) END,
       -- no piece within the margin, nor within the gap tolerance: every point is outside
       CASE WHEN count(cp.community_id) = 0 THEN NOT EXISTS (
           SELECT 1 FROM community_piece f
           WHERE f.generation_id = :gen
             AND ST_DWithin(f.geom, {envelope}, {tolerance})) ELSE false END
FROM (SELECT DISTINCT floor(lon / {s})::int AS i, floor(lat / {s})::int AS j FROM cg_chunk) c
LEFT JOIN community_piece cp
  ON cp.generation_id = :gen AND ST_DWithin(cp.geom, {envelope}, {margin})
WHERE NOT EXISTS (SELECT 1 FROM cg_cells k WHERE k.i = c.i AND k.j = c.j)
GROUP BY c.i, c.j
""".format(envelope=_ENVELOPE.format(**_CELL),
           margin=_DEGREES.format(metres=":margin_m", **_CELL),
           tolerance=_DEGREES.format(metres=":tol_m", **_CELL), **_CELL)
_EASY_SQL = """
WITH easy AS (
    INSERT INTO cg_easy
    SELECT n.line AS id, k.cid, n.rule
    FROM cg_chunk n
    JOIN cg_cells k ON k.i = floor(n.lon / {s})::int AND k.j = floor(n.lat / {s})::int
    WHERE k.far
       OR (k.cid IS NOT NULL AND ST_Covers(k.pieces, ST_SetSRID(ST_MakePoint(n.lon, n.lat), 4326)))
    RETURNING 1
)
SELECT count(*) FROM easy
""".format(**_CELL)
_HARD_POINTS = ("SELECT n.line AS id, ST_SetSRID(ST_MakePoint(n.lon, n.lat), 4326) AS geom"
                " FROM cg_chunk n WHERE NOT EXISTS (SELECT 1 FROM cg_easy e WHERE e.id = n.line)")
_ROUTED_SELECT = f"""
SELECT id, CASE WHEN cid IS NULL THEN CAST('outside' AS text) ELSE COALESCE(rule, 'inside')
            END AS rule,
       CASE WHEN cid IS NULL THEN NULL ELSE CAST(0 AS float8) END AS distance_m,
       cid AS community_id, CAST('[]' AS jsonb) AS alternates, false AS near_boundary
FROM cg_easy
UNION ALL
SELECT h.id, CASE WHEN h.community_id IS NULL THEN h.rule ELSE COALESCE(n.rule, h.rule) END,
       h.distance_m, h.community_id, h.alternates, h.near_boundary
FROM ({route_sql(_HARD_POINTS)}) h
-- only the rows with a rule of their own: none in a file of coordinates, whose routing
-- then pays nothing for the join (the chunk's statistics say so)
LEFT JOIN (SELECT line, rule FROM cg_chunk WHERE rule IS NOT NULL) n ON n.line = h.id
"""


def begin(conn: Connection, params: dict) -> None:
    """Create the (empty) routing tables for :func:`route_lines`, dropped at commit;
    cg_routed has the columns and types of route_sql's result. ``params``: ``gen`` (the
    community generation), ``margin_m`` and ``tol_m``, as route_sql takes them."""
    conn.execute(text(_ROUTE_DDL))
    conn.execute(text(f"CREATE TEMP TABLE cg_routed ON COMMIT DROP AS {_ROUTED_SELECT}"
                      " WITH NO DATA"), params)


def route_lines(conn: Connection, params: dict, table: str, first: int, last: int,
                rule: str | None = None) -> int:
    """Route the rows of ``table`` (line, lon, lat) with lines ``first`` to ``last`` into
    cg_routed (id = line, rule, distance_m, community_id, alternates, near_boundary),
    exactly as ``route_sql`` would (see the comment above ROUTE_CELL_DEG); returns how many
    went by their cell. ``rule`` names a column of ``table`` whose value, where not NULL,
    is the rule of a row routed into a community (see _CHUNK_SQL). After :func:`begin`."""
    span = {**params, "first": first, "last": last}
    conn.execute(text("TRUNCATE cg_chunk, cg_easy"))
    conn.execute(text(_CHUNK_SQL.format(table=table, rule=rule or "CAST(NULL AS text)")), span)
    conn.execute(text("ANALYZE cg_chunk"))
    conn.execute(text(_CELLS_SQL), span)
    # The plans join cells by (i, j) and filter on cid; statistics of the collected
    # pieces (a geometry histogram over every sampled cell) would cost more than the rest.
    conn.execute(text("ANALYZE cg_cells (i, j, cid, far)"))
    easy = conn.execute(text(_EASY_SQL), span).scalar_one()
    conn.execute(text("ANALYZE cg_easy"))
    conn.execute(text(f"INSERT INTO cg_routed {_ROUTED_SELECT}"), span)
    return easy


def finish(conn: Connection) -> None:
    """The key of cg_routed and its statistics, for joins with it (once every chunk is
    routed)."""
    conn.execute(text("ALTER TABLE cg_routed ADD PRIMARY KEY (id); ANALYZE cg_routed"))
