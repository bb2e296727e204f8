"""Load the sample city (Tengzhou's five urban subdistricts, 55 synthetic communities, their
posts and points of interest) from ``data/boundaries/`` into the current database.

The geometry is synthetic (see data/README.md); subdistrict names and codes are real.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from casegrid.settings import PROJECT_ROOT
from geo.boundaries import store_generation

SAMPLE_DIR = PROJECT_ROOT / "data" / "boundaries"


def _read(path: Path) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    return gdf.to_crs(4326)


def load_sample_city(conn: Connection, sample_dir: Path = SAMPLE_DIR) -> dict:
    """Store the sample city as new active generations, with posts and POIs; return counts.

    Runs in the caller's transaction. Loading twice adds a new generation each time (the old
    ones stay, inactive), and replaces posts and sample POIs.
    """
    subs = _read(sample_dir / "subdistricts.geojson")
    comms = _read(sample_dir / "communities.geojson")
    sub_gen = store_generation(
        conn,
        "subdistrict",
        gpd.GeoDataFrame(
            {"code": subs["code"].astype(str), "name": subs["name"]}, geometry=subs.geometry, crs=4326
        ),
        source="data/boundaries/subdistricts.geojson",
        source_crs="EPSG:4326",
        note="sample city (synthetic geometry)",
    )
    com_gen = store_generation(
        conn,
        "community",
        gpd.GeoDataFrame(
            {
                "code": comms["code"].astype(str),
                "name": comms["name"],
                "parent_code": comms["subdistrict_code"].astype(str),
            },
            geometry=comms.geometry,
            crs=4326,
        ),
        source="data/boundaries/communities.geojson",
        source_crs="EPSG:4326",
        note="sample city (synthetic geometry)",
    )
    posts = pd.read_csv(sample_dir / "posts.csv", dtype={"community_code": str, "contact_phone": str})
    conn.execute(
        text(
            "INSERT INTO community_post (community_code, name, contact_name, phone, address, hours, geom)"
            " VALUES (:community_code, :name, :contact_name, :contact_phone, :address, :hours,"
            " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            " ON CONFLICT (community_code) DO UPDATE SET name = EXCLUDED.name,"
            " contact_name = EXCLUDED.contact_name, phone = EXCLUDED.phone,"
            " address = EXCLUDED.address, hours = EXCLUDED.hours, geom = EXCLUDED.geom,"
            " updated_at = now()"
        ),
        posts[["community_code", "name", "contact_name", "contact_phone", "address", "hours", "lon", "lat"]]
        .to_dict("records"),
    )
    pois = _read(sample_dir / "pois.geojson")
    conn.execute(text("DELETE FROM poi WHERE source = 'sample'"))
    conn.execute(
        text(
            "INSERT INTO poi (kind, name, source, source_id, geom)"
            " VALUES (:kind, :name, 'sample', :sid, ST_SetSRID(ST_GeomFromText(:wkt), 4326))"
        ),
        [
            {"kind": k, "name": n, "sid": str(i), "wkt": g.wkt}
            for i, (k, n, g) in enumerate(zip(pois["kind"], pois["name"], pois.geometry, strict=True))
        ],
    )
    from casegrid.demo.gazetteer import load_sample_gazetteer

    gazetteer = load_sample_gazetteer(conn)
    return {
        "gazetteer": gazetteer,
        "subdistrict_generation": sub_gen.id,
        "community_generation": com_gen.id,
        "subdistricts": len(subs),
        "communities": len(comms),
        "posts": len(posts),
        "pois": len(pois),
    }


def sample_city_loaded(conn: Connection) -> bool:
    """True when an active community generation exists."""
    return bool(
        conn.execute(
            text("SELECT 1 FROM boundary_generation WHERE level = 'community' AND active")
        ).first()
    )
