"""The evaluation map: each community coloured by its post's score for the period (a
choropleth), posts below the minimum case count hatched grey and labelled as such, and the
ranking beside the map. Rendering only: the scores come from ``cases.evaluation``."""

from __future__ import annotations

from html import escape

import folium
from branca.element import Element

from maps.base import add_subdistricts, community_feature_collection, new_map
from maps.display import Display
from maps.i18n import strings

# Five score classes, red (weak) to green (strong); grey: not ranked.
CLASSES = ((0, "#d7191c"), (60, "#fdae61"), (70, "#ffffbf"), (80, "#a6d96a"), (90, "#1a9641"))
UNRANKED = "#bbbbbb"


def score_colour(score: float | None, scale: float) -> str:
    """The class colour of a score (on a 0..100 view of the scale)."""
    if score is None:
        return UNRANKED
    pct = 100 * score / scale
    colour = CLASSES[0][1]
    for edge, c in CLASSES:
        if pct >= edge:
            colour = c
    return colour


def render_evaluation(result: dict, communities: list[dict], subdistricts: list[dict],
                      bounds: tuple | None, display: Display, *, lang: str = "zh",
                      asset_base: str = "/static/vendor") -> str:
    """The page as HTML, from :func:`cases.evaluation.evaluate` (level ``post``)."""
    t = strings(lang)
    scale = result["weights"]["scale"]
    title = t["evaluation_title"]
    m = new_map(display, asset_base, bounds, title, lang)
    ranked = {e["key"]: e for e in result["ranked"]}
    apart = {e["key"]: e for e in result["too_few"]}
    extra = {}
    for c in communities:
        e = ranked.get(c["code"]) or apart.get(c["code"])
        if c["code"] in ranked:
            label = f'{e["score"]:.1f} ({t["rank"]} {e["rank"]})' if e["score"] is not None else "—"
        elif e is not None:
            label = t["too_few_cases"].format(n=e["cases"])
        else:
            label = t["no_cases"]
        extra[c["code"]] = {"fill": score_colour(e["score"], scale) if c["code"] in ranked else UNRANKED,
                            "score": label, "cases": e["cases"] if e else 0}
    folium.GeoJson(
        community_feature_collection(communities, display, extra), name=t["evaluation_layer"],
        style_function=lambda f: {"color": "#555", "weight": 0.8,
                                  "fillColor": f["properties"]["fill"], "fillOpacity": 0.7},
        highlight_function=lambda f: {"weight": 2.5, "color": "#222"},
        tooltip=folium.GeoJsonTooltip(fields=["name", "score", "cases"],
                                      aliases=[t["community"], t["score"], t["cases_count"]]),
    ).add_to(m)
    add_subdistricts(m, subdistricts, display, t["subdistricts"])
    folium.LayerControl(collapsed=True, position="topright").add_to(m)
    root = m.get_root()
    root.html.add_child(Element(_side_html(result, t, scale)))
    return root.render()


def _side_html(result: dict, t: dict, scale: float) -> str:
    legend = "".join(
        f'<div><i class="cg-swatch" style="background:{c}"></i>≥ {edge * scale / 100:g}</div>'
        for edge, c in CLASSES)
    legend += f'<div><i class="cg-swatch" style="background:{UNRANKED}"></i>{escape(t["not_ranked"])}</div>'
    rows = "".join(
        f'<tr><td>{e["rank"]}</td><td>{escape(e.get("post_name") or e["name"] or e["key"])}</td>'
        f'<td>{_score_text(e["score"])}</td><td>{e["cases"]}</td></tr>'
        for e in result["ranked"])
    apart = ", ".join(f'{escape(e["name"] or e["key"])} ({e["cases"]})' for e in result["too_few"])
    period = f'{result["from"]} – {result["to"]}'
    return (
        '<div class="cg-legend leaflet-control" id="cg-evaluation" '
        'style="position:absolute;right:10px;bottom:24px;z-index:999;max-height:70vh;overflow:auto">'
        f'<div class="cg-params">{escape(t["period"])}: {escape(period)}</div>'
        f'<b>{escape(t["score"])}</b>{legend}'
        f'<table class="cg-rank"><thead><tr><th>{escape(t["rank"])}</th><th>{escape(t["post"])}</th>'
        f'<th>{escape(t["score"])}</th><th>{escape(t["cases_count"])}</th></tr></thead>'
        f'<tbody>{rows}</tbody></table>'
        + (f'<div class="cg-hint">{escape(t["listed_apart"].format(n=result["weights"]["min_cases"]))}: '
           f'{apart}</div>' if apart else "")
        + '</div>')


def _score_text(score: float | None) -> str:
    return "—" if score is None else f"{score:.1f}"
