"""``casegrid boundaries import|check|list|activate|subdivide``, ``casegrid posts import`` and
``casegrid poi import``: loading the city's geography, as dry runs that report until
``--commit`` is given; ``casegrid posts list|set-webhook``: the posts and where their
notifications go."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import Connection

from casegrid.cli._common import cli_errors, console, engine
from casegrid.db import commit_only_if

boundaries_app = typer.Typer(help="Import, check and activate boundary generations.", no_args_is_help=True)
posts_app = typer.Typer(help="Import community posts (城市管理岗).", no_args_is_help=True)
poi_app = typer.Typer(help="Import points of interest (schools, hospitals, markets, parks).", no_args_is_help=True)

CRS_HELP = "CRS of the file's coordinates: EPSG:NNNN, wgs84, gcj02 or bd09 (overrides the file's own)"
COMMIT_HELP = "write to the database (without it: a dry run that only reports)"
JSON_HELP = "print the report as JSON"


@contextmanager
def _transaction(commit: bool) -> Iterator[Connection]:
    """A transaction that commits only when ``commit``; a dry run is rolled back so that it
    can never write, whatever the code under it does."""
    with engine().connect() as conn, commit_only_if(conn.begin(), commit):
        yield conn


def _run(step: str, commit: bool, fn: Callable[[Connection], Any], as_json: bool) -> None:
    with console.status(step), _transaction(commit) as conn:
        report = fn(conn)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        report.render(console)


@boundaries_app.command("import")
@cli_errors
def import_cmd(
    path: Path = typer.Argument(..., help="GeoJSON, Shapefile (or its folder) or GeoPackage"),
    level: str = typer.Option(..., help="subdistrict|community"),
    code_field: str = typer.Option(..., help="field holding the stable code"),
    name_field: str = typer.Option(..., help="field holding the name"),
    parent_field: str = typer.Option(None, help="communities: field holding the subdistrict code"),
    crs: str = typer.Option(None, help=CRS_HELP),
    layer: str = typer.Option(None, help="layer name, for files with several"),
    note: str = typer.Option(None, help="note stored with the generation"),
    commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Read a boundary file and report features read, repaired, rejected, gaps, overlaps and
    communities outside their subdistrict; with --commit store it as a new active generation."""
    from geo.boundary_import import import_boundaries

    _run(
        f"importing {path.name} ({'commit' if commit else 'dry run'})...",
        commit,
        lambda conn: import_boundaries(
            conn, path, level=level, code_field=code_field, name_field=name_field,
            parent_field=parent_field, crs=crs, layer=layer, commit=commit, note=note,
        ),
        as_json,
    )


@boundaries_app.command("check")
@cli_errors
def check_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Report the topology of the active generations (gaps, overlaps, parent containment)."""
    from geo.topology import check_active

    with console.status("checking active boundaries..."), engine().connect() as conn:
        report = check_active(conn)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    elif report.features == 0:
        console.print("no active boundary generation: import one with `casegrid boundaries import`")
    else:
        report.render(console)


@boundaries_app.command("list")
@cli_errors
def list_cmd() -> None:
    """List boundary generations, newest first."""
    from geo.boundaries import list_generations

    with engine().connect() as conn:
        gens = list_generations(conn)
    table = Table("id", "level", "features", "active")
    table.add_column("source", overflow="fold")
    for g in gens:
        table.add_row(str(g.id), g.level, str(g.feature_count), "yes" if g.active else "", g.source)
    console.print(table)


@boundaries_app.command("activate")
@cli_errors
def activate_cmd(generation: int = typer.Argument(..., help="generation id from `boundaries list`")) -> None:
    """Make a generation the active one of its level (the previous one is kept)."""
    from geo.boundaries import activate_generation

    with engine().begin() as conn:
        activate_generation(conn, generation)
    console.print(f"generation {generation} is now active")


@boundaries_app.command("subdivide")
@cli_errors
def subdivide_cmd(
    generation: int = typer.Option(None, help="community generation id (default: the active one)"),
    max_vertices: int = typer.Option(
        None, help="vertices a piece at most (default: the subdivide_max_vertices setting)"),
) -> None:
    """Cut a community generation into routing pieces again, e.g. after a change of
    CASEGRID_SUBDIVIDE_MAX_VERTICES; routing answers stay the same, only its speed changes."""
    from geo.boundaries import repiece_generation

    with console.status("cutting the boundaries into pieces..."), engine().begin() as conn:
        gen, before, now = repiece_generation(conn, generation, max_vertices)
    console.print(f"generation {gen}: {now:,} routing pieces (were {before:,})")


@posts_app.command("import")
@cli_errors
def posts_import_cmd(
    path: Path = typer.Argument(..., help="CSV (community_code,name,contact_name,contact_phone,address,hours,lon,lat) or GeoJSON"),
    crs: str = typer.Option(None, help=CRS_HELP),
    commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Upsert community posts by community code; unknown codes are rejected."""
    from geo.post_import import import_posts

    _run(f"importing posts from {path.name}...", commit,
         lambda conn: import_posts(conn, path, crs=crs, commit=commit), as_json)


