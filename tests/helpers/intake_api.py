"""The intake API under test, shared by the intake, auth, privacy and address test files:
a TestClient on the sample city with a token per role (the ``api`` fixture of
``tests.helpers.fixtures`` is :func:`open_api`), a valid case body, and points inside the
communities computed straight from their polygons with PostGIS, never by the router under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.middleware import install_middleware
from cases.tokens import create_token


@dataclass
class Api:
    """A TestClient on the sample city with a token per role."""

    client: TestClient
    engine: Engine
    tokens: dict[str, str]

    def headers(self, role: str = "intake") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def token(self, role: str, name: str, communities: list[str] | None = None) -> str:
        with self.engine.begin() as conn:
            return create_token(conn, role, name, communities)[1]

    def post_case(self, body: dict, role: str = "intake", **kw):
        return self.client.post("/api/v1/cases", json=body, headers=self.headers(role), **kw)

    def counts(self) -> tuple[int, int]:
        """Rows in "case" and case_event."""
        with self.engine.connect() as conn:
            return (conn.execute(text('SELECT count(*) FROM "case"')).scalar_one(),
                    conn.execute(text("SELECT count(*) FROM case_event")).scalar_one())


def open_api(city_db_url: str, city_engine: Engine) -> Iterator[Api]:
    """The app on the sample city with the middleware installed and a token per role (the
    body of the ``api`` fixture)."""
    app = create_app(database_url=city_db_url)
    install_middleware(app)
    tokens = {}
    with city_engine.begin() as conn:
        for role in ("admin", "dispatcher", "supervisor", "planner", "intake"):
            tokens[role] = create_token(conn, role, f"test-{role}")[1]
    with TestClient(app) as client:
        yield Api(client, city_engine, tokens)


def body(lon=None, lat=None, **kw) -> dict:
    """A valid case body; override or add fields with keywords."""
    out = {"category": "0599", "channel": "hotline_12345", "description": "广场舞音响太响",
           "reported_at": "2025-06-01T21:30:00+08:00"}
    if lon is not None:
        out["lon"], out["lat"] = lon, lat
    out.update(kw)
    return out


def interior_points(engine: Engine) -> list[tuple[str, float, float]]:
    """(community code, lon, lat): a point at least 40 m inside each active community."""
    sql = """
    SELECT c.code, ST_X(s.p) AS lon, ST_Y(s.p) AS lat FROM community c
    JOIN boundary_generation g ON g.id = c.generation_id AND g.active
    CROSS JOIN LATERAL (SELECT ST_PointOnSurface(ST_Buffer(c.geom::geography, -40)::geometry) AS p) s
    ORDER BY c.code
    """
    with engine.connect() as conn:
        return [(r.code, r.lon, r.lat) for r in conn.execute(text(sql))]


def covering_communities(engine: Engine, lon: float, lat: float) -> list[str]:
    """Codes of active communities whose polygon covers the point, sorted."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT c.code FROM community c JOIN boundary_generation g ON g.id = c.generation_id"
            " AND g.active WHERE ST_Covers(c.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            " ORDER BY c.code"), {"x": lon, "y": lat}).scalars())
