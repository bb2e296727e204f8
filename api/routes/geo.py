"""Reference data and the routing dry run: ``GET /api/v1/route``, ``GET /api/v1/communities``,
``GET /api/v1/categories``. Any valid token may call them: community boundaries and post
contacts are what the posts' public signs show anyway.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.auth import CurrentPrincipal
from api.deps import ConnDep
from api.schemas import GEOJSON_MEDIA_TYPE, feature_collection, post_out
from cases.catalogue import list_categories
from cases.queries import active_communities
from geo.routing import route

router = APIRouter(prefix="/api/v1", tags=["reference"])


@router.get("/route")
def route_point(
    principal: CurrentPrincipal,
    conn: ConnDep,
    lon: Annotated[float, Query(description="Longitude (x) in `crs`.", examples=[117.1652])],
    lat: Annotated[float, Query(description="Latitude (y) in `crs`.", examples=[35.0871])],
    crs: Annotated[str, Query(description="wgs84, gcj02, bd09 or EPSG:NNNN.")] = "wgs84",
) -> dict:
    """Where a case at this point would go (nothing is stored)."""
    return route(conn, lon, lat, crs).to_dict()


@router.get("/communities", response_class=JSONResponse,
            responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}}})
def communities(principal: CurrentPrincipal, conn: ConnDep) -> JSONResponse:
    """The active generation's communities as a GeoJSON FeatureCollection, with their
    subdistrict and city-management post (contact, phone, hours)."""
    features = []
    for row in active_communities(conn):
        features.append({
            "type": "Feature",
            "id": row["code"],
            "geometry": json.loads(row["geometry"]),
            "properties": {
                "code": row["code"],
                "name": row["name"],
                "subdistrict_code": row["subdistrict_code"],
                "subdistrict_name": row["subdistrict_name"],
                "area_m2": row["area_m2"],
                "generation_id": row["generation_id"],
                "post": post_out(row),
            },
        })
    return JSONResponse(feature_collection(features), media_type=GEOJSON_MEDIA_TYPE)


@router.get("/categories")
def categories(principal: CurrentPrincipal, conn: ConnDep) -> list[dict]:
    """The category catalogue: codes to use as `category` when submitting a case."""
    return list_categories(conn)
