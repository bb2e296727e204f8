"""The public grid computed here with PROJ, independently of cases.publication: shared by
the publication and tracking tests, which check that a public location is its cell's centre."""

from __future__ import annotations

import math

from pyproj import Transformer

TO_METRES = Transformer.from_crs(4326, 4527, always_xy=True)
_TO_WGS = Transformer.from_crs(4527, 4326, always_xy=True)
CELL = 100.0


def cell_centre(lon: float, lat: float, cell: float = CELL) -> tuple[float, float]:
    """The centre of the point's cell of the EPSG:4527 grid, computed here with PROJ."""
    x, y = TO_METRES.transform(lon, lat)
    return _TO_WGS.transform((math.floor(x / cell) + 0.5) * cell, (math.floor(y / cell) + 0.5) * cell)
