"""The working calendar: deadlines over Chinese holidays, the holiday table, the CLI.

Expected dates are worked out by hand from the State Council notices for 2026:
National Day 1-7 Oct off, Sun 20 Sep and Sat 10 Oct worked, Mid-Autumn 25-27 Sep off;
Spring Festival 15-23 Feb off, Sat 14 Feb and Sat 28 Feb worked.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from cases.calendar import (
    CITY_TZ,
    Deadline,
    WorkCalendar,
    builtin_rows,
    builtin_years,
    due_status,
)
from cases.calendar_store import (
    import_calendar_file,
    load_calendar,
    parse_calendar_csv,
    seed_builtin,
    year_rows,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "calendar"
HYPOTHETICAL_2027 = """\
# HYPOTHETICAL test data, NOT the State Council notice for 2027 (not yet published when
# this test was written): only New Year's Day is listed.
date,kind,name
2027-01-01,holiday,元旦
"""


def sh(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=CITY_TZ)


def close(y: int, m: int, d: int) -> datetime:
    return sh(y, m, d, 17, 30)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.builtin()


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


# -- the library agrees with the issue -----------------------------------------------------


def test_builtin_2026_national_day_and_make_up_days(cal):
    assert all(not cal.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert cal.is_workday(date(2026, 9, 20))  # Sunday, worked
    assert cal.is_workday(date(2026, 10, 10))  # Saturday, worked
    assert not cal.is_workday(date(2026, 10, 11))  # ordinary Sunday
    assert cal.is_workday(date(2026, 10, 8))
    assert 2026 in builtin_years() and cal.is_covered(date(2026, 12, 31))
    assert not cal.is_covered(date(2027, 1, 1))


# -- working days ---------------------------------------------------------------------------


def test_three_working_days_from_eve_of_national_day_ends_on_make_up_saturday(cal):
    # 8 Oct (1), 9 Oct (2), Sat 10 Oct make-up day (3).
    assert cal.add_working_days(sh(2026, 9, 30, 16), 3) == Deadline(close(2026, 10, 10), False)


def test_utc_input_is_read_as_beijing_time(cal):
    # 08:00 UTC is 16:00 in Shanghai on 30 Sep; 20:00 UTC on 30 Sep is already 1 Oct there.
    assert cal.add_working_days(datetime(2026, 9, 30, 8, tzinfo=UTC), 3).at == close(2026, 10, 10)
    assert cal.add_working_days(datetime(2026, 9, 30, 20, tzinfo=UTC), 1).at == close(2026, 10, 8)


@pytest.mark.parametrize(
    ("n", "due"),
    [
        (1, (2026, 9, 20)),  # Sunday make-up day counts
        (2, (2026, 9, 21)),
        (5, (2026, 9, 24)),
        (6, (2026, 9, 28)),  # Fri 25 - Sun 27 Mid-Autumn
        (8, (2026, 9, 30)),
        (9, (2026, 10, 8)),  # 1-7 Oct National Day
        (11, (2026, 10, 10)),  # Saturday make-up day
        (12, (2026, 10, 12)),
    ],
)
def test_working_days_from_friday_18_september(cal, n, due):
    assert cal.add_working_days(sh(2026, 9, 18, 10), n).at == close(*due)


def test_spring_festival_2026(cal):
    assert cal.add_working_days(sh(2026, 2, 13, 10), 1).at == close(2026, 2, 14)  # Sat worked
    assert cal.add_working_days(sh(2026, 2, 13, 10), 2).at == close(2026, 2, 24)
    # 12, 13, 14 Feb; 24-27 Feb; Sat 28 Feb; 2-6 Mar: the 13th is Friday 6 March.
    assert cal.add_working_days(sh(2026, 2, 11, 9), 13) == Deadline(close(2026, 3, 6), False)
    # Registered during the holiday: counting starts on the first working day after it.
    assert cal.add_working_days(sh(2026, 2, 18, 9), 1).at == close(2026, 2, 24)


def test_zero_working_days_is_the_same_working_day(cal):
    assert cal.add_working_days(sh(2026, 9, 30, 9), 0).at == close(2026, 9, 30)
    # After close of business, or on a holiday: the next working day.
    assert cal.add_working_days(sh(2026, 9, 30, 18), 0).at == close(2026, 10, 8)
    assert cal.add_working_days(sh(2026, 10, 3, 9), 0).at == close(2026, 10, 8)


def test_deadline_in_an_uncovered_year_is_provisional_on_weekdays(cal):
    # 29, 30, 31 Dec; Fri 1 Jan 2027 counted as a weekday (no 2027 notice); 4-8 Jan; 11-14 Jan.
    due = cal.add_working_days(sh(2026, 12, 28, 10), 13)
    assert due == Deadline(close(2027, 1, 14), True)
    # A deadline that stays inside 2026 is firm.
    assert cal.add_working_days(sh(2026, 12, 28, 10), 3) == Deadline(close(2026, 12, 31), False)
    # Far outside any notice: weekdays, no crash.
    assert cal.add_working_days(sh(2031, 6, 6, 10), 1) == Deadline(close(2031, 6, 9), True)


def test_bad_amounts_are_rejected(cal):
    for bad in (-1, 1.5, True, 10**9):
        with pytest.raises(ValueError):
            cal.add_working_days(sh(2026, 9, 30), bad)
    for bad in (-0.5, float("nan"), float("inf"), 1e12):
        with pytest.raises(ValueError):
            cal.add_working_hours(sh(2026, 9, 30), bad)
    with pytest.raises(ValueError, match="range"):
        cal.add(sh(2026, 9, 30), 1e12, "calendar_days")
    with pytest.raises(ValueError, match="unit"):
        cal.add(sh(2026, 9, 30), 1, "fortnights")


# -- working hours --------------------------------------------------------------------------


def test_four_working_hours_from_17h_before_national_day(cal):
    # 17:00-17:30 (0.5 h), then 8 Oct 08:30-12:00 (3.5 h): due exactly at 12:00, not 13:30.
    assert cal.add_working_hours(sh(2026, 9, 30, 17), 4) == Deadline(sh(2026, 10, 8, 12), False)
    assert cal.add_working_hours(sh(2026, 9, 30, 17), 4.5).at == sh(2026, 10, 8, 14)


def test_working_hours_skip_lunch_nights_and_start_outside_hours(cal):
    assert cal.add_working_hours(sh(2026, 9, 14, 11), 2).at == sh(2026, 9, 14, 14, 30)
    assert cal.add_working_hours(sh(2026, 9, 14, 12, 15), 1).at == sh(2026, 9, 14, 14, 30)
    assert cal.add_working_hours(sh(2026, 9, 14, 6), 1).at == sh(2026, 9, 14, 9, 30)
    # Saturday 19 Sep is off; Sunday 20 Sep is a make-up working day.
    assert cal.add_working_hours(sh(2026, 9, 19, 10), 1).at == sh(2026, 9, 20, 9, 30)
    assert cal.add_working_hours(sh(2026, 9, 14, 10), 0).at == sh(2026, 9, 14, 10)
    assert cal.add_working_hours(sh(2026, 9, 14, 10), 0.25).at == sh(2026, 9, 14, 10, 15)


def test_add_dispatches_on_unit(cal):
    start = sh(2026, 9, 30, 16)
    assert cal.add(start, 3, "working_days").at == close(2026, 10, 10)
    assert cal.add(start, 3.0, "working_days").at == close(2026, 10, 10)
    assert cal.add(start, 2, "working_hours").at == sh(2026, 10, 8, 9)
    assert cal.add(start, 2, "calendar_hours") == Deadline(sh(2026, 9, 30, 18), False)
    assert cal.add(start, 3, "calendar_days").at == sh(2026, 10, 3, 16)


def test_working_seconds_between(cal):
    # Weekend: Fri 16:00-17:30 and Mon 08:30-10:00.
    assert cal.working_seconds_between(sh(2026, 9, 11, 16), sh(2026, 9, 14, 10)) == 3 * 3600
    # National Day: 30 Sep 17:00-17:30 and 8 Oct 08:30-09:00.
    assert cal.working_seconds_between(sh(2026, 9, 30, 17), sh(2026, 10, 8, 9)) == 3600
    # Lunch break is not working time.
    assert cal.working_seconds_between(sh(2026, 9, 14, 11), sh(2026, 9, 14, 14)) == 1.5 * 3600
    # A Sunday make-up day is a full 7.5 h day; reversed order gives a negative duration.
    assert cal.working_seconds_between(sh(2026, 9, 20), sh(2026, 9, 21)) == 7.5 * 3600
    assert cal.working_seconds_between(sh(2026, 9, 21), sh(2026, 9, 20)) == -7.5 * 3600
    assert cal.working_seconds_between(sh(2026, 10, 1), sh(2026, 10, 7, 23)) == 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 6, 30)),
    quarter_hours=st.integers(min_value=1, max_value=400),
)
def test_working_hours_and_working_seconds_agree(cal, start, quarter_hours):
    start = start.replace(tzinfo=CITY_TZ)
    due = cal.add_working_hours(start, quarter_hours / 4)
    assert due.at > start
    assert cal.working_seconds_between(start, due.at) == pytest.approx(quarter_hours * 900)
    assert due.provisional == (due.at.year >= 2027)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31)),
    n=st.integers(min_value=1, max_value=30),
)
def test_working_days_count_from_the_next_day(cal, start, n):
    start = start.replace(tzinfo=CITY_TZ)
    due = cal.add_working_days(start, n)
    assert due.at.timetz().replace(tzinfo=None) == time(17, 30)
    assert cal.is_workday(due.at.date())
    days = [start.date() + timedelta(days=i) for i in range(1, (due.at.date() - start.date()).days + 1)]
    assert sum(cal.is_workday(d) for d in days) == n


def test_naive_datetimes_are_rejected(cal):
    naive = datetime(2026, 9, 30, 16)
    with pytest.raises(ValueError, match="naive"):
        cal.add_working_days(naive, 1)
    with pytest.raises(ValueError, match="naive"):
        cal.add_working_hours(naive, 1)
    with pytest.raises(ValueError, match="naive"):
        cal.add(naive, 1, "calendar_days")
    with pytest.raises(ValueError, match="naive"):
        cal.working_seconds_between(sh(2026, 9, 30), naive)
    with pytest.raises(ValueError, match="naive"):
        due_status(naive, sh(2026, 9, 30))


def test_calendar_rejects_bad_construction():
    with pytest.raises(ValueError, match="kind"):
        WorkCalendar({date(2026, 1, 1): "day-off"}, {2026})
    with pytest.raises(ValueError, match="empty"):
        WorkCalendar({}, set(), work_periods=())
    with pytest.raises(ValueError, match="overlaps"):
        WorkCalendar({}, set(), work_periods=((time(8), time(12)), (time(11), time(17))))


# -- due status -----------------------------------------------------------------------------


def test_due_status():
    start, due = sh(2026, 9, 1, 9), sh(2026, 9, 11, 9)  # 10 days allowed, 20% = 2 days
    assert due_status(due, sh(2026, 9, 8), started_at=start) == "on_time"
    assert due_status(due, sh(2026, 9, 9, 10), started_at=start) == "due_soon"
    assert due_status(due, due, started_at=start) == "due_soon"  # the deadline itself: not late
    assert due_status(due, due + timedelta(seconds=1)) == "overdue"
    assert due_status(due, sh(2026, 9, 11, 6)) == "due_soon"  # 3 h left, no start: 4 h window
    assert due_status(due, sh(2026, 9, 11, 4)) == "on_time"
    assert due_status(due, sh(2026, 9, 20), done_at=due) == "done_on_time"
    assert due_status(due, sh(2026, 9, 20), done_at=sh(2026, 9, 11, 10)) == "done_late"


# -- data files -----------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_shipped_csv_matches_the_library_and_validates_clean(year):
    report = parse_calendar_csv((DATA / f"{year}.csv").read_text(encoding="utf-8"))
    assert report.errors == [] and report.warnings == []
    assert report.years == [year]
    assert [(d, k) for d, k, _ in report.rows] == [(d, k) for d, k, _ in builtin_rows(year)]


# -- validation (no database) ---------------------------------------------------------------


def test_validation_reports_line_numbers():
    content = (
        "# comment\n"
        "date,kind,name\n"
        "2027-01-01,holiday,元旦\n"  # line 3
        "2027-02-30,holiday,春节\n"  # 4: no such date
        "2027-02-10,off,春节\n"  # 5: unknown kind
        "2027-01-01,holiday,元旦\n"  # 6: duplicate of line 3
        "2027-02-09,workday,春节\n"  # 7: a Tuesday cannot be a make-up day
        "20270211,holiday,春节\n"  # 8: not YYYY-MM-DD
        "2027-02-12,holiday\n"  # 9: two columns
    )
    report = parse_calendar_csv(content)
    by_line = {i.line: i.message for i in report.errors}
    assert sorted(by_line) == [4, 5, 6, 7, 8, 9], report.errors
    assert "2027-02-30" in by_line[4]
    assert "'off'" in by_line[5]
    assert "line 3" in by_line[6]
    assert "Saturday or Sunday" in by_line[7]
    assert not report.ok


def test_validation_of_years_and_header():
    two_years = "date,kind,name\n2027-01-01,holiday,元旦\n2028-01-01,holiday,元旦\n"
    assert "span years 2027, 2028" in parse_calendar_csv(two_years).errors[0].message
    ok = parse_calendar_csv(two_years, years=[2027, 2028])
    assert ok.ok and ok.years == [2027, 2028]
    outside = parse_calendar_csv(two_years, years=[2027])
    assert [i.line for i in outside.errors] == [3]
    assert parse_calendar_csv("day,type\n2027-01-01,holiday\n").errors[0].line == 1
    assert parse_calendar_csv("").errors and parse_calendar_csv("date,kind,name\n").errors


def test_validation_warnings():
    content = (
        "date,kind,name\n"
        "2027-01-01,holiday,元旦\n"
        "2027-01-02,holiday,元旦\n"  # Saturday inside a run with a weekday: fine
        "2027-03-06,holiday,x\n"  # line 4: a lone Saturday holiday changes nothing
    )
    report = parse_calendar_csv(content)
    assert report.ok
    assert [i.line for i in report.warnings if i.line] == [4]
    missing = [i.message for i in report.warnings if i.line == 0]
    assert any("1 May" in m for m in missing) and any("1 October" in m for m in missing)
    # A year the library covers: a difference from it is flagged.
    report_2026 = parse_calendar_csv(
        (DATA / "2026.csv").read_text(encoding="utf-8").replace("2026-10-10,workday", "2026-10-17,workday")
    )
    assert report_2026.ok
    assert any("differs from chinese-calendar" in i.message for i in report_2026.warnings)


# -- the database ---------------------------------------------------------------------------


def db_state(engine) -> tuple:
    with engine.connect() as conn:
        years = conn.execute(text("SELECT year, source, imported_at FROM calendar_year ORDER BY 1")).all()
        days = conn.execute(text("SELECT day, kind, name FROM calendar_day ORDER BY 1")).all()
    return years, days


def test_importing_2027_makes_the_year_end_deadline_firm_and_shifts_it(engine, tmp_path):
    path = write(tmp_path, "2027.csv", HYPOTHETICAL_2027)
    start = sh(2026, 12, 28, 10)
    with engine.connect() as conn:
        before = load_calendar(conn).add_working_days(start, 13)
    assert before == Deadline(close(2027, 1, 14), True)

    with engine.connect() as conn:
        report = import_calendar_file(conn, path, commit=True)
    assert report.ok and report.committed and report.years == [2027]

    with engine.connect() as conn:
        after = load_calendar(conn).add_working_days(start, 13)
        source, rows = year_rows(conn, 2027)
    # 1 Jan 2027 is now a holiday: one working day later, Friday 15 January.
    assert after == Deadline(close(2027, 1, 15), False)
    assert source.startswith("2027.csv (sha256 ")
    assert rows == [(date(2027, 1, 1), "holiday", "元旦")]


def test_load_calendar_is_cached_until_calendar_year_changes(engine, tmp_path):
    with engine.connect() as conn:
        first = load_calendar(conn)
        assert load_calendar(conn) is first
        import_calendar_file(conn, write(tmp_path, "2027.csv", HYPOTHETICAL_2027), commit=True)
        assert load_calendar(conn) is not first


def test_reimport_replaces_only_that_year(engine, tmp_path):
    with engine.connect() as conn:
        import_calendar_file(conn, DATA / "2026.csv", commit=True)
        import_calendar_file(conn, write(tmp_path, "a.csv", HYPOTHETICAL_2027), commit=True)
        replacement = "date,kind,name\n2027-01-01,holiday,元旦\n2027-02-06,holiday,春节\n"
        dry = import_calendar_file(conn, write(tmp_path, "b.csv", replacement), commit=False)
        assert dry.replaced_rows == {2027: 1} and not dry.committed
        report = import_calendar_file(conn, write(tmp_path, "b.csv", replacement), commit=True)
        assert report.committed
        assert year_rows(conn, 2027)[1] == [
            (date(2027, 1, 1), "holiday", "元旦"),
            (date(2027, 2, 6), "holiday", "春节"),
        ]
        assert len(year_rows(conn, 2026)[1]) == len(builtin_rows(2026))
        assert year_rows(conn, 2027)[0].startswith("b.csv")


def test_import_inside_callers_transaction_rolls_back_with_it(engine, tmp_path):
    path = write(tmp_path, "2027.csv", HYPOTHETICAL_2027)
    with engine.connect() as conn:
        conn.begin()
        assert import_calendar_file(conn, path, commit=True).committed
        conn.rollback()
    assert db_state(engine) == ([], [])


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("date,kind,name\n2027-01-01,holiday,元旦\n2027-13-01,holiday,x\n", 3, "2027-13-01"),
        ("date,kind,name\n2027-01-01,holiday,元旦\n2027-01-02,vacation,x\n", 3, "'vacation'"),
        ("date,kind,name\n2027-01-01,holiday,元旦\n2027-01-01,holiday,元旦\n", 3, "listed twice"),
    ],
)
def test_malformed_file_is_rejected_and_db_untouched(engine, tmp_path, content, line, words):
    with engine.connect() as conn:
        import_calendar_file(conn, DATA / "2026.csv", commit=True)
    before = db_state(engine)
    with engine.connect() as conn:
        report = import_calendar_file(conn, write(tmp_path, "2027.csv", content), commit=True)
    assert not report.committed
    assert [(i.line, words in i.message) for i in report.errors] == [(line, True)]
    assert "rejected: nothing written" in report.summary_lines()
    assert db_state(engine) == before


def test_dry_run_writes_nothing(engine, tmp_path):
    with engine.connect() as conn:
        report = import_calendar_file(conn, write(tmp_path, "2027.csv", HYPOTHETICAL_2027),
                                      commit=False)
    assert report.ok and not report.committed and report.replaced_rows == {2027: 0}
    assert any("dry run" in line for line in report.summary_lines())
    assert db_state(engine) == ([], [])


def test_seed_builtin_only_into_an_empty_table(engine, tmp_path):
    with engine.connect() as conn:
        years = seed_builtin(conn)
        assert years == sorted(builtin_years()) and 2026 in years
        source, rows = year_rows(conn, 2026)
        assert source.startswith("chinese-calendar")
        assert rows == builtin_rows(2026)
        import_calendar_file(conn, write(tmp_path, "2027.csv", HYPOTHETICAL_2027), commit=True)
        assert seed_builtin(conn) == []
        assert year_rows(conn, 2027)[1] == [(date(2027, 1, 1), "holiday", "元旦")]


# -- the CLI --------------------------------------------------------------------------------


def test_cli_import_show_and_deadline(engine, tmp_path, monkeypatch):
    from casegrid.cli import app
    from casegrid.cli import calendar as cli_calendar

    monkeypatch.setattr(cli_calendar, "engine", lambda: engine)
    runner = CliRunner()
    path = write(tmp_path, "2027.csv", HYPOTHETICAL_2027)

    dry = runner.invoke(app, ["calendar", "import", str(path)])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and db_state(engine) == ([], [])

    bad = runner.invoke(app, ["calendar", "import", str(write(tmp_path, "bad.csv",
                                                                "date,kind,name\nxx,holiday,\n"))])
    assert bad.exit_code == 2

    done = runner.invoke(app, ["calendar", "import", str(path), "--commit"])
    assert done.exit_code == 0 and "committed" in done.output

    shown = runner.invoke(app, ["calendar", "show", "2027"])
    assert "2027-01-01" in shown.output and "元旦" in shown.output
    builtin = runner.invoke(app, ["calendar", "show", "2026"])
    assert "2026-10-10" in builtin.output and "not in the database" in builtin.output
    missing = runner.invoke(app, ["calendar", "show", "2030"])
    assert "not covered" in missing.output

    due = runner.invoke(app, ["calendar", "deadline", "2026-12-28T10:00+08:00", "13"])
    assert due.exit_code == 0 and "2027-01-15T17:30:00+08:00" in due.output
    assert "provisional" not in due.output
    naive = runner.invoke(app, ["calendar", "deadline", "2026-12-28T10:00", "13"])
    assert naive.exit_code == 2


def test_cli_import_with_listed_years_and_missing_file(engine, tmp_path, monkeypatch):
    from casegrid.cli import app
    from casegrid.cli import calendar as cli_calendar

    monkeypatch.setattr(cli_calendar, "engine", lambda: engine)
    runner = CliRunner()
    two = write(tmp_path, "2027-2028.csv",
                "date,kind,name\n2027-01-01,holiday,元旦\n2028-01-01,holiday,元旦\n")
    refused = runner.invoke(app, ["calendar", "import", str(two), "--commit"])
    assert refused.exit_code == 2 and db_state(engine) == ([], [])
    done = runner.invoke(app, ["calendar", "import", str(two), "--commit",
                               "--year", "2027", "--year", "2028"])
    assert done.exit_code == 0, done.output
    assert [y.year for y in db_state(engine)[0]] == [2027, 2028]
    missing = runner.invoke(app, ["calendar", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2
