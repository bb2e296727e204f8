"""The shape of the maps' SQL, which is what keeps the pages fast at a million cases (the
timings themselves are in ``bench/bench_maps.py``, not here: a timed test on a shared machine
is noise). Also: a statement stopped by the timeout is a clear 503, never a 500.

* The hotspot analysis reads the ``"case"`` table exactly once (one scan, whatever it shows),
  counted by PostgreSQL itself in ``pg_stat_xact_user_tables``.
* The dispatcher's viewport query on open cases is answered from the partial GiST index on
  open cases (migration 0006), on a ledger where most cases are closed, as in real life.
"""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from api.app import create_app
from casegrid.settings import Settings
from cases.filters import CaseFilters, filter_sql
from geo.hotspots import hotspot_analysis, poi_ring_stats
from geo.map_data import cases_in_bbox, city_bounds, for_map
from tests.helpers.map_pages import make_token, seed_cases


def _case_scans(conn) -> int:
    """Scans of "case" (sequential + index) so far in this transaction."""
    row = conn.execute(text(
        "SELECT COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables "
        "WHERE relname = 'case'")).first()
    return int(row[0]) if row else 0


def test_hotspot_analysis_reads_the_cases_once(city_engine) -> None:
    seed_cases(city_engine, n_per_community=20)
    with city_engine.connect() as conn:
        before = _case_scans(conn)
        a = hotspot_analysis(conn, CaseFilters(), permutations=99)
        scans = _case_scans(conn) - before
    assert scans == 1, f"the hotspot analysis scanned the case table {scans} times (one read expected)"
    # ... and that one read fed every figure on the page.
    with city_engine.connect() as conn:
        total = conn.execute(text(f'SELECT count(*) FROM "case" c WHERE {filter_sql(for_map(CaseFilters(state=("new", "dispatched", "handled", "closed"))))[0]}')).scalar_one()
        per_community = dict(conn.execute(text(
            'SELECT community_code, count(*) FROM "case" WHERE community_code IS NOT NULL GROUP BY 1')).all())
    assert total == 55 * 20
    assert a["grid"].total_in_area == total
    assert a["community_counts"] == per_community
    assert sum(n for frame in a["hourly"] for *_, n in frame) == total


def test_poi_rings_reuse_the_grid_points(city_engine) -> None:
    """The POI JSON endpoint builds a grid and then the rings: one read for both."""
    from geo.hotspots import aggregate_grid, for_statistics, getis_ord

    seed_cases(city_engine, n_per_community=10)
    f = for_statistics(CaseFilters())
    with city_engine.connect() as conn:
        before = _case_scans(conn)
        grid = aggregate_grid(conn, f, 250.0)
        rows = poi_ring_stats(conn, f, grid=grid, hot=getis_ord(grid, permutations=99))
        assert _case_scans(conn) - before == 1
        # A different filter is not served from the grid's points.
        evening = poi_ring_stats(conn, CaseFilters(hour_from=20, hour_to=5), grid=grid)
        assert _case_scans(conn) - before == 2
    assert rows and evening


def _explain(conn, sql: str, params) -> str:
    return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))


