"""The three deadline paths (per case with the calendar, vectorised numpy for batches, and
the set-based SQL over a laid-out calendar) give identical due times."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from cases.calendar_store import load_calendar
from cases.deadlines import SMALL_BATCH, _set_initial_deadlines_sql, set_initial_deadlines

TZ = ZoneInfo("Asia/Shanghai")
COLUMNS = "review_due_at, reply_due_at, current_due_at, due_provisional"


def test_small_and_bulk_paths_agree(engine):
    start = datetime(2026, 9, 15, 7, 45, tzinfo=TZ)
    with engine.begin() as conn:
        cats = [r[0] for r in conn.execute(text("SELECT code FROM category ORDER BY code"))]
        channels = ["hotline_12345", "platform", "patrol", "app"]
        ids = []
        for i in range(SMALL_BATCH * 2):
            received = start + timedelta(hours=7 * i + (i % 5) * 0.37)  # through Golden Week
            ids.append(conn.execute(text(
                "INSERT INTO \"case\" (channel, category_code, reported_at, received_at) "
                "VALUES (:ch, :cat, :t, :t) RETURNING id"),
                {"ch": channels[i % 4], "cat": cats[i % len(cats)], "t": received}).scalar_one())
        # late December: deadlines fall in a year nobody entered -> provisional
        ids.append(conn.execute(text(
            "INSERT INTO \"case\" (channel, category_code, reported_at, received_at) "
            "VALUES ('hotline_12345', :cat, :t, :t) RETURNING id"),
            {"cat": cats[0], "t": datetime(2026, 12, 31, 16, 0, tzinfo=TZ)}).scalar_one())
        assert len(ids) > SMALL_BATCH
        reset = text("UPDATE \"case\" SET review_due_at = NULL, reply_due_at = NULL, "
                     "current_due_at = NULL, due_provisional = false")
        select = text(f"SELECT id, {COLUMNS} FROM \"case\" ORDER BY id")
        set_initial_deadlines(conn, ids)  # a batch: the vectorised path
        vectorised = conn.execute(select).all()
        conn.execute(reset)
        _set_initial_deadlines_sql(conn, load_calendar(conn), ids)
        sql = conn.execute(select).all()
        conn.execute(reset)
        for case_id in ids:  # the per-case path
            set_initial_deadlines(conn, [case_id])
        small = conn.execute(select).all()
    assert all(r.review_due_at is not None for r in vectorised)
    assert vectorised[-1].due_provisional is True
    assert small == vectorised
    assert sql == vectorised


def test_bulk_import_deadlines_equal_the_per_case_path(city_engine):
    from cases.bulk_import import import_cases
    from tests.test_bulk_import import CSV_FIXTURE

    import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True, backdate=True)
    select = text(f"SELECT id, {COLUMNS} FROM \"case\" ORDER BY id")
    with city_engine.begin() as conn:
        imported = conn.execute(select).all()
        conn.execute(text("UPDATE \"case\" SET review_due_at = NULL, reply_due_at = NULL, "
                          "current_due_at = NULL, due_provisional = false"))
        for row in imported:
            set_initial_deadlines(conn, [row.id])
        recomputed = conn.execute(select).all()
    assert imported and all(r.review_due_at is not None for r in imported)
    assert recomputed == imported


def test_intake_writes_the_same_deadlines_as_the_ledger_would(city_engine):
    from cases.intake import NewCase, create_case
    from cases.tokens import Principal

    actor = Principal(0, "test", "intake")
    rows = []
    with city_engine.begin() as conn:
        for i, (cat, ch) in enumerate([("0101", "hotline_12345"), ("0599", "app"),
                                       ("0504", "patrol"), ("0102", "platform")]):
            r = create_case(conn, NewCase(lon=117.165, lat=35.085, category=cat, channel=ch,
                                          external_id=f"dl-{i}", description="x"), actor)
            rows.append(r.case["id"])
        select = text(f"SELECT id, {COLUMNS} FROM \"case\" ORDER BY id")
        at_intake = conn.execute(select).all()
        conn.execute(text("UPDATE \"case\" SET review_due_at = NULL, reply_due_at = NULL, "
                          "current_due_at = NULL, due_provisional = false"))
        set_initial_deadlines(conn, rows)
        recomputed = conn.execute(select).all()
    assert all(r.review_due_at is not None and r.reply_due_at is not None for r in at_intake)
    assert recomputed == at_intake
