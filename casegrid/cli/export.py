"""``casegrid export ledger`` and ``casegrid export hotline-replies``: the work ledger (台账)
as a spreadsheet, and the replies back to the 12345 centre in its own columns.

Who exports: ``--as-token SECRET`` exports as that API token (its role decides whether the
reporter's name and phone are columns, a community officer's its communities); otherwise the
operator exports as ``--role`` (default admin).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from casegrid.cli._common import cli_errors, console, engine, option_day
from casegrid.errors import InvalidInput

export_app = typer.Typer(help="Export the ledger (台账) and the replies to the hotline.",
                         no_args_is_help=True)



@export_app.command("ledger")
@cli_errors
def ledger_cmd(
    date_from: str = typer.Option(..., "--from", help="first day of receipt, YYYY-MM-DD"),
    date_to: str = typer.Option(..., "--to", help="last day of receipt, YYYY-MM-DD"),
    community: list[str] = typer.Option([], "--community", help="community code (repeatable)"),
    category: list[str] = typer.Option([], "--category", help="category code (repeatable)"),
    out: Path = typer.Option(..., "--out", help="FILE.csv or FILE.xlsx"),
    as_token: str = typer.Option(None, "--as-token", help="export as this API token (secret)"),
    role: str = typer.Option("admin", "--role", help="role when no token is given"),
) -> None:
    """One row per case received in the period, with the time of every step (Chinese headers)."""
    from casegrid.cli.case import _principal
    from cases.ledger import LedgerQuery, check_query, count_rows, export

    if out.suffix.lower() not in (".csv", ".xlsx"):
        raise InvalidInput("--out must end in .csv or .xlsx", field="out")
    with engine().connect() as conn:
        q = LedgerQuery(option_day(date_from, "from"), option_day(date_to, "to"),
                        _principal(conn, as_token, role, "export"), list(community),
                        list(category))
        check_query(conn, q)
        total = count_rows(conn, q)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        out.parent.mkdir(parents=True, exist_ok=True)
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"台账 → {out.name}", total=total)
            n = export(conn, q, out, lambda k: bar.advance(task, k))
    console.print(f"wrote {n:,} rows to {out}")


@export_app.command("hotline-replies")
@cli_errors
def hotline_replies_cmd(
    date_from: str = typer.Option(..., "--from", help="first day of reply, YYYY-MM-DD"),
    date_to: str = typer.Option(..., "--to", help="last day of reply, YYYY-MM-DD"),
    mapping: str = typer.Option(..., "--mapping", help="the import's mapping (file or name)"),
    out: Path = typer.Option(..., "--out", help="FILE.csv or FILE.xlsx"),
) -> None:
    """The replies to the tickets a hotline import brought in, in the hotline's columns."""
    from cases.hotline_replies import write_replies
    from cases.mappings import load_mapping

    m = load_mapping(mapping)
    with engine().connect() as conn:
        n = write_replies(conn, m, option_day(date_from, "from"), option_day(date_to, "to"), out)
    console.print(f"wrote {n:,} replies to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
