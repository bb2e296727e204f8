"""The calendar's horizon: `casegrid calendar status`, the warning, and README's import example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from cases.calendar import WorkCalendar, builtin_rows
from cases.calendar_horizon import FIX_COMMAND, current_horizon, horizon
from cases.calendar_store import import_calendar_file, load_calendar, year_rows

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The CSV block under README's calendar-example-2026 marker, as an admin would copy it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- calendar-example-2026 -->\n```csv\n(.*?)```", text, re.S)
    assert m, "README lost its 2026 calendar example"
    return m[1]


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "casegrid.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_horizon_is_the_first_day_of_the_first_year_without_a_notice():
    cal = WorkCalendar.builtin()
    assert max(cal.covered_years) == 2026  # what chinese-calendar 1.11.0 (the lock) covers
    h = horizon(cal, date(2026, 11, 15), 60)
    assert (h.first_provisional, h.days_left, h.warning) == (date(2027, 1, 1), 47, True)
    assert FIX_COMMAND in h.message() and "2027" in h.message()
    assert FIX_COMMAND in h.message("zh") and "2027年" in h.message("zh")
    # 92 days ahead: no warning yet; the boundary is strict (< 60 days).
    assert not horizon(cal, date(2026, 10, 1), 60).warning
    assert horizon(cal, date(2027, 1, 1) - timedelta(days=60), 60).message() is None
    assert horizon(cal, date(2027, 1, 1) - timedelta(days=59), 60).warning
    # A year already uncovered: provisional from today.
    late = horizon(cal, date(2027, 3, 1), 60)
    assert (late.first_provisional, late.days_left) == (date(2027, 3, 1), 0)
    # An imported 2027 moves it to 2028.
    with_2027 = WorkCalendar({}, cal.covered_years | {2027})
    assert horizon(with_2027, date(2026, 11, 15), 60).first_provisional == date(2028, 1, 1)


def test_status_warns_at_2026_11_15_without_2027_and_not_once_it_is_imported(db_url, tmp_path):
    out = cli(db_url, "calendar", "status", "--today", "2026-11-15")
    assert out.returncode == 0, out.stderr
    assert "years with a holiday notice: 2004-2026" in out.stdout
    assert "first provisional day: 2027-01-01 (47 days from 2026-11-15" in out.stdout
    assert "WARNING" in out.stderr and FIX_COMMAND in out.stderr and "2027" in out.stderr

    # The 2027 notice (here: a file with its statutory days; the real one lists more).
    notice = tmp_path / "2027.csv"
    notice.write_text("date,kind,name\n2027-01-01,holiday,元旦\n2027-05-01,holiday,劳动节\n"
                      "2027-10-01,holiday,国庆节\n", encoding="utf-8")
    imported = cli(db_url, "calendar", "import", str(notice), "--commit")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    out = cli(db_url, "calendar", "status", "--today", "2026-11-15")
    assert "first provisional day: 2028-01-01" in out.stdout
    assert "2027 in the database: 2027.csv" in out.stdout
    assert "WARNING" not in out.stderr


def test_status_refuses_a_bad_day(db_url):
    out = cli(db_url, "calendar", "status", "--today", "15.11.2026")
    assert out.returncode != 0
    assert "--today" in out.stderr + out.stdout and "YYYY-MM-DD" in out.stderr + out.stdout


def test_current_horizon_reads_the_database(engine, tmp_path):
    with engine.connect() as conn:
        assert current_horizon(conn, 60, date(2026, 11, 15)).warning


def test_readme_example_reproduces_the_2026_notice_day_by_day(engine, tmp_path):
    path = tmp_path / "2026.csv"
    path.write_text(readme_example(), encoding="utf-8")
    with engine.connect() as conn:
        report = import_calendar_file(conn, path, commit=True)
        conn.commit()
        assert report.ok and report.committed, report.summary_lines()
        # No difference from the package was reported (the import compares the two)...
        assert report.warnings == [], report.summary_lines()
        source, rows = year_rows(conn, 2026)
        assert source.startswith("2026.csv")
        imported = load_calendar(conn)
    # ...and every day of 2026 is a working day or not exactly as in the bundled data.
    bundled = WorkCalendar.builtin()
    day, differ = date(2026, 1, 1), []
    while day.year == 2026:
        if imported.is_workday(day) != bundled.is_workday(day):
            differ.append(day)
        day += timedelta(days=1)
    assert differ == []
    assert [(d, k) for d, k, _ in rows] == [(d, k) for d, k, _ in builtin_rows(2026)]
    bundled_file = (ROOT / "data" / "calendar" / "2026.csv").read_text(encoding="utf-8")
    assert {ln for ln in bundled_file.splitlines() if ln[:1].isdigit()} == \
        {ln for ln in readme_example().splitlines() if ln[:1].isdigit()}


def test_the_worker_log_warns_once_a_day(engine, caplog):
    import logging

    from cases.calendar_horizon import HorizonLog

    log = logging.getLogger("casegrid.worker.test")
    reminder = HorizonLog(60, log)
    with caplog.at_level(logging.WARNING, logger=log.name), engine.connect() as conn:
        assert reminder.check(conn, date(2026, 11, 15)).warning
        assert reminder.check(conn, date(2026, 11, 15)) is None  # same day: once
        reminder.check(conn, date(2026, 11, 16))
        reminder.check(conn, date(2026, 10, 1))  # 92 days ahead: nothing to say
    warnings = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert len(warnings) == 2
    assert "2027" in warnings[0] and FIX_COMMAND in warnings[0] and "47 days" in warnings[0]
    assert "46 days" in warnings[1]


def test_the_worker_says_so_in_its_log(engine, caplog):
    """casegrid worker's pass on 2026-11-15 without a 2027 notice logs the warning."""
    import logging
    from datetime import datetime

    from casegrid.settings import Settings
    from casegrid.worker import Worker
    from cases.calendar import CITY_TZ

    worker = Worker(engine, Settings(), name="horizon-test", channels={})
    with caplog.at_level(logging.WARNING, logger="casegrid.worker"):
        worker.run_pass(now=datetime(2026, 11, 15, 9, 0, tzinfo=CITY_TZ))
        worker.run_pass(now=datetime(2026, 11, 15, 9, 5, tzinfo=CITY_TZ))
    said = [r.getMessage() for r in caplog.records if r.name == "casegrid.worker"
            and "calendar" in r.getMessage()]
    assert len(said) == 1, said
    assert "2027" in said[0] and FIX_COMMAND in said[0]


