"""Boundary storage: generations of subdistricts and communities, and their subdivided
pieces used for point lookups.

A generation is one import of one level. It is never overwritten: activating a new one only
moves the ``active`` flag, so cases keep pointing at the generation that routed them.
Reading files and checking topology is ``geo/boundary_import.py``'s job; this module only
stores what it is given, set-based.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from casegrid.db import RawQuery
from casegrid.errors import InvalidInput, NotFound
from casegrid.settings import get_settings

if TYPE_CHECKING:
    import geopandas as gpd

LEVELS = ("subdistrict", "community")


@dataclass(frozen=True)
class Generation:
    """One stored boundary generation."""

    id: int
    level: str
    source: str
    feature_count: int
    active: bool


def _latest_name(level: str, code: str) -> str:
    _check_level(level)
    # Aliases of their own, so that ``code`` may name the outer query's tables.
    return (f"SELECT bn.name FROM {level} bn JOIN boundary_generation bng "
            f"ON bng.id = bn.generation_id WHERE bn.code = {code} "
            "ORDER BY bng.active DESC, bng.id DESC LIMIT 1")


def boundary_name_sql(level: str, code: str) -> str:
    """SQL for the name of the ``level`` (subdistrict or community) whose code is the SQL
    expression ``code``: the active generation's name, else the newest generation's that
    has the code (a code the active generation dropped keeps its last name). The one
    spelling of that rule, for a column: ``{boundary_name_sql(...)} AS subdistrict_name``."""
    return f"({_latest_name(level, code)})"


def boundary_name_join(level: str, code: str, alias: str) -> str:
    """:func:`boundary_name_sql` as ``LEFT JOIN LATERAL (...) alias ON true``: the name is
    ``alias.name``."""
    return f"LEFT JOIN LATERAL ({_latest_name(level, code)}) {alias} ON true"


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}, not {level!r}", field="level")


def store_generation(
    conn: Connection,
    level: str,
    features: gpd.GeoDataFrame,
    *,
    source: str,
    source_crs: str,
    report: dict | None = None,
    note: str | None = None,
    activate: bool = True,
    max_vertices: int | None = None,
) -> Generation:
    """Store ``features`` (columns ``code``, ``name``, optional ``parent_code``, geometry in
    EPSG:4326, already valid) as a new generation of ``level`` and return it.

    Runs inside the caller's transaction: either the whole generation is written or nothing.
    Communities are cut into ``ST_Subdivide`` pieces for fast, edge-safe ``ST_Covers``.
    """
    # Imported on use: serving workers only read generations and stay without shapely
    # (every full garbage collection walks a worker's whole heap; README, "Serving").
    import shapely

    _check_level(level)
    if features.empty:
        raise InvalidInput("no features to store", field="features")
    if features.crs is None or features.crs.to_epsg() != 4326:
        raise InvalidInput("features must be in EPSG:4326 before storing", field="crs")
    if features["code"].duplicated().any():
        dup = sorted(features.loc[features["code"].duplicated(), "code"].astype(str))[:5]
        raise InvalidInput(f"duplicate codes: {', '.join(dup)}", field="code")
    gen_id = conn.execute(
        text(
            "INSERT INTO boundary_generation (level, source, source_crs, note, feature_count, report)"
            " VALUES (:level, :source, :crs, :note, :n, CAST(:report AS jsonb)) RETURNING id"
        ),
        {
            "level": level,
            "source": source,
            "crs": source_crs,
            "note": note,
            "n": len(features),
            "report": json.dumps(report or {}, ensure_ascii=False, default=str),
        },
    ).scalar_one()

    multi = [_as_multi(g) for g in features.geometry]
    rows = [
        {
            "gen": gen_id,
            "code": str(code),
            "name": str(name),
            "parent": None if parent is None or parent != parent else str(parent),
            "props": json.dumps(props, ensure_ascii=False, default=str),
            "wkb": shapely.to_wkb(geom, hex=True),
        }
        for code, name, parent, props, geom in zip(
            features["code"],
            features["name"],
            features["parent_code"] if "parent_code" in features else [None] * len(features),
            features["properties"] if "properties" in features else [{}] * len(features),
            multi,
            strict=True,
        )
    ]
    if level == "subdistrict":
        conn.execute(
            text(
                "INSERT INTO subdistrict (generation_id, code, name, properties, geom) VALUES "
                "(:gen, :code, :name, CAST(:props AS jsonb), ST_SetSRID(ST_GeomFromWKB(decode(:wkb, 'hex')), 4326))"
            ),
            rows,
        )
    else:
        conn.execute(
            text(
                "INSERT INTO community (generation_id, code, name, subdistrict_code, properties, geom)"
                " VALUES (:gen, :code, :name, :parent, CAST(:props AS jsonb),"
                " ST_SetSRID(ST_GeomFromWKB(decode(:wkb, 'hex')), 4326))"
            ),
            rows,
        )
        conn.execute(
            text(
                "UPDATE community SET area_m2 = ST_Area(geom::geography) WHERE generation_id = :gen"
            ),
            {"gen": gen_id},
        )
        subdivide_generation(conn, gen_id, max_vertices=max_vertices)
    if activate:
        activate_generation(conn, gen_id)
    return Generation(gen_id, level, source, len(features), activate)


def _as_multi(geom):
    import shapely  # on use, as in store_generation

    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    raise InvalidInput(f"expected a polygon, got {geom.geom_type}", field="geometry")


def subdivide_generation(conn: Connection, generation_id: int, max_vertices: int | None = None) -> int:
    """(Re)build the ``community_piece`` rows of a community generation; return the count.

    Then rebuilds the pieces' GiST index, whose small leaf pages (migration 0015) the
    inserted pieces would otherwise fill up. The rebuild holds an exclusive lock on that
    index until the caller's transaction ends: routing waits for a boundary import to commit.
    """
    n = max_vertices or get_settings().subdivide_max_vertices
    conn.execute(text("DELETE FROM community_piece WHERE generation_id = :g"), {"g": generation_id})
    count = conn.execute(
        text(
            "INSERT INTO community_piece (community_id, generation_id, geom) "
            "SELECT c.id, c.generation_id, ST_Subdivide(c.geom, :n) FROM community c "
            "WHERE c.generation_id = :g"
        ),
        {"g": generation_id, "n": n},
    ).rowcount
    conn.execute(text("REINDEX INDEX community_piece_geom_gist"))
    # Fresh statistics too: planned without them, routing reads the pieces through two
    # bitmap index scans, much slower than the GiST probe.
    conn.execute(text("ANALYZE community_piece"))
    return count


# ST_Subdivide needs at least 5 vertices a piece; the piece-size sweep of
# bench/bench_routing.py runs from 8 to 256, and much larger pieces are no longer small.
PIECE_VERTICES = (8, 1024)


def repiece_generation(conn: Connection, generation_id: int | None = None,
                       max_vertices: int | None = None) -> tuple[int, int, int]:
    """Cut a community generation's polygons into routing pieces again: the active one by
    default, with at most ``max_vertices`` vertices a piece (default: the
    ``subdivide_max_vertices`` setting). Boundaries imported before a change of that setting
    keep their pieces until this runs. Routing answers the same with any piece size; only
    its speed changes. Returns (generation, pieces before, pieces now)."""
    from geo.routing import require_generation  # geo.routing imports this module

    low, high = PIECE_VERTICES
    if max_vertices is not None and not low <= max_vertices <= high:
        raise InvalidInput(f"max_vertices must be between {low} and {high}, got {max_vertices}",
                           field="max_vertices")
    generation_id = require_generation(conn, generation_id)
    before = conn.execute(text("SELECT count(*) FROM community_piece WHERE generation_id = :g"),
                          {"g": generation_id}).scalar_one()
    return generation_id, before, subdivide_generation(conn, generation_id, max_vertices)


def activate_generation(conn: Connection, generation_id: int) -> None:
    """Make ``generation_id`` the active one of its level (the previous one is kept)."""
    level = conn.execute(
        text("SELECT level FROM boundary_generation WHERE id = :g"), {"g": generation_id}
    ).scalar_one_or_none()
    if level is None:
        raise NotFound(f"no boundary generation {generation_id}", field="generation")
    conn.execute(
        text("UPDATE boundary_generation SET active = false WHERE level = :l AND active"),
        {"l": level},
    )
    conn.execute(
        text("UPDATE boundary_generation SET active = true, activated_at = now() WHERE id = :g"),
        {"g": generation_id},
    )


# The active generation of a level (its id), also sent in batches (geo.address_candidates).
ACTIVE_GENERATION = RawQuery("SELECT id FROM boundary_generation WHERE level = :l AND active")


def active_generation(conn: Connection, level: str = "community") -> int | None:
    """Id of the active generation of ``level``, or None when nothing was imported yet."""
    _check_level(level)
    rows = ACTIVE_GENERATION.rows(conn, {"l": level})  # at most one: a unique partial index
    return rows[0]["id"] if rows else None


def list_generations(conn: Connection) -> list[Generation]:
    """All generations, newest first."""
    rows = conn.execute(
        text(
            "SELECT id, level, source, feature_count, active FROM boundary_generation ORDER BY id DESC"
        )
    ).all()
    return [Generation(*r) for r in rows]
