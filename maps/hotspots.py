"""The planners' hotspot page, drawn from ``geo.hotspots.hotspot_analysis`` aggregates only:
a heatmap of grid cells, significant Gi* cells, POIs with distance rings, an hour-of-day
animation, a community choropleth and a ranked table of POIs (with CSV export)."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

import folium
import numpy as np
from branca.element import Element

from geo.hotspots import rank_pois
from maps.assets import local_heatmap, local_heatmap_with_time
from maps.base import add_subdistricts, community_feature_collection, new_map
from maps.display import Display
from maps.i18n import strings

GI_STYLE = {3: ("#b2182b", "hot99"), 2: ("#ef8a62", "hot95"), 1: ("#fddbc7", "hot90"),
            -1: ("#d1e5f0", "cold90"), -2: ("#67a9cf", "cold95"), -3: ("#2166ac", "cold99")}
POI_COLOURS = {"school": "#1b9e77", "hospital": "#d95f02", "market": "#7570b3", "park_plaza": "#66a61e"}
CHORO = ("#ffffcc", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
RANK_ROWS = 15


def _heat(m: folium.Map, a: dict, display: Display, base: str, t: dict) -> None:
    g = a["grid"]
    nz = g.count > 0
    if not nz.any():
        return
    lon, lat = g.centres_lonlat()
    lon, lat = display.points(lon[nz], lat[nz])
    data = [[round(float(y), 5), round(float(x), 5), float(n)] for x, y, n in zip(lon, lat, g.count[nz], strict=True)]
    local_heatmap(base, data, name=t["heatmap"], radius=22, blur=18, min_opacity=0.25,
                  max=float(np.percentile(g.count[nz], 98)) or 1.0,
                  gradient={0.2: "#2c7bb6", 0.45: "#abd9e9", 0.65: "#ffffbf", 0.85: "#fdae61", 1.0: "#d7191c"}).add_to(m)


def _gi_cells(m: folium.Map, a: dict, display: Display, t: dict) -> None:
    g, hot = a["grid"], a["hot"]
    sig = np.flatnonzero(hot.level != 0)
    group = folium.FeatureGroup(name=t["gi_cells"], show=True)
    if len(sig):
        w, s, e, n = g.corners_lonlat()
        feats = []
        for k in sig:
            ring = [(w[k], s[k]), (e[k], s[k]), (e[k], n[k]), (w[k], n[k]), (w[k], s[k])]
            xs, ys = display.points([p[0] for p in ring], [p[1] for p in ring])
            lv = int(hot.level[k])
            feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
                [[round(float(x), 6), round(float(y), 6)] for x, y in zip(xs, ys, strict=True)]]},
                "properties": {"level": lv, "label": t[GI_STYLE[lv][1]], "n": int(g.count[k]), "z": round(float(hot.z[k]), 2)}})
        folium.GeoJson(
            {"type": "FeatureCollection", "features": feats}, name=t["gi_cells"],
            style_function=lambda f: {"color": GI_STYLE[f["properties"]["level"]][0], "weight": 0.5,
                                      "fillColor": GI_STYLE[f["properties"]["level"]][0], "fillOpacity": 0.55},
            tooltip=folium.GeoJsonTooltip(fields=["label", "n", "z"], aliases=[t["gi_cells"], t["cases_count"], t["z_score"]]),
        ).add_to(group)
    group.add_to(m)


def _choropleth(m: folium.Map, a: dict, display: Display, t: dict) -> list[tuple[str, str]]:
    counts = a["community_counts"]
    vals = sorted(counts.values())
    # class breaks at quantiles, duplicates dropped (many communities may share a count)
    breaks = sorted({float(np.quantile(vals, q)) for q in (0.2, 0.4, 0.6, 0.8, 0.95)} - {0.0}) if vals else []

    def colour(n: int) -> str:
        return CHORO[int(np.searchsorted(breaks, n, side="right"))] if breaks else CHORO[0]

    extra = {c["code"]: {"n": counts.get(c["code"], 0), "fill": colour(counts.get(c["code"], 0))} for c in a["communities"]}
    fc = community_feature_collection(a["communities"], display, extra)
    folium.GeoJson(
        fc, name=t["choropleth"], show=False,
        style_function=lambda f: {"color": "#666", "weight": 0.7, "fillColor": f["properties"]["fill"], "fillOpacity": 0.6},
        highlight_function=lambda f: {"weight": 2, "color": "#222"},
        tooltip=folium.GeoJsonTooltip(fields=["name", "n"], aliases=[t["community"], t["cases_count"]]),
    ).add_to(m)
    edges = [0.0, *breaks]
    return [(CHORO[i], f"≥ {edges[i]:.0f}") for i in range(len(edges))]


def _pois(m: folium.Map, a: dict, display: Display, t: dict, kinds_present: list[str]) -> None:
    # rings start hidden: 3 rings around every POI clutter the citywide view
    rings_group = folium.FeatureGroup(name=t["rings"], show=False)
    for kind in kinds_present:
        group = folium.FeatureGroup(name=t[f"poi_{kind}"], show=True)
        for p in (p for p in a["pois"] if p["kind"] == kind):
            lon, lat = display.point(p["lon"], p["lat"])
            if p.get("outline"):
                folium.GeoJson(display.geojson(p["outline"]), style_function=lambda f, c=POI_COLOURS[kind]: {
                    "color": c, "weight": 2, "fillOpacity": 0.25, "fillColor": c}).add_to(group)
            counts = " · ".join(f'{int(r)} m: {p["counts"][r]}' for r in a["rings"])
            html = (f'<div class="cg-popup"><b>{escape(p["name"])}</b> ({escape(t[f"poi_{kind}"])})'
                    f'<div>{escape(counts)}</div>'
                    f'<div>{escape(t["rate_ratio"])}: {_ratio(p["rate_ratio"].get(a["rings"][min(1, len(a["rings"]) - 1)]))}</div>'
                    f'<div>{escape(t["in_hotspot"])}: {escape(t["yes"] if p["in_hotspot"] else t["no"])}</div></div>')
            folium.CircleMarker([lat, lon], radius=6, color="#fff", weight=2, fill=True, fill_color=POI_COLOURS[kind],
                                fill_opacity=1, popup=folium.Popup(html, max_width=320), tooltip=escape(p["name"])).add_to(group)
            for r in a["rings"]:
                folium.Circle([lat, lon], radius=float(r), color=POI_COLOURS[kind], weight=1, fill=False,
                              dash_array="4 4", opacity=0.6, interactive=False).add_to(rings_group)
        group.add_to(m)
    rings_group.add_to(m)


def _ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _hourly(m: folium.Map, a: dict, display: Display, base: str, t: dict) -> None:
    frames = []
    for frame in a["hourly"]:
        if frame:
            xs, ys = display.points([f[1] for f in frame], [f[0] for f in frame])
            frames.append([[round(float(y), 5), round(float(x), 5), f[2]] for f, x, y in zip(frame, xs, ys, strict=True)])
        else:
            frames.append([])
    peak = max((f[2] for fr in frames for f in fr), default=1.0)
    frames = [[[f[0], f[1], round(f[2] / peak, 4)] for f in fr] for fr in frames]
    local_heatmap_with_time(base, frames, index=[f"{h:02d}:00" for h in range(24)], name=t["hourly"],
                            radius=28, min_opacity=0.1, max_opacity=0.75, auto_play=False, show=False,
                            position="bottomright").add_to(m)


def _top_category(p: dict, ring: float, cats: dict, lang: str) -> str:
    by = p["by_category"].get(ring) or {}
    if not by:
        return ""
    code = max(by, key=lambda c: (by[c], c))
    name = cats.get(code, (code, code))[1 if lang == "en" else 0]
    return f"{name} ({by[code]})"


def _ranking_html(a: dict, t: dict, lang: str, csv_url: str | None) -> str:
    rings = a["rings"]
    ring = rings[min(1, len(rings) - 1)]
    rows = rank_pois(a["pois"], ring)[:RANK_ROWS]
    head = "".join(f"<th>{int(r)} m</th>" for r in rings)
    body = []
    for k, p in enumerate(rows, 1):
        cells = "".join(f"<td>{p['counts'][r]}</td>" for r in rings)
        kind = t[f"poi_{p['kind']}"]
        body.append(
            f'<tr class="{"cg-hot" if p["in_hotspot"] else ""}"><td>{k}</td><td>{escape(p["name"])}</td>'
            f'<td>{escape(kind)}</td>{cells}<td>{_ratio(p["rate_ratio"].get(ring))}</td>'
            f'<td style="text-align:left">{escape(_top_category(p, ring, a["categories"], lang))}</td>'
            f'<td>{escape(t["yes"] if p["in_hotspot"] else "")}</td></tr>')
    link = f' <a href="{escape(csv_url)}" download>{escape(t["csv"])}</a>' if csv_url else ""
    return (f'<details open class="cg-panel cg-rank" id="cg-ranking"><summary><b>{escape(t["ranking"])}</b>{link}</summary>'
            f'<table><thead><tr><th>{escape(t["rank"])}</th><th>{escape(t["name"])}</th><th>{escape(t["kind"])}</th>{head}'
            f'<th>{escape(t["rate_ratio"])} ({int(ring)} m)</th><th>{escape(t["top_category"])}</th>'
            f'<th>{escape(t["in_hotspot"])}</th></tr></thead><tbody>{"".join(body)}</tbody></table></details>')


def _activities(m: folium.Map, acts: list[dict], display: Display, t: dict) -> None:
    """Community activities of the period (outreach where the complaints are?), sized by
    the people reached; hidden until asked for."""
    if not acts:
        return
    group = folium.FeatureGroup(name=f'{t["activities"]} ({len(acts)})', show=False)
    for act in acts:
        lon, lat = display.point(act["lon"], act["lat"])
        html = (f'<div class="cg-popup"><b>{escape(act["title"])}</b>'
                f'<div>{act["started_at"]:%Y-%m-%d} · {escape(t["reached"])}: {act["reached"]}</div></div>')
        folium.CircleMarker([lat, lon], radius=4 + min(10, act["reached"] ** 0.5 / 4), color="#1565c0",
                            weight=1.5, fill=True, fill_color="#64b5f6", fill_opacity=0.8,
                            popup=folium.Popup(html, max_width=280)).add_to(group)
    group.add_to(m)


def _legend_html(a: dict, t: dict, choro: list[tuple[str, str]], params: str) -> str:
    gi = "".join(f'<div><i class="cg-swatch" style="background:{c}"></i>{escape(t[key])}</div>'
                 for lv, (c, key) in sorted(GI_STYLE.items(), reverse=True))
    kinds = "".join(f'<div><i class="cg-dot" style="background:{c}"></i>{escape(t["poi_" + k])}</div>'
                    for k, c in POI_COLOURS.items())
    ch = "".join(f'<div><i class="cg-swatch" style="background:{c}"></i>{escape(label)}</div>' for c, label in choro)
    return (f'<div class="cg-legend leaflet-control" id="cg-legend" style="position:absolute;right:10px;bottom:64px;z-index:999">'
            f'<div class="cg-params">{params}</div>'
            f'<b>{escape(t["gi_cells"])}</b>{gi}<div class="cg-hint">{escape(t["fdr_note"])}</div>'
            f'<b>{escape(t["choropleth"])}</b>{ch}<b>{escape(t["rings"])}: {", ".join(str(int(r)) + " m" for r in a["rings"])}</b>{kinds}</div>')


def render_hotspots(
    analysis: dict,
    display: Display,
    *,
    lang: str = "zh",
    asset_base: str = "/static/vendor",
    params_text: str = "",
    csv_url: str | None = None,
) -> str:
    """The hotspot page as HTML, from ``geo.hotspots.hotspot_analysis``'s answer."""
    t = strings(lang)
    a = analysis
    m = new_map(display, asset_base, a["bounds"], t["hotspots_title"], lang)
    choro = _choropleth(m, a, display, t)
    add_subdistricts(m, a["subdistricts"], display, t["subdistricts"])
    _heat(m, a, display, asset_base, t)
    _gi_cells(m, a, display, t)
    kinds = [k for k in POI_COLOURS if any(p["kind"] == k for p in a["pois"])]
    _pois(m, a, display, t, kinds)
    _hourly(m, a, display, asset_base, t)
    _activities(m, a.get("activities") or [], display, t)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    info = (f'{escape(params_text)}<br>{escape(t["total_cases"])}: {a["grid"].total_in_area} · '
            f'{escape(t["cell_size"])}: {int(a["cell_m"])} m')
    root = m.get_root()
    root.html.add_child(Element(_ranking_html(a, t, lang, csv_url)))
    root.html.add_child(Element(_legend_html(a, t, choro, info)))
    return root.render()


def hotspot_query(categories: list[str], date_from: str | None, date_to: str | None,
                  hour_from: int | None, hour_to: int | None, cell_m: float, rings: tuple[float, ...],
                  kinds: list[str], lang: str) -> str:
    """The query string that reproduces a hotspot view (for the CSV link)."""
    q: list[tuple[str, str]] = [("category", c) for c in categories] + [("kind", k) for k in kinds]
    for key, v in (("date_from", date_from), ("date_to", date_to), ("hour_from", hour_from), ("hour_to", hour_to)):
        if v is not None and v != "":
            q.append((key, str(v)))
    q += [("cell_m", f"{cell_m:g}"), ("rings", ",".join(f"{r:g}" for r in rings)), ("lang", lang)]
    return urlencode(q)
