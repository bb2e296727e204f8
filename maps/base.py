"""Pieces every map page shares: the folium map on local assets, boundaries with names,
community posts, a page title bar and inline page scripts."""

from __future__ import annotations

import json
from html import escape

import folium
from branca.element import Element, MacroElement
from folium.elements import JSCSSMixin
from folium.template import Template

from maps.assets import local_map_class
from maps.display import Display

SUBDISTRICT_COLOURS = ("#1f77b4", "#9467bd", "#2ca02c", "#8c564b", "#17becf", "#bcbd22")


def new_map(display: Display, base: str, bounds: tuple[float, float, float, float] | None,
            title: str, lang: str) -> folium.Map:
    """A map on locally served Leaflet, fitted to ``bounds`` (WGS-84 w, s, e, n)."""
    cls = local_map_class(base)
    m = cls(location=[35.08, 117.16], zoom_start=13, tiles=None, control_scale=True,
            prefer_canvas=False, min_zoom=3, max_zoom=19)
    if display.tiles:
        folium.TileLayer(display.tiles, attr=display.attribution or " ", name="base", max_zoom=19,
                         control=False).add_to(m)
    if bounds:
        w, s = display.point(bounds[0], bounds[1])
        e, n = display.point(bounds[2], bounds[3])
        m.fit_bounds([[s, w], [n, e]])
    root = m.get_root()
    root.header.add_child(Element(f"<title>{escape(title)}</title>"), name="title")
    root.header.add_child(Element('<meta charset="utf-8">'), name="charset")
    # no favicon request (it would be a 404 in the console)
    root.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    root.html.add_child(Element(f'<div class="cg-title" lang="{lang}">{escape(title)}</div>'))
    return m


def _feature(geometry: dict, props: dict) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def add_subdistricts(m: folium.Map, subs: list[dict], display: Display, name: str) -> folium.FeatureGroup:
    """Subdistrict outlines and permanent name labels."""
    group = folium.FeatureGroup(name=name, show=True)
    fc = {"type": "FeatureCollection", "features": [
        _feature(display.geojson(s["geometry"]), {"name": s["name"], "code": s["code"],
                                                  "colour": SUBDISTRICT_COLOURS[k % len(SUBDISTRICT_COLOURS)]})
        for k, s in enumerate(subs)]}
    folium.GeoJson(
        fc, name=name,
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": 3, "fill": False, "opacity": 0.9},
        interactive=False,
    ).add_to(group)
    for s in subs:
        lon, lat = display.point(*s["label"])
        folium.Marker([lat, lon], icon=folium.DivIcon(
            html=f'<div class="cg-label cg-label-sub">{escape(s["name"])}</div>', icon_size=(0, 0)),
            interactive=False).add_to(group)
    group.add_to(m)
    return group


def community_feature_collection(comms: list[dict], display: Display, extra: dict | None = None) -> dict:
    """Communities as a FeatureCollection in the tile datum; ``extra`` maps code → props."""
    extra = extra or {}
    return {"type": "FeatureCollection", "features": [
        _feature(display.geojson(c["geometry"]),
                 {"code": c["code"], "name": c["name"], **extra.get(c["code"], {})})
        for c in comms]}


def post_popup(p: dict, t: dict[str, str]) -> str:
    """HTML for a community post's popup (its public sign: post, contact, phone, address)."""
    rows = [(t["community"], p.get("community_name") or p["community_code"]), (t["contact"], p.get("contact_name")),
            (t["phone"], p.get("phone")), (t["address"], p.get("address")), (t["hours"], p.get("hours"))]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v)
    return f'<div class="cg-popup"><b>{escape(p["name"])}</b><table>{body}</table></div>'


def add_communities(m: folium.Map, comms: list[dict], posts: list[dict], display: Display,
                    t: dict[str, str]) -> folium.FeatureGroup:
    """Community outlines (name on hover, post details on click) and label at zoom."""
    group = folium.FeatureGroup(name=t["communities"], show=True)
    by_code = {p["community_code"]: p for p in posts}
    popups = {c["code"]: {"popup": post_popup(by_code[c["code"]], t) if c["code"] in by_code else escape(c["name"])}
              for c in comms}
    fc = community_feature_collection(comms, display, popups)
    folium.GeoJson(
        fc, name=t["communities"],
        style_function=lambda f: {"color": "#555", "weight": 1, "fillColor": "#ffffff", "fillOpacity": 0.05, "dashArray": "4 3"},
        highlight_function=lambda f: {"weight": 2.5, "color": "#222", "fillOpacity": 0.12},
        tooltip=folium.GeoJsonTooltip(fields=["name", "code"], labels=False, sticky=True),
        popup=folium.GeoJsonPopup(fields=["popup"], labels=False),
    ).add_to(group)
    group.add_to(m)
    return group


def add_posts(m: folium.Map, posts: list[dict], display: Display, t: dict[str, str]) -> folium.FeatureGroup:
    """Community posts as small square markers with their contact in the popup."""
    group = folium.FeatureGroup(name=t["posts"], show=True)
    for p in posts:
        lon, lat = display.point(p["lon"], p["lat"])
        folium.Marker([lat, lon], icon=folium.DivIcon(html='<div class="cg-post" title="post"></div>',
                                                      icon_size=(14, 14), icon_anchor=(7, 7)),
                      popup=folium.Popup(post_popup(p, t), max_width=320),
                      tooltip=escape(p["name"])).add_to(group)
    group.add_to(m)
    return group


class PageScript(JSCSSMixin, MacroElement):
    """Loads extra scripts/styles and runs ``{js_function}(map, layerControl, config)``
    once the map and its layer control exist (add it after the LayerControl)."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        {{ this.js_function }}({{ this.map_name }}, {{ this.control_name }}, {{ this.config_json }});
        {% endmacro %}"""
    )

    def __init__(self, js_function: str, map_name: str, control_name: str, config: dict,
                 js: list[tuple[str, str]], css: list[tuple[str, str]]):
        super().__init__()
        self._name = "PageScript"
        self.js_function = js_function
        self.map_name = map_name
        self.control_name = control_name
        # "</" must not appear inside an inline script
        self.config_json = json.dumps(config, ensure_ascii=False, default=str).replace("</", "<\\/")
        self.default_js = js
        self.default_css = css
