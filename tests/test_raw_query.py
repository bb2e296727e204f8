"""casegrid.db.RawQuery: hot-path statements on the driver's cursor behave like
``conn.execute(text(...))`` (parameters, rows, transaction, errors)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from casegrid.db import RawQuery


def test_rows_are_dicts_and_parameters_bind_like_text(engine):
    sql = ("SELECT CAST(:a AS int) + 1 AS n, '100%' || CAST(:b AS text) AS s, "
           "unnest(CAST(:xs AS int[])) AS x")
    params = {"a": 41, "b": "!", "xs": [1, 2]}
    with engine.connect() as conn:
        got = RawQuery(sql).rows(conn, params)
        same = [dict(r) for r in conn.execute(text(sql), params).mappings()]
    assert got == same == [{"n": 42, "s": "100%!", "x": 1}, {"n": 42, "s": "100%!", "x": 2}]


def test_runs_in_the_callers_transaction(engine):
    insert = RawQuery("INSERT INTO category (code, name_zh, name_en, major_zh, major_en) "
                      "VALUES (:c, 'x', 'x', 'x', 'x') RETURNING code")
    with engine.connect() as conn:
        with conn.begin() as tx:
            assert insert.rows(conn, {"c": "9901"}) == [{"code": "9901"}]
            tx.rollback()
        assert conn.execute(text("SELECT count(*) FROM category WHERE code = '9901'")).scalar() == 0
    with engine.begin() as conn:
        insert.rows(conn, {"c": "9902"})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM category WHERE code = '9902'")).scalar() == 1


@pytest.mark.parametrize(("sql", "params", "error"), [
    ("SELECT CAST(:v AS int)", {"v": "not a number"}, DataError),
    ("INSERT INTO category (code, name_zh, name_en, major_zh, major_en) "
     "SELECT code, 'x', 'x', 'x', 'x' FROM category LIMIT 1", {}, IntegrityError),
    ("SELECT * FROM no_such_table WHERE 1 = :v", {"v": 1}, ProgrammingError),
])
def test_driver_errors_come_out_as_sqlalchemy_errors(engine, sql, params, error):
    """The intake batch retries on DataError/IntegrityError and the app maps the others;
    a bare psycopg error would escape both."""
    with engine.connect() as conn, pytest.raises(error) as caught:
        RawQuery(sql).rows(conn, params)
    assert caught.value.orig is not None


def test_a_lost_connection_is_invalidated_not_reset_by_the_pool(engine, caplog):
    """A backend that dies under a RawQuery: OperationalError, marked invalidated, and the
    pool discards the connection instead of logging a failed reset (a traceback)."""
    import logging

    from sqlalchemy.exc import OperationalError

    caplog.set_level(logging.DEBUG, logger="sqlalchemy.pool")
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(OperationalError) as caught:
            RawQuery("SELECT 1 AS one").rows(conn, {})
        assert caught.value.connection_invalidated
        assert conn.invalidated
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    with engine.connect() as conn:  # the pool gives a working connection again
        assert RawQuery("SELECT 1 AS one").rows(conn, {}) == [{"one": 1}]


def test_single_read_keeps_prepared_statements_and_gives_back_a_transactional_connection(db_url):
    """Reads through single_read leave the connection's prepared statements in place (a
    plain engine.connect() ends with ROLLBACK, which makes psycopg forget them), and the
    next user of the pooled connection still gets real transactions."""
    from casegrid.db import make_engine, single_read
    from casegrid.settings import Settings

    engine = make_engine(db_url, Settings(pool_size=1, pool_max_overflow=0))
    lookup = RawQuery("SELECT code FROM category WHERE code = :c")
    prepared = ("SELECT count(*) FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT code FROM category WHERE code =%'")
    try:
        for _ in range(7):  # psycopg prepares after 5 runs
            with single_read(engine) as conn:
                lookup.rows(conn, {"c": "0599"})
        with single_read(engine) as conn:
            assert conn.execute(text(prepared)).scalar() == 1
        with engine.connect() as conn:  # the same pooled connection, in a transaction again
            with conn.begin() as tx:
                conn.execute(text("INSERT INTO category (code, name_zh, name_en, major_zh, "
                                  "major_en) VALUES ('9902', 'x', 'x', 'x', 'x')"))
                tx.rollback()
            assert conn.execute(text("SELECT count(*) FROM category WHERE code = '9902'")).scalar() == 0
            conn.rollback()
            assert conn.execute(text(prepared)).scalar() == 0  # what ROLLBACK does
    finally:
        engine.dispose()


def test_json_param_reaches_postgresql_as_the_same_values(engine):
    """Intake sends its rows as JSON documents: floats must arrive as the same doubles,
    timestamps as the same instants (aware or naive, read in the session's zone), text
    intact, and anything else as its string."""
    from datetime import UTC, datetime
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from casegrid.db import json_param

    aware = datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=ZoneInfo("Asia/Shanghai"))
    rows = [
        {"f": 117.17316912206752, "t": aware, "s": "广场舞噪音 \"quoted\" \\ 13800000000", "d": Decimal("0.1")},
        {"f": 5e-324, "t": datetime(2026, 1, 1, 0, 0, 0), "s": "", "d": None},
        {"f": -0.0, "t": datetime(2025, 12, 31, 16, 0, tzinfo=UTC), "s": "x\ny", "d": Decimal("2")},
    ]
    sql = ("SELECT r.f, r.t, r.s, r.d FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
           "AS r(f float8, t timestamptz, s text, d text)")
    with engine.connect() as conn:
        conn.execute(text("SET TIME ZONE 'Asia/Shanghai'"))
        got = RawQuery(sql).rows(conn, {"rows": json_param(rows)})
    assert [g["f"] for g in got] == [117.17316912206752, 5e-324, 0.0]
    assert got[0]["t"] == aware and got[2]["t"] == datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert got[1]["t"] == datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))  # naive: local
    assert [g["s"] for g in got] == [rows[0]["s"], "", "x\ny"]
    assert [g["d"] for g in got] == ["0.1", None, "2"]


def test_the_pool_hands_out_the_connection_given_back_last(db_url):
    """LIFO: after a burst opened several connections, steady work reuses the latest."""
    from casegrid.db import make_engine

    engine = make_engine(db_url)
    try:
        first, second, third = engine.connect(), engine.connect(), engine.connect()
        raw = {name: c.connection.dbapi_connection
               for name, c in (("first", first), ("second", second), ("third", third))}
        for conn in (third, first, second):  # second is given back last
            conn.close()
        for _ in range(3):
            with engine.connect() as again:
                assert again.connection.dbapi_connection is raw["second"]
    finally:
        engine.dispose()


def test_concurrent_requests_reuse_the_pool_without_opening_new_connections(db_url):
    """With the default settings, more threads than the pool holds (a web server's thread
    pool under load) share its connections: each stays open and is reused, none is closed
    and replaced by a new backend. (With overflow connections, which the pool closes when
    they come back to a full pool, the same load opens more backends than the pool holds,
    and a server's steady load keeps replacing them.)"""
    import threading

    from casegrid.db import make_engine, single_read
    from casegrid.settings import Settings

    settings = Settings()
    engine = make_engine(db_url, settings)
    seen: set[int] = set()
    lock = threading.Lock()
    start = threading.Barrier(settings.pool_size + 4)

    def work() -> None:
        start.wait()
        for _ in range(40):
            with single_read(engine) as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with lock:
                seen.add(pid)

    threads = [threading.Thread(target=work) for _ in range(settings.pool_size + 4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert len(seen) <= settings.pool_size
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()
