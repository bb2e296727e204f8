"""Time limits and due times: the 2026 National Day week and its make-up working days,
provisional years, the first due times of new cases, the limit table (the vectorised bulk
version is checked against the walk in test_deadlines_vec.py).

2026 (State Council notice): Mid-Autumn Fri 25 Sep off; National Day Thu 1 - Wed 7 Oct off;
Sun 20 Sep and Sat 10 Oct are working days. Work periods 08:30-12:00 and 13:30-17:30."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from casegrid.errors import InvalidInput, NotFound
from cases.calendar import CITY_TZ, WorkCalendar
from cases.calendar_store import load_calendar
from cases.deadlines import (
    Limit,
    due_after,
    get_time_limits,
    initial_deadlines_many,
    limits_for,
    set_time_limits,
)
from cases.vocabulary import overdue_sql
from tests.helpers.ledger import COMM_A, make_case


def sh(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=CITY_TZ)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.builtin()


# (start, amount, unit, expected due) worked out by hand
NATIONAL_DAY = [
    (sh(2026, 9, 30, 10), 1, "working_days", sh(2026, 10, 8, 17, 30)),   # holiday week skipped
    (sh(2026, 9, 30, 10), 3, "working_days", sh(2026, 10, 10, 17, 30)),  # Sat 10 Oct worked
    (sh(2026, 9, 30, 10), 4, "working_days", sh(2026, 10, 12, 17, 30)),  # Sun 11 Oct off
    (sh(2026, 10, 3, 9), 0, "working_days", sh(2026, 10, 8, 17, 30)),    # same day -> next open
    (sh(2026, 9, 30, 16), 4, "working_hours", sh(2026, 10, 8, 11, 0)),   # 1.5 h + 2.5 h
    (sh(2026, 9, 19, 10), 2, "working_hours", sh(2026, 9, 20, 10, 30)),  # Sat off, Sun worked
    (sh(2026, 9, 24, 17), 1, "working_hours", sh(2026, 9, 28, 9, 0)),    # 0.5 h Thu, Fri off
    # Fri 9 Oct 13:30-17:30 (4 h) + Sat 10 Oct make-up day (7.5 h) + Mon 08:30-12:00 (3.5 h):
    # runs out exactly at the end of a period, so due at 12:00, not 13:30
    (sh(2026, 10, 9, 12, 0), 15, "working_hours", sh(2026, 10, 12, 12, 0)),
]


@pytest.mark.parametrize(("start", "amount", "unit", "due"), NATIONAL_DAY)
def test_national_day_by_hand(cal, start, amount, unit, due):
    lim = Limit("handle", amount, unit)
    got = due_after(cal, start, lim)
    assert got.at == due and not got.provisional


def test_provisional_when_a_year_is_not_entered(engine):
    # 2027 is not in chinese-calendar (nor in the table): weekdays only, provisional
    with engine.begin() as conn:
        calendar = load_calendar(conn)
        assert 2027 not in calendar.covered_years
        start = sh(2026, 12, 28, 10)
        got = {"a": calendar.add(start, 5, "working_days"),
               "b": calendar.add(start, 2, "working_days"),
               "c": calendar.add(sh(2026, 12, 31, 16), 4, "working_hours")}
    # Tue 29, Wed 30, Thu 31 Dec, Fri 1 Jan 2027 (no notice: a weekday), Mon 4 Jan
    assert got["a"].at == sh(2027, 1, 4, 17, 30) and got["a"].provisional
    assert got["b"].at == sh(2026, 12, 30, 17, 30) and not got["b"].provisional
    # Thu 31 Dec 16:00-17:30 (1.5 h), Fri 1 Jan 2027 08:30 + 2.5 h
    assert got["c"].at == sh(2027, 1, 1, 11, 0) and got["c"].provisional


def test_initial_deadlines_of_new_cases(city_engine):
    """Review and reply counted from receipt (what intake writes with the INSERT)."""
    with city_engine.begin() as conn:
        ids = [make_case(conn, COMM_A, received_at=sh(2026, 9, 30, 16)),
               make_case(conn, COMM_A, channel="platform", received_at=sh(2026, 9, 30, 16)),
               make_case(conn, COMM_A, received_at=sh(2026, 12, 28, 10))]
        rows = {r.id: r for r in conn.execute(text(
            'SELECT id, review_due_at, reply_due_at, current_due_at, due_provisional '
            'FROM "case" WHERE id = ANY(:i)'), {"i": ids})}
    first, second, late = (rows[i] for i in ids)
    # review 4 working hours from Wed 30 Sep 16:00: 1.5 h, then Thu 8 Oct 08:30 + 2.5 h
    assert first.review_due_at == sh(2026, 10, 8, 11, 0) == first.current_due_at
    # 12345 reply 13 working days after 30 Sep: 8, 9, 10 (Sat), 12-16, 19-23 Oct -> Fri 23
    assert first.reply_due_at == sh(2026, 10, 23, 17, 30)
    # platform reply 5 working days: 8, 9, 10, 12, 13 Oct
    assert second.reply_due_at == sh(2026, 10, 13, 17, 30)
    assert not first.due_provisional
    # review of the 28 Dec case ends in 2026 (not provisional); its reply runs into 2027
    assert late.review_due_at == sh(2026, 12, 28, 15, 30) and not late.due_provisional
    assert late.reply_due_at.year == 2027
    with city_engine.connect() as conn:
        assert initial_deadlines_many(conn, [], sh(2026, 9, 30)) == {}


def test_limits_most_specific_wins_and_edits(engine):
    with engine.begin() as conn:
        assert limits_for(conn, "0101", "platform")["handle"].amount == 15
        assert limits_for(conn, "0101", "hotline_12345")["reply"].amount == 13
        assert limits_for(conn, "0101", "platform")["reply"].amount == 5
        assert limits_for(conn, "0599", "app")["handle"].amount == 0  # same working day
        set_time_limits(conn, "0101", [{"step": "reply", "amount": 20, "unit": "working_days",
                                        "channel": "hotline_12345"}], "test")
        assert limits_for(conn, "0101", "hotline_12345")["reply"].amount == 20
        assert limits_for(conn, "0102", "hotline_12345")["reply"].amount == 13
        shown = get_time_limits(conn, "0101")
        assert {(r["step"], r["channel"]) for r in shown["own"]} == {
            ("handle", "*"), ("reply", "hotline_12345")}
        set_time_limits(conn, "*", [{"step": "review", "amount": 2, "unit": "working_hours"}], "t")
        assert limits_for(conn, "0103", "app")["review"].amount == 2
        for bad, field in (({"step": "x", "amount": 1, "unit": "working_days"}, "step"),
                           ({"step": "handle", "amount": 1, "unit": "weeks"}, "unit"),
                           ({"step": "handle", "amount": -1, "unit": "working_days"}, "amount"),
                           ({"step": "handle", "amount": 2.5, "unit": "working_days"}, "amount"),
                           ({"step": "handle", "amount": 5000, "unit": "working_hours"}, "amount")):
            with pytest.raises(InvalidInput) as exc:
                set_time_limits(conn, "0101", [bad], "t")
            assert exc.value.field.endswith(field)
        with pytest.raises(NotFound):
            set_time_limits(conn, "9998", [{"step": "handle", "amount": 1,
                                            "unit": "working_days"}], "t")


def test_overdue_predicate(city_engine):
    with city_engine.begin() as conn:
        late = make_case(conn, COMM_A, received_at=sh(2026, 9, 14, 9))
        fresh = make_case(conn, COMM_A, received_at=sh(2026, 9, 14, 9))
        conn.execute(text('UPDATE "case" SET current_due_at = now() + interval \'1 day\' '
                          "WHERE id = :i"), {"i": fresh})
        found = set(conn.execute(text(f'SELECT id FROM "case" WHERE {overdue_sql("")}')).scalars())
        aliased = set(conn.execute(text(
            f'SELECT c.id FROM "case" c WHERE {overdue_sql("c")}')).scalars())
    assert late in found and fresh not in found and found == aliased
