"""Routing: which community post answers for a point.

The rules (documented for operators in docs/routing.md):

* ``inside``      – exactly one community covers the point (``ST_Covers``, so a point on the
                    outer edge of a community still counts as covered).
* ``on_boundary`` – two or more communities cover it (it lies exactly on a shared edge or
                    vertex). Tie-break, deterministic: the lowest community code wins; the
                    others are listed in ``alternates``.
* ``nearest``     – no community covers it (a gap between polygons) but one lies within the
                    gap tolerance (default 200 m): the nearest one, with ``distance_m``.
* ``outside``     – nothing within the tolerance: no community (and no distance); the case
                    waits in the unrouted queue for a dispatcher.

Independently, ``near_boundary`` is true when another community lies within the margin
(default 20 m, a phone's GPS error); those communities are listed as ``alternates`` with
their distances, so a dispatcher can confirm.

Lookups run against the GiST-indexed ``community_piece`` table (``ST_Subdivide``d copies),
like MapIt. One SQL text serves a single point (intake, ``casegrid route``) and a whole table
of points (``route-file``, bulk import): the points relation is substituted in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, text

from casegrid.db import RawQuery, json_param
from casegrid.errors import CasegridError, NotFound
from casegrid.settings import get_settings
from geo.boundaries import active_generation, boundary_name_sql
from geo.coords import check_point, normalise_crs, snap_tiny, to_wgs84

RULES = ("inside", "on_boundary", "nearest", "outside")
# Metres per degree of latitude (mean); longitude degrees shrink by cos(latitude).
M_PER_DEG = 111_320.0

# {points} is replaced by a relation with columns (id bigint, geom geometry(Point, 4326)).
# Parameters: :gen (community generation), :margin_m, :tol_m.
ROUTE_SQL = """
WITH pts AS MATERIALIZED ({points}),
hits AS MATERIALIZED (   -- ONE index probe per point: the pieces within the margin
    SELECT p.id, cp.community_id AS cid, ST_Covers(cp.geom, p.geom) AS cov,
           ST_X(p.geom) AS x, ST_Y(p.geom) AS y
    FROM pts p
    JOIN community_piece cp
      ON cp.generation_id = :gen
     AND ST_DWithin(cp.geom, p.geom, :margin_m / (%(mpd)s * cos(radians(ST_Y(p.geom)))))
),
near AS MATERIALIZED (   -- per point and community: covers? else exact distance (metres)
    SELECT n.id, n.cid, c.code, n.covers,
           CASE WHEN n.covers THEN 0.0 ELSE (  -- rare: only near a boundary
               SELECT min(%(metres)s)
               FROM community_piece cp
               WHERE cp.community_id = n.cid
                 AND ST_DWithin(cp.geom, n.pt, :margin_m / (%(mpd)s * cos(radians(n.y))))
           ) END AS dist
    FROM (SELECT id, cid, bool_or(cov) AS covers, min(y) AS y,
                 ST_SetSRID(ST_MakePoint(min(x), min(y)), 4326) AS pt
          FROM hits GROUP BY id, cid) n
    JOIN community c ON c.id = n.cid
),
agg AS MATERIALIZED (    -- per point: how many cover, the lowest covering code, how many near
    SELECT id,
           count(*) FILTER (WHERE covers) AS n_cover,
           min(code) FILTER (WHERE covers) AS first_code,
           count(*) FILTER (WHERE dist <= :margin_m) AS n_near
    FROM near GROUP BY id
),
gap AS MATERIALIZED (    -- covered by nothing: the nearest community within the tolerance
    SELECT p.id, g.cid, g.dist
    FROM pts p
    LEFT JOIN agg a ON a.id = p.id
    CROSS JOIN LATERAL (
        SELECT cp.community_id AS cid, %(metres_p)s AS dist
        FROM community_piece cp
        WHERE cp.generation_id = :gen
          AND ST_DWithin(cp.geom, p.geom, :tol_m / (%(mpd)s * cos(radians(ST_Y(p.geom)))))
        ORDER BY 2, 1
        LIMIT 1
    ) g
    WHERE COALESCE(a.n_cover, 0) = 0
),
decided AS MATERIALIZED (
    SELECT p.id, COALESCE(a.n_near, 0) AS n_near,
           CASE WHEN a.n_cover > 0 THEN fc.id
                WHEN g.dist <= :tol_m THEN g.cid END AS cid,
           CASE WHEN a.n_cover = 1 THEN 'inside'
                WHEN a.n_cover > 1 THEN 'on_boundary'
                WHEN g.dist <= :tol_m THEN 'nearest'
                ELSE 'outside' END AS rule,
           CASE WHEN a.n_cover > 0 THEN 0.0 WHEN g.dist <= :tol_m THEN g.dist END AS distance_m
    FROM pts p
    LEFT JOIN agg a ON a.id = p.id
    LEFT JOIN community fc ON fc.generation_id = :gen AND fc.code = a.first_code
    LEFT JOIN gap g ON g.id = p.id
),
alts AS (                -- only points with another community within the margin
    SELECT n.id, jsonb_agg(jsonb_build_object('code', n.code, 'name', c.name,
                                              'distance_m', round(n.dist::numeric, 2),
                                              'covers', n.covers)
                           ORDER BY n.dist, n.code) AS list
    FROM decided d
    JOIN near n ON n.id = d.id AND n.cid IS DISTINCT FROM d.cid AND n.dist <= :margin_m
    JOIN community c ON c.id = n.cid
    WHERE d.n_near > 1 OR (d.n_near = 1 AND d.cid IS NULL)
    GROUP BY n.id
)
SELECT d.id, d.rule, d.distance_m, d.cid AS community_id,
       COALESCE(a.list, '[]'::jsonb) AS alternates,
       a.list IS NOT NULL AS near_boundary
