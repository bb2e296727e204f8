"""Placing an address-only case by hand (the case page's 需定位 panel, issue 27).

A case the address matcher could not place confidently is stored ``unlocated`` with up to
three suggestions (``geo.address_match``), kept as its routing alternates. The panel shows
them, each with its community and why, as one-click placements, and a small map on which
the dispatcher clicks or drags a point and sees its community and rule before saving
(``/work/cases/{id}/move-preview``); the active communities' outlines, named on hover or
tap, are drawn on it from ``/work/outlines`` (api/routes/web_outlines.py) for the view. Saving is the ledger's own re-route with a point
(:func:`cases.workflow.apply_action`), which also teaches the address memory, so the next
call from the same address is located by it. Only rendering data here: the rules are in
``cases/`` and ``geo/``.
"""

from __future__ import annotations

from sqlalchemy import Connection

from geo.case_locate import case_locate
from geo.map_data import city_bounds
from web import i18n

# The workflow actions that can give an unrouted case its point, in order of preference.
PLACE_ACTIONS = ("reroute", "dispatch")


def needs_placement(case: dict) -> bool:
    """An open case with an address and no point: what the 需定位 panel is for."""
    return (case.get("route_rule") == "unlocated" and case.get("lon") is None
            and case.get("closed_at") is None and bool(case.get("address")))


def suggestions_of(case: dict) -> list[dict]:
    """The matcher's suggestions stored with an unlocated case (its routing alternates)."""
    return [s for s in case.get("route_alternates") or []
            if isinstance(s, dict) and s.get("lon") is not None and s.get("lat") is not None]


def placement_context(conn: Connection, case: dict, allowed: list[str], display, t: dict,  # noqa: ANN001
                      lang: str, root: str) -> dict | None:
    """What the panel shows for ``case`` (None when it needs no placement): the matcher's
    words, the suggestions, the action that saves a placement (None: this person may not),
    and the map's data in the base map's datum."""
    if not needs_placement(case):
        return None
    action = next((a for a in PLACE_ACTIONS if a in allowed), None)
    stored = case_locate(conn, case["id"]) or {}
    suggestions = []
    for s in suggestions_of(case):
        dlon, dlat = display.point(s["lon"], s["lat"])
        suggestions.append({**s, "rule_word": i18n.pick(i18n.RULE_WORDS, s.get("rule"), lang),
                            "words": i18n.address_why(s, lang),
                            "latlng": [dlat, dlon],
                            "label": s.get("community_name") or s.get("community_code") or "—"})
    if suggestions:
        lats = [s["latlng"][0] for s in suggestions]
        lons = [s["latlng"][1] for s in suggestions]
        bounds = [[min(lats), min(lons)], [max(lats), max(lons)]]
    else:
        box = city_bounds(conn)
        if box is None:
            bounds = None
        else:
            w, s_, e, n = box
            (x0, y0), (x1, y1) = display.point(w, s_), display.point(e, n)
            bounds = [[y0, x0], [y1, x1]]
    return {
        "action": action,
        "why": i18n.address_why(stored, lang),
        "confidence": stored.get("confidence"),
        "suggestions": suggestions,
        "map": {
            "bounds": bounds, "can_place": action is not None, "crs": display.datum,
            "tiles": display.tiles, "attribution": display.attribution,
            "preview_url": f"{root}/work/cases/{case['id']}/move-preview",
            "outlines_url": f"{root}/work/outlines",
            "suggestions": [{"latlng": s["latlng"], "label": s["label"], "why": s["words"]}
                            for s in suggestions],
            "words": {"here": t["place_here"]},
        },
    }
