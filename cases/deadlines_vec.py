"""Deadlines for many cases at once, vectorised with numpy.

The same arithmetic as :meth:`cases.calendar.WorkCalendar.add` (tests prove equality), but
over arrays: the calendar is laid out once as a day table (working day? covered by an
entered year?) and a table of work periods with cumulative working seconds, and each
deadline is two binary searches. A million deadlines take seconds instead of a day-by-day
walk per case.

Times are handled as local wall-clock seconds in the calendar's zone (Asia/Shanghai has no
daylight saving, so local seconds are a fixed offset from UTC).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from cases.calendar import WorkCalendar

_DAY = 86_400


def _seconds(t) -> int:  # noqa: ANN001 - datetime.time
    return t.hour * 3600 + t.minute * 60 + t.second


class _Layout:
    """The calendar from ``first`` for ``n_days`` days, as arrays."""

    def __init__(self, calendar: WorkCalendar, first: date, n_days: int):
        self.first = first
        days = [first + timedelta(days=i) for i in range(n_days)]
        self.work = np.array([calendar.is_workday(d) for d in days], dtype=bool)
        covered = np.array([calendar.is_covered(d) for d in days], dtype=bool)
        self.cum_work = np.cumsum(self.work)
        # uncovered[i] = number of uncovered days among days[0..i-1]
        self.uncovered = np.concatenate([[0], np.cumsum(~covered)])
        day0 = (np.arange(n_days, dtype=np.int64)) * _DAY
        periods = [(_seconds(b), _seconds(e)) for b, e in calendar.work_periods]
        self.close = np.int64(periods[-1][1])
        workdays = day0[self.work]
        begins = np.concatenate([workdays + b for b, _ in periods]) if len(workdays) else np.array([], np.int64)
        ends = np.concatenate([workdays + e for _, e in periods]) if len(workdays) else np.array([], np.int64)
        order = np.argsort(begins, kind="stable")
        self.p_begin, self.p_end = begins[order], ends[order]
        lengths = self.p_end - self.p_begin
        self.p_cum_end = np.cumsum(lengths)
        self.p_cum_before = self.p_cum_end - lengths

    def any_uncovered(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether any day index in [a, b] (inclusive) is uncovered."""
        return (self.uncovered[b + 1] - self.uncovered[a]) > 0


def due_many(
    calendar: WorkCalendar, starts: pd.Series, amounts: np.ndarray, units: np.ndarray
) -> tuple[pd.Series, np.ndarray]:
    """Deadlines of ``amount`` ``unit`` after each start; returns (due times, provisional).

    ``starts`` must be timezone-aware. Same results as ``calendar.add`` row by row.
    """
    starts = pd.to_datetime(pd.Series(starts).reset_index(drop=True))
    if starts.dt.tz is None:
        raise ValueError("starts must be timezone-aware")
    n = len(starts)
    amounts = np.asarray(amounts, dtype=float)
    units = np.asarray(units, dtype=object)
    due_local = np.zeros(n, dtype=np.int64)
    prov = np.zeros(n, dtype=bool)
    if n == 0:
        return pd.Series([], dtype=f"datetime64[ns, {calendar.tz}]"), prov
    local = starts.dt.tz_convert(str(calendar.tz)).dt.tz_localize(None)
    first = local.min().date() - timedelta(days=1)
    epoch = np.datetime64(first, "s")
    t = (local.to_numpy(dtype="datetime64[s]") - epoch).astype(np.int64)  # local seconds
    max_days = float(np.max(amounts[units == "working_days"], initial=0))
    max_hours = float(np.max(amounts[units == "working_hours"], initial=0))
    span_days = int((local.max().date() - first).days) + 1
    horizon = int(math.ceil(max_days * 1.6 + max_hours / 3.0 * 1.6)) + 40
    lay = _Layout(calendar, first, span_days + horizon)
    s = t // _DAY  # start day index

    wd = units == "working_days"
    if wd.any():
        k = amounts[wd].astype(np.int64)
        sd, ts = s[wd], t[wd]
        base = lay.cum_work[sd]
        target_pos = np.searchsorted(lay.cum_work, base + k, side="left")
        # 0 working days: today if it is a working day still open, else the next one.
        open_today = lay.work[sd] & (ts - sd * _DAY <= lay.close)
        next_work = np.searchsorted(lay.cum_work, base + 1, side="left")
        j = np.where(k == 0, np.where(open_today, sd, next_work), target_pos)
        due_local[wd] = j * _DAY + lay.close
        prov[wd] = np.where(k == 0, lay.any_uncovered(sd, j), lay.any_uncovered(sd + 1, j))

    wh = units == "working_hours"
    if wh.any():
        hrs, th, sh = amounts[wh], t[wh], s[wh]
        secs = np.rint(hrs * 3600).astype(np.int64)
        k = np.searchsorted(lay.p_end, th, side="right")  # first period ending after t
        elapsed = lay.p_cum_before[k] + np.clip(th - lay.p_begin[k], 0, None)
        target = elapsed + secs
        m = np.searchsorted(lay.p_cum_end, target, side="left")
        d = lay.p_begin[m] + (target - lay.p_cum_before[m])
        zero = secs == 0
        d = np.where(zero, th, d)
        due_local[wh] = d
        prov[wh] = lay.any_uncovered(sh, d // _DAY)

    cal = np.isin(units, ("calendar_hours", "calendar_days"))
    if cal.any():
        step = np.where(units[cal] == "calendar_hours", 3600.0, float(_DAY))
        due_local[cal] = t[cal] + np.rint(amounts[cal] * step).astype(np.int64)

    due = pd.Series(epoch + due_local.astype("timedelta64[s]")).dt.tz_localize(str(calendar.tz))
    return due, prov


def due_many_epoch(
    calendar: WorkCalendar, start_s: np.ndarray, amounts: np.ndarray, units: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`due_many` on Unix seconds (UTC) in and out: no datetime objects at all, for
    bulk paths that move numbers through COPY."""
    start_s = np.asarray(start_s, dtype=np.int64)
    starts = pd.Series(pd.to_datetime(start_s, unit="s", utc=True))
    due, prov = due_many(calendar, starts, amounts, units)
    due_s = due.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
    return due_s.astype(np.int64), prov


def due_one(calendar: WorkCalendar, start: datetime, amount: float, unit: str):
    """One deadline through the vectorised path (for tests and small callers)."""
    due, prov = due_many(calendar, pd.Series([start]), np.array([amount]), np.array([unit]))
    return due.iloc[0].to_pydatetime(), bool(prov[0])
