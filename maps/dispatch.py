"""The dispatcher map: boundaries with names, posts, and cases loaded by viewport.

The page never embeds the ledger: it draws boundaries and posts, and its script
(``maps/static/dispatch.js``) asks ``/maps/api/cases`` for the cases of the visible box
(points when at most a few thousand match, else a count grid). A standalone file written by
the CLI has no server, so it embeds one such answer for the whole city instead.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from datetime import datetime

import folium

from cases.calendar import CITY_TZ
from cases.filters import CaseFilters, window_days
from cases.vocabulary import CHANNEL_LABELS, CHANNELS
from maps.assets import markercluster_links
from maps.base import PageScript, add_communities, add_posts, add_subdistricts, new_map
from maps.display import Display
from maps.i18n import category_name, strings


def fmt_time(value: datetime | None) -> str:
    """The city's local time to the minute, or ''."""
    return value.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M") if value else ""


def case_popup_data(row: dict, lang: str, record_url: str | None, map_url: str | None) -> dict:
    """The JSON a case popup shows (from ``geo.map_data.case_summary``), localised.
    Contains no reporter data: the query behind it never selects any."""
    t = strings(lang)
    return {
        "id": row["id"], "case_no": row["case_no"],
        "category": f'{row["category_code"]} {category_name(row, lang)}',
        "reported_at": fmt_time(row["reported_at"]), "due_at": fmt_time(row["current_due_at"]),
        "state_group": row["state_group"], "state_label": t.get(f'state_{row["state_group"]}', row["status"]),
        "status": row["status"], "overdue": bool(row["overdue"]),
        "route_rule": row["route_rule"], "route_distance_m": row["route_distance_m"],
        "near_boundary": bool(row["near_boundary"]),
        "community": f'{row.get("community_name") or ""} {row["community_code"] or ""}'.strip(),
        "record_url": record_url, "map_url": map_url,
    }


def filters_state(f: CaseFilters) -> dict:
    """Filters as the page script holds them (lists and ISO dates)."""
    first, last = window_days(f)
    return {
        "subdistrict": list(f.subdistrict or ()), "community": list(f.community or ()),
        "category": list(f.category or ()), "channel": list(f.channel or ()), "state": list(f.state or ()),
        "date_from": first.isoformat() if first else "",
        "date_to": last.isoformat() if last else "",
    }


def _options(data: dict, lang: str) -> dict:
    opts = data["options"]
    k = 1 if lang == "en" else 0
    return {
        "subdistricts": [[s["code"], s["name"]] for s in opts["subdistricts"]],
        "communities": [[c["code"], c["name"]] for c in opts["communities"]],
        "community_parent": {c["code"]: c["subdistrict_code"] for c in opts["communities"]},
        "categories": [[c["code"], f'{c["code"]} {category_name(c, lang)}'] for c in opts["categories"]],
        "channels": [[ch, CHANNEL_LABELS[ch][k]] for ch in CHANNELS],
    }


# Rendered pages by content. folium compiles a Jinja template for every element it draws
# (about 300 for the sample city's boundaries, posts and labels), which made rendering the
# page shell cost more than all its queries; the shell changes only with the boundaries,
# posts, filters and language, so a page with the same inputs is served from here.
_PAGES: OrderedDict[str, str] = OrderedDict()
_PAGES_MAX = 32
_PAGES_LOCK = threading.Lock()


def _page_key(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def render_dispatch(
    data: dict,
    filters: CaseFilters,
    display: Display,
    *,
    lang: str = "zh",
    asset_base: str = "/static/vendor",
    cases_api: str = "/maps/api/cases",
    case_api: str = "/maps/api/cases/{id}",
    inline: dict | None = None,
) -> str:
    """The dispatcher page as HTML. ``data`` is ``geo.map_data.dispatch_data``'s answer;
    ``inline`` (standalone files) is ``{"data": <cases answer>, "summaries": {id: popup}}``.
    Pages without ``inline`` are cached by their inputs (the same inputs give the same page)."""
    if inline is not None:
        return _render_dispatch(data, filters, display, lang, asset_base, cases_api, case_api, inline)
    key = _page_key(data, filters_state(filters), repr(display), lang, asset_base, cases_api, case_api)
    with _PAGES_LOCK:
        page = _PAGES.get(key)
        if page is not None:
            _PAGES.move_to_end(key)
            return page
    page = _render_dispatch(data, filters, display, lang, asset_base, cases_api, case_api, None)
    with _PAGES_LOCK:
        _PAGES[key] = page
        while len(_PAGES) > _PAGES_MAX:
            _PAGES.popitem(last=False)
    return page


def _render_dispatch(data: dict, filters: CaseFilters, display: Display, lang: str, asset_base: str,
                     cases_api: str, case_api: str, inline: dict | None) -> str:
    t = strings(lang)
    m = new_map(display, asset_base, data["bounds"], t["dispatch_title"], lang)
    add_subdistricts(m, data["subdistricts"], display, t["subdistricts"])
    add_communities(m, data["communities"], data["posts"], display, t)
    add_posts(m, data["posts"], display, t)
    control = folium.LayerControl(collapsed=False, position="topright")
    control.add_to(m)
    js, css = markercluster_links(asset_base)
    config = {
        "lang": lang, "strings": t, "filters": filters_state(filters), "options": _options(data, lang),
        "api": cases_api, "case_api": case_api, "inline": inline,
    }
    PageScript("CasegridDispatch.init", m.get_name(), control.get_name(), config,
               js + [("casegrid_dispatch", f"{asset_base}/casegrid/dispatch.js")], css).add_to(m)
    return m.get_root().render()


def shift_cases_answer(answer: dict, display: Display) -> dict:
    """Move a ``cases_in_bbox`` answer's coordinates into the tile datum."""
    if not display.shifted:
        return answer
    if answer["mode"] == "points":
        pts = answer["points"]
        xs, ys = display.points([p[1] for p in pts], [p[2] for p in pts])
        answer["points"] = [[p[0], round(float(x), 6), round(float(y), 6), *p[3:]] for p, x, y in zip(pts, xs, ys, strict=True)]
    else:
        cells = answer["cells"]
        xs, ys = display.points([c[0] for c in cells], [c[1] for c in cells])
        answer["cells"] = [[round(float(x), 6), round(float(y), 6), *c[2:]] for c, x, y in zip(cells, xs, ys, strict=True)]
    return answer
