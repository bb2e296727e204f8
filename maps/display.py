"""What the base map is, and moving overlays onto its datum.

Storage is WGS-84. A GCJ-02 tile source (Amap, Tencent, most Chinese intranet tile servers)
draws streets several hundred metres away from their WGS-84 coordinates, so every overlay is
shifted into GCJ-02 before it is drawn (and a viewport box coming back from such a map is
shifted back before it is queried). With WGS-84 tiles, or none, nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import mapping, shape

from casegrid.errors import InvalidInput
from casegrid.settings import Settings
from geo.coords import from_wgs84, to_wgs84

OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


@dataclass(frozen=True)
class Display:
    """Base tiles (a URL template, or None for no tiles) and their datum."""

    tiles: str | None
    attribution: str
    datum: str  # "wgs84" | "gcj02"

    @property
    def shifted(self) -> bool:
        return self.datum == "gcj02"

    def point(self, lon: float, lat: float) -> tuple[float, float]:
        """A WGS-84 point in the tile datum."""
        if not self.shifted:
            return lon, lat
        x, y = from_wgs84(np.array([lon]), np.array([lat]), "gcj02")
        return float(x[0]), float(y[0])

    def points(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`point`."""
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        if not self.shifted or lon.size == 0:
            return lon, lat
        return from_wgs84(lon, lat, "gcj02")

    def geojson(self, geom: dict) -> dict:
        """A GeoJSON geometry dict in the tile datum."""
        if not self.shifted:
            return geom

        def move(xy: np.ndarray) -> np.ndarray:
            x, y = from_wgs84(xy[:, 0], xy[:, 1], "gcj02")
            return np.column_stack([x, y])

        return mapping(shapely.transform(shape(geom), move))

    def bbox_to_wgs84(self, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A viewport box drawn on the tiles, as a WGS-84 box (corners converted, widened to
        cover the converted corners)."""
        if not self.shifted:
            return bbox
        w, s, e, n = bbox
        xs, ys = to_wgs84(np.array([w, e, w, e]), np.array([s, s, n, n]), "gcj02")
        return float(np.min(xs)), float(np.min(ys)), float(np.max(xs)), float(np.max(ys))


def display_from_settings(settings: Settings, tiles: str | None = None) -> Display:
    """The base map from the settings; ``tiles`` ("osm", "none" or a URL) overrides them."""
    choice = (tiles if tiles is not None else settings.tiles).strip()
    datum = settings.tiles_crs.lower()
    if datum not in ("wgs84", "gcj02"):
        raise InvalidInput(f"tiles_crs must be wgs84 or gcj02, not {settings.tiles_crs!r}", field="tiles_crs")
    if choice.lower() == "none" or not choice:
        return Display(None, "", "wgs84")
    if choice.lower() == "osm":
        return Display(OSM_URL, settings.tiles_attribution, datum)
    if "{z}" not in choice or "{x}" not in choice or "{y}" not in choice:
        raise InvalidInput("tiles must be osm, none, or a URL template with {z}, {x} and {y}", field="tiles")
    return Display(choice, settings.tiles_attribution, datum)
