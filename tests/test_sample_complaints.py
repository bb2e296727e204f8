"""The synthetic sample year: deterministic, realistic patterns, loads through the bulk import."""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from casegrid.demo.city import SAMPLE_DIR
from casegrid.demo.complaints import generate, load_sample_complaints
from geo.coords import METRIC_CRS
from tests.helpers.paths import PROJECT_ROOT

N = 20_000


@pytest.fixture(scope="module")
def year() -> gpd.GeoDataFrame:
    """The generated year with true WGS-84 points, in the metric CRS, joined to the
    community that covers each point (from the boundary file, not from the generator)."""
    df = generate(N, seed=11)
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["_lon"], df["_lat"]), crs=4326)
    comms = gpd.read_file(SAMPLE_DIR / "communities.geojson")[["code", "geometry"]]
    joined = gpd.sjoin(pts, comms, how="left", predicate="covered_by")
    joined = joined[~joined.index.duplicated()]
    joined["hour"] = pd.to_datetime(joined["来电时间"]).dt.hour
    joined["month"] = pd.to_datetime(joined["来电时间"]).dt.month
    return joined.to_crs(METRIC_CRS)


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate(1500, seed=5), generate(1500, seed=5), generate(1500, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["经度"].equals(c["经度"])
    assert a["工单编号"].is_unique


def test_every_complaint_is_in_town_and_says_it_is_synthetic(year):
    assert year["code"].notna().all()
    assert (year["备注"] == "合成样例数据(SYNTHETIC)").all()
    times = pd.to_datetime(year["来电时间"])
    assert times.min() >= pd.Timestamp("2025-11-01") and times.max() < pd.Timestamp("2026-11-01")


def test_category_and_channel_mix(year):
    share = year["_code"].value_counts(normalize=True)
    assert share.idxmax() == "0599" and 0.37 < share["0599"] < 0.43
    channels = year["来源渠道"].value_counts(normalize=True)
    for name, expected in {"12345热线": 0.55, "城管平台": 0.25, "巡查上报": 0.15, "手机APP": 0.05}.items():
        assert abs(channels[name] - expected) < 0.02, (name, channels[name])
    # each channel reports in its device's coordinate system
    assert set(year.loc[year["来源渠道"] == "巡查上报", "坐标系"]) == {"WGS84"}
    assert set(year.loc[year["来源渠道"] == "手机APP", "坐标系"]) == {"GCJ-02"}
    assert set(year.loc[year["来源渠道"] == "12345热线", "坐标系"]) == {"GCJ-02", "BD-09"}


def test_noise_is_an_evening_and_summer_problem(year):
    noise = year[year["_code"] == "0599"]
    evening_rate = noise["hour"].between(19, 22).sum() / 4
    day_rate = noise["hour"].between(9, 16).sum() / 8
    assert evening_rate > 2 * day_rate
    summer = noise["month"].isin([6, 7, 8]).sum()
    winter = noise["month"].isin([12, 1, 2]).sum()
    assert summer > 1.5 * winter
    # illegal construction is a daytime matter
    building = year[year["_code"] == "0101"]
    assert building["hour"].between(8, 17).mean() > 0.8


def _centrality(comms: gpd.GeoDataFrame) -> pd.Series:
    union = shapely.union_all(comms.geometry.values)
    return comms.set_index("code").geometry.centroid.distance(union.centroid)


def test_illegal_construction_on_the_edge_of_town(year):
    comms = gpd.read_file(SAMPLE_DIR / "communities.geojson").to_crs(METRIC_CRS)
    dist = _centrality(comms)
    outer = set(dist[dist > dist.median()].index)
    share_outer = year.groupby("_code")["code"].apply(lambda s: s.isin(outer).mean())
    assert share_outer["0101"] > 0.75
    assert share_outer["0101"] > share_outer["0599"] + 0.2


def test_noise_near_markets_plazas_and_in_dense_communities(year):
    pois = gpd.read_file(SAMPLE_DIR / "pois.geojson").to_crs(METRIC_CRS)
    hubs = pois[pois["kind"].isin(["market", "park_plaza"])].geometry.union_all()
    near = year.geometry.distance(hubs) < 300
    assert near[year["_code"] == "0599"].mean() > near[year["_code"] == "0102"].mean() + 0.1
    comms = gpd.read_file(SAMPLE_DIR / "communities.geojson").to_crs(METRIC_CRS)
    area = comms.set_index("code").area
    small = set(area[area < area.median()].index)
    assert year.loc[year["_code"] == "0599", "code"].isin(small).mean() > 0.6


def test_shop_encroachment_lines_the_main_streets(year):
    streets = gpd.read_file(SAMPLE_DIR / "main_streets.geojson").to_crs(METRIC_CRS)
    dist = year.geometry.distance(streets.geometry.union_all())
    shop = dist[year["_code"] == "0504"].median()
    others = dist[~year["_code"].isin(["0504", "0104"])].median()
    assert shop < 40 and shop < others / 3
    pois = gpd.read_file(SAMPLE_DIR / "pois.geojson").to_crs(METRIC_CRS)
    magnets = pois[pois["kind"].isin(["market", "school"])].geometry.union_all()
    near = year.geometry.distance(magnets) < 400
    assert near[year["_code"] == "0504"].mean() > near[year["_code"] == "0102"].mean()


def test_loads_through_the_bulk_import_and_routes_as_generated(city_engine):
    report = load_sample_complaints(city_engine, n=1500, seed=3)
    assert report.committed and report.rejected == 0 and report.inserted == 1500
    assert set(report.routed) <= {"inside", "on_boundary"}
    truth = generate(1500, seed=3).set_index("工单编号")["_community"]
    with city_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT external_id, community_code, received_at = reported_at AS backdated, "
            "status FROM \"case\"")).all()
    stored = pd.Series({r.external_id: r.community_code for r in rows})
    # GCJ-02 / BD-09 inputs converted back: each case lands where it was generated
    assert (stored.reindex(truth.index) == truth).mean() > 0.99
    assert all(r.backdated and r.status == "registered" for r in rows)
    again = load_sample_complaints(city_engine, n=1500, seed=3)
    assert again.inserted == 0 and again.already_present == 1500


def test_script_writes_a_12345_csv_and_says_synthetic(tmp_path):
    out = tmp_path / "s.csv"
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "make_sample_complaints.py"),
                          "--out", str(out), "--n", "300", "--seed", "9"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "SYNTHETIC" in run.stdout
    frame = pd.read_csv(out, dtype=str, encoding="utf-8-sig")
    assert len(frame) == 300
    assert list(frame.columns[:9]) == ["工单编号", "来源渠道", "诉求类型", "诉求内容", "地址",
                                       "经度", "纬度", "坐标系", "来电时间"]
    assert not any(c.startswith("_") for c in frame.columns)
    assert np.isfinite(frame["经度"].astype(float)).all()
