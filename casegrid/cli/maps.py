"""``casegrid map dispatch|hotspots|assets``: write the maps as standalone HTML files.

A file has no server behind it, so its Leaflet assets are copied beside it
(``FILE_files/``) and the dispatcher file embeds one answer for the whole city: the cases
themselves when there are at most a few thousand, else counts on a grid.
"""

from __future__ import annotations

from pathlib import Path

import typer

from casegrid.cli._common import cli_errors, console, option_day

map_app = typer.Typer(help="Write the dispatcher and hotspot maps as HTML files.", no_args_is_help=True)


def _engine(db_url: str | None):
    from casegrid.cli._common import engine
    from casegrid.db import make_engine

    return make_engine(db_url) if db_url else engine()


def _days(date_from: str | None, date_to: str | None) -> dict:
    """``--from``/``--to`` (whole local days, both included) as CaseFilters' report window."""
    from cases.filters import day_window

    first = option_day(date_from, "from") if date_from else None
    last = option_day(date_to, "to") if date_to else None
    reported_from, reported_to = day_window(first, last)
    return {"reported_from": reported_from, "reported_to": reported_to}


@map_app.command("dispatch")
@cli_errors
def dispatch(
    out: Path = typer.Option(..., "--out", help="HTML file to write; assets go to OUT_files/ beside it."),
    community: list[str] = typer.Option([], "--community", help="Community code (repeatable)."),
    subdistrict: list[str] = typer.Option([], "--subdistrict", help="Subdistrict code (repeatable)."),
    category: list[str] = typer.Option([], "--category", help="Category code (repeatable)."),
    state: list[str] = typer.Option([], "--state", help="new|dispatched|handled|overdue|closed (default: open)."),
    channel: list[str] = typer.Option([], "--channel", help="Intake channel (repeatable)."),
    date_from: str = typer.Option(None, "--from", help="Reported on or after (YYYY-MM-DD)."),
    date_to: str = typer.Option(None, "--to", help="Reported on or before (YYYY-MM-DD)."),
    lang: str = typer.Option("zh", "--lang", help="zh or en."),
    tiles: str = typer.Option(None, "--tiles", help="osm, none or a tile URL template (default: settings)."),
    db_url: str = typer.Option(None, "--database-url", help="Database (default: the configured one)."),
) -> None:
    """Write the dispatcher map as a standalone HTML file."""
    from casegrid.settings import get_settings
    from cases.filters import CaseFilters
    from geo import map_data
    from maps.assets import copy_tree_for_html
    from maps.dispatch import case_popup_data, render_dispatch, shift_cases_answer
    from maps.display import display_from_settings
    from maps.i18n import check_lang

    lang = check_lang(lang)
    display = display_from_settings(get_settings(), tiles)
    f = CaseFilters(community=community, subdistrict=subdistrict, category=category, state=state,
                    channel=channel, **_days(date_from, date_to))
    eng = _engine(db_url)
    with eng.connect() as conn:
        data = map_data.dispatch_data(conn)
        bounds = data["bounds"] or (-180.0, -90.0, 180.0, 90.0)
        pad = 0.05  # cases routed "outside" may lie a little beyond the communities
        answer = map_data.cases_in_bbox(conn, f, (bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad))
        summaries = {}
        if answer["mode"] == "points":
            rows = map_data.case_summaries(conn, [p[0] for p in answer["points"]])
            summaries = {r["id"]: case_popup_data(r, lang, None, None) for r in rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    base = copy_tree_for_html(out)
    html = render_dispatch(data, f, display, lang=lang, asset_base=base,
                           inline={"data": shift_cases_answer(answer, display), "summaries": summaries})
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {answer['total']} cases, {answer['mode']})")


@map_app.command("hotspots")
@cli_errors
def hotspots(
    out: Path = typer.Option(..., "--out", help="HTML file to write; assets go to OUT_files/ beside it."),
    category: list[str] = typer.Option([], "--category", help="Category code (repeatable)."),
    date_from: str = typer.Option(None, "--from", help="Reported on or after (YYYY-MM-DD)."),
    date_to: str = typer.Option(None, "--to", help="Reported on or before (YYYY-MM-DD)."),
    hours: str = typer.Option(None, "--hours", help="Local time of day, e.g. 20-6 for 20:00-06:59."),
    cell_m: float = typer.Option(250.0, "--cell", help="Grid cell size in metres."),
    rings: str = typer.Option("200,500,1000", "--rings", help="Ring distances in metres."),
    kind: list[str] = typer.Option([], "--kind", help="school|hospital|market|park_plaza (repeatable)."),
    lang: str = typer.Option("zh", "--lang", help="zh or en."),
    tiles: str = typer.Option(None, "--tiles", help="osm, none or a tile URL template (default: settings)."),
    db_url: str = typer.Option(None, "--database-url", help="Database (default: the configured one)."),
) -> None:
    """Write the planners' hotspot map as a standalone HTML file."""
    import time

    from api.routes.maps import hotspot_params_text, parse_rings
    from casegrid.errors import InvalidInput
    from casegrid.settings import get_settings
    from cases.filters import CaseFilters, window_days
    from geo.hotspots import POI_KINDS, hotspot_analysis
    from maps.assets import copy_tree_for_html
    from maps.display import display_from_settings
    from maps.hotspots import render_hotspots
    from maps.i18n import check_lang

    lang = check_lang(lang)
    hour_from = hour_to = None
    if hours:
        try:
            hour_from, hour_to = (int(x) for x in hours.split("-"))
        except ValueError:
            raise InvalidInput("hours must look like 20-6 (from-to, local hours 0-23)", field="hours") from None
    f = CaseFilters(category=category, hour_from=hour_from, hour_to=hour_to, **_days(date_from, date_to))
    rs = parse_rings(rings)
    t0 = time.perf_counter()
    with _engine(db_url).connect() as conn:
        analysis = hotspot_analysis(conn, f, cell_m=cell_m, rings=rs, kinds=tuple(kind) or POI_KINDS)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = copy_tree_for_html(out)
    params = hotspot_params_text(list(category), *window_days(f), hour_from, hour_to, lang)
    html = render_hotspots(analysis, display_from_settings(get_settings(), tiles), lang=lang, asset_base=base,
                           params_text=params)
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {analysis['grid'].total_in_area} cases, "
                  f"{time.perf_counter() - t0:.2f} s)")


@map_app.command("assets")
@cli_errors
def assets() -> None:
    """Check that the locally served Leaflet assets are installed."""
    from maps.assets import INSTALL_HINT, missing_assets

    missing = missing_assets()
    if missing:
        console.print(f"[red]missing:[/] {', '.join(missing)}\n{INSTALL_HINT}")
        raise typer.Exit(1)
    console.print("[green]all map assets installed[/]")


def register(app: typer.Typer) -> None:
    """Add ``casegrid map ...``."""
    app.add_typer(map_app, name="map")
