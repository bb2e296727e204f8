"""The retention purge never makes intake or the workflow wait: while one of its batches
holds its locks (the statement done, the COMMIT not yet sent), another session registers
new cases and takes a workflow action with ``lock_timeout`` set, and both go through."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, text

from casegrid.db import make_engine
from casegrid.settings import Settings
from cases.intake import NewCase, register_cases
from cases.retention import PURGE_ACTION, purge
from cases.tokens import Principal
from cases.workflow import apply_action
from tests.helpers.intake_api import interior_points

INTAKE = Principal(0, "hotline gateway", "intake")
SUPERVISOR = Principal(0, "supervisor on duty", "supervisor")


def _submissions(points, start: int, n: int) -> list:
    return [(NewCase(lon=lon, lat=lat, category="0504", channel="hotline_12345",
                     external_id=f"PB-{start + i}", reporter_name="李四",
                     reporter_phone=f"1390000{start + i:04d}",
                     description=f"店外经营 请回电1390000{start + i:04d}"), INTAKE)
            for i, (_code, lon, lat) in enumerate(points[:n])]


def test_intake_and_actions_go_through_while_a_purge_batch_holds_its_locks(city_engine, city_db_url):
    settings = Settings(privacy_purge_batch=10)
    points = interior_points(city_engine)
    with city_engine.begin() as conn:
        made = register_cases(conn, _submissions(points, 0, 30), settings, search_duplicates=False)
        ids = [r.case["id"] for r in made]
        # Closed a day ago, as the ledger's old cases are (same communities, same posts,
        # same days of the statistics as the cases registered below).
        conn.execute(text('UPDATE "case" SET status = \'closed\', closed_at = now() - interval '
                          "'1 day' WHERE id = ANY(:ids) AND id % 5 <> 0"), {"ids": ids})
        open_id = conn.execute(text('SELECT min(id) FROM "case" WHERE closed_at IS NULL')).scalar_one()

    other = make_engine(city_db_url)
    during: list[str] = []

    def beside_the_batch(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if PURGE_ACTION not in statement or "WITH batch" not in statement:
            return
        # The batch's rows are locked and its events written; its COMMIT comes after this.
        with other.begin() as c2:
            c2.execute(text("SET LOCAL lock_timeout = '2s'"))
            new = register_cases(c2, _submissions(points, 100 + 10 * len(during), 3), settings,
                                 search_duplicates=False)
            assert all(r.created for r in new)
        if not during:
            with other.begin() as c2:
                c2.execute(text("SET LOCAL lock_timeout = '2s'"))
                apply_action(c2, open_id, "accept", {"note": "立案"}, SUPERVISOR)
        during.append("ok")

    event.listen(city_engine, "after_cursor_execute", beside_the_batch)
    try:
        report = purge(city_engine, timedelta(hours=1), commit=True, settings=settings)
    finally:
        event.remove(city_engine, "after_cursor_execute", beside_the_batch)
        other.dispose()
    # 24 closed cases in batches of 10: three batches (and the empty one that ends the
    # purge), and intake went through beside each.
    assert report.cases == 24 and report.batches == 3 and during == ["ok"] * 4
    with city_engine.connect() as conn:
        assert conn.execute(text(
            'SELECT count(*) FROM "case" WHERE reporter_phone IS NOT NULL')).scalar_one() == 6 + 3 * 4
        assert conn.execute(text(
            'SELECT status FROM "case" WHERE id = :i'), {"i": open_id}).scalar_one() == "reviewed"
