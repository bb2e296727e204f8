"""``casegrid calendar import|show|status|seed|export|deadline``: the working calendar for deadlines."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import typer

from casegrid.cli._common import cli_errors, console, engine, err_console
from casegrid.errors import InvalidInput

calendar_app = typer.Typer(
    help="Public holidays and make-up working days (调休) used for case deadlines.",
    no_args_is_help=True,
)


@calendar_app.command("import")
@cli_errors
def import_cmd(
    file: Path = typer.Argument(..., help="CSV with columns date,kind,name (kind: holiday|workday)."),
    commit: bool = typer.Option(False, "--commit", help="Write to the database (default: dry run)."),
    year: list[int] = typer.Option(
        None, "--year", help="Years the file covers (repeatable); default: the single year of its dates."
    ),
) -> None:
    """Validate a year's holiday notice and, with --commit, replace that year in the database."""
    from cases.calendar_store import import_calendar_file

    with engine().connect() as conn:
        report = import_calendar_file(conn, file, commit=commit, years=year or None)
    for line in report.summary_lines():
        (err_console if line.startswith("ERROR") else console).print(line, markup=False)
    if not report.ok:
        raise typer.Exit(2)


@calendar_app.command("show")
@cli_errors
def show(year: int = typer.Argument(..., help="Calendar year, e.g. 2027.")) -> None:
    """List a year's holidays and make-up working days, and where they come from."""
    from cases.calendar import builtin_rows, builtin_source, builtin_years
    from cases.calendar_store import load_calendar, year_rows

    with engine().connect() as conn:
        source, rows = year_rows(conn, year)
        cal = load_calendar(conn)
    if source is None and year in builtin_years():
        source, rows = f"{builtin_source()}, not in the database", builtin_rows(year)
    if source is None:
        console.print(
            f"{year} is not covered: deadlines in it count Monday-Friday only and are marked "
            "provisional. Import the State Council notice with `casegrid calendar import`."
        )
        return
    console.print(f"{year}: {source}", markup=False)
    for d, kind, name in rows:
        label = "holiday" if kind == "holiday" else "workday (调休 make-up)"
        console.print(f"  {d} {d:%a}  {label:<22} {name}", markup=False)
    first, n = date(year, 1, 1), (date(year + 1, 1, 1) - date(year, 1, 1)).days
    working = sum(cal.is_workday(first + timedelta(days=i)) for i in range(n))
    console.print(f"{working} working days in {year}")


@calendar_app.command("status")
@cli_errors
def status(
    today: str = typer.Option(None, "--today", help="As of this day (YYYY-MM-DD; default: "
                              "today in Beijing time), e.g. to plan ahead."),
) -> None:
    """Which years have a holiday notice, and the first day whose deadlines are provisional."""
    from sqlalchemy import text

    from casegrid.settings import get_settings
    from cases.calendar import builtin_source, builtin_years
    from cases.calendar_horizon import current_horizon, year_ranges

    day = None
    if today:
        try:
            day = date.fromisoformat(today) if len(today) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise InvalidInput(f"--today {today!r} is not a date: give YYYY-MM-DD", field="today")
    with engine().connect() as conn:
        h = current_horizon(conn, get_settings().calendar_horizon_days, day)
        imported = conn.execute(text(
            "SELECT year, source, to_char(imported_at, 'YYYY-MM-DD') AS at "
            "FROM calendar_year ORDER BY year")).all()
    console.print(f"years with a holiday notice: {year_ranges(h.years)}", markup=False, soft_wrap=True)
    console.print(f"  from {builtin_source()}: {year_ranges(sorted(builtin_years()))}",
                  markup=False, soft_wrap=True)
    for row in imported:
        console.print(f"  {row.year} in the database: {row.source}, {row.at}", markup=False, soft_wrap=True)
    console.print(f"first provisional day: {h.first_provisional} ({h.days_left} days from "
                  f"{h.today}; warning under {h.warn_days} days)", markup=False, soft_wrap=True)
    message = h.message()
    if message:
        err_console.print(f"WARNING {message}", markup=False, soft_wrap=True)


@calendar_app.command("seed")
@cli_errors
def seed() -> None:
    """Load the chinese-calendar package's years into an empty calendar table."""
    from cases.calendar_store import seed_builtin

    with engine().connect() as conn:
        years = seed_builtin(conn)
    if years:
        console.print(f"seeded {years[0]}-{years[-1]} ({len(years)} years)")
    else:
        console.print("calendar_year already has rows: nothing seeded (imports are kept)")


@calendar_app.command("export")
@cli_errors
def export(year: int = typer.Argument(..., help="A year the chinese-calendar package covers.")) -> None:
    """Print a year from the chinese-calendar package as import-ready CSV."""
    from cases.calendar import builtin_rows, builtin_source, builtin_years
    from cases.calendar_store import format_calendar_csv

    if year not in builtin_years():
        raise InvalidInput(
            f"{year} is not in {builtin_source()}; covered: "
            f"{min(builtin_years())}-{max(builtin_years())}",
            field="year",
        )
    typer.echo(format_calendar_csv(builtin_rows(year), comment=f"Source: {builtin_source()}"),
               nl=False)


@calendar_app.command("deadline")
@cli_errors
def deadline(
    start: str = typer.Argument(..., help="ISO moment with offset, e.g. 2026-09-30T16:00+08:00."),
    amount: float = typer.Argument(..., help="How much time is allowed."),
    unit: str = typer.Argument(
        "working_days", help="working_hours | working_days | calendar_hours | calendar_days"
    ),
) -> None:
    """Compute a deadline with the database calendar (to check a category's time limit)."""
    from cases.calendar import UNITS
    from cases.calendar_store import load_calendar

    if unit not in UNITS:
        raise InvalidInput(f"unit {unit!r} must be one of {', '.join(UNITS)}", field="unit")
    try:
        moment = datetime.fromisoformat(start)
        with engine().connect() as conn:
            due = load_calendar(conn).add(moment, amount, unit)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput(str(exc), field="start/amount") from exc
    note = "  (provisional: a year without an entered holiday notice)" if due.provisional else ""
    console.print(f"{due.at.isoformat()} {due.at:%a}{note}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(calendar_app, name="calendar")
