"""The sample city's SYNTHETIC gazetteer: compounds, roads with house-number ranges and
landmarks, generated deterministically from the sample city's own (synthetic) files.

``python scripts/make_sample_gazetteer.py`` writes ``data/gazetteer/sample_gazetteer.geojson``
(byte for byte the same on every run: seed 370481); :func:`load_sample_gazetteer` stores it
with the built-in entries. Every feature says ``synthetic: true``; no name is a real place.

What it holds, on purpose for the matcher's tests:

* the ten main streets with house numbers 1 .. one per 10 m along each (odd and even
  alike: the sample city has no sides);
* four compounds in each community (小区, 苑, 花园, 家园 ...), some with an alias, and two
  compound names that exist in two communities each (幸福小区, 建设新村): ambiguous on
  purpose, as real cities have them;
* a dozen landmarks (a shopping centre, the bus station, squares ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Point, mapping
from sqlalchemy import Connection

from casegrid.settings import PROJECT_ROOT

SEED = 370481
GAZETTEER_FILE = PROJECT_ROOT / "data" / "gazetteer" / "sample_gazetteer.geojson"
SOURCE = "sample-synthetic"
_BOUNDARIES = PROJECT_ROOT / "data" / "boundaries"

_HEADS = ("善国", "锦华", "荆河", "北辛", "杏坛", "文昌", "福源", "翠湖", "龙阳", "鑫城", "阳光",
          "和平", "金色", "东湖", "西岗", "春晖", "嘉禾", "御景", "玉龙", "盛世", "康乐", "清泉",
          "华宇", "明珠", "绿城", "凤凰", "银河", "紫荆", "泰和", "丰源", "颐和", "书香", "滨河",
          "时代", "新城", "安居", "荣华", "瑞祥", "德馨", "百合")
_TAILS = ("苑", "花园", "家园", "小区", "新村", "公寓", "名苑", "华府", "雅居", "山庄")
_LANDMARKS = ("银座商城", "滕州汽车站", "人民广场", "市体育馆", "市图书馆", "墨子纪念馆",
              "荆河公园", "万达广场", "贵和购物中心", "市民中心", "中心医院门诊楼", "老火车站")
# Two compound names that exist twice, in different communities (the matcher must ask).
_TWINS = ("幸福小区", "建设新村")


def _points_in(polygon, rng: np.random.Generator, n: int) -> list[Point]:
    """``n`` points inside ``polygon`` (rejection sampling; at least 30 m inside)."""
    inner = polygon.buffer(-0.0003)
    inner = polygon if inner.is_empty else inner
    minx, miny, maxx, maxy = inner.bounds
    out: list[Point] = []
    while len(out) < n:
        p = Point(round(rng.uniform(minx, maxx), 7), round(rng.uniform(miny, maxy), 7))
        if inner.contains(p):
            out.append(p)
    return out


def build_features() -> list[dict]:
    """The synthetic gazetteer's GeoJSON features, deterministic."""
    rng = np.random.default_rng(SEED)
    comms = gpd.read_file(_BOUNDARIES / "communities.geojson").sort_values("code")
    streets = gpd.read_file(_BOUNDARIES / "main_streets.geojson")
    features: list[dict] = []

    def add(kind: str, name: str, geom, **props) -> None:
        features.append({"type": "Feature", "properties": {
            "kind": kind, "name": name, "aliases": props.pop("aliases", ""),
            "house_from": props.pop("house_from", None), "house_to": props.pop("house_to", None),
            "synthetic": True, **props}, "geometry": mapping(geom)})

    for name, geom in zip(streets["name"], streets.geometry, strict=True):
        metres = geom.length * 111_320 * np.cos(np.radians(geom.centroid.y))
        add("road", name, shapely.set_precision(geom, 1e-7), house_from=1,
            house_to=int(metres // 10))
    used: set[str] = set(_TWINS)
    twin_homes = rng.choice(len(comms), size=2 * len(_TWINS), replace=False)
    for k, (code, polygon) in enumerate(zip(comms["code"], comms.geometry, strict=True)):
        points = _points_in(polygon, rng, 4)
        for j, point in enumerate(points):
            while True:
                name = f"{rng.choice(_HEADS)}{rng.choice(_TAILS)}"
                if name not in used:
                    used.add(name)
                    break
            alias = ""
            if name.endswith("花园") and j % 2 == 0:
                alias = name[:-2] + "小区"
            add("compound", name, point, aliases=alias, community_code_generated=str(code))
        for t, twin in enumerate(_TWINS):
            if k in (twin_homes[2 * t], twin_homes[2 * t + 1]):
                (point,) = _points_in(polygon, rng, 1)
                add("compound", twin, point, community_code_generated=str(code))
    homes = rng.choice(len(comms), size=len(_LANDMARKS), replace=False)
    for name, k in zip(_LANDMARKS, homes, strict=True):
        (point,) = _points_in(comms.geometry.iloc[int(k)], rng, 1)
        add("landmark", name, point, community_code_generated=str(comms["code"].iloc[int(k)]))
    return features


def write_sample_gazetteer(path: Path = GAZETTEER_FILE) -> int:
    """Write the synthetic gazetteer file; returns the number of features."""
    features = build_features()
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"type": "FeatureCollection", "name": "sample_gazetteer (SYNTHETIC)",
           "features": features}
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":"))
                    + "\n", encoding="utf-8")
    return len(features)


def load_sample_gazetteer(conn: Connection, path: Path = GAZETTEER_FILE) -> dict:
    """Rebuild the built-in entries and store the synthetic sample gazetteer; counts."""
    from geo.gazetteer import rebuild_builtin, store_entries

    builtin = rebuild_builtin(conn)
    gdf = gpd.read_file(path)
    frame = pd.DataFrame({
        "kind": gdf["kind"], "name": gdf["name"],
        "aliases": [[a for a in str(v or "").split(";") if a] for v in gdf["aliases"]],
        "wkb": [shapely.to_wkb(g, hex=True) for g in gdf.geometry],
        "house_from": gdf["house_from"], "house_to": gdf["house_to"],
        "properties": [{"synthetic": True} for _ in range(len(gdf))],
    })
    stored = store_entries(conn, frame, SOURCE, synthetic=True)
    return {"builtin": sum(builtin.values()), "synthetic": stored}
