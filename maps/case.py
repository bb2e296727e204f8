"""The map of one case: its point, its community, the alternate communities a dispatcher
might route it to, its community's post, and nearby possible duplicates."""

from __future__ import annotations

from html import escape

import folium

from maps.base import community_feature_collection, new_map, post_popup
from maps.dispatch import case_popup_data, fmt_time
from maps.display import Display
from maps.i18n import strings


def render_case(
    case: dict,
    communities: list[dict],
    post: dict | None,
    duplicates: list[dict],
    dup_radius_m: float,
    display: Display,
    *,
    lang: str = "zh",
    asset_base: str = "/static/vendor",
    record_url: str | None = None,
) -> str:
    """HTML for one case's map. ``case`` is ``geo.map_data.case_summary``'s answer,
    ``communities`` the polygons of its community and alternates."""
    t = strings(lang)
    pad = 0.006
    m = new_map(display, asset_base, (case["lon"] - pad, case["lat"] - pad, case["lon"] + pad, case["lat"] + pad),
                f'{t["case_title"]} {case["case_no"]}', lang)
    own = [c for c in communities if c["code"] == case["community_code"]]
    alts = [c for c in communities if c["code"] != case["community_code"]]
    if own:
        g = folium.FeatureGroup(name=t["community"], show=True)
        folium.GeoJson(community_feature_collection(own, display), style_function=lambda f: {
            "color": "#1f78b4", "weight": 3, "fillColor": "#1f78b4", "fillOpacity": 0.08},
            tooltip=folium.GeoJsonTooltip(fields=["name", "code"], labels=False)).add_to(g)
        g.add_to(m)
    if alts:
        g = folium.FeatureGroup(name=t["alternates"], show=True)
        dist = {a.get("code"): a.get("distance_m") for a in (case.get("route_alternates") or [])}
        extra = {c["code"]: {"distance": f'{dist.get(c["code"], "")} m'} for c in alts}
        folium.GeoJson(community_feature_collection(alts, display, extra), style_function=lambda f: {
            "color": "#6a3d9a", "weight": 2.5, "dashArray": "6 4", "fillColor": "#6a3d9a", "fillOpacity": 0.05},
            tooltip=folium.GeoJsonTooltip(fields=["name", "code", "distance"], labels=False)).add_to(g)
        g.add_to(m)
    if post and post.get("lon") is not None:
        lon, lat = display.point(post["lon"], post["lat"])
        folium.Marker([lat, lon], icon=folium.DivIcon(html='<div class="cg-post"></div>', icon_size=(14, 14), icon_anchor=(7, 7)),
                      popup=folium.Popup(post_popup(post, t), max_width=320), tooltip=escape(post["name"])).add_to(m)
    dups = folium.FeatureGroup(name=f'{t["duplicates"]} ({len(duplicates)})', show=True)
    clon, clat = display.point(case["lon"], case["lat"])
    folium.Circle([clat, clon], radius=dup_radius_m, color="#e6a100", weight=1.5, fill=True, fill_opacity=0.05,
                  dash_array="5 5", tooltip=f'{t["dup_radius"]} {dup_radius_m:g} m').add_to(dups)
    for d in duplicates:
        lon, lat = display.point(d["lon"], d["lat"])
        html = (f'<div class="cg-popup"><b>{escape(d["case_no"])}</b><table>'
                f'<tr><th>{escape(t["reported_at"])}</th><td>{escape(fmt_time(d["reported_at"]))}</td></tr>'
                f'<tr><th>{escape(t["state"])}</th><td>{escape(d["status"])}</td></tr>'
                f'<tr><th>{escape(t["distance"])}</th><td>{d["distance_m"]:.0f} m</td></tr></table></div>')
        folium.CircleMarker([lat, lon], radius=6, color="#fff", weight=1.5, fill=True, fill_color="#e6a100",
                            fill_opacity=0.95, popup=folium.Popup(html, max_width=280), tooltip=escape(d["case_no"])).add_to(dups)
    dups.add_to(m)
    info = case_popup_data(case, lang, record_url, None)
    rows = [(t["category"], info["category"]), (t["reported_at"], info["reported_at"]), (t["state"], info["state_label"]),
            (t["due_at"], info["due_at"]), (t["community"], info["community"]),
            (t["route_rule"], t.get(f'rule_{case["route_rule"]}', case["route_rule"] or ""))]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v)
    link = f'<a href="{escape(record_url)}">{escape(t["record"])}</a>' if record_url else ""
    flag = ""
    if case["route_rule"] == "nearest":
        flag = f'<div class="cg-warn">{escape(t["flag_nearest"])}</div>'
    elif case["near_boundary"]:
        flag = f'<div class="cg-warn">{escape(t["flag_near_boundary"])}</div>'
    popup = f'<div class="cg-popup"><b>{escape(case["case_no"])}</b>{flag}<table>{body}</table>{link}</div>'
    colour = "#e31a1c" if info["overdue"] else "#1f78b4"
    folium.CircleMarker([clat, clon], radius=10, color="#6a3d9a" if flag else "#fff", weight=3, fill=True,
                        fill_color=colour, fill_opacity=1, popup=folium.Popup(popup, max_width=340, show=True),
                        tooltip=escape(case["case_no"])).add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    return m.get_root().render()