def test_the_admins_workbench_home_says_so(engine, db_url):
    """The clock at 2026-11-15, no 2027 notice: the admin's /work shows the warning with the
    command (Chinese first, English with lang=en); a dispatcher's does not (not theirs to fix)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from cases.users import create_user
    from tests.helpers.workbench_helpers import PASSWORD, login

    with engine.begin() as conn:
        create_user(conn, "admin.cal", "admin", PASSWORD)
        create_user(conn, "disp.cal", "dispatcher", PASSWORD)
    app = create_app(database_url=db_url)
    app.state.today = lambda: date(2026, 11, 15)
    with TestClient(app) as admin:
        login(admin, "admin.cal")
        page = admin.get("/work")
        assert page.status_code == 200
        warning = re.search(r'id="calendar-horizon">([^<]+)<', page.text)
        assert warning and "2027年" in warning[1] and FIX_COMMAND in warning[1], page.text[:2000]
        en = admin.get("/work?lang=en").text
        assert "no holiday notice for 2027" in en and "47 days away" in en
        app.state.today = lambda: date(2026, 10, 1)  # 92 days ahead: nothing to say yet
        assert 'id="calendar-horizon"' not in admin.get("/work").text
    app.state.today = lambda: date(2026, 11, 15)
    with TestClient(app) as dispatcher:
        login(dispatcher, "disp.cal")
        assert 'id="calendar-horizon"' not in dispatcher.get("/work").text
