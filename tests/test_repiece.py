"""Cutting a community generation into routing pieces again (``casegrid boundaries
subdivide``): the pieces change, the routing answers do not, and bad requests change
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from casegrid.errors import InvalidInput, NotFound
from geo.boundaries import active_generation, repiece_generation
from geo.routing import route

ROOT = Path(__file__).resolve().parent.parent


def _pieces(conn, gen: int) -> int:
    return conn.execute(text("SELECT count(*) FROM community_piece WHERE generation_id = :g"),
                        {"g": gen}).scalar_one()


def _answers(engine, points: list[tuple[float, float]]) -> list[tuple]:
    with engine.connect() as conn:
        out = []
        for lon, lat in points:
            r = route(conn, lon, lat, "wgs84")
            out.append((r.rule, r.community_code, r.near_boundary,
                        None if r.distance_m is None else round(r.distance_m, 3),
                        tuple(a["code"] for a in r.alternates)))
        return out


def test_repiecing_changes_the_pieces_and_not_the_routing(city_engine):
    with city_engine.connect() as conn:
        gen = active_generation(conn)
        # Points on the communities' own vertices (shared boundaries), and spread over the
        # city's extent and a little beyond it (gaps, outside every boundary).
        vertices = conn.execute(text(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM community c, ST_DumpPoints(c.geom) p"
            " WHERE c.generation_id = :g AND p.path[array_length(p.path, 1)] % 29 = 0"),
            {"g": gen}).all()
        x0, y0, x1, y1 = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM community WHERE generation_id = :g) t"),
            {"g": gen}).one()
    rng = np.random.default_rng(11)
    points = [(float(x), float(y)) for x, y in vertices] + list(zip(
        rng.uniform(x0 - 0.01, x1 + 0.01, 150).tolist(),
        rng.uniform(y0 - 0.01, y1 + 0.01, 150).tolist(), strict=True))
    assert len(vertices) >= 20
    before = _answers(city_engine, points)
    assert {a[0] for a in before} >= {"inside", "on_boundary", "outside"}
    with city_engine.begin() as conn:
        was = _pieces(conn, gen)
        result = repiece_generation(conn, max_vertices=8)
        now = _pieces(conn, gen)
    assert result == (gen, was, now) and now > was  # smaller pieces, more of them
    assert _answers(city_engine, points) == before
    with city_engine.begin() as conn:  # back to the setting's size
        assert repiece_generation(conn, gen) == (gen, now, was)
    assert _answers(city_engine, points) == before


def test_repiecing_refuses_what_it_cannot_cut(city_engine):
    with city_engine.connect() as conn:
        gen = active_generation(conn)
        subdistricts = active_generation(conn, "subdistrict")
        was = _pieces(conn, gen)
        for kwargs, exc, field in (
            ({"max_vertices": 4}, InvalidInput, "max_vertices"),
            ({"max_vertices": 5000}, InvalidInput, "max_vertices"),
            ({"generation_id": subdistricts}, NotFound, "generation"),
            ({"generation_id": 987654}, NotFound, "generation"),
        ):
            with pytest.raises(exc) as err:
                repiece_generation(conn, **kwargs)
            assert err.value.field == field, kwargs
        assert _pieces(conn, gen) == was


def test_subdivide_command(city_db_url, city_engine):
    env = {**os.environ, "DATABASE_URL": city_db_url}
    with city_engine.connect() as conn:
        gen = active_generation(conn)
        was = _pieces(conn, gen)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "casegrid.cli", "boundaries", "subdivide", *args],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)

    bad = cli("--max-vertices", "3")
    assert bad.returncode == 2 and "max_vertices" in bad.stderr and "Traceback" not in bad.stderr
    with city_engine.connect() as conn:
        assert _pieces(conn, gen) == was
    ok = cli("--max-vertices", "16")
    assert ok.returncode == 0, ok.stderr
    with city_engine.connect() as conn:
        now = _pieces(conn, gen)
    assert now > was and f"{now:,} routing pieces (were {was:,})" in ok.stdout


def test_two_recuts_of_one_generation_leave_one_set_of_pieces(city_engine):
    # The second waits for the first to commit (the first's REINDEX holds the piece index,
    # which the second's DELETE must open), then plans its DELETE afresh and so replaces
    # the first's pieces instead of leaving both sets.
    import threading

    with city_engine.connect() as conn:
        gen = active_generation(conn)
    first_in = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        first_in.wait()
        try:
            with city_engine.begin() as conn:
                repiece_generation(conn, gen, 16)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    with city_engine.begin() as conn:
        repiece_generation(conn, gen, 8)
        first_in.set()
        thread.join(1.0)
        assert thread.is_alive()  # waiting on the first re-cut's lock
    thread.join(30)
    assert not errors and not thread.is_alive()
    with city_engine.connect() as conn:
        expected = conn.execute(text(
            "SELECT count(*) FROM community c, ST_Subdivide(c.geom, 16) p WHERE c.generation_id = :g"),
            {"g": gen}).scalar_one()
        assert _pieces(conn, gen) == expected
