"""Map pages and the JSON they call, plus the locally served Leaflet assets.

Pages and their JSON take the signed-in person's workbench session (the cookie set by
``/login``), or a machine's token as ``Authorization: Bearer``. A page opened without
either goes to /login and comes back after signing in; the JSON answers 401.

The renderers (``maps.case``, ``maps.dispatch``, ``maps.hotspots``, ``maps.display``) and the
hotspot analysis (``geo.hotspots``) are imported inside the routes that use them: they pull
in folium, shapely, pandas, scipy and scikit-learn, and a serving worker that never draws a
map should not carry them, since every full garbage collection walks the worker's whole heap
(README, "Serving").
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.auth import BearerCredentials
from api.deps import ConnDep, DateQ, ReadConnDep
from api.root_path import app_path, path_in_app
from api.web_session import SESSION_COOKIE, SignInRequired, session_policy
from casegrid.errors import Forbidden, InvalidInput, Unauthorized
from casegrid.replica import Freshness
from cases import attachments
from cases.activities import activity_points
from cases.filters import CaseFilters, day_window, parse_bbox
from cases.tokens import Principal, authenticate
from cases.users import session_for
from geo import map_data
from maps.assets import asset_bytes
from maps.i18n import check_lang

if TYPE_CHECKING:
    from maps.display import Display

router = APIRouter(tags=["maps"])
MAP_ROLES = ("dispatcher", "supervisor", "community_officer", "planner")
HOTSPOT_ROLES = ("planner", "dispatcher", "supervisor")
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png",
         ".svg": "image/svg+xml"}


def page_principal(request: Request, conn: ConnDep, creds: BearerCredentials) -> Principal:
    """The caller from a bearer header or the workbench session cookie, read on the
    request's own connection; without either, a page (``/maps/...`` but ``/maps/api/``)
    redirects to /login, JSON answers 401."""
    if creds is not None:
        return authenticate(conn, creds.credentials)
    session = session_for(conn, request.cookies.get(SESSION_COOKIE), session_policy(request))
    if session is not None:
        return session.principal
    path = path_in_app(request)
    if request.method == "GET" and path.startswith("/maps/") and not path.startswith("/maps/api/"):
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    raise Unauthorized("sign in at /login, or send `Authorization: Bearer <token>`",
                       field="Authorization")


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def allow(principal: Principal, roles: tuple[str, ...]) -> Principal:
    """``Forbidden`` unless the principal has one of ``roles`` (admin always may)."""
    if principal.role != "admin" and principal.role not in roles:
        raise Forbidden(f"role {principal.role!r} may not open this map; allowed: admin, {', '.join(roles)}",
                        field="Authorization")
    return principal


def scope_of(principal: Principal) -> tuple[str, ...] | None:
    """The communities a principal is limited to (None: the whole city)."""
    return None if principal.sees_all_communities else principal.communities




def _display(request: Request, tiles: str | None) -> Display:
    from maps.display import display_from_settings  # on use (module docstring)

    # A page may only turn tiles off; the tile source itself is the operator's setting.
    if tiles not in (None, "", "none"):
        raise InvalidInput("tiles may only be 'none' here; the tile source is a server setting", field="tiles")
    return display_from_settings(request.app.state.settings, "none" if tiles == "none" else None)


def _filters(subdistrict: list[str], community: list[str], category: list[str], channel: list[str],
             state: list[str], date_from: date | None, date_to: date | None, scope: tuple[str, ...] | None,
             hour_from: int | None = None, hour_to: int | None = None) -> CaseFilters:
    """The maps' query parameters as the one filter set (dates are whole local days)."""
    reported_from, reported_to = day_window(date_from, date_to)
    return CaseFilters(
        community=community, subdistrict=subdistrict, category=category, state=state, channel=channel,
        reported_from=reported_from, reported_to=reported_to, hour_from=hour_from, hour_to=hour_to,
        scope=scope,
    )


def _record_url(request: Request, case_id: int) -> str:
    """The case's page on the workbench, where its actions are."""
    return app_path(request, f"/work/cases/{case_id}")


