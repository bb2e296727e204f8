"""How far the working calendar reaches, and the warning before it runs out.

Deadlines in a year without a holiday notice are provisional (``cases.calendar``): counted
Monday-Friday, they ignore the holidays and make-up days the State Council announces each
November for the next year. Nothing fails on 1 January, so nobody would notice; this module
says when that day comes near. The warning is shown in the worker's log, the admins'
workbench home and ``GET /health/ready``; ``casegrid calendar status`` shows the whole state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection

from cases.calendar import CITY_TZ, WorkCalendar

# What an admin runs to fix it (the file is the notice written in the format of README's
# "The working calendar: importing a holiday notice").
FIX_COMMAND = "casegrid calendar import FILE --commit"


@dataclass(frozen=True)
class Horizon:
    """The calendar's reach on ``today``: the years with a notice and the first day without."""

    today: date
    years: tuple[int, ...]
    first_provisional: date
    warn_days: int

    @property
    def days_left(self) -> int:
        """Days from today to the first provisional day (0: today is already provisional)."""
        return max((self.first_provisional - self.today).days, 0)

    @property
    def warning(self) -> bool:
        """True when the first provisional day is fewer than ``warn_days`` away."""
        return self.days_left < self.warn_days

    @property
    def missing_year(self) -> int:
        """The year whose holiday notice is needed next."""
        return self.first_provisional.year

    def message(self, lang: str = "en") -> str | None:
        """The warning with the command that fixes it, or None when there is time."""
        if not self.warning:
            return None
        y, day, n = self.missing_year, self.first_provisional, self.days_left
        if lang == "zh":
            when = "今天起" if n == 0 else f"{day:%Y-%m-%d}起（还有{n}天）"
            return (f"工作日历缺少{y}年的节假日安排：{when}的期限只按周一至周五临时计算。"
                    f"请按国务院办公厅{y}年部分节假日安排的通知编写日历文件，"
                    f"运行 {FIX_COMMAND} 导入。")
        when = "from today" if n == 0 else f"from {day:%Y-%m-%d} ({n} days away)"
        return (f"The working calendar has no holiday notice for {y}: deadlines {when} are "
                f"provisional (counted Monday-Friday only). Write the State Council's notice "
                f"for {y} as a calendar file and import it: {FIX_COMMAND}")

    def as_dict(self) -> dict:
        """JSON-ready form (``/health/ready``'s detail, ``casegrid calendar status``)."""
        return {"years": year_ranges(self.years), "first_provisional_day":
                self.first_provisional.isoformat(), "days_left": self.days_left,
                "warn_days": self.warn_days, "warning": self.message()}


def horizon(calendar: WorkCalendar, today: date, warn_days: int) -> Horizon:
    """The first day from ``today`` on whose year ``calendar`` has no notice for."""
    year = today.year
    while year in calendar.covered_years:
        year += 1
    first = today if year == today.year else date(year, 1, 1)
    return Horizon(today, tuple(sorted(calendar.covered_years)), first, warn_days)


def today_in_calendar_zone(now: datetime | None = None) -> date:
    """Today in Beijing time, where the holiday notices' days are (the server may run UTC)."""
    return (now or datetime.now(CITY_TZ)).astimezone(CITY_TZ).date()


def current_horizon(conn: Connection, warn_days: int, today: date | None = None) -> Horizon:
    """:func:`horizon` of the stored calendar (package years and imported notices)."""
    from cases.calendar_store import load_calendar

    return horizon(load_calendar(conn), today or today_in_calendar_zone(), warn_days)


class HorizonLog:
    """The worker's reminder: logs the warning when a pass starts on a new day (once a day,
    not at every pass of a worker that polls every few seconds)."""

    def __init__(self, warn_days: int, logger: logging.Logger) -> None:
        self.warn_days = warn_days
        self.logger = logger
        self._checked: date | None = None

    def check(self, conn: Connection, today: date | None = None) -> Horizon | None:
        """Log the warning if due and not yet logged today; the horizon when checked."""
        today = today or today_in_calendar_zone()
        if self._checked == today:
            return None
        self._checked = today
        h = current_horizon(conn, self.warn_days, today)
        if h.warning:
            self.logger.warning("calendar: %s", h.message())
        return h


def year_ranges(years: tuple[int, ...] | list[int]) -> str:
    """``2004-2026`` style text for a set of years (gaps shown: ``2004-2020, 2024``)."""
    out: list[str] = []
    ys = sorted(years)
    i = 0
    while i < len(ys):
        j = i
        while j + 1 < len(ys) and ys[j + 1] == ys[j] + 1:
            j += 1
        out.append(str(ys[i]) if i == j else f"{ys[i]}-{ys[j]}")
        i = j + 1
    return ", ".join(out) or "none"
