"""``GET /work/outlines?bbox=``: the active communities' outlines and names for a page's
small map (the 需定位 panel's), in the base map's datum, as GeoJSON.

Served by casegrid to a signed-in person (no outside map service); community boundaries
are reference data every role may see. The box and the geometries are in the tiles' datum
(GCJ-02 tiles: shifted both ways, as the maps do).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import ConnDep
from api.web_session import WebSession
from cases.filters import parse_bbox
from geo.map_data import community_outlines

router = APIRouter(include_in_schema=False)


@router.get("/work/outlines")
def outlines(request: Request, conn: ConnDep, session: WebSession, bbox: str = "") -> Response:
    """A FeatureCollection of the communities meeting ``bbox`` (west,south,east,north), each
    with its ``code`` and ``name``; 422 naming ``bbox`` when it is missing or wrong."""
    from maps.display import display_from_settings

    box = parse_bbox(bbox)
    if box is None:
        from casegrid.errors import InvalidInput

        raise InvalidInput("bbox is required: west,south,east,north in degrees", field="bbox")
    display = display_from_settings(request.app.state.settings)
    features = [{"type": "Feature", "properties": {"code": c["code"], "name": c["name"]},
                 "geometry": display.geojson(c["geometry"])}
                for c in community_outlines(conn, display.bbox_to_wgs84(box))]
    # Boundaries change only with a new generation: a few minutes in the browser is safe.
    return JSONResponse({"type": "FeatureCollection", "features": features},
                        headers={"Cache-Control": "private, max-age=300"})
