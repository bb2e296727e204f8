"""cases.intake_lookups reads in one statement what the one-query functions read one by one;
what it returns must make the same principals, categories, due times, generation and
calendar as they do."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from casegrid.errors import InvalidInput, Unauthorized
from cases.calendar_store import STAMP_SQL, load_calendar
from cases.catalogue import categories_from_rows, get_categories
from cases.deadlines import initial_deadlines_from, initial_deadlines_many
from cases.intake_lookups import fetch_intake_lookups
from cases.tokens import (
    authenticate_many,
    create_token,
    hash_token,
    principals_from_rows,
    revoke_token,
)
from geo.boundaries import active_generation


def _same(d: dict) -> dict:
    """Errors compare by class, message and field (exceptions are never equal)."""
    return {k: (type(v), str(v), v.field) if isinstance(v, Exception) else v for k, v in d.items()}


def test_one_statement_reads_what_the_separate_queries_read(city_engine):
    with city_engine.begin() as conn:
        officer = create_token(conn, "community_officer", "lk-officer", ["370481002005"])[1]
        revoked_id, revoked = create_token(conn, "intake", "lk-revoked")
        revoke_token(conn, revoked_id)
        conn.execute(text("UPDATE category SET active = false WHERE code = '0201'"))
    secrets = [officer, revoked, "no-such-token", None, officer]
    codes = ["0599", "0201", "9999", "", "0504", "0599"]
    pairs = [("0599", "hotline_12345"), ("0504", "patrol"), ("0201", "app"), ("9999", "app")]
    received = datetime(2026, 2, 13, 16, 30, tzinfo=UTC)  # the eve of the Spring Festival
    try:
        with city_engine.begin() as conn:
            found = fetch_intake_lookups(conn, token_hashes=[hash_token(s) for s in secrets if s],
                                         codes=codes, pairs=pairs)
            assert _same(principals_from_rows(secrets, found.tokens)) == _same(authenticate_many(conn, secrets))
            assert _same(categories_from_rows(codes, found.categories)) == _same(get_categories(conn, codes))
            assert found.generation_id == active_generation(conn, "community") is not None
            stamp = conn.execute(text(STAMP_SQL)).one()
            assert found.calendar_stamp == tuple(stamp)
            assert load_calendar(conn, found.calendar_stamp) is load_calendar(conn)  # the same cache entry
            valid = [p for p in pairs if p[0] in ("0599", "0504")]
            expected = initial_deadlines_many(conn, valid, received)
            got = initial_deadlines_from(load_calendar(conn), found.limits, valid, received)
            assert got == expected and got[("0599", "hotline_12345")]["review_due_at"] is not None
    finally:
        with city_engine.begin() as conn:
            conn.execute(text("UPDATE category SET active = true WHERE code = '0201'"))
    principals = principals_from_rows(secrets, found.tokens)
    assert principals[officer].communities == ("370481002005",)
    assert all(isinstance(principals[s], Unauthorized) for s in (revoked, "no-such-token", None))
    checked = categories_from_rows(codes, found.categories)
    assert isinstance(checked["0201"], InvalidInput) and "retired" in str(checked["0201"])
    assert isinstance(checked["9999"], InvalidInput) and isinstance(checked[""], InvalidInput)
    assert isinstance(checked["0599"]["duplicate_window_days"], int | None)


def test_without_boundaries_or_anything_to_look_up(engine):
    """A database with no boundaries yet (intake still takes complaints, unrouted) and an
    empty batch: one row all the same."""
    with engine.begin() as conn:
        found = fetch_intake_lookups(conn)
    assert found.generation_id is None
    assert found.tokens == {} and found.categories == {} and found.limits == []
