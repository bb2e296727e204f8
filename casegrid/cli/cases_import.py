"""``casegrid cases import`` (hotline exports) and ``casegrid cases sample-complaints``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine

cases_app = typer.Typer(help="Import complaints in bulk.", no_args_is_help=True)

_LABELS = {
    "read": "reading file",
    "validate+copy": "validating + COPY + routing (rows)",
    "dedup": "deduplicating",
    "insert": "inserting cases + history",
    "indexes": "rebuilding indexes + keys",
    "deadlines": "setting deadlines",
}


class RichProgress:
    """A :data:`cases.bulk_import.ProgressFn` drawing one rich task per phase."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}
        self.last: str | None = None

    def __call__(self, phase: str, done: float, total: float | None) -> None:
        if phase not in self.tasks:
            if self.last and self.last not in ("read", "validate+copy"):
                self._finish(self.last)
            if phase == "dedup":  # reading (and routing, chunk by chunk) is over
                for p in ("read", "validate+copy"):
                    if p in self.tasks:
                        self._finish(p)
            self.tasks[phase] = self.progress.add_task(_LABELS.get(phase, phase), total=total)
        self.last = phase
        self.progress.update(self.tasks[phase], completed=done, total=total)

    def _finish(self, phase: str) -> None:
        task = self.tasks[phase]
        done = self.progress.tasks[task].completed or 1
        self.progress.update(task, total=done, completed=done)

    def close(self) -> None:
        for phase in self.tasks:
            self._finish(phase)


def print_report(report) -> None:  # noqa: ANN001 - BulkReport, imported lazily
    """The import's figures as a table."""
    table = Table(title=f"{Path(report.file).name} (mapping {report.mapping})", show_header=False)
    for label, value in (
        ("rows read", report.read),
        ("valid", report.valid),
        ("rejected", report.rejected),
        ("inserted" if report.committed else "would insert", report.inserted),
        ("already present", report.already_present),
        ("  of which repeated within the file", report.duplicates_in_file),
    ):
        table.add_row(label, f"{value:,}")
    for rule, n in report.routed.items():
        table.add_row(f"routed: {rule}", f"{n:,}")
    for reason, n in report.reject_reasons.items():
        table.add_row(f"rejected: {reason}", f"{n:,}")
    table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if report.rejected and report.rejects_path:
        console.print(f"rejected rows (with line numbers and reasons): {report.rejects_path}")
    if not report.committed:
        console.print("[bold]dry run[/]: nothing was written. Add --commit to store the cases.")


@cases_app.command("import")
@cli_errors
def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or XLSX export"),
    mapping: str = typer.Option(
        "hotline12345_zh", help="mapping TOML file, or a shipped one: hotline12345_zh, nyc311"),
    crs: str = typer.Option(None, help="coordinate system of the file (overrides the mapping): "
                                       "wgs84, gcj02, bd09 or EPSG:NNNN"),
    commit: bool = typer.Option(False, "--commit", help="store the cases (default: dry run)"),
    rejects: Path = typer.Option(
        None, help="where to write rejected rows (default: FILE.rejects.csv beside the file)"),
) -> None:
    """Validate, route and store a hotline export; a dry run unless --commit."""
    from cases.bulk_import import import_cases

    rejects = rejects or file.with_name(file.stem + ".rejects.csv")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        hook = RichProgress(bar)
        report = import_cases(engine(), file, mapping, crs=crs, commit=commit,
                              rejects_path=rejects, progress=hook)
        hook.close()
    print_report(report)


@cases_app.command("sample-complaints")
@cli_errors
def sample_complaints_cmd(
    n: int = typer.Option(30_000, help="number of synthetic complaints"),
    seed: int = typer.Option(20251201, help="random seed (same seed, same data)"),
    out: Path = typer.Option(None, help="only write the CSV here, do not load it"),
) -> None:
    """Generate (and load) a SYNTHETIC year of complaints for the sample city."""
    from casegrid.demo.complaints import SYNTHETIC_NOTE, load_sample_complaints, write_sample_csv

    console.print(f"[yellow]{SYNTHETIC_NOTE}[/]")
    if out:
        write_sample_csv(out, n=n, seed=seed)
        console.print(f"wrote {n:,} synthetic complaints to {out}")
        return
    report = load_sample_complaints(engine(), n=n, seed=seed)
    print_report(report)


def register(app: typer.Typer) -> None:
    app.add_typer(cases_app, name="cases")
