"""``casegrid route`` and ``casegrid route-file``: routing from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from casegrid.cli._common import cli_errors, console, engine


@cli_errors
def route_cmd(
    lon: str = typer.Argument(..., help="longitude (or x in a projected CRS)"),
    lat: str = typer.Argument(..., help="latitude (or y)"),
    crs: str = typer.Option("wgs84", help="wgs84 | gcj02 | bd09 | EPSG:NNNN"),
    generation: int = typer.Option(None, help="boundary generation (default: the active one)"),
    tolerance: float = typer.Option(None, help="gap tolerance in metres (default 200)"),
    margin: float = typer.Option(None, help="near-boundary margin in metres (default 20)"),
) -> None:
    """Route one coordinate and print the result as JSON."""
    from geo.routing import route

    with engine().connect() as conn:
        result = route(
            conn, lon, lat, crs, generation_id=generation, tolerance_m=tolerance, margin_m=margin
        )
    typer.echo(result.to_json())


@cli_errors
def route_file_cmd(
    in_path: Path = typer.Argument(..., help="input CSV"),
    lon_col: str = typer.Option(..., "--lon-col", help="column holding longitude (or x)"),
    lat_col: str = typer.Option(..., "--lat-col", help="column holding latitude (or y)"),
    out: Path = typer.Option(..., "--out", help="output CSV (input columns + routing columns)"),
    crs: str = typer.Option("wgs84", help="wgs84 | gcj02 | bd09 | EPSG:NNNN"),
    tolerance: float = typer.Option(None, help="gap tolerance in metres (default 200)"),
    margin: float = typer.Option(None, help="near-boundary margin in metres (default 20)"),
) -> None:
    """Route every row of a CSV set-based in PostGIS; rows with bad coordinates get rule=invalid."""
    from geo.route_file import route_file

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = route_file(
            engine(), in_path, out, lon_col=lon_col, lat_col=lat_col, crs=crs,
            tolerance_m=tolerance, margin_m=margin, progress=progress,
        )
    console.print_json(json.dumps(report.to_dict(), ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.command("route")(route_cmd)
    app.command("route-file")(route_file_cmd)
