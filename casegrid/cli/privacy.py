"""``casegrid privacy purge|report|category``: retention and the publication policy."""

from __future__ import annotations

import typer
from rich.progress import Progress
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine

privacy_app = typer.Typer(help="Personal data: the retention purge, the report, what the "
                               "public sees.", no_args_is_help=True)


@privacy_app.command("purge")
@cli_errors
def purge_cmd(
    older_than: str = typer.Option(None, "--older-than", help="closed longer ago than this "
                                   "(3y, 18m, 6w, 90d); default CASEGRID_PRIVACY_RETENTION_DAYS"),
    commit: bool = typer.Option(False, "--commit", help="purge; without it, only count"),
) -> None:
    """Remove reporter data and texts as written of cases closed past the retention period
    (a dry run with counts unless --commit)."""
    from cases.retention import parse_age, purge

    age = parse_age(older_than) if older_than else None
    eng = engine()
    found = purge(eng, age, commit=False)
    _print(found, "would purge")
    if not commit or not found.cases:
        if not commit:
            console.print("dry run: nothing changed; add --commit to purge")
        return
    with Progress(console=console) as bar:
        task = bar.add_task("purging", total=found.cases)
        done = purge(eng, age, commit=True, progress=lambda n: bar.advance(task, n))
    _print(done, "purged")


def _print(report, verb: str) -> None:  # noqa: ANN001
    console.print(f"{verb} {report.cases} cases closed before {report.cutoff:%Y-%m-%d %H:%M}",
                  highlight=False)
    table = Table("field", "values")
    for name, n in report.fields.items():
        table.add_row(name, str(n))
    console.print(table)


@privacy_app.command("report")
@cli_errors
def report_cmd() -> None:
    """What personal data the ledger holds: by field, cases, oldest, past retention."""
    from cases.retention import personal_data_report

    with engine().connect() as conn:
        rows = personal_data_report(conn)
    table = Table("field", "cases", "oldest", "open cases", "past retention")
    for r in rows:
        table.add_row(r["field"], str(r["cases"]),
                      f"{r['oldest']:%Y-%m-%d}" if r["oldest"] else "", str(r["open"]),
                      str(r["past_retention"]))
    console.print(table)


@privacy_app.command("category")
@cli_errors
def category_cmd(
    code: str = typer.Argument(None, help="category code; without it, list the policy"),
    public: bool = typer.Option(None, "--public/--private", help="publish the category's "
                                "cases (coarsened) or withdraw them from the public"),
) -> None:
    """Show or set which categories the public sees."""
    from cases.publication import category_policy, set_category_public

    with engine().begin() as conn:
        if code is not None and public is not None:
            set_category_public(conn, code, public)
        rows = category_policy(conn)
    table = Table("code", "name", "public")
    for r in rows:
        if code is None or r["code"] == code:
            table.add_row(r["code"], r["name_zh"], "yes" if r["public"] else "no")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(privacy_app, name="privacy")
