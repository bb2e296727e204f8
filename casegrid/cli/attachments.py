"""``casegrid attachments sweep|check``: upkeep of the evidence file store."""

from __future__ import annotations

import typer

from casegrid.cli._common import cli_errors, console, engine

attachments_app = typer.Typer(help="Upkeep of the evidence file store.", no_args_is_help=True)


@attachments_app.command("sweep")
@cli_errors
def sweep(
    grace: float = typer.Option(None, help="seconds a file no row names is kept (default: "
                                "CASEGRID_ATTACHMENT_SWEEP_GRACE_S)"),
) -> None:
    """Remove stored files that no attachment row names (left by a request that failed or
    crashed between writing its files and its commit), once older than the grace period."""
    from casegrid.settings import get_settings
    from cases import attachments

    settings = get_settings()
    grace_s = settings.attachment_sweep_grace_s if grace is None else grace
    result = attachments.sweep(engine(), attachments.store_for(settings), grace_s)
    console.print(f"removed {len(result.removed)} file(s) no row names; kept {result.kept} "
                  f"in {settings.attachment_root}")


@attachments_app.command("check")
@cli_errors
def check() -> None:
    """List rows whose file is missing from the store (exit 1 if any)."""
    from casegrid.settings import get_settings
    from cases import attachments

    settings = get_settings()
    missing = attachments.missing_files(engine(), attachments.store_for(settings))
    for name in missing:
        console.print(f"missing: {name}")
    console.print(f"{len(missing)} file(s) named by rows are missing from {settings.attachment_root}")
    if missing:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(attachments_app, name="attachments")
