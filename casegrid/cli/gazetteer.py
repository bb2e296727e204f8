"""``casegrid gazetteer import|rebuild|learn|learn-ledger|match`` and ``casegrid
locate-file``: the city's names, the address memory and locating by address text.
Imports and learning are dry runs that report until ``--commit`` is given."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from casegrid.cli._common import cli_errors, console, engine
from casegrid.cli.boundaries import COMMIT_HELP, CRS_HELP, JSON_HELP, _transaction

gazetteer_app = typer.Typer(help="The gazetteer (place names) and the address memory.",
                            no_args_is_help=True)


def _echo(report: dict, committed: bool) -> None:
    console.print_json(json.dumps(report, ensure_ascii=False, default=str))
    console.print("[green]committed[/]" if committed else "dry run: nothing written (add --commit)")


@gazetteer_app.command("import")
@cli_errors
def import_cmd(
    path: Path = typer.Argument(..., help="GeoJSON, Shapefile, GeoPackage or CSV with coordinates"),
    kind: str = typer.Option(..., help="compound|building|road|doorplate|crossing|poi|landmark|..."),
    name_field: str = typer.Option(..., help="field holding the name"),
    alias_field: str = typer.Option(None, help="field holding aliases (separated by ; | or 、)"),
    crs: str = typer.Option(None, help=CRS_HELP),
    lon_field: str = typer.Option(None, help="CSV: longitude/x column (default: lon, longitude, x)"),
    lat_field: str = typer.Option(None, help="CSV: latitude/y column (default: lat, latitude, y)"),
    from_field: str = typer.Option(None, help="roads: first house number (at the line's start)"),
    to_field: str = typer.Option(None, help="roads: last house number (at the line's end)"),
    source: str = typer.Option(None, help="source name; re-importing it replaces its entries"),
    commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Import places; reports rejected rows, duplicates and names in several communities."""
    from geo.gazetteer import import_gazetteer_file

    with console.status(f"importing {path.name}..."), _transaction(commit) as conn:
        report = import_gazetteer_file(
            conn, path, source=source, kind=kind, name_field=name_field,
            alias_field=alias_field, crs=crs, lon_field=lon_field, lat_field=lat_field,
            from_field=from_field, to_field=to_field)
        report.committed = commit
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        report.render(console)


@gazetteer_app.command("rebuild")
@cli_errors
def rebuild_cmd(commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP)) -> None:
    """Rebuild the built-in entries (subdistricts, communities, posts, POIs) after the
    boundaries, posts or POIs changed."""
    from geo.gazetteer import rebuild_builtin

    with _transaction(commit) as conn:
        counts = rebuild_builtin(conn)
    _echo({"builtin": counts}, commit)


@gazetteer_app.command("learn")
@cli_errors
def learn_cmd(
    path: Path = typer.Argument(..., help="history CSV (UTF-8) with addresses and coordinates"),
    address_col: list[str] = typer.Option(..., "--address-col",
                                          help="address column; repeat to join several (street, borough)"),
    lon_col: str = typer.Option(..., "--lon-col", help="longitude (or x) column"),
    lat_col: str = typer.Option(..., "--lat-col", help="latitude (or y) column"),
    crs: str = typer.Option(None, help=CRS_HELP),
    community_col: str = typer.Option(None, "--community-col",
                                      help="the file's own community label (default: route the point)"),
    commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP),
) -> None:
    """Teach the address memory from a history file of located cases."""
    from geo.address_memory import learn_file

    with console.status(f"learning from {path.name}..."), _transaction(commit) as conn:
        report = learn_file(conn, path, address_cols=address_col, lon_col=lon_col,
                            lat_col=lat_col, crs=crs, community_col=community_col)
    _echo(report, commit)


@gazetteer_app.command("learn-ledger")
@cli_errors
def learn_ledger_cmd(
    commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP),
    rescan: bool = typer.Option(False, "--rescan", help="read the ledger from its first case "
                                "again (cases already read change nothing)"),
) -> None:
    """Teach the address memory from the ledger's GPS/app cases read since the last time
    (the worker does the same every CASEGRID_ADDRESS_LEARN_EVERY_S): an address becomes
    memory when enough reporters agree where it is (docs/addresses.md, "The memory")."""
    from dataclasses import asdict

    from geo.address_learning import learn_all

    with console.status("learning from the ledger..."), _transaction(commit) as conn:
        report = learn_all(conn, rescan=rescan)
    _echo(asdict(report), commit)


@gazetteer_app.command("match")
@cli_errors
def match_cmd(address: str = typer.Argument(..., help="address text as the caller said it")) -> None:
    """Locate one address and print the answer (rule, confidence, point or suggestions)."""
    from geo.address_match import match_address

    with engine().connect() as conn:
        typer.echo(json.dumps(match_address(conn, address).to_dict(), ensure_ascii=False, indent=2))


@cli_errors
def locate_file_cmd(
    in_path: Path = typer.Argument(..., help="input CSV (UTF-8)"),
    address_col: list[str] = typer.Option(..., "--address-col",
                                          help="address column; repeat to join several"),
    out: Path = typer.Option(..., "--out", help="output CSV: input columns + lon, lat, "
                             "community_code, rule, confidence, suggestions"),
) -> None:
    """Locate every row of a CSV by its address text (one row out per row in)."""
    from geo.address_file import locate_file, read_for_locating

    frame = read_for_locating(in_path, address_col)
    with Progress(TextColumn("locating"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("locate", total=None)
        with engine().connect() as conn:
            summary = locate_file(conn, in_path, out, address_col,
                                  lambda done, total: bar.update(task, completed=done, total=total),
                                  frame=frame)
    console.print_json(json.dumps(summary, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(gazetteer_app, name="gazetteer")
    app.command("locate-file")(locate_file_cmd)
