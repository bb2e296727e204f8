"""The sample city files in data/boundaries/ are a clean, exact, plausible coverage.

Pure file tests (no database). The expected subdistrict codes and names below are the real
ones from Tengzhou's 2023 statistical codes, written out here independently of the generator.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Point

from tests.helpers.paths import require_realdata

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "boundaries"
GENERATOR = ROOT / "scripts" / "make_sample_city.py"
FILES = ("communities.geojson", "subdistricts.geojson", "posts.csv", "pois.geojson",
         "main_streets.geojson")
METRIC = 32650
CENTRE = Point(117.165, 35.085)
REAL_SUBDISTRICTS = {
    "370481001": "荆河街道",
    "370481002": "龙泉街道",
    "370481003": "北辛街道",
    "370481004": "善南街道",
    "370481005": "东沙河街道",
}


@pytest.fixture(scope="module")
def communities() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "communities.geojson")


@pytest.fixture(scope="module")
def subdistricts() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "subdistricts.geojson")


@pytest.fixture(scope="module")
def pois() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "pois.geojson")


@pytest.fixture(scope="module")
def streets() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "main_streets.geojson")


@pytest.fixture(scope="module")
def posts() -> list[dict[str, str]]:
    with (DATA / "posts.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _raw(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _metric(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    return gdf.geometry.to_crs(METRIC)


# ----------------------------------------------------------------------------- attributes


def test_communities_have_55_unique_12_digit_codes_under_their_subdistrict(communities):
    assert len(communities) == 55
    codes = communities["code"].astype(str)
    assert codes.is_unique
    assert codes.str.fullmatch(r"\d{12}").all()
    assert (codes.str[:9] == communities["subdistrict_code"].astype(str)).all()
    assert set(communities["subdistrict_code"]) == set(REAL_SUBDISTRICTS)
    assert communities["name"].is_unique
    assert communities["name"].str.endswith("社区").all()
    assert communities["name_en"].str.len().gt(0).all()
    assert communities["synthetic"].all()


def test_every_subdistrict_has_several_communities_and_central_ones_have_most(communities):
    per_sub = Counter(communities["subdistrict_code"])
    assert min(per_sub.values()) >= 5
    assert per_sub["370481001"] >= max(per_sub["370481003"], per_sub["370481004"])


def test_subdistricts_are_the_five_real_ones(subdistricts):
    assert dict(zip(subdistricts["code"], subdistricts["name"], strict=True)) == REAL_SUBDISTRICTS
    assert subdistricts["synthetic"].all()


def test_subdistrict_names_match_the_official_code_list(subdistricts):
    path = require_realdata("china", "tengzhou_townships.csv")
    with path.open(encoding="utf-8") as fh:
        official = {row["code"]: row["name"] for row in csv.DictReader(fh)}
    for code, name in zip(subdistricts["code"], subdistricts["name"], strict=True):
        assert official[code] == name


def test_files_declare_themselves_synthetic_rfc7946(communities):
    for name in ("communities.geojson", "subdistricts.geojson", "pois.geojson",
                 "main_streets.geojson"):
        raw = _raw(name)
        assert raw["type"] == "FeatureCollection"
        assert "crs" not in raw, "RFC 7946 has no crs member: coordinates are WGS-84"
        assert "SYNTHETIC" in raw["description"]
        assert all(f["properties"]["synthetic"] is True for f in raw["features"])


# ----------------------------------------------------------------------------- geometry


def _coords(geometry: dict[str, Any]) -> list[float]:
    flat: list[float] = []

    def walk(c: Any) -> None:
        if isinstance(c[0], (int, float)):
            flat.extend(c)
        else:
            for x in c:
                walk(x)

    walk(geometry["coordinates"])
    return flat


def test_coordinates_are_wgs84_rounded_to_7_decimals_near_tengzhou():
    for name in ("communities.geojson", "subdistricts.geojson", "pois.geojson",
                 "main_streets.geojson"):
        for feature in _raw(name)["features"]:
            values = _coords(feature["geometry"])
            assert all(round(v, 7) == v for v in values), name
            lons, lats = values[0::2], values[1::2]
            assert all(117.0 < x < 117.35 for x in lons) and all(34.95 < y < 35.2 for y in lats)


def test_all_geometries_are_valid(communities, subdistricts, pois, streets):
    for gdf in (communities, subdistricts, pois, streets):
        assert gdf.geometry.is_valid.all()
        assert not gdf.geometry.is_empty.any()
    assert set(communities.geom_type) == {"Polygon"}
    assert set(subdistricts.geom_type) == {"Polygon"}
    assert set(streets.geom_type) == {"LineString"}
    assert set(pois.geom_type) <= {"Point", "Polygon"}


def test_polygon_exteriors_are_counter_clockwise_per_rfc7946(communities, subdistricts):
    for geom in list(communities.geometry) + list(subdistricts.geometry):
        assert geom.exterior.is_ccw


def test_communities_do_not_overlap(communities):
    geoms = _metric(communities)
    tree = shapely.STRtree(geoms.values)
    left, right = tree.query(geoms.values, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left, right, strict=True) if i < j]
    assert pairs, "neighbouring communities must touch"
    for i, j in pairs:
        assert geoms.iloc[i].intersection(geoms.iloc[j]).area < 1e-3, (i, j)


def coverage_problems(geoms: list[Any]) -> list[str]:
    """Why ``geoms`` is not an exactly noded, gap-free coverage (empty list when it is)."""
    problems = []
    # an array, not a GeometryCollection (which GEOS checks as one element, always valid);
    # gap_width 1e-5 deg (~1 m) flags slivers and edges that nearly but not exactly match
    if not shapely.coverage_is_valid(geoms, gap_width=1e-5):
        problems.append("GEOS coverage validation failed")
    edges: Counter[frozenset[tuple[float, float]]] = Counter()
    for geom in geoms:
        ring = list(geom.exterior.coords)
        if any(a == b for a, b in zip(ring, ring[1:], strict=False)):
            problems.append("repeated vertex")
        edges.update(frozenset(pair) for pair in zip(ring, ring[1:], strict=False))
    if max(edges.values()) > 2:
        problems.append("an edge is used by more than two communities")
    # every edge used once must be on the town's outer edge: shared edges are exact copies
    outer = shapely.MultiLineString([tuple(e) for e, n in edges.items() if n == 1])
    whole = shapely.union_all(geoms)
    if abs(outer.length - whole.exterior.length) > 1e-9 * whole.exterior.length:
        problems.append("some edges are not matched by the neighbouring community")
    return problems


def test_communities_form_an_exactly_noded_coverage(communities):
    assert coverage_problems(list(communities.geometry)) == []


def test_coverage_check_catches_a_shared_vertex_moved_by_one_centimetre(communities):
    geoms = list(communities.geometry)
    others = {p for g in geoms[1:] for p in g.exterior.coords}
    ring = list(geoms[0].exterior.coords)
    k = next(i for i in range(1, len(ring) - 1)
             if {ring[i - 1], ring[i], ring[i + 1]} <= others)
    for delta in (1e-7, -1e-7):
        moved = list(ring)
        moved[k] = (ring[k][0] + delta, ring[k][1] + delta)
        problems = coverage_problems([shapely.Polygon(moved), *geoms[1:]])
        assert "GEOS coverage validation failed" in problems
        assert "some edges are not matched by the neighbouring community" in problems


def test_touching_communities_share_a_boundary_not_a_gap(communities):
    geoms = list(communities.geometry)
    shared_any = 0
    for a, b in combinations(geoms, 2):
        if not a.intersects(b):
            continue
        shared = a.boundary.intersection(b.boundary)
        assert shared.geom_type in {"Point", "MultiPoint", "LineString", "MultiLineString",
                                    "GeometryCollection"}
        shared_any += shared.length > 0
    assert shared_any >= 55, "every community should border others along real edges"
    whole = shapely.union_all(geoms)
    assert whole.geom_type == "Polygon" and len(whole.interiors) == 0


def test_union_of_communities_equals_union_of_subdistricts(communities, subdistricts):
    a = shapely.union_all(_metric(communities).values)
    b = shapely.union_all(_metric(subdistricts).values)
    assert a.symmetric_difference(b).area < 1.0


def test_each_subdistrict_is_the_union_of_its_communities(communities, subdistricts):
    comm = _metric(communities)
    for code, geom in zip(subdistricts["code"], _metric(subdistricts), strict=True):
        members = comm[(communities["subdistrict_code"] == code).values]
        assert geom.symmetric_difference(shapely.union_all(members.values)).area < 1.0, code


def test_subdistricts_form_an_exact_coverage_too(subdistricts):
    for a, b in combinations(_metric(subdistricts), 2):
        assert a.intersection(b).area < 1e-3
    assert coverage_problems(list(subdistricts.geometry)) == []


def test_town_is_about_10_km_across(subdistricts):
    whole = shapely.union_all(_metric(subdistricts).values)
    minx, miny, maxx, maxy = whole.bounds
    assert 8_000 < maxx - minx < 13_000 and 8_000 < maxy - miny < 13_000
    centre = gpd.GeoSeries([CENTRE], crs=4326).to_crs(METRIC).iloc[0]
    assert whole.contains(centre)


def test_centre_communities_are_smaller_than_outer_ones(communities):
    geoms = _metric(communities)
    centre = gpd.GeoSeries([CENTRE], crs=4326).to_crs(METRIC).iloc[0]
    dist = geoms.representative_point().distance(centre)
    inner, outer = geoms[dist < 2_000].area, geoms[dist > 3_500].area
    assert len(inner) >= 8 and len(outer) >= 8
    assert inner.mean() < 0.5 * outer.mean()


def test_city_lies_inside_tengzhou_county(subdistricts):
    path = require_realdata("china", "zaozhuang_counties_gcj02.geojson")
    counties = gpd.read_file(path)
    county = counties[counties["adcode"].astype(str) == "370481"].to_crs(METRIC).geometry
    # the county outline is GCJ-02 (a few hundred metres off WGS-84): allow 1 km
    whole = shapely.union_all(_metric(subdistricts).values)
    assert county.iloc[0].buffer(1_000).contains(whole)


# ----------------------------------------------------------------------------- posts


def test_one_post_per_community(posts, communities):
    codes = [p["community_code"] for p in posts]
    assert len(codes) == len(set(codes)) == 55
    assert set(codes) == set(communities["code"])


def test_every_post_lies_inside_its_community(posts, communities):
    by_code = dict(zip(communities["code"], communities.geometry, strict=True))
    for post in posts:
        point = Point(float(post["lon"]), float(post["lat"]))
        assert by_code[post["community_code"]].contains(point), post["community_code"]


def test_post_attributes_are_complete_and_plausible(posts, communities):
    names = dict(zip(communities["code"], communities["name"], strict=True))
    phones = [p["contact_phone"] for p in posts]
    assert len(set(phones)) == len(phones)
    for post in posts:
        assert post["name"] == f"{names[post['community_code']]}城市管理岗"
        assert re.fullmatch(r"0632-55\d{5}", post["contact_phone"])
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", post["contact_name"])
        assert post["address"].startswith("滕州市") and "号" in post["address"]
        assert post["hours"] == "周一至周五 08:30-12:00 14:00-17:30"
        assert re.fullmatch(r"\d+\.\d{7}", post["lon"]) and re.fullmatch(r"\d+\.\d{7}", post["lat"])


# ----------------------------------------------------------------------------- POIs, streets


def test_poi_kinds_and_counts(pois):
    assert Counter(pois["kind"]) == {"school": 25, "hospital": 8, "market": 12, "park_plaza": 10}
    assert pois["name"].is_unique
    assert pois["poi_id"].is_unique
    assert pois["synthetic"].all()


def test_pois_lie_in_the_town_in_the_community_they_name(pois, communities):
    by_code = dict(zip(communities["code"], communities.geometry, strict=True))
    for code, geom in zip(pois["community_code"], pois.geometry, strict=True):
        assert by_code[code].contains(geom.representative_point()), code
        if geom.geom_type == "Polygon":
            assert by_code[code].contains(geom), code


def test_markets_and_plazas_are_more_central_than_schools(pois):
    centre = gpd.GeoSeries([CENTRE], crs=4326).to_crs(METRIC).iloc[0]
    dist = _metric(pois).representative_point().distance(centre)
    mean = dist.groupby(pois["kind"].values).mean()
    assert mean["market"] < mean["school"]
    assert mean["park_plaza"] < mean["school"]


def test_main_streets_cross_the_centre_inside_the_town(streets, subdistricts):
    assert 8 <= len(streets) <= 12
    assert streets["name"].is_unique
    geoms = _metric(streets)
    whole = shapely.union_all(_metric(subdistricts).values)
    centre = gpd.GeoSeries([CENTRE], crs=4326).to_crs(METRIC).iloc[0]
    for name, geom in zip(streets["name"], geoms, strict=True):
        assert geom.length > 3_000, name
        assert whole.buffer(1.0).contains(geom), name
        assert geom.distance(centre) < 4_000, name
    # most are the central grid; one or two may be outer arterials
    assert (geoms.distance(centre) < 2_000).sum() >= 0.75 * len(geoms)


# ----------------------------------------------------------------------------- reproducibility


def _generate(out: Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), *extra], check=True,
                   capture_output=True)


def test_generator_reproduces_the_committed_files_byte_for_byte(tmp_path):
    # Same environment (numpy, pyproj, GEOS) as the committed files; see data/README.md.
    _generate(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_another_seed_gives_a_different_but_equally_clean_city(tmp_path):
    # The construction, not one lucky seed, guarantees the coverage.
    _generate(tmp_path, "--seed", "7")
    other = gpd.read_file(tmp_path / "communities.geojson")
    assert len(other) == 55
    assert coverage_problems(list(other.geometry)) == []
    assert (tmp_path / "communities.geojson").read_bytes() != (
        DATA / "communities.geojson").read_bytes()
    subs = gpd.read_file(tmp_path / "subdistricts.geojson")
    a = shapely.union_all(other.geometry.to_crs(METRIC).values)
    assert a.symmetric_difference(shapely.union_all(subs.geometry.to_crs(METRIC).values)).area < 1