FROM decided d
LEFT JOIN alts a ON a.id = d.id
"""


# Metres between a piece and a point: planar distance after scaling longitude by cos(latitude)
# (a local equirectangular projection). At the 20-200 m this is used for it agrees with the
# geodesic distance to about 0.3 % (tests check it) and costs a fraction of a geography call.
_METRES = (
    "ST_Distance(ST_Scale(cp.geom, cos(radians({y})), 1), ST_Scale({pt}, cos(radians({y})), 1))"
    " * %(mpd)s"
)


def route_sql(points_relation: str) -> str:
    """The routing query for a points relation ``(id, geom)``."""
    values = {"mpd": M_PER_DEG}
    values["metres"] = _METRES.format(y="n.y", pt="n.pt") % values
    values["metres_p"] = _METRES.format(y="ST_Y(p.geom)", pt="p.geom") % values
    return ROUTE_SQL.replace("{points}", points_relation) % values


@dataclass
class RouteResult:
    """How one point was routed; serialisable with :meth:`to_dict`."""

    rule: str
    lon: float
    lat: float
    input_lon: float
    input_lat: float
    input_crs: str
    generation_id: int | None
    community_code: str | None = None
    community_name: str | None = None
    subdistrict_code: str | None = None
    subdistrict_name: str | None = None
    post: dict | None = None
    distance_m: float | None = None
    near_boundary: bool = False
    alternates: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def _params(tolerance_m: float | None, margin_m: float | None) -> tuple[float, float]:
    s = get_settings()
    tol = s.gap_tolerance_m if tolerance_m is None else float(tolerance_m)
    margin = s.near_boundary_margin_m if margin_m is None else float(margin_m)
    if tol < 0 or margin < 0:
        raise ValueError("tolerance and margin must be >= 0")
    return tol, margin


def require_generation(conn: Connection, generation_id: int | None = None) -> int:
    """The generation to route against: the given one, or the active community generation."""
    if generation_id is not None:
        found = conn.execute(
            text("SELECT id FROM boundary_generation WHERE id = :g AND level = 'community'"),
            {"g": generation_id},
        ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no community boundary generation {generation_id}", field="generation")
        return found
    gen = active_generation(conn, "community")
    if gen is None:
        raise NotFound(
            "no community boundaries are loaded; run `casegrid sample load` or "
            "`casegrid boundaries import ... --level community --commit`",
            field="generation",
        )
    return gen


COMMUNITY_DETAILS_SELECT = f"""
SELECT c.id, c.code, c.name, c.subdistrict_code,
       {boundary_name_sql("subdistrict", "c.subdistrict_code")} AS subdistrict_name,
       p.id AS post_id, p.name AS post_name, p.contact_name, p.phone, p.address, p.hours,
       ST_X(p.geom) AS post_lon, ST_Y(p.geom) AS post_lat
