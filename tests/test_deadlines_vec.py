"""The vectorised deadline arithmetic (cases.deadlines_vec) equals the reference, the
calendar's day walk (WorkCalendar.add): a property over random calendars and times, and a
dense grid around the 2026 National Day week of the real calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases.calendar import CITY_TZ, WorkCalendar
from cases.deadlines_vec import due_many_epoch

UNITS = ("working_days", "working_hours", "calendar_hours", "calendar_days")


def _epoch(values: list[datetime]) -> np.ndarray:
    return np.array([int(v.timestamp()) for v in values], dtype=np.int64)


def _check(calendar: WorkCalendar, starts: list[datetime], amounts: list[float], units: list[str]) -> None:
    due, prov = due_many_epoch(calendar, _epoch(starts), np.array(amounts, dtype=float),
                               np.array(units, dtype=object))
    for s, a, u, d, p in zip(starts, amounts, units, due, prov, strict=True):
        expected = calendar.add(s, a, u)  # type: ignore[arg-type]
        got = datetime.fromtimestamp(int(d), UTC)
        assert (got, bool(p)) == (expected.at, expected.provisional), (s, a, u)


@st.composite
def calendars(draw) -> WorkCalendar:
    """Holidays and make-up days in runs (up to whole months off), some years covered, one
    to three work periods on minute boundaries."""
    days: dict[date, str] = {}
    for _ in range(draw(st.integers(0, 12))):
        first = draw(st.dates(date(2025, 1, 1), date(2027, 12, 31)))
        kind = draw(st.sampled_from(["holiday", "workday"]))
        for i in range(draw(st.integers(1, 40))):
            days[first + timedelta(days=i)] = kind
    covered = draw(st.sets(st.sampled_from([2025, 2026, 2027])))
    edges = sorted(draw(st.sets(st.integers(1, 24 * 60 - 1), min_size=2, max_size=6)))
    if len(edges) % 2:
        edges = edges[:-1]
    periods = tuple((time(b // 60, b % 60), time(e // 60, e % 60))
                    for b, e in zip(edges[::2], edges[1::2], strict=True))
    return WorkCalendar(days, covered, work_periods=periods, tz=CITY_TZ)


items = st.tuples(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(CITY_TZ))
    .map(lambda d: d.replace(microsecond=0)),
    st.sampled_from(UNITS),
    st.integers(0, 120),
)


@settings(max_examples=200, deadline=None)
@given(calendars(), st.lists(items, min_size=1, max_size=30))
def test_vectorised_equals_the_day_walk_on_random_calendars(calendar, drawn):
    starts = [s for s, _u, _a in drawn]
    units = [u for _s, u, _a in drawn]
    # working days are whole; hours in quarters, as time limits are written
    amounts = [a if u.endswith("days") else a / 4 for _s, u, a in drawn]
    _check(calendar, starts, amounts, units)


@pytest.mark.parametrize("unit", UNITS)
def test_vectorised_equals_the_walk_around_national_day(unit):
    """Every part of the day from mid September to mid October 2026 (holidays, make-up
    days, period edges) and into 2027, a year nobody has entered (provisional)."""
    calendar = WorkCalendar.builtin()
    starts, t = [], datetime(2026, 9, 17, tzinfo=CITY_TZ)
    while t < datetime(2026, 10, 14, tzinfo=CITY_TZ):
        starts.append(t)
        t += timedelta(minutes=97)
    starts += [datetime(2026, 12, 31, 16, tzinfo=CITY_TZ), datetime(2026, 9, 30, 17, 30, tzinfo=CITY_TZ)]
    amounts = {"working_days": [0, 1, 3, 13, 20], "working_hours": [0, 0.5, 4, 7.5, 15, 30],
               "calendar_hours": [0, 5, 24], "calendar_days": [1, 2]}[unit]
    rows = [(s, a) for s in starts for a in amounts]
    _check(calendar, [s for s, _ in rows], [a for _, a in rows], [unit] * len(rows))
