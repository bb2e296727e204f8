"""The vectorised deadline arithmetic equals WorkCalendar.add, case by case."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cases.calendar import SHANGHAI, WorkCalendar
from cases.deadlines_vec import due_many

CAL = WorkCalendar.builtin()


def _starts(n: int, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    base = datetime(2026, 9, 1, tzinfo=SHANGHAI)
    minutes = rng.integers(0, 160 * 24 * 60, n)  # Sep 2026 .. Feb 2027 (into an unentered year)
    starts = [base + timedelta(minutes=int(m)) for m in minutes]
    # and some exactly on period edges
    for i, hm in enumerate([(8, 30), (12, 0), (13, 30), (17, 30), (0, 0), (23, 59)]):
        starts[i] = datetime(2026, 9, 30, *hm, tzinfo=SHANGHAI)
        starts[i + 6] = datetime(2026, 10, 9, *hm, tzinfo=SHANGHAI)
    return pd.Series(starts)


@pytest.mark.parametrize(
    ("unit", "amounts"),
    [
        ("working_days", [0, 1, 2, 3, 5, 13, 15, 20]),
        ("working_hours", [0, 0.5, 2, 3.5, 4, 7.5, 8, 24, 40]),
        ("calendar_hours", [0, 2, 24]),
        ("calendar_days", [1, 3]),
    ],
)
def test_vectorised_equals_the_calendar(unit, amounts):
    starts = _starts(1500, seed=len(amounts))
    rng = np.random.default_rng(3)
    amt = rng.choice(np.array(amounts, dtype=float), len(starts))
    due, prov = due_many(CAL, starts, amt, np.array([unit] * len(starts)))
    for s, a, d, p in zip(starts, amt, due, prov, strict=True):
        expected = CAL.add(s, a, unit)
        assert (d.to_pydatetime(), bool(p)) == (expected.at, expected.provisional), (s, a, unit)


def test_mixed_units_in_one_call_and_utc_input():
    starts = pd.Series([datetime(2026, 9, 30, 8, 0, tzinfo=SHANGHAI).astimezone(tz=None)] * 2)
    due, prov = due_many(CAL, starts, np.array([3.0, 4.0]), np.array(["working_days", "working_hours"]))
    assert due.iloc[0].to_pydatetime() == CAL.add(starts[0], 3, "working_days").at
    assert due.iloc[1].to_pydatetime() == CAL.add(starts[1], 4, "working_hours").at


def test_naive_starts_are_refused():
    with pytest.raises(ValueError, match="timezone"):
        due_many(CAL, pd.Series([datetime(2026, 1, 1)]), np.array([1.0]), np.array(["working_days"]))
