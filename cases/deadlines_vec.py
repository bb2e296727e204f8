"""Deadlines for many cases at once, vectorised with numpy: the bulk import's due times.

The same arithmetic as :meth:`cases.calendar.WorkCalendar.add`, the reference (a hypothesis
property test over random calendars and times checks equality), but over arrays: the
calendar is laid out once as a day table (working day? covered by an entered year?) and a
table of work periods with cumulative working seconds, and each deadline is two binary
searches instead of a day-by-day walk per case.

Times are whole seconds, handled as local wall-clock seconds in the calendar's zone, which
must keep one UTC offset over the span (Asia/Shanghai has no daylight saving).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from cases.calendar import WorkCalendar
from cases.deadlines import limits_by_pair

_DAY = 86_400


def _seconds(t) -> int:  # noqa: ANN001 - datetime.time
    return t.hour * 3600 + t.minute * 60 + t.second


class _Layout:
    """The calendar from ``first`` for ``n_days`` days, as arrays."""

    def __init__(self, calendar: WorkCalendar, first: date, n_days: int):
        days = [first + timedelta(days=i) for i in range(n_days)]
        self.n_days = n_days
        self.work = np.array([calendar.is_workday(d) for d in days], dtype=bool)
        covered = np.array([calendar.is_covered(d) for d in days], dtype=bool)
        self.cum_work = np.cumsum(self.work)
        # uncovered[i] = number of uncovered days among days[0..i-1]
        self.uncovered = np.concatenate([[0], np.cumsum(~covered)])
        day0 = np.arange(n_days, dtype=np.int64) * _DAY
        periods = [(_seconds(b), _seconds(e)) for b, e in calendar.work_periods]
        self.close = np.int64(periods[-1][1])
        workdays = day0[self.work]
        begins = np.concatenate([workdays + b for b, _ in periods])
        ends = np.concatenate([workdays + e for _, e in periods])
        order = np.argsort(begins, kind="stable")
        self.p_begin, self.p_end = begins[order], ends[order]
        lengths = self.p_end - self.p_begin
        self.p_cum_end = np.cumsum(lengths)
        self.p_cum_before = self.p_cum_end - lengths

    def any_uncovered(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether any day index in [a, b] (inclusive) is uncovered."""
        return (self.uncovered[b + 1] - self.uncovered[a]) > 0