def test_open_case_viewport_uses_the_partial_index(city_engine) -> None:
    """On a ledger of mostly closed cases, every query of the dispatcher's first view (open
    cases, whole city, count grid) goes through case_open_geom_gist, not a scan of all."""
    with city_engine.begin() as conn:
        # 20,000 closed cases and 300 open ones, spread over the city's extent.
        conn.execute(text(
            """INSERT INTO "case" (channel, category_code, reported_at, geom, route_rule, status, closed_at)
               SELECT 'platform', '0508', now() - interval '30 days',
                      ST_SetSRID(ST_MakePoint(117.10 + random() * 0.12, 35.03 + random() * 0.10), 4326),
                      'inside', CASE WHEN k <= 20000 THEN 'closed' ELSE 'dispatched' END,
                      CASE WHEN k <= 20000 THEN now() - interval '1 day' END
               FROM generate_series(1, 20300) k"""))
    with city_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text('ANALYZE "case"'))
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001
        if 'FROM "case" c' in statement:
            statements.append((statement, parameters))

    with city_engine.connect() as conn:
        w, s, e, n = city_bounds(conn)
        event.listen(city_engine, "before_cursor_execute", capture)
        try:
            answer = cases_in_bbox(conn, CaseFilters(), (w - 0.05, s - 0.05, e + 0.05, n + 0.05), max_points=100)
        finally:
            event.remove(city_engine, "before_cursor_execute", capture)
        assert answer["mode"] == "cells" and answer["total"] == 300
        assert len(statements) == 2  # the capped count, then the grid
        for sql, params in statements:
            plan = _explain(conn, sql, params)
            assert "case_open_geom_gist" in plan, plan


def test_statement_timeout_is_a_503_not_a_500(city_engine, city_db_url) -> None:
    """A query stopped by statement_timeout (SQLSTATE 57014) is answered 503 with code
    query_timeout, a Retry-After and no database text. Made deterministic with a lock: the
    page's read of "case" waits behind another session's exclusive lock until the timeout."""
    seed_cases(city_engine, n_per_community=2)
    settings = Settings(tiles="none", database_url=city_db_url, statement_timeout_ms=400)
    app = create_app(settings=settings, database_url=city_db_url)
    planner = make_token(city_engine, "planner")
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with city_engine.begin() as conn:
            conn.execute(text('LOCK TABLE "case" IN ACCESS EXCLUSIVE MODE'))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock)
    with TestClient(app) as client:
        holder.start()
        try:
            assert locked.wait(10)
            for path in ("/maps/hotspots", "/api/v1/hotspots/pois"):
                r = client.get(path, headers={"Authorization": f"Bearer {planner}"})
                assert r.status_code == 503, (path, r.status_code, r.text[:300])
                body = r.json()
                assert body["code"] == "query_timeout"
                assert "0.4 s" in body["detail"] and "narrow" in body["detail"]
                assert "canceling statement" not in r.text  # the server's text stays in the log
                assert r.headers.get("Retry-After")
        finally:
            release.set()
            holder.join(30)
        # Once the lock is gone the same page is served.
        r = client.get("/api/v1/hotspots/pois", headers={"Authorization": f"Bearer {planner}"})
        assert r.status_code == 200


@pytest.mark.parametrize("states", [(), ("new",), ("closed",), ("overdue",), ("new", "dispatched", "handled", "closed")])
def test_state_filters_select_the_same_cases_as_the_state_groups(city_engine, states) -> None:
    """The rewritten open-case condition and the "all groups" shortcut select exactly the
    cases whose state group (as the popups show it) is among the states asked for."""
    from cases.vocabulary import overdue_sql, state_group_sql

    seed_cases(city_engine, n_per_community=4)
    with city_engine.begin() as conn:
        # rejected without closed_at, and closed_at on a status that is not closed
        conn.execute(text("UPDATE \"case\" SET status = 'rejected', closed_at = NULL WHERE id % 7 = 1"))
        conn.execute(text("UPDATE \"case\" SET closed_at = now() WHERE id % 11 = 2 AND status = 'dispatched'"))
        where, p = filter_sql(for_map(CaseFilters(state=states)))
        got = {r[0] for r in conn.execute(text(f'SELECT c.id FROM "case" c WHERE {where}'), p)}
        rows = conn.execute(text(f'SELECT c.id, {state_group_sql()}, {overdue_sql()} FROM "case" c')).all()
    if not states:
        want = {i for i, g, _ in rows if g != "closed"}
    else:
        want = {i for i, g, od in rows if g in states or ("overdue" in states and od)}
    assert got == want
    assert want  # the case mix covers every branch
