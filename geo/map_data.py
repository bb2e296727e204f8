"""The SQL that feeds the maps: boundaries, posts, cases by filters and viewport.

Nothing here renders: it returns plain dicts and lists (WGS-84 coordinates) for ``maps/``.
Cases are never returned all at once for a large ledger: :func:`cases_in_bbox` returns the
points of one viewport, or, when there are too many, counts on a grid over the viewport.
Reporter names and phones are never selected by any query in this module.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput, NotFound
from cases.filters import OPEN_GROUPS, CaseFilters, check_bbox, filter_sql
from cases.vocabulary import overdue_sql, state_group_sql
from geo.boundaries import active_generation
from geo.coords import METRIC_SRID
from geo.routing import M_PER_DEG

# The ledger's vocabulary (cases.vocabulary), as this module's queries spell it (alias c).
_GROUP_SQL = state_group_sql("c")
_OVERDUE_SQL = overdue_sql("c")
# Never more points than this in one viewport answer; above it the answer is a grid.
MAX_POINTS = 2500
GRID_COLUMNS = 24


def for_map(f: CaseFilters) -> CaseFilters:
    """The filters as a map applies them: only cases with a location that still stand (not
    merged into another), and open cases unless states are chosen."""
    return replace(f, on_map=True, state=f.state or OPEN_GROUPS)


def boundaries(conn: Connection, level: str, simplify_m: float = 2.0) -> list[dict]:
    """Active boundaries of ``level`` as GeoJSON-like features (geometry as a GeoJSON dict),
    simplified in the metric CRS by ``simplify_m`` metres, topology kept."""
    gen = active_generation(conn, level)
    if gen is None:
        return []
    table = "community" if level == "community" else "subdistrict"
    extra = ", subdistrict_code, area_m2" if level == "community" else ", NULL AS subdistrict_code, NULL AS area_m2"
    rows = conn.execute(
        text(
            f"SELECT code, name{extra}, ST_X(ST_PointOnSurface(geom)) AS lx, "
            f"ST_Y(ST_PointOnSurface(geom)) AS ly, ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology("
            f"ST_Transform(geom, {METRIC_SRID}), :tol), 4326), 6)::json AS g "
            f"FROM {table} WHERE generation_id = :gen ORDER BY code"
        ),
        {"gen": gen, "tol": simplify_m},
    ).mappings()
    return [
        {
            "code": r["code"], "name": r["name"], "subdistrict_code": r["subdistrict_code"],
            "area_m2": r["area_m2"], "label": (r["lx"], r["ly"]), "geometry": r["g"],
        }
        for r in rows
    ]


def posts(conn: Connection, scope: tuple[str, ...] | None = None) -> list[dict]:
    """Community posts with contact and location (the post's public sign, not a reporter)."""
    rows = conn.execute(
        text(
            "SELECT p.community_code, p.name, p.contact_name, p.phone, p.address, p.hours, "
            "ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, c.name AS community_name "
            "FROM community_post p LEFT JOIN community c ON c.code = p.community_code "
            "AND c.generation_id = (SELECT id FROM boundary_generation WHERE level = 'community' AND active) "
            "WHERE p.geom IS NOT NULL AND (CAST(:scope AS text[]) IS NULL OR p.community_code = ANY(:scope)) "
            "ORDER BY p.community_code"
        ),
        {"scope": list(scope) if scope is not None else None},
    ).mappings()
    return [dict(r) for r in rows]


def city_bounds(conn: Connection) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of the active communities, or of the cases when none."""
    row = conn.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT COALESCE("
            " (SELECT ST_Extent(geom)::geometry FROM community WHERE generation_id = "
            "  (SELECT id FROM boundary_generation WHERE level = 'community' AND active)),"
            " (SELECT ST_Extent(geom)::geometry FROM \"case\")) AS e) x"
        )
    ).first()
    return None if row is None or row[0] is None else (row[0], row[1], row[2], row[3])


def cases_in_bbox(
    conn: Connection,
    filters: CaseFilters,
    bbox: tuple[float, float, float, float],
    max_points: int = MAX_POINTS,
    grid_columns: int = GRID_COLUMNS,
) -> dict:
    """Cases of one viewport: ``{"mode": "points", "total", "points": [[id, lon, lat, group,
    overdue, flagged], ...]}`` when at most ``max_points`` match, else ``{"mode": "cells",
    "total", "cells": [[lon, lat, n, n_overdue, n_flagged], ...]}`` counted on a grid of
    ``grid_columns`` columns over the box (each cell at the mean position of its cases).

    ``flagged`` is 2 for a case routed by ``nearest``, 1 for ``near_boundary``, else 0.
    """
    w, s, e, n = check_bbox(bbox)
    where, p = filter_sql(replace(for_map(filters), bbox=(w, s, e, n)))
    p.update({"w": w, "s": s})
    total = conn.execute(
        text(f'SELECT count(*) FROM (SELECT 1 FROM "case" c WHERE {where} LIMIT :cap) x'),
        {**p, "cap": max_points + 1},
    ).scalar_one()
    flag = "CASE WHEN c.route_rule = 'nearest' THEN 2 WHEN c.near_boundary THEN 1 ELSE 0 END"
    if total <= max_points:
        rows = conn.execute(
            text(
                f"SELECT c.id, round(ST_X(c.geom)::numeric, 6)::float, round(ST_Y(c.geom)::numeric, 6)::float, "
                f"{_GROUP_SQL}, {_OVERDUE_SQL}, {flag} FROM \"case\" c WHERE {where} ORDER BY c.id"
            ),
            p,
        ).all()
        return {
            "mode": "points",
            "total": len(rows),
            "points": [[r[0], r[1], r[2], r[3], int(bool(r[4])), r[5]] for r in rows],
        }
    dx = (e - w) / grid_columns
    rows_n = max(1, round((n - s) / dx))
    dy = (n - s) / rows_n
    # Each case's coordinates once (OFFSET 0 keeps the subquery from being flattened, which
    # would repeat ST_X/ST_Y in the grouping key and in the averages).
    rows = conn.execute(
        text(
            "SELECT round(avg(x)::numeric, 6)::float, round(avg(y)::numeric, 6)::float, "
            "count(*), count(*) FILTER (WHERE od), count(*) FILTER (WHERE fl) "
            f"FROM (SELECT ST_X(c.geom) x, ST_Y(c.geom) y, {_OVERDUE_SQL} od, {flag} > 0 fl "
            f"FROM \"case\" c WHERE {where} OFFSET 0) q "
            "GROUP BY floor((x - :w) / :dx), floor((y - :s) / :dy)"
        ),
        {**p, "dx": dx, "dy": dy},
    ).all()
    cells = [[r[0], r[1], r[2], r[3], r[4]] for r in rows]
    return {"mode": "cells", "total": sum(c[2] for c in cells), "cells": cells}


def case_summary(conn: Connection, case_id: int, scope: tuple[str, ...] | None = None) -> dict:
    """What a map popup shows for one case (never the reporter); ``NotFound`` when the case
    does not exist or lies outside the caller's communities."""
    row = conn.execute(
        text(
            f"SELECT c.id, c.case_no, c.category_code, cat.name_zh, cat.name_en, c.status, "
            f"{_GROUP_SQL} AS state_group, {_OVERDUE_SQL} AS overdue, c.reported_at, "
            f"c.current_due_at, c.route_rule, c.route_distance_m, c.near_boundary, "
            f"c.route_alternates, c.community_code, com.name AS community_name, c.subdistrict_code, "
            f"c.channel, c.address, c.description, c.closed_at, "
            f"ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat "
            f"FROM \"case\" c LEFT JOIN category cat ON cat.code = c.category_code "
            f"LEFT JOIN community com ON com.code = c.community_code AND com.generation_id = "
            f"(SELECT id FROM boundary_generation WHERE level = 'community' AND active) "
            f"WHERE c.id = :id"
        ),
        {"id": case_id},
    ).mappings().first()
    if row is None or (scope is not None and row["community_code"] not in scope):
        raise NotFound(f"no case {case_id}", field="id")
    return dict(row)


def community_geometries(conn: Connection, codes: list[str]) -> list[dict]:
    """Active community polygons for ``codes`` (GeoJSON dicts), for a case's map."""
    if not codes:
        return []
    rows = conn.execute(
        text(
            "SELECT code, name, ST_AsGeoJSON(geom, 6)::json AS g FROM community "
            "WHERE code = ANY(:codes) AND generation_id = "
            "(SELECT id FROM boundary_generation WHERE level = 'community' AND active)"
        ),
        {"codes": codes},
    ).mappings()
    return [{"code": r["code"], "name": r["name"], "geometry": r["g"]} for r in rows]


# At most this many outlines in one answer (a city's whole map zoomed out): the rest are
# left out rather than sending megabytes to a small map.
MAX_OUTLINES = 800


def community_outlines(conn: Connection, bbox: tuple[float, float, float, float]) -> list[dict]:
    """The active communities meeting ``bbox`` (WGS-84 west, south, east, north) with their
    names, each simplified to about a 1/1000 of the box's width (2 m at least) in the
    metric CRS: what a small map draws to show which community a point falls in."""
    w, s, e, n = bbox
    tol = max(2.0, (e - w) * M_PER_DEG / 1000)
    rows = conn.execute(text(f"""
        SELECT c.code, c.name,
               ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(
                   ST_Transform(c.geom, {METRIC_SRID}), :tol), 4326), 6)::json AS g
        FROM community c
        WHERE c.generation_id = (SELECT id FROM boundary_generation
                                 WHERE level = 'community' AND active)
          AND c.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
        ORDER BY c.code LIMIT :lim"""),
        {"w": w, "s": s, "e": e, "n": n, "tol": tol, "lim": MAX_OUTLINES}).mappings()
    return [{"code": r["code"], "name": r["name"], "geometry": r["g"]} for r in rows]


# A case's possible duplicates, measured in the metric CRS (geo.coords.METRIC_SRID; EPSG:4527
# at Tengzhou). The exact test transforms both points, which no index
# can serve, so a box in degrees that holds the radius picks the candidates from the GiST
# index on geom first: the radius 10 % over, in degrees of M_PER_DEG metres (routing's
# conversion; a degree of latitude is at most 0.7 % shorter), longitude ones shrunk by
# cos(latitude). Without the box every case of the category was transformed, a cost that
# grows with the ledger (bench/RESULTS.md, issue 20's section). The window is
# a range on reported_at, the same instants as |o.reported_at - c0.reported_at| <= window.
_NEARBY_SQL = f"""
SELECT o.id, o.case_no, o.status, o.reported_at, ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat,
       ST_Distance(ST_Transform(o.geom, {METRIC_SRID}), ST_Transform(c0.geom, {METRIC_SRID})) AS distance_m
FROM "case" c0
JOIN "case" o
  ON o.geom && ST_Expand(c0.geom,
                         :r * 1.1 / (:mpd * greatest(cos(radians(ST_Y(c0.geom))), 0.01)),
                         :r * 1.1 / :mpd)
 AND o.id <> c0.id AND o.category_code = c0.category_code AND o.merged_into IS NULL
 AND o.reported_at BETWEEN c0.reported_at - make_interval(secs => :secs)
                       AND c0.reported_at + make_interval(secs => :secs)
 AND ST_DWithin(ST_Transform(o.geom, {METRIC_SRID}), ST_Transform(c0.geom, {METRIC_SRID}), :r)
WHERE c0.id = :id AND (CAST(:scope AS text[]) IS NULL OR o.community_code = ANY(:scope))
ORDER BY distance_m, o.id
LIMIT :lim
"""


def nearby_cases(
    conn: Connection, case_id: int, radius_m: float, window_days: int,
    scope: tuple[str, ...] | None = None, limit: int = 50,
) -> list[dict]:
    """Possible duplicates of a case: same category, within ``radius_m`` metres and
    ``window_days`` days of its report, not merged away, nearest first."""
    if radius_m <= 0 or window_days < 0:
        raise InvalidInput("radius_m must be > 0 and window_days >= 0", field="radius_m")
    rows = conn.execute(text(_NEARBY_SQL), {
        "id": case_id, "r": radius_m, "secs": window_days * 86400.0, "lim": limit, "mpd": M_PER_DEG,
        "scope": list(scope) if scope is not None else None}).mappings()
    return [dict(r) for r in rows]


def duplicate_rule(conn: Connection, category_code: str, default_m: float, default_days: int) -> tuple[float, int]:
    """The category's duplicate radius and window, or the defaults."""
    row = conn.execute(
        text("SELECT duplicate_radius_m, duplicate_window_days FROM category WHERE code = :c"),
        {"c": category_code},
    ).first()
    return rule_or_default(None if row is None else (row[0], row[1]), default_m, default_days)


def duplicate_rules(conn: Connection) -> dict[str, tuple[float | None, int | None]]:
    """Every category's own duplicate radius and window (None where it has none), by code:
    what :func:`rule_or_default` completes."""
    rows = conn.execute(text("SELECT code, duplicate_radius_m, duplicate_window_days FROM category"))
    return {r[0]: (r[1], r[2]) for r in rows}


def rule_or_default(rule: tuple[float | None, int | None] | None, default_m: float,
                    default_days: int) -> tuple[float, int]:
    """A category's (radius, window) with the defaults where it sets none (no category: the
    defaults)."""
    if rule is None:
        return default_m, default_days
    return (rule[0] or default_m, rule[1] if rule[1] is not None else default_days)


# The choices of the filter controls, each ordered by code.
_CATEGORY_CHOICES = "SELECT code, name_zh, name_en FROM category WHERE active"
_SUBDISTRICT_CHOICES = ("SELECT code, name FROM subdistrict WHERE generation_id = "
                        "(SELECT id FROM boundary_generation WHERE level = 'subdistrict' AND active)")
_COMMUNITY_CHOICES = ("SELECT code, name, subdistrict_code FROM community WHERE generation_id = "
                      "(SELECT id FROM boundary_generation WHERE level = 'community' AND active) "
                      "AND (CAST(:scope AS text[]) IS NULL OR code = ANY(:scope))")


def filter_options(conn: Connection, scope: tuple[str, ...] | None = None) -> dict:
    """Choices for the filter controls: categories, subdistricts, communities (only
    ``scope``'s when given), in one round trip (every list page asks for them)."""
    lists = ", ".join(f"(SELECT coalesce(json_agg(x ORDER BY x.code), '[]') FROM ({sql}) x)"
                      for sql in (_CATEGORY_CHOICES, _SUBDISTRICT_CHOICES, _COMMUNITY_CHOICES))
    cats, subs, comms = conn.execute(text(f"SELECT {lists}"), _scope_param(scope)).one()
    return {"categories": cats, "subdistricts": subs, "communities": comms}


def community_choices(conn: Connection, scope: tuple[str, ...] | None = None) -> list[dict]:
    """Active communities (code, name, subdistrict code) to choose from, by code; only
    ``scope``'s when given."""
    rows = conn.execute(text(_COMMUNITY_CHOICES + " ORDER BY code"), _scope_param(scope)).mappings()
    return [dict(r) for r in rows]


def _scope_param(scope: tuple[str, ...] | None) -> dict:
    return {"scope": list(scope) if scope is not None else None}


def dispatch_data(conn: Connection, scope: tuple[str, ...] | None = None) -> dict:
    """Everything the dispatcher page draws except the cases (loaded by viewport):
    boundaries, posts, filter choices and the bounds to open on."""
    comms = boundaries(conn, "community")
    if scope is not None:
        comms = [c for c in comms if c["code"] in scope]
    return {
        "subdistricts": boundaries(conn, "subdistrict"),
        "communities": comms,
        "posts": posts(conn, scope),
        "options": filter_options(conn, scope),
        "bounds": city_bounds(conn),
    }


def case_summaries(conn: Connection, ids: list[int]) -> list[dict]:
    """:func:`case_summary` rows for many cases at once (for a standalone page)."""
    if not ids:
        return []
    rows = conn.execute(
        text(
            f"SELECT c.id, c.case_no, c.category_code, cat.name_zh, cat.name_en, c.status, "
            f"{_GROUP_SQL} AS state_group, {_OVERDUE_SQL} AS overdue, c.reported_at, c.current_due_at, "
            f"c.route_rule, c.route_distance_m, c.near_boundary, c.community_code, com.name AS community_name "
            f"FROM \"case\" c LEFT JOIN category cat ON cat.code = c.category_code "
            f"LEFT JOIN community com ON com.code = c.community_code AND com.generation_id = "
            f"(SELECT id FROM boundary_generation WHERE level = 'community' AND active) WHERE c.id = ANY(:ids)"
        ),
        {"ids": ids},
    ).mappings()
    return [dict(r) for r in rows]
