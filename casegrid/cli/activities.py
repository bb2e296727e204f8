"""``casegrid activities import FILE --mapping M [--commit]``: the activities ledger."""

from __future__ import annotations

from pathlib import Path

import typer

from casegrid.cli._common import cli_errors, console, engine

activities_app = typer.Typer(help="The activities ledger (活动台账).", no_args_is_help=True)


def _mapping_path(value: str) -> Path:
    """A mapping file, or the name of one shipped with casegrid (``activities_zh``)."""
    import cases

    shipped = Path(cases.__file__).parent / f"{value}.toml"
    path = Path(value)
    return shipped if path.suffix != ".toml" and shipped.is_file() else path


@activities_app.command("import")
@cli_errors
def import_cmd(
    file: Path = typer.Argument(..., help="CSV or XLSX of activity records"),
    mapping: str = typer.Option(..., "--mapping",
                                help="a mapping TOML file, or the shipped 'activities_zh'"),
    commit: bool = typer.Option(False, "--commit", help="store the new rows (default: dry run)"),
    rejects: Path = typer.Option(None, "--rejects", help="where refused rows go "
                                 "(default: FILE.rejects.csv)"),
) -> None:
    """Check every row (dry run), or store the new ones with --commit; a run again stores
    nothing twice."""
    from cases.activity_import import import_activities, load_mapping

    m = load_mapping(_mapping_path(mapping))
    with console.status(f"reading {file}"), engine().begin() as conn:
        report = import_activities(conn, file, m, commit=commit, rejects=rejects)
    verb = "stored" if commit else "would store"
    console.print(f"{report.rows} rows: {verb} {report.stored if commit else report.new} new, "
                  f"{report.already_present} stored already, {len(report.rejected)} refused")
    for line, _field, why in report.rejected[:20]:
        console.print(f"  line {line}: {why}", highlight=False)
    if len(report.rejected) > 20:
        console.print(f"  ... and {len(report.rejected) - 20} more")
    if report.reject_file:
        console.print(f"refused rows written to {report.reject_file}")
    if not commit:
        console.print("[yellow]dry run[/]: nothing stored; run again with --commit")


def register(app: typer.Typer) -> None:
    app.add_typer(activities_app, name="activities")
