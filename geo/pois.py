"""Points of interest as places to pick: the schools, hospitals, markets and parks/plazas
inside given communities (an activity's form offers those of its posts' communities).

Which community a POI lies in is decided like a case's point: ``ST_Covers`` on the active
generation's subdivided pieces (``community_piece``), on the POI's point on surface (a
campus polygon counts where its point on surface lies).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

_SQL = """
SELECT DISTINCT ON (p.id) p.id, p.kind, p.name, c.code AS community_code
FROM poi p
JOIN community_piece cp ON cp.generation_id = (SELECT id FROM boundary_generation
                                                WHERE level = 'community' AND active)
     AND ST_Covers(cp.geom, ST_PointOnSurface(p.geom))
JOIN community c ON c.id = cp.community_id
WHERE CAST(:codes AS text[]) IS NULL OR c.code = ANY(:codes)
ORDER BY p.id, c.code
"""


def pois_in(conn: Connection, codes: list[str] | None) -> list[dict]:
    """POIs inside the communities ``codes`` (every community when None), each with the
    code of the community it lies in, ordered by community, kind and name."""
    rows = [dict(r) for r in conn.execute(text(_SQL), {"codes": codes}).mappings()]
    return sorted(rows, key=lambda r: (r["community_code"], r["kind"], r["name"], r["id"]))