def _urls(request: Request) -> dict[str, str]:
    """Where a dispatcher page's assets and JSON are, under the proxy's prefix if any."""
    return {"asset_base": app_path(request, "/static/vendor"),
            "cases_api": app_path(request, "/maps/api/cases"),
            "case_api": app_path(request, "/maps/api/cases/{id}")}


ListQ = Annotated[list[str], Query()]


@router.get("/maps/dispatch", response_class=HTMLResponse)
def dispatch_page(
    request: Request, principal: PagePrincipal, conn: ConnDep,
    subdistrict: ListQ = [], community: ListQ = [], category: ListQ = [], channel: ListQ = [],  # noqa: B006
    state: ListQ = [], date_from: DateQ = None, date_to: DateQ = None,  # noqa: B006
    lang: str = "zh", tiles: str | None = None,
) -> Response:
    """The dispatcher map (HTML). Filters as query parameters; cases load by viewport."""
    from maps.dispatch import render_dispatch  # on use (module docstring)

    allow(principal, MAP_ROLES)
    scope = scope_of(principal)
    f = _filters(subdistrict, community, category, channel, state, date_from, date_to, scope)
    html = render_dispatch(map_data.dispatch_data(conn, scope), f, _display(request, tiles), lang=check_lang(lang),
                           **_urls(request))
    return HTMLResponse(html)


@router.get("/maps/api/cases")
def cases_in_view(
    request: Request, principal: PagePrincipal, conn: ReadConnDep, bbox: str,
    subdistrict: ListQ = [], community: ListQ = [], category: ListQ = [], channel: ListQ = [],  # noqa: B006
    state: ListQ = [], date_from: DateQ = None, date_to: DateQ = None,  # noqa: B006
    tiles: str | None = None, lang: str = "zh", zoom: int | None = None,
) -> dict:
    """Cases in a viewport ``bbox=west,south,east,north`` (in the map's datum): points when
    at most a few thousand match, else a count grid (``mode``: ``points`` | ``cells``)."""
    from maps.dispatch import shift_cases_answer  # on use (module docstring)

    allow(principal, MAP_ROLES)
    check_lang(lang)
    box = parse_bbox(bbox)
    if box is None:
        raise InvalidInput("bbox is empty: give the viewport as west,south,east,north", field="bbox")
    display = _display(request, tiles)
    f = _filters(subdistrict, community, category, channel, state, date_from, date_to, scope_of(principal))
    answer = map_data.cases_in_bbox(conn, f, display.bbox_to_wgs84(box))
    return shift_cases_answer(answer, display)


@router.get("/maps/api/cases/{case_id}")
def case_popup(request: Request, principal: PagePrincipal, conn: ConnDep, case_id: int,
               lang: str = "zh") -> dict:
    """What a case's popup shows (no reporter data)."""
    from maps.dispatch import case_popup_data  # on use (module docstring)

    allow(principal, MAP_ROLES)
    row = map_data.case_summary(conn, case_id, scope_of(principal))
    data = case_popup_data(row, check_lang(lang), _record_url(request, case_id),
                           app_path(request, f"/maps/cases/{case_id}"))
    # The case's first photo the caller may see, for the popup (api/routes/attachments.py).
    thumb = attachments.first_thumbs(conn, [case_id], principal,
                                     request.app.state.settings).get(case_id)
    data["thumb_url"] = app_path(request, thumb) if thumb else None
    return data


@router.get("/maps/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, principal: PagePrincipal, conn: ConnDep, case_id: int,
              lang: str = "zh", tiles: str | None = None) -> Response:
    """One case on a map: its community, alternates, post and nearby possible duplicates."""
    from maps.case import render_case  # on use (module docstring)

    allow(principal, MAP_ROLES)
    scope = scope_of(principal)
    settings = request.app.state.settings
    case = map_data.case_summary(conn, case_id, scope)
    if case["lon"] is None:
        raise InvalidInput(f"case {case_id} has no location to map", field="id")
    codes = [c for c in [case["community_code"], *[a.get("code") for a in case["route_alternates"] or []]] if c]
    posts = [p for p in map_data.posts(conn, scope) if p["community_code"] == case["community_code"]]
    radius, days = map_data.duplicate_rule(conn, case["category_code"], settings.duplicate_radius_m,
                                           settings.duplicate_window_days)
    dups = map_data.nearby_cases(conn, case_id, radius, days, scope)
    html = render_case(case, map_data.community_geometries(conn, codes), posts[0] if posts else None, dups, radius,
                       _display(request, tiles), lang=check_lang(lang), record_url=_record_url(request, case_id),
                       asset_base=app_path(request, "/static/vendor"))
    return HTMLResponse(html)


