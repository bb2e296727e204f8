"""``GET /maps/evaluation``: the posts' evaluation scores as a choropleth of the communities,
with the ranking beside the map (supervisors, dispatchers, planners).

The renderer (folium) is imported in the route, as in ``api/routes/maps.py``: serving
workers that never draw the page stay without the mapping stack."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import ReadConnDep
from api.routes.maps import PagePrincipal, _display, allow
from cases.evaluation import evaluate
from geo.map_data import boundaries, city_bounds
from maps.i18n import check_lang

router = APIRouter(tags=["maps"])
ROLES = ("supervisor", "dispatcher", "planner")


@router.get("/maps/evaluation", response_class=HTMLResponse)
def evaluation_page(
    request: Request, principal: PagePrincipal, conn: ReadConnDep,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    lang: str = "zh", tiles: str | None = None,
) -> Response:
    """Scores of the posts for the cases received in the period (default: last month)."""
    from maps.evaluation import render_evaluation  # on use (module docstring)

    allow(principal, ROLES)
    lang = check_lang(lang)
    if date_from is None or date_to is None:
        first_of_month = date.today().replace(day=1)
        date_to = first_of_month - timedelta(days=1)
        date_from = date_to.replace(day=1)
    result = evaluate(conn, "post", date_from, date_to)
    html = render_evaluation(result, boundaries(conn, "community"), boundaries(conn, "subdistrict"),
                             city_bounds(conn), _display(request, tiles), lang=lang)
    return HTMLResponse(html)
