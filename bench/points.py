"""Deterministic, realistic complaint locations over the sample city (numpy seed).

The mix a city's routing sees: about 90% inside communities, denser toward the centre
(a Gaussian around the city's centroid, kept only where it lands inside a community);
about 5% within a few metres of a community boundary (phone GPS error near an edge, the
expensive case for the near-boundary check); about 5% in gaps between communities or
outside the city (the gap search and the "outside" rule).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from casegrid.demo.city import SAMPLE_DIR
from geo.coords import METRIC_CRS

SEED = 20261125
SHARE_NEAR_EDGE = 0.05
SHARE_GAP_OUTSIDE = 0.05


def _city() -> tuple[gpd.GeoSeries, object]:
    comms = gpd.read_file(SAMPLE_DIR / "communities.geojson").to_crs(METRIC_CRS).geometry
    union = shapely.union_all(comms.values)
    shapely.prepare(union)
    return comms, union


def generate_points(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` WGS-84 (lon, lat) points in the mix above, shuffled; same seed, same points."""
    rng = np.random.default_rng(seed)
    comms, union = _city()
    n_edge = int(round(n * SHARE_NEAR_EDGE))
    n_out = int(round(n * SHARE_GAP_OUTSIDE))
    n_in = n - n_edge - n_out
    minx, miny, maxx, maxy = union.bounds
    centre = union.centroid
    sigma = max(maxx - minx, maxy - miny) / 4

    parts = []
    need = n_in
    while need > 0:  # rejection sampling: keep the Gaussian draws that fall in a community
        k = int(need * 1.6) + 100
        x = rng.normal(centre.x, sigma, k)
        y = rng.normal(centre.y, sigma, k)
        keep = shapely.contains_xy(union, x, y)
        xy = np.column_stack([x[keep], y[keep]])[:need]
        parts.append(xy)
        need -= len(xy)

    if n_edge:  # on a random community's outline, then up to ~15 m of GPS error
        lines = shapely.boundary(np.asarray(comms.values))
        pick = lines[rng.integers(0, len(lines), n_edge)]
        on = shapely.line_interpolate_point(pick, rng.random(n_edge), normalized=True)
        xy = shapely.get_coordinates(on) + rng.normal(0, 8, (n_edge, 2))
        parts.append(xy)

    need = n_out
    while need > 0:  # anywhere in the bounding box grown by 1 km, but not in a community
        k = need * 4 + 100
        x = rng.uniform(minx - 1000, maxx + 1000, k)
        y = rng.uniform(miny - 1000, maxy + 1000, k)
        keep = ~shapely.contains_xy(union, x, y)
        xy = np.column_stack([x[keep], y[keep]])[:need]
        parts.append(xy)
        need -= len(xy)

    xy = np.concatenate(parts)
    xy = xy[rng.permutation(len(xy))]
    pts = gpd.GeoSeries(gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=METRIC_CRS).to_crs(4326)
    return pts.x.to_numpy(), pts.y.to_numpy()


def write_points_csv(path: Path, n: int, seed: int = SEED) -> Path:
    """Write ``id,lon,lat`` (WGS-84, 7 decimals: about 1 cm) for ``n`` points."""
    lon, lat = generate_points(n, seed)
    pd.DataFrame({"id": np.arange(1, n + 1), "lon": lon, "lat": lat}).to_csv(
        path, index=False, float_format="%.7f")
    return path