@posts_app.command("list")
@cli_errors
def posts_list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The posts: community, contact, phone (SMS) and webhook URL (notifications)."""
    from notify.posts import list_posts

    with engine().connect() as conn:
        rows = list_posts(conn)
    if as_json:
        console.print_json(json.dumps(rows, default=str, ensure_ascii=False))
        return
    table = Table("community", "name", "post", "contact", "phone")
    table.add_column("webhook", overflow="fold")  # a URL is no use cut short
    for r in rows:
        table.add_row(r["community_code"], r["community_name"] or "", r["name"],
                      r["contact_name"] or "", r["phone"] or "",
                      r["webhook_url"] or "— (default)")
    console.print(table)


@posts_app.command("set-webhook")
@cli_errors
def posts_set_webhook_cmd(
    community_code: str = typer.Argument(..., help="the post's community code"),
    url: str = typer.Argument("", help="https:// URL (http:// only to 127.0.0.1/localhost); "
                              "leave out with --clear"),
    clear: bool = typer.Option(False, "--clear", help="remove the post's own webhook"),
) -> None:
    """Send the post's notifications to its own webhook instead of CASEGRID_WEBHOOK_URL."""
    from casegrid.errors import InvalidInput
    from notify.posts import set_webhook

    if clear == bool(url.strip()):
        raise InvalidInput("give a URL, or --clear to remove the post's webhook (not both)",
                           field="url")
    with engine().begin() as conn:
        row = set_webhook(conn, community_code, None if clear else url)
    console.print(f"post {row['name']} ({row['community_code']}): webhook "
                  f"{row['webhook_url'] or 'cleared, events go to CASEGRID_WEBHOOK_URL'}",
                  highlight=False)


@poi_app.command("import")
@cli_errors
def poi_import_cmd(
    path: Path = typer.Argument(..., help="CSV with lon/lat columns, GeoJSON, Shapefile or GeoPackage"),
    name_field: str = typer.Option(..., help="field holding the name"),
    kind: str = typer.Option(None, help="school|hospital|market|park_plaza, for every row"),
    kind_field: str = typer.Option(None, help="field giving each row's kind (instead of --kind)"),
    kind_map: str = typer.Option(None, help="translate --kind-field values: 'VALUE=KIND,...'"),
    id_field: str = typer.Option(None, help="field holding the source's own id"),
    crs: str = typer.Option(None, help=CRS_HELP),
    lon_field: str = typer.Option(None, help="CSV: longitude/x column (default: lon, long, longitude, x)"),
    lat_field: str = typer.Option(None, help="CSV: latitude/y column (default: lat, latitude, y)"),
    filter_: list[str] = typer.Option(None, "--filter", help="FIELD=VALUE (case-insensitive; repeatable)"),
    source: str = typer.Option(None, help="source name; re-importing it replaces its rows (default: file name)"),
    commit: bool = typer.Option(False, "--commit", help=COMMIT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Import points of interest; rows without a usable location are rejected with the reason."""
    from geo.poi_import import import_pois

    _run(
        f"importing POIs from {path.name}...",
        commit,
        lambda conn: import_pois(
            conn, path, source=source, commit=commit, name_field=name_field, kind=kind,
            kind_field=kind_field, kind_map=kind_map, id_field=id_field, crs=crs,
            lon_field=lon_field, lat_field=lat_field, filters=filter_ or None,
        ),
        as_json,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(boundaries_app, name="boundaries")
    app.add_typer(posts_app, name="posts")
    app.add_typer(poi_app, name="poi")
