"""``GET /api/v1/hotspots/pois``: complaints around schools, hospitals, markets and plazas,
ranked, as JSON or CSV (the table on the hotspot page, for planners' own analysis).

``geo.hotspots`` (scipy, scikit-learn through esda) is imported in the route, not here, as
in ``api/routes/maps.py``: serving workers that never run it stay without that stack."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import DateQ, ReadConnDep
from api.routes.maps import HOTSPOT_ROLES, PagePrincipal, _filters, allow, parse_rings
from casegrid.errors import InvalidInput
from maps.i18n import check_lang

router = APIRouter(prefix="/api/v1/hotspots", tags=["hotspots"])
ListQ = Annotated[list[str], Query()]


def _row_out(p: dict, rings: tuple[float, ...], rank: int) -> dict:
    return {
        "rank": rank, "id": p["id"], "kind": p["kind"], "name": p["name"], "lon": p["lon"], "lat": p["lat"],
        "rings": [
            {"radius_m": r, "cases": p["counts"][r], "rate_ratio": p["rate_ratio"][r],
             "area_m2": round(p["ring_area_m2"][r] or 0.0, 1), "by_category": p["by_category"].get(r, {})}
            for r in rings
        ],
        "hotspot_level": p["hotspot_level"], "in_hotspot": p["in_hotspot"],
    }


def _csv(rows: list[dict], rings: tuple[float, ...]) -> str:
    buf = io.StringIO()
    cats = sorted({c for row in rows for ring in row["rings"] for c in ring["by_category"]})
    head = ["rank", "id", "kind", "name", "lon", "lat", "hotspot_level", "in_hotspot"]
    for r in rings:
        head += [f"cases_{r:g}m", f"rate_ratio_{r:g}m"] + [f"cat_{c}_{r:g}m" for c in cats]
    w = csv.writer(buf)
    w.writerow(head)
    for row in rows:
        line = [row["rank"], row["id"], row["kind"], row["name"], f'{row["lon"]:.6f}', f'{row["lat"]:.6f}',
                row["hotspot_level"], int(row["in_hotspot"])]
        for ring in row["rings"]:
            line += [ring["cases"], "" if ring["rate_ratio"] is None else ring["rate_ratio"]]
            line += [ring["by_category"].get(c, 0) for c in cats]
        w.writerow(line)
    return buf.getvalue()


@router.get("/pois", response_model=None)
def hotspot_pois(
    request: Request, principal: PagePrincipal, conn: ReadConnDep,
    category: ListQ = [], kind: ListQ = [], date_from: DateQ = None, date_to: DateQ = None,  # noqa: B006
    hour_from: int | None = None, hour_to: int | None = None, cell_m: float = 250.0,
    rings: str | None = None, sort: str = "rate", ring: float | None = None, format: str = "json",
    lang: str = "zh",
) -> Response | dict:
    """Each POI with cases within each ring (per category), the rate against the city-wide
    rate for the same area, and its Gi* hotspot level; ranked by ``sort`` (rate|count) in
    ``ring`` (default: the middle ring). ``format=csv`` for a spreadsheet."""
    from geo.hotspots import (  # on use (module docstring)
        POI_KINDS,
        aggregate_grid,
        for_statistics,
        getis_ord,
        poi_ring_stats,
        rank_pois,
    )

    allow(principal, HOTSPOT_ROLES)
    check_lang(lang)
    if format not in ("json", "csv"):
        raise InvalidInput("format must be json or csv", field="format")
    rs = parse_rings(rings)
    ring = float(ring) if ring is not None else rs[min(1, len(rs) - 1)]
    if ring not in rs:
        raise InvalidInput(f"ring must be one of the rings {', '.join(f'{r:g}' for r in rs)}", field="ring")
    f = for_statistics(_filters([], [], category, [], [], date_from, date_to, None, hour_from, hour_to))
    grid = aggregate_grid(conn, f, cell_m)
    hot = getis_ord(grid)
    stats_rows = poi_ring_stats(conn, f, rs, tuple(kind) or POI_KINDS, grid=grid, hot=hot)
    rows = [_row_out(p, rs, k) for k, p in enumerate(rank_pois(stats_rows, ring, sort), 1)]
    if format == "csv":
        return Response("\ufeff" + _csv(rows, rs), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="hotspot_pois.csv"',
                                 "X-Casegrid-Read-Source": request.state.freshness.header()})
    return {"rings_m": list(rs), "ranked_by": {"sort": sort, "ring_m": ring}, "cell_m": cell_m,
            "city_cases": grid.total_in_area, "pois": rows}