FROM community c LEFT JOIN community_post p ON p.community_code = c.code
"""
COMMUNITY_DETAILS_SQL = COMMUNITY_DETAILS_SELECT + "WHERE c.id = :cid"
# One round trip for the points: the routing and the chosen communities' details, looked
# up per routed point (OFFSET 0 keeps the lateral subquery from being flattened into a join
# that, for a plan made without knowing the number of points, details every community).
_ROUTE_ONE_SQL = (
    "SELECT r.id AS point_id, r.rule, r.distance_m, r.near_boundary, r.alternates,"
    " r.community_id, d.*"
    " FROM (" + "{route}" + ") r LEFT JOIN LATERAL (" + COMMUNITY_DETAILS_SELECT
    + " WHERE c.id = r.community_id OFFSET 0) d ON true"
)


def _details_from_row(row) -> dict:  # noqa: ANN001 - a SQLAlchemy RowMapping
    post = None
    if row["post_id"] is not None:
        post = {
            "id": row["post_id"],
            "name": row["post_name"],
            "contact_name": row["contact_name"],
            "phone": row["phone"],
            "address": row["address"],
            "hours": row["hours"],
            "lon": row["post_lon"],
            "lat": row["post_lat"],
        }
    return {
        "community_code": row["code"],
        "community_name": row["name"],
        "subdistrict_code": row["subdistrict_code"],
        "subdistrict_name": row["subdistrict_name"],
        "post": post,
    }


def community_details(conn: Connection, community_id: int) -> dict:
    """Code, name, subdistrict and post of a stored community row."""
    row = conn.execute(text(COMMUNITY_DETAILS_SQL), {"cid": community_id}).mappings().one()
    return _details_from_row(row)


@dataclass(frozen=True)
class PreparedPoint:
    """A coordinate after validation and conversion: what was sent, and WGS-84."""

    input_lon: float
    input_lat: float
    input_crs: str
    lon: float
    lat: float


def prepare_point(lon: object, lat: object, crs: str = "wgs84") -> PreparedPoint:
    """Validate ``lon``/``lat`` (NaN, infinities, ranges, swapped pairs raise
    ``CoordinateError`` naming the field) and convert them from ``crs`` to WGS-84."""
    (point,) = prepare_points([(lon, lat, crs)])
    if isinstance(point, CasegridError):
        raise point
    return point


def prepare_points(coords: list[tuple[object, object, str]]) -> list[PreparedPoint | CasegridError]:
    """:func:`prepare_point` for many ``(lon, lat, crs)``: each result, or the error it alone
    raises. The conversion runs once per CRS for all points (GCJ-02's iterative inverse
    costs the same for one point as for a hundred)."""
    out: list[PreparedPoint | CasegridError | None] = [None] * len(coords)
    by_crs: dict[str, list[tuple[int, float, float]]] = {}
    for i, (lon, lat, crs) in enumerate(coords):
        try:
            code = normalise_crs(crs)
            in_lon, in_lat = check_point(lon, lat) if code in ("wgs84", "gcj02", "bd09") else (
                _finite(lon, "lon"), _finite(lat, "lat"))
        except CasegridError as exc:
            out[i] = exc
            continue
        by_crs.setdefault(code, []).append((i, in_lon, in_lat))
    for code, points in by_crs.items():
        wlons, wlats = to_wgs84([p[1] for p in points], [p[2] for p in points], code)
        for (i, in_lon, in_lat), x, y in zip(points, wlons, wlats, strict=True):
            try:
                wlon, wlat = (float(v) for v in snap_tiny(check_point(float(x), float(y))))
            except CasegridError as exc:
                out[i] = exc
                continue
            out[i] = PreparedPoint(in_lon, in_lat, code, wlon, wlat)
    return out  # type: ignore[return-value]


# Many points in one round trip (intake batches): the points come in as one JSON array of
# [lon, lat] pairs. Not as two float8 arrays: the planner sizes unnest() by the length of a
# constant array, so each batch size made a different custom plan and the statement was
# planned anew at every call; a JSON document has no such estimate, so the prepared
# statement settles on one generic plan (see pg_stat_statements' ``plans``).
_ROUTE_MANY_POINTS = (
    "SELECT (u.ord - 1)::bigint AS id,"
    " ST_SetSRID(ST_MakePoint((u.pt->>0)::float8, (u.pt->>1)::float8), 4326) AS geom"
    " FROM jsonb_array_elements(CAST(:points AS jsonb)) WITH ORDINALITY AS u(pt, ord)"
)
_ROUTE_MANY = RawQuery(_ROUTE_ONE_SQL.replace("{route}", route_sql(_ROUTE_MANY_POINTS)))


def route_prepared(
    conn: Connection,
    points: list[PreparedPoint],
    *,
    generation_id: int | None = None,
    tolerance_m: float | None = None,
    margin_m: float | None = None,
) -> list[RouteResult]:
    """Route already validated points (see :func:`prepare_point`) in one query, in order.

    Raises ``NotFound(field='generation')`` when no community boundaries are loaded.
    """
    gen = require_generation(conn, generation_id)
    return route_in_generation(conn, points, gen, tolerance_m=tolerance_m, margin_m=margin_m)


def route_in_generation(
    conn: Connection,
    points: list[PreparedPoint],
    gen: int,
    *,
    tolerance_m: float | None = None,
    margin_m: float | None = None,
) -> list[RouteResult]:
    """:func:`route_prepared` in community generation ``gen``, which the caller has just
    read from the database in this transaction (intake batches read the active one with
    their other lookups), so it is not looked up again."""
    if not points:
        return []
    tol, margin = _params(tolerance_m, margin_m)
    rows = _ROUTE_MANY.rows(
        conn,
        {"points": json_param([(p.lon, p.lat) for p in points]),
         "gen": gen, "tol_m": tol, "margin_m": margin},
    )
    by_index = {row["point_id"]: row for row in rows}
    return [_result(by_index[i], p, gen) for i, p in enumerate(points)]


def _result(row, point: PreparedPoint, gen: int) -> RouteResult:  # noqa: ANN001 - RowMapping
    result = RouteResult(
        rule=row["rule"],
        lon=point.lon,
        lat=point.lat,
        input_lon=point.input_lon,
        input_lat=point.input_lat,
        input_crs=point.input_crs,
        generation_id=gen,
        distance_m=None if row["distance_m"] is None else round(float(row["distance_m"]), 2),
        near_boundary=bool(row["near_boundary"]),
        alternates=list(row["alternates"]),
    )
    if row["community_id"] is not None:
        for key, value in _details_from_row(row).items():
            setattr(result, key, value)
    return result


def route(
    conn: Connection,
    lon: object,
    lat: object,
    crs: str = "wgs84",
    *,
    generation_id: int | None = None,
    tolerance_m: float | None = None,
    margin_m: float | None = None,
) -> RouteResult:
    """Route one coordinate to a community post.

    ``lon``/``lat`` are validated (NaN, infinities, ranges, swapped pairs raise
    ``CoordinateError``), converted from ``crs`` (wgs84, gcj02, bd09 or EPSG:NNNN) to WGS-84,
    and looked up in ``generation_id`` (default: the active community generation).
    """
    (result,) = route_prepared(conn, [prepare_point(lon, lat, crs)], generation_id=generation_id,
                               tolerance_m=tolerance_m, margin_m=margin_m)
    return result


def _finite(value: object, name: str) -> float:
    from casegrid.errors import CoordinateError

    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CoordinateError(f"{name} must be a number, got {value!r}", field=name) from None
    if v != v or v in (float("inf"), float("-inf")):
        raise CoordinateError(f"{name} must be a finite number, got {value!r}", field=name)
    return v
