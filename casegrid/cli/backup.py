"""``casegrid backup --out DIR`` and ``casegrid restore DIR [--force]``."""

from __future__ import annotations

from pathlib import Path

import typer

from casegrid.cli._common import cli_errors, console


def _attachments_dir() -> Path | None:
    from casegrid.settings import get_settings

    return get_settings().attachment_root


def _database_url() -> str:
    from casegrid.cli.db import ensure_running
    from casegrid.db import resolve_database_url

    ensure_running()
    return resolve_database_url()


def register(app: typer.Typer) -> None:
    """Add the backup and restore commands."""

    @app.command("backup")
    @cli_errors
    def backup_cmd(
        out: Path = typer.Option(..., "--out", help="new directory to write the backup to"),
    ) -> None:
        """Back up the database (pg_dump, one snapshot) and the attachment store to a new
        directory, with a manifest of SHA-256 sums and the ledger's counts."""
        from casegrid.backup import backup

        manifest = backup(_database_url(), out, _attachments_dir(),
                          progress=lambda m: console.print(f"[dim]{m}[/]"))
        counts = manifest["counts"]
        console.print(
            f"[green]backup written[/] {out}: schema {manifest['schema_revision']}, "
            f"{counts['cases']} cases, {counts['history']} history entries, "
            f"{counts['attachments'] if counts['attachments'] is not None else 0} attachments, "
            f"{len(manifest['files'])} files")

    @app.command("restore")
    @cli_errors
    def restore_cmd(
        backup_dir: Path = typer.Argument(..., help="a directory written by `casegrid backup`"),
        force: bool = typer.Option(False, "--force",
                                   help="replace the ledger of a database that is not empty"),
    ) -> None:
        """Check a backup against its manifest, restore it into an empty database (one
        transaction) and the attachment store, migrate forward, and compare the counts."""
        from casegrid.backup import restore

        report = restore(_database_url(), backup_dir, _attachments_dir(), force=force,
                         progress=lambda m: console.print(f"[dim]{m}[/]"))
        console.print("[green]restored[/]        backup   database")
        for key, want in report.manifest["counts"].items():
            got = report.counts.get(key)
            mark = "" if got == want else "  [yellow](migrations changed this)[/]"
            console.print(f"  {key:<14} {want!s:>8} {got!s:>10}{mark}")
