"""Cases for the map tests, shared by the map page, map browser, map benchmark-style and
pool tests: random cases inside every community of the sample city (with reporter data that
must never reach a map), a token per role, and a box around the city."""

from __future__ import annotations

from sqlalchemy import text

from cases.tokens import create_token

# A box (lon/lat, WGS-84) around the whole sample city.
CITY_BBOX = "116.9,34.8,117.5,35.4"


def seed_cases(engine, n_per_community: int = 12, seed: int = 1) -> dict:
    """Random cases inside every community (registered, dispatched, handled, overdue,
    closed, flagged), with reporter data that must never reach a map. Returns facts."""
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": seed / 10})
        conn.execute(text(
            """
            INSERT INTO "case" (channel, category_code, reported_at, geom, community_code, subdistrict_code,
                                route_rule, near_boundary, status, current_due_at, closed_at, reporter_name, reporter_phone)
            SELECT (ARRAY['hotline_12345','platform','app'])[1 + (k % 3)],
                   (ARRAY['0508','0101','0504'])[1 + (k % 3)],
                   timestamptz '2025-06-01 08:00+08' + (k || ' hours')::interval,
                   (ST_Dump(ST_GeneratePoints(c.geom, :n))).geom,
                   c.code, c.subdistrict_code, 'inside', false,
                   (ARRAY['registered','dispatched','handled','closed'])[1 + (k % 4)],
                   now() + interval '2 days', NULL, '张三', '13800000000'
            FROM community c CROSS JOIN generate_series(1, 1) k
            WHERE c.generation_id = (SELECT id FROM boundary_generation WHERE level='community' AND active)
            """), {"n": n_per_community})
        # Spread states and categories over rows deterministically by id.
        conn.execute(text(
            """UPDATE "case" SET
                 status = (ARRAY['registered','dispatched','handled','closed'])[1 + (id % 4)::int],
                 category_code = (ARRAY['0508','0101','0504'])[1 + (id % 3)::int],
                 closed_at = CASE WHEN id % 4 = 3 THEN now() END,
                 current_due_at = CASE WHEN id % 10 = 0 THEN now() - interval '1 day' ELSE now() + interval '2 days' END,
                 near_boundary = (id % 17 = 0),
                 route_rule = CASE WHEN id % 29 = 0 THEN 'nearest' ELSE 'inside' END,
                 reported_at = timestamptz '2025-06-01 00:00+08' + ((id * 7) % 24 || ' hours')::interval + (id % 30 || ' days')::interval"""))
        facts = conn.execute(text(
            """SELECT count(*) total, count(*) FILTER (WHERE closed_at IS NULL AND status <> 'closed') open,
                      count(*) FILTER (WHERE closed_at IS NULL AND current_due_at < now()) overdue
               FROM "case" """)).mappings().one()
    return dict(facts)


def make_token(engine, role: str, communities: list[str] | None = None) -> str:
    """A bearer token of ``role`` (bound to ``communities``), in its own transaction."""
    with engine.begin() as conn:
        return create_token(conn, role, f"test-{role}", communities)[1]