def _working_days(lay: _Layout, t: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Close of the k-th working day after each start (local seconds), or None when the
    layout ends too early."""
    sd = t // _DAY
    base = lay.cum_work[sd]
    # 0 working days: today if it is a working day still open, else the next one.
    open_today = lay.work[sd] & (t - sd * _DAY <= lay.close)
    target = np.where(k == 0, np.where(open_today, base, base + 1), base + k)
    j = np.searchsorted(lay.cum_work, target, side="left")
    if (j >= lay.n_days).any():
        return None
    j = np.where((k == 0) & open_today, sd, j)
    prov = np.where(k == 0, lay.any_uncovered(sd, j), lay.any_uncovered(sd + 1, j))
    return j * _DAY + lay.close, prov


def _working_hours(lay: _Layout, t: np.ndarray, secs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The moment ``secs`` working seconds after each start, or None when the layout ends
    too early."""
    k = np.searchsorted(lay.p_end, t, side="right")  # first period ending after t
    if (k >= len(lay.p_end)).any():
        return None
    elapsed = lay.p_cum_before[k] + np.clip(t - lay.p_begin[k], 0, None)
    target = elapsed + secs
    m = np.searchsorted(lay.p_cum_end, target, side="left")
    if (m >= len(lay.p_end)).any():
        return None
    due = np.where(secs == 0, t, lay.p_begin[m] + (target - lay.p_cum_before[m]))
    return due, lay.any_uncovered(t // _DAY, due // _DAY)


def due_many_epoch(
    calendar: WorkCalendar, start_s: np.ndarray, amounts: np.ndarray, units: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Deadlines of ``amount`` ``unit`` after each start, Unix seconds (UTC) in and out;
    returns (due seconds, provisional). Same results as ``calendar.add`` row by row."""
    start_s = np.asarray(start_s, dtype=np.int64)
    amounts = np.asarray(amounts, dtype=float)
    units = np.asarray(units, dtype=object)
    n = len(start_s)
    due = np.zeros(n, dtype=np.int64)
    prov = np.zeros(n, dtype=bool)
    if n == 0:
        return due, prov
    offset = _utc_offset_s(calendar, int(start_s.min()))
    first_day = (int(start_s.min()) + offset) // _DAY - 1
    t = start_s + offset - first_day * _DAY  # local seconds from the layout's first day
    first = date(1970, 1, 1) + timedelta(days=int(first_day))
    wd, wh = units == "working_days", units == "working_hours"
    max_days = float(np.max(amounts[wd], initial=0))
    max_hours = float(np.max(amounts[wh], initial=0))
    span = int(t.max() // _DAY) + 1
    # A first guess at how far the deadlines reach (holidays included), doubled until the
    # layout holds every one of them: never a wrong answer for a calendar of long breaks.
    horizon = int(math.ceil(max_days * 1.6 + max_hours / 3.0 * 1.6)) + 40
    while True:
        lay = _Layout(calendar, first, span + horizon)
        days = _working_days(lay, t[wd], amounts[wd].astype(np.int64)) if wd.any() else None
        hours = (_working_hours(lay, t[wh], np.rint(amounts[wh] * 3600).astype(np.int64))
                 if wh.any() else None)
        if (days is not None or not wd.any()) and (hours is not None or not wh.any()):
            break
        horizon *= 2
    if days is not None:
        due[wd], prov[wd] = days
    if hours is not None:
        due[wh], prov[wh] = hours
    cal = np.isin(units, ("calendar_hours", "calendar_days"))
    if cal.any():
        step = np.where(units[cal] == "calendar_hours", 3600.0, float(_DAY))
        due[cal] = t[cal] + np.rint(amounts[cal] * step).astype(np.int64)
    return due + first_day * _DAY - offset, prov


def _utc_offset_s(calendar: WorkCalendar, at_s: int) -> int:
    """The calendar zone's UTC offset in seconds at Unix time ``at_s``."""
    at = pd.Timestamp(at_s, unit="s", tz="UTC").tz_convert(calendar.tz).to_pydatetime()
    return int(at.utcoffset().total_seconds())


class InitialDue:
    """Review and reply due times of new cases of a bulk import: the limits of every
    (category, channel) pair read once (:func:`cases.deadlines.limits_by_pair`, the
    ledger's rule), then each chunk of rows computed with :func:`due_many_epoch`."""

    def __init__(self, conn: Connection, calendar: WorkCalendar, categories: Iterable[str],
                 channels: Iterable[str]):
        pairs = [(c, h) for c in sorted(categories) for h in channels]
        self.calendar = calendar
        self.pairs = pd.MultiIndex.from_tuples(pairs, names=["category_code", "channel"])
        n = len(pairs)
        self.amount = {s: np.full(n, np.nan) for s in ("review", "reply")}
        self.unit = {s: np.full(n, None, dtype=object) for s in ("review", "reply")}
        found = limits_by_pair(conn, pairs)
        for i, pair in enumerate(pairs):
            limits = found[pair]
            for step in ("review", "reply"):
                if step in limits:
                    self.amount[step][i], self.unit[step][i] = limits[step].amount, limits[step].unit

    def compute(self, start_s: np.ndarray, category: np.ndarray, channel: np.ndarray
                ) -> tuple[pd.Series, pd.Series, pd.Series]:
        """(review due, reply due) as Unix seconds and the provisional flag, per row; all
        three missing where the pair has no review limit, the reply alone where it has no
        reply limit (as intake stores them)."""
        n = len(start_s)
        pair = self.pairs.get_indexer(pd.MultiIndex.from_arrays([category, channel]))
        if (pair < 0).any():
            raise ValueError("a (category, channel) pair outside the catalogue")
        start_s = np.asarray(start_s, dtype=np.int64)
        review = pd.Series(pd.NA, index=range(n), dtype="Int64")
        reply = pd.Series(pd.NA, index=range(n), dtype="Int64")
        prov = pd.Series(pd.NA, index=range(n), dtype="boolean")
        has_review = self.unit["review"][pair] != None  # noqa: E711 - elementwise
        if has_review.any():
            rows = np.flatnonzero(has_review)
            p = pair[rows]
            due, flag = due_many_epoch(self.calendar, start_s[rows], self.amount["review"][p],
                                       self.unit["review"][p])
            review.iloc[rows] = due
            prov.iloc[rows] = flag
            with_reply = self.unit["reply"][p] != None  # noqa: E711
            if with_reply.any():
                rows, p = rows[with_reply], p[with_reply]
                due, _ = due_many_epoch(self.calendar, start_s[rows], self.amount["reply"][p],
                                        self.unit["reply"][p])
                reply.iloc[rows] = due
        return review, reply, prov