def parse_rings(rings: str | None) -> tuple[float, ...]:
    """``"200,500,1000"`` → (200.0, 500.0, 1000.0); defaults when empty."""
    from geo.hotspots import DEFAULT_RINGS_M, check_rings  # on use (module docstring)

    if not rings:
        return DEFAULT_RINGS_M
    try:
        return check_rings([float(x) for x in rings.split(",") if x.strip()])
    except ValueError:
        raise InvalidInput("rings must be comma-separated metres, e.g. 200,500,1000", field="rings") from None


@router.get("/maps/hotspots", response_class=HTMLResponse)
def hotspots_page(
    request: Request, principal: PagePrincipal, conn: ReadConnDep,
    category: ListQ = [], kind: ListQ = [], date_from: DateQ = None, date_to: DateQ = None,  # noqa: B006
    hour_from: int | None = None, hour_to: int | None = None, cell_m: float = 250.0,
    rings: str | None = None, lang: str = "zh", tiles: str | None = None,
) -> Response:
    """The planners' hotspot map (HTML), built from server-side aggregates only."""
    from geo.hotspots import POI_KINDS, hotspot_analysis  # on use (module docstring)
    from maps.hotspots import hotspot_query, render_hotspots

    allow(principal, HOTSPOT_ROLES)
    lang = check_lang(lang)
    rs = parse_rings(rings)
    kinds = tuple(kind) or POI_KINDS
    f = _filters([], [], category, [], [], date_from, date_to, None, hour_from, hour_to)
    analysis = hotspot_analysis(conn, f, cell_m=cell_m, rings=rs, kinds=kinds)
    analysis["activities"] = activity_points(conn, date_from, date_to)
    params = hotspot_params_text(category, date_from, date_to, hour_from, hour_to, lang)
    params += freshness_text(request.state.freshness, lang)
    q = hotspot_query(category, _iso(date_from), _iso(date_to), hour_from, hour_to, cell_m, rs, list(kind), lang)
    html = render_hotspots(analysis, _display(request, tiles), lang=lang, params_text=params,
                           csv_url=app_path(request, f"/api/v1/hotspots/pois?{q}&format=csv"),
                           asset_base=app_path(request, "/static/vendor"))
    return HTMLResponse(html, headers={"X-Casegrid-Read-Source": request.state.freshness.header()})


def freshness_text(freshness: Freshness, lang: str) -> str:
    """What the page says of its data's age when it was read from the replica."""
    from maps.i18n import strings

    if freshness.source != "replica":
        return ""
    return f' · {strings(lang)["replica_data"].format(lag=freshness.lag_s)}'


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def hotspot_params_text(categories: list[str], date_from: date | None, date_to: date | None,
                        hour_from: int | None, hour_to: int | None, lang: str) -> str:
    """One line saying what the page shows (categories, period, time of day)."""
    from maps.i18n import strings

    t = strings(lang)
    parts = [f'{t["category"]}: {", ".join(categories) if categories else t["all"]}']
    if date_from or date_to:
        parts.append(f'{t["period"]}: {_iso(date_from) or "…"} – {_iso(date_to) or "…"}')
    if hour_from is not None and hour_to is not None:
        parts.append(f'{t["hour_window"]}: {hour_from:02d}:00–{hour_to:02d}:59')
    return " · ".join(parts)


@router.get("/static/vendor/{package}/{path:path}", include_in_schema=False)
def static_asset(package: str, path: str) -> Response:
    """Leaflet, its plugins and casegrid's own map script/styles (no token: public code)."""
    body = asset_bytes(package, path)
    suffix = "." + path.rsplit(".", 1)[-1]
    return Response(body, media_type=MEDIA.get(suffix, "application/octet-stream"),
                    headers={"Cache-Control": "public, max-age=86400"})
