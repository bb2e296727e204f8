"""The Chinese working calendar used for case deadlines (pure: no database).

Working time follows the State Council's public-holiday notices: a listed ``holiday`` is a day
off even on a weekday, a listed ``workday`` (调休 make-up day) is worked even on a weekend,
and every other day is a working day exactly when it is Monday-Friday.

Conventions (documented here once; every method follows them):

* All moments are timezone-aware. Naive datetimes are rejected with ``ValueError`` because a
  naive 17:00 is ambiguous between the server's zone and Beijing time. Moments are converted
  to the calendar's zone (the city's, CITY_TZ) before any day arithmetic; results are returned in
  that zone.
* **Working days** are counted the way the Civil Code (民法典 第201、203条) and the city
  handbooks count periods: the day of registration is not counted, counting starts on the
  next working day, and the period ends at the close of business (end of the last work
  period, 17:30 by default) of the Nth working day. A case registered on Friday 16:00 with
  1 working day is due Monday 17:30 (if Monday is a working day). ``0`` working days means
  "the same working day": the close of business of the first working day that has not yet
  closed when the case is registered.
* **Working hours** elapse only inside the work periods (08:30-12:00 and 13:30-17:30 by
  default) of working days. The deadline is the moment the allowance runs out; when it runs
  out exactly at the end of a period, the deadline is that end (12:00, not 13:30).
  ``0`` working hours is due at the start moment itself.
* **Calendar hours/days** are plain elapsed time (N x 1 h, N x 24 h).
* A deadline is **provisional** when computing it looked at a day of a year the calendar does
  not cover (nobody has entered the State Council notice for it yet). Such days are treated
  as Monday-Friday working days, so nothing ever fails for lack of a calendar; the deadline
  is recomputed once the year is imported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from casegrid.settings import get_settings

# The city's clock (casegrid.settings: CASEGRID_TIME_ZONE, Asia/Shanghai by default).
CITY_TZ = ZoneInfo(get_settings().time_zone)
DEFAULT_WORK_PERIODS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(13, 30), time(17, 30)),
)
KINDS = ("holiday", "workday")
# Upper bounds on an allowance: far beyond any handbook's limit, low enough that a typo
# (or a hostile API caller) cannot make the day-by-day walk run for minutes.
MAX_WORKING_DAYS = 2_500
MAX_WORKING_HOURS = MAX_WORKING_DAYS * 8
Unit = Literal["working_hours", "working_days", "calendar_hours", "calendar_days"]
UNITS: tuple[str, ...] = ("working_hours", "working_days", "calendar_hours", "calendar_days")
DueStatus = Literal["on_time", "due_soon", "overdue", "done_on_time", "done_late"]


@dataclass(frozen=True)
class Deadline:
    """When something is due, and whether that rests on a year nobody has entered yet."""

    at: datetime
    provisional: bool = False


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it is a timezone-aware datetime, else raise ``ValueError``."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} {value.isoformat()} is naive: give it a timezone "
            "(e.g. tzinfo=ZoneInfo('Asia/Shanghai'))"
        )
    return value


class WorkCalendar:
    """Working days and working hours under the Chinese holiday calendar.

    ``days`` maps a date to ``'holiday'`` or ``'workday'`` (the exceptions to Mon-Fri);
    ``covered_years`` are the years whose notices are in ``days``. A listed day is honoured
    even outside ``covered_years``; coverage only decides whether a result is provisional.
    """

    def __init__(
        self,
        days: Mapping[date, str],
        covered_years: set[int] | frozenset[int],
        work_periods: tuple[tuple[time, time], ...] = DEFAULT_WORK_PERIODS,
        tz: tzinfo = CITY_TZ,
    ) -> None:
        bad = {d: k for d, k in days.items() if k not in KINDS}
        if bad:
            first = min(bad)
            raise ValueError(f"day {first}: kind {bad[first]!r} is not one of {KINDS}")
        _check_periods(work_periods)
        self._days = dict(days)
        self.covered_years = frozenset(covered_years)
        self.work_periods = tuple(work_periods)
        self.tz = tz

    @classmethod
    def builtin(cls, **kwargs) -> WorkCalendar:
        """The calendar of every year the installed ``chinese-calendar`` package covers."""
        rows = builtin_rows()
        return cls({d: k for d, k, _ in rows}, builtin_years(), **kwargs)

    # -- days -----------------------------------------------------------------------------

    def is_workday(self, d: date) -> bool:
        """True if ``d`` is a working day (make-up days included, holidays excluded)."""
        kind = self._days.get(d)
        if kind is not None:
            return kind == "workday"
        return d.weekday() < 5

    def is_covered(self, d: date) -> bool:
        """True if ``d``'s year has an entered holiday notice (results are not provisional)."""
        return d.year in self.covered_years

    def special_days(self, year: int) -> dict[date, str]:
        """The listed exceptions (holidays and make-up days) of one year."""
        return {d: k for d, k in sorted(self._days.items()) if d.year == year}

    # -- deadlines ------------------------------------------------------------------------

    def add_working_days(self, start: datetime, n: int) -> Deadline:
        """Close of business of the ``n``-th working day after ``start``'s day (see module)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_WORKING_DAYS:
            raise ValueError(
                f"working days must be a whole number from 0 to {MAX_WORKING_DAYS}, got {n!r}"
            )
        local = self._local(start, "start")
        day = local.date()
        provisional = False
        if n == 0:
            # Same working day; if that day's business is already closed, the next one.
            while not (self.is_workday(day) and local <= self._close(day)):
                provisional |= not self.is_covered(day)
                day += timedelta(days=1)
            return Deadline(self._close(day), provisional or not self.is_covered(day))
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            provisional |= not self.is_covered(day)
            if self.is_workday(day):
                counted += 1
        return Deadline(self._close(day), provisional)

    def add_working_hours(self, start: datetime, hours: float) -> Deadline:
        """The moment ``hours`` of working time have elapsed after ``start`` (see module)."""
        if isinstance(hours, bool) or not math.isfinite(hours) or not 0 <= hours <= MAX_WORKING_HOURS:
            raise ValueError(
                f"working hours must be a number from 0 to {MAX_WORKING_HOURS}, got {hours!r}"
            )
        local = self._local(start, "start")
        if hours == 0:
            return Deadline(local, not self.is_covered(local.date()))
        remaining = timedelta(hours=hours)
        day = local.date()
        provisional = False
        while True:
            provisional |= not self.is_covered(day)
            for begin, end in self._periods(day):
                begin = max(begin, local)
                if begin >= end:
                    continue
                if remaining <= end - begin:
                    return Deadline(begin + remaining, provisional)
                remaining -= end - begin
            day += timedelta(days=1)

    def add(self, start: datetime, amount: float, unit: Unit) -> Deadline:
        """Deadline ``amount`` ``unit`` after ``start``; ``unit`` is one of :data:`UNITS`."""
        if unit == "working_hours":
            return self.add_working_hours(start, amount)
        if unit == "working_days":
            if isinstance(amount, float) and amount.is_integer():
                amount = int(amount)
            return self.add_working_days(start, amount)  # type: ignore[arg-type]
        if unit in ("calendar_hours", "calendar_days"):
            local = self._local(start, "start")
            if isinstance(amount, bool) or not math.isfinite(amount) or amount < 0:
                raise ValueError(f"{unit} must be a finite number >= 0, got {amount!r}")
            step = timedelta(hours=1) if unit == "calendar_hours" else timedelta(days=1)
            try:
                return Deadline(local + step * amount, False)
            except OverflowError as exc:
                raise ValueError(f"{amount} {unit} is beyond the calendar's range") from exc
        raise ValueError(f"unit {unit!r} is not one of {UNITS}")

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Working time from ``a`` to ``b`` in seconds (negative if ``b`` is before ``a``).

        Used to measure handling time: only time inside work periods of working days counts.
        """
        a_local, b_local = self._local(a, "a"), self._local(b, "b")
        if b_local < a_local:
            return -self.working_seconds_between(b_local, a_local)
        total = timedelta(0)
        day = a_local.date()
        while day <= b_local.date():
            for begin, end in self._periods(day):
                overlap = min(end, b_local) - max(begin, a_local)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total.total_seconds()

    # -- internals ------------------------------------------------------------------------

    def _local(self, value: datetime, name: str) -> datetime:
        return require_aware(value, name).astimezone(self.tz)

    def _close(self, day: date) -> datetime:
        return datetime.combine(day, self.work_periods[-1][1], tzinfo=self.tz)

    def _periods(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return
        for begin, end in self.work_periods:
            yield (
                datetime.combine(day, begin, tzinfo=self.tz),
                datetime.combine(day, end, tzinfo=self.tz),
            )


def _check_periods(periods: tuple[tuple[time, time], ...]) -> None:
    if not periods:
        raise ValueError("work_periods is empty: give at least one (start, end) pair")
    previous_end: time | None = None
    for begin, end in periods:
        if begin >= end:
            raise ValueError(f"work period {begin}-{end} must start before it ends")
        if previous_end is not None and begin < previous_end:
            raise ValueError(f"work period {begin}-{end} overlaps or precedes the one before")
        previous_end = end


def due_status(
    due: datetime,
    now: datetime,
    done_at: datetime | None = None,
    *,
    started_at: datetime | None = None,
    soon_fraction: float = 0.2,
    soon_window: timedelta = timedelta(hours=4),
) -> DueStatus:
    """Where a step stands against its deadline.

    * ``done_on_time`` / ``done_late``: ``done_at`` is set and is at/before or after ``due``.
    * ``overdue``: not done and ``now`` is after ``due`` (the deadline moment itself is
      still on time).
    * ``due_soon``: not done and the time left is at most ``soon_fraction`` of the allowance
      (``due - started_at``), or at most ``soon_window`` when ``started_at`` is not given.
    * ``on_time`` otherwise.

    Time left is wall-clock time, kept simple on purpose: a Friday-evening case due Monday
    17:30 shows as on time over the weekend.
    """
    due = require_aware(due, "due")
    now = require_aware(now, "now")
    if done_at is not None:
        return "done_on_time" if require_aware(done_at, "done_at") <= due else "done_late"
    if now > due:
        return "overdue"
    if started_at is not None:
        threshold = (due - require_aware(started_at, "started_at")) * soon_fraction
    else:
        threshold = soon_window
    return "due_soon" if due - now <= threshold else "on_time"


# -- the chinese-calendar package ---------------------------------------------------------


def builtin_source() -> str:
    """Provenance string for data taken from the installed ``chinese-calendar`` package."""
    import chinese_calendar

    return (
        f"chinese-calendar {chinese_calendar.__version__} "
        "(State Council General Office holiday notices)"
    )


def builtin_years() -> frozenset[int]:
    """Years the installed ``chinese-calendar`` package has notices for."""
    import chinese_calendar

    years = [d.year for d in chinese_calendar.holidays]
    return frozenset(range(min(years), max(years) + 1))


def builtin_rows(year: int | None = None) -> list[tuple[date, str, str]]:
    """``(date, kind, name)`` rows from ``chinese-calendar``, sorted, optionally one year.

    Names are the package's Chinese festival names (国庆节...); a make-up working day carries
    the name of the holiday it belongs to.
    """
    import chinese_calendar

    rows: list[tuple[date, str, str]] = []
    for kind, table in (("holiday", chinese_calendar.holidays), ("workday", chinese_calendar.workdays)):
        for d, english in table.items():
            if year is None or d.year == year:
                rows.append((d, kind, _chinese_name(english)))
    return sorted(rows)


def _chinese_name(english: str) -> str:
    import chinese_calendar

    try:
        return chinese_calendar.Holiday(english).chinese
    except ValueError:
        return english
