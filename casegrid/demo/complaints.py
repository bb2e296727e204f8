"""A SYNTHETIC year of complaints for the sample city, in the shape of a 12345 export.

Nothing here is real: every complaint, name, phone number and ticket number is made up by a
seeded random generator (same seed, same file, byte for byte). The patterns follow what
Tengzhou's bureau reports (DOMAIN.md) so that maps and statistics look like a real city:

* social-life noise (0599, ~40%, the top type): mostly 19:00-23:00, some morning square
  dancing, more in summer; near markets and parks/plazas and in the dense (small, central)
  communities;
* illegal construction (0101): daytime, mostly in the outer communities (edge of town);
* shop encroachment (0504): along the main streets, near markets and schools;
* garbage (0102/0103): spread like the population (each community about as populous, so
  denser where communities are small), mornings;
* construction noise (0301): a handful of building sites in outer communities, mostly at
  night; commercial noise, barbecues, hawkers and parking around markets, schools, hospitals.

Channels: hotline_12345 ~55%, platform ~25%, patrol ~15%, app ~5%. Coordinates are stored as
each channel would send them: apps and the city platform in GCJ-02 (Amap/WeChat maps), the
12345 operators' map mostly GCJ-02 and sometimes BD-09 (Baidu), patrol handsets WGS-84 (GPS);
the ``坐标系`` column says which, and the import converts. Statuses are left to the ledger
(cases load as ``registered``); ``reported_at`` is realistic, the rest is the workflow's job.

By default the period is 2025-11-01..2026-10-31 (a full year, wholly in the past when
written, so no timestamp is refused as "in the future"), which keeps files reproducible. The
demo (``casegrid sample load``) instead takes the year that ended yesterday, so that its
ledger has recent, open and due-soon cases to show as well as a year of history.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine

from casegrid.demo.city import SAMPLE_DIR
from cases.mappings import load_mapping
from geo.coords import METRIC_CRS, wgs84_to_bd09, wgs84_to_gcj02

SYNTHETIC_NOTE = ("SYNTHETIC sample data: every complaint, name, phone and ticket number is "
                  "generated (casegrid/demo/complaints.py), none is real.")
DEFAULT_SEED = 20251101
DEFAULT_N = 30_000
MAPPING = "hotline12345_zh"
# The rows hold local wall-clock times, read in the zone of the mapping they are written for.
ZONE = load_mapping(MAPPING).timezone
PERIOD_START = pd.Timestamp("2025-11-01", tz=ZONE)
PERIOD_DAYS = 365

# code: (share, Chinese type name as the 12345 export writes it)
CATEGORIES: dict[str, tuple[float, str]] = {
    "0599": (0.40, "社会生活噪音扰民"),
    "0504": (0.12, "店外经营"),
    "0102": (0.10, "暴露垃圾"),
    "0101": (0.09, "私搭乱建"),
    "0301": (0.05, "施工扰民"),
    "0508": (0.05, "商业噪音"),
    "0505": (0.05, "机动车乱停放"),
    "0103": (0.04, "积存垃圾渣土"),
    "0104": (0.04, "道路不洁"),
    "0501": (0.03, "无照经营游商"),
    "0510": (0.02, "露天烧烤"),
    "0201": (0.01, "非法小广告"),
}
CHANNELS = {"hotline_12345": 0.55, "platform": 0.25, "patrol": 0.15, "app": 0.05}
_CHANNEL_TEXT = {"hotline_12345": "12345热线", "platform": "城管平台", "patrol": "巡查上报",
                 "app": "手机APP"}
_TICKET_PREFIX = {"hotline_12345": "TZ12345", "platform": "CGPT", "patrol": "XC", "app": "APP"}

# Hour-of-day profiles (24 weights, local time).
_H = np.arange(24)
_DAY = ((_H >= 8) & (_H <= 17)).astype(float)
HOURS = {
    # evenings dominate; a morning bump of square dancing; little at night
    "noise": 0.3 + 0.4 * ((_H >= 6) & (_H <= 8)) + 0.6 * _DAY + 6.0 * ((_H >= 19) & (_H <= 22))
    + 2.0 * (_H == 23) - 0.25 * ((_H >= 1) & (_H <= 5)),
    "day": 0.05 + _DAY * 2.0,
    "shop": 0.1 + 1.5 * ((_H >= 10) & (_H <= 21)),
    "morning": 0.2 + 2.0 * ((_H >= 6) & (_H <= 11)) + 0.8 * _DAY,
    "night_works": 0.5 + _DAY + 3.0 * ((_H >= 22) | (_H <= 4)),
    "evening": 0.1 + 0.5 * _DAY + 3.0 * ((_H >= 18) | (_H == 0)),
}
_HOUR_PROFILE = {"0599": "noise", "0508": "evening", "0510": "evening", "0101": "day",
                 "0504": "shop", "0102": "morning", "0103": "morning", "0104": "morning",
                 "0301": "night_works", "0505": "day", "0501": "shop", "0201": "day"}
_SUMMER = {"0599", "0508", "0510", "0301"}  # more in summer: windows open, evenings outside

_TEMPLATES = {
    "0599": ["{place}附近广场舞音响声音太大,影响休息", "{place}一带夜间有人用喇叭唱歌,噪音扰民",
             "楼上住户深夜装修,{place}居民反映噪音很大", "{place}附近有人深夜聚会喧哗"],
    "0504": ["{place}附近商户在店外摆摊经营,占用人行道", "{place}门口饭店占道摆桌",
             "{place}旁水果店货物堆到店外"],
    "0102": ["{place}附近垃圾桶满溢,无人清运", "{place}路边有暴露垃圾,气味难闻"],
    "0101": ["{place}附近有人私自加盖彩钢房", "{place}一带院墙外私搭棚子", "{place}楼顶违规搭建"],
    "0301": ["{place}附近工地夜间施工,噪音扰民", "{place}工地凌晨打桩,影响休息"],
    "0508": ["{place}附近商铺音响外放招揽顾客,声音很大", "{place}酒吧夜间音乐声扰民"],
    "0505": ["{place}门口机动车乱停,堵塞通道", "{place}附近车辆占用人行道停放"],
    "0103": ["{place}附近堆积建筑垃圾渣土", "{place}空地长期积存垃圾"],
    "0104": ["{place}路面不洁,有大量泥土", "{place}附近道路油污未清理"],
    "0501": ["{place}门口有流动摊贩", "{place}附近游商占道经营"],
    "0510": ["{place}附近夜间露天烧烤,油烟扰民"],
    "0201": ["{place}附近墙面张贴大量小广告"],
}
_SURNAMES = list("王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁宋谢唐韩冯于董萧程曹袁邓许傅沈曾彭吕")


def _read(name: str) -> gpd.GeoDataFrame:
    return gpd.read_file(SAMPLE_DIR / name).to_crs(METRIC_CRS)


class _City:
    """The sample city in metric coordinates, with the weights the patterns need."""

    def __init__(self) -> None:
        self.comms = _read("communities.geojson").reset_index(drop=True)
        self.pois = _read("pois.geojson").reset_index(drop=True)
        self.streets = _read("main_streets.geojson").reset_index(drop=True)
        self.subs = gpd.read_file(SAMPLE_DIR / "subdistricts.geojson")
        self.union = shapely.union_all(self.comms.geometry.values)
        shapely.prepare(self.union)
        centre = self.union.centroid
        cent = self.comms.geometry.centroid
        dist = cent.distance(centre).to_numpy()
        area = self.comms.area.to_numpy()
        # Each community about equally populous: density ~ 1/area.
        self.w_dense = (1.0 / area) / (1.0 / area).sum()
        self.w_people = np.full(len(area), 1.0 / len(area))
        outer = (dist / dist.max()) ** 4
        self.w_outer = outer / outer.sum()
        self.poi_xy = {k: shapely.get_coordinates(g.geometry.centroid.values)
                       for k, g in self.pois.groupby("kind")}
        self.poi_names = {k: g["name"].to_numpy() for k, g in self.pois.groupby("kind")}
        self.street_lines = self.streets.geometry.values
        self.sub_names = dict(zip(self.subs["code"].astype(str), self.subs["name"], strict=True))

    def in_communities(self, rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
        """n points, each uniform inside a community drawn with ``weights``."""
        which = rng.choice(len(weights), size=n, p=weights)
        out = np.empty((n, 2))
        for c in np.unique(which):  # per community (55), never per point
            idx = np.flatnonzero(which == c)
            out[idx] = _uniform_in(rng, self.comms.geometry.iloc[c], len(idx))
        return out

    def near(self, rng: np.random.Generator, kinds: tuple[str, ...], n: int, sd_m: float
             ) -> np.ndarray:
        """n points scattered (normal, ``sd_m``) around POIs of ``kinds``."""
        xy = np.vstack([self.poi_xy[k] for k in kinds])
        pick = rng.integers(0, len(xy), size=n)
        return xy[pick] + rng.normal(0.0, sd_m, size=(n, 2))

    def along_streets(self, rng: np.random.Generator, n: int, near_kinds: tuple[str, ...] | None,
                      spread_m: float = 200.0, offset_m: float = 12.0) -> np.ndarray:
        """n points beside main streets: near the street point closest to a POI of
        ``near_kinds`` (or anywhere along the streets), a shop-front's depth off the line."""
        lines = self.street_lines
        if near_kinds:
            xy = np.vstack([self.poi_xy[k] for k in near_kinds])
            pts = shapely.points(xy)
            # nearest street to each POI, and the POI's position along it
            dists = np.array([shapely.distance(pts, ln) for ln in lines])
            line_of = dists.argmin(axis=0)
            pos = np.array([lines[line_of[i]].project(pts[i]) for i in range(len(pts))])
            pick = rng.integers(0, len(xy), size=n)
            li = line_of[pick]
            along = pos[pick] + rng.normal(0.0, spread_m, size=n)
        else:
            lengths = np.array([ln.length for ln in lines])
            li = rng.choice(len(lines), size=n, p=lengths / lengths.sum())
            along = rng.uniform(0.0, 1.0, size=n) * lengths[li]
        out = np.empty((n, 2))
        for i in np.unique(li):
            idx = np.flatnonzero(li == i)
            ln = lines[i]
            d = np.clip(along[idx], 0.0, ln.length)
            p0 = shapely.get_coordinates(shapely.line_interpolate_point(ln, d))
            p1 = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.minimum(d + 1.0, ln.length)))
            p0b = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.maximum(d - 1.0, 0.0)))
            t = p1 - p0b
            t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
            normal = np.column_stack([-t[:, 1], t[:, 0]])
            side = rng.choice([-1.0, 1.0], size=len(idx))
            out[idx] = p0 + normal * (side * np.abs(rng.normal(offset_m, 4.0, size=len(idx))))[:, None]
        return out


def _uniform_in(rng: np.random.Generator, polygon, n: int) -> np.ndarray:
    """n points uniform inside ``polygon`` (rejection sampling in its bounding box)."""
    x0, y0, x1, y1 = polygon.bounds
    shapely.prepare(polygon)
    out = np.empty((0, 2))
    while len(out) < n:
        cand = rng.uniform((x0, y0), (x1, y1), size=(max(2 * (n - len(out)), 16), 2))
        out = np.vstack([out, cand[shapely.contains_xy(polygon, cand[:, 0], cand[:, 1])]])
    return out[:n]


def _locations(city: _City, rng: np.random.Generator, code: str, n: int) -> np.ndarray:
    if code == "0599":
        k = rng.binomial(n, 0.4)
        return np.vstack([city.near(rng, ("market", "park_plaza"), k, 150.0),
                          city.in_communities(rng, city.w_dense, n - k)])
    if code == "0101":
        k = rng.binomial(n, 0.85)
        return np.vstack([city.in_communities(rng, city.w_outer, k),
                          city.in_communities(rng, city.w_people, n - k)])
    if code == "0504":
        k = rng.binomial(n, 0.7)
        return np.vstack([city.along_streets(rng, k, ("market", "school")),
                          city.along_streets(rng, n - k, None)])
    if code in ("0102", "0103", "0201"):
        return city.in_communities(rng, city.w_people, n)
    if code == "0301":
        sites = city.in_communities(rng, city.w_outer, 8)  # a few building sites a year
        return sites[rng.integers(0, len(sites), size=n)] + rng.normal(0, 60.0, size=(n, 2))
    if code in ("0508", "0510"):
        k = rng.binomial(n, 0.6)
        return np.vstack([city.near(rng, ("market", "park_plaza"), k, 120.0),
                          city.along_streets(rng, n - k, None, offset_m=15.0)])
    if code == "0505":
        return city.near(rng, ("hospital", "school", "market"), n, 100.0)
    if code == "0501":
        return city.near(rng, ("school", "market"), n, 80.0)
    if code == "0104":
        return city.along_streets(rng, n, None, offset_m=5.0)
    raise ValueError(f"no spatial pattern for {code}")


def recent_period_start(today: pd.Timestamp | None = None) -> pd.Timestamp:
    """Start of the full year of days that ended yesterday (in :data:`ZONE`)."""
    today = (today or pd.Timestamp.now(tz=ZONE)).normalize()
    return today - pd.Timedelta(days=PERIOD_DAYS)


def _times(rng: np.random.Generator, code: str, n: int, start: pd.Timestamp) -> pd.DatetimeIndex:
    doy = np.arange(PERIOD_DAYS)
    dates = start + pd.to_timedelta(doy, unit="D")
    w = np.ones(PERIOD_DAYS)
    if code in _SUMMER:  # peak mid-July, trough mid-January
        w = 1.0 + 0.6 * np.cos(2 * np.pi * (dates.day_of_year.to_numpy() - 196) / 365.25)
    day = rng.choice(PERIOD_DAYS, size=n, p=w / w.sum())
    hw = np.clip(HOURS[_HOUR_PROFILE[code]], 0.01, None)
    hour = rng.choice(24, size=n, p=hw / hw.sum())
    seconds = rng.integers(0, 3600, size=n)
    offs = pd.to_timedelta(day, unit="D") + pd.to_timedelta(hour * 3600 + seconds, unit="s")
    # Local wall-clock time (the sample city's zone has no DST).
    return pd.DatetimeIndex(start.tz_localize(None) + offs)


def generate(n: int = DEFAULT_N, seed: int = DEFAULT_SEED,
             start: pd.Timestamp = PERIOD_START) -> pd.DataFrame:
    """The synthetic complaints as a 12345-style table, plus hidden truth columns
    (``_code``, ``_channel``, ``_lon``/``_lat`` in WGS-84) that :func:`write_sample_csv`
    leaves out. Deterministic for a given ``(n, seed, start)``; the period is the
    ``PERIOD_DAYS`` days from ``start`` (local midnight in :data:`ZONE`)."""
    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    city = _City()
    codes = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in codes])
    counts = rng.multinomial(n, shares / shares.sum())
    parts = []
    for code, k in zip(codes, counts, strict=True):
        if k == 0:
            continue
        xy = _locations(city, rng, code, int(k))
        # Points scattered off the edge of town are pulled back inside: complaints come
        # from the city's own residents and streets.
        outside = ~shapely.contains_xy(city.union, xy[:, 0], xy[:, 1])
        if outside.any():
            xy[outside] = city.in_communities(rng, city.w_people, int(outside.sum()))
        parts.append(pd.DataFrame({"_code": code, "x": xy[:, 0], "y": xy[:, 1],
                                   "local": _times(rng, code, int(k), start)}))
    df = pd.concat(parts, ignore_index=True).sort_values(["local", "_code"], kind="stable")
    df = df.reset_index(drop=True)
    m = len(df)
    lon, lat = gpd.GeoSeries(gpd.points_from_xy(df["x"], df["y"]), crs=METRIC_CRS).to_crs(4326) \
        .pipe(lambda s: (s.x.to_numpy(), s.y.to_numpy()))
    df["_lon"], df["_lat"] = lon, lat
    names = list(CHANNELS)
    df["_channel"] = rng.choice(names, size=m, p=np.array(list(CHANNELS.values())))
    # The coordinate system each channel's device or map reports.
    system = np.where(df["_channel"] == "patrol", "WGS84", "GCJ-02")
    baidu = (df["_channel"] == "hotline_12345").to_numpy() & (rng.random(m) < 0.2)
    system = np.where(baidu, "BD-09", system)
    gx, gy = wgs84_to_gcj02(lon, lat)
    bx, by = wgs84_to_bd09(lon, lat)
    out_x = np.where(system == "WGS84", lon, np.where(system == "BD-09", bx, gx))
    out_y = np.where(system == "WGS84", lat, np.where(system == "BD-09", by, gy))
    return _finish(df, city, rng, system, out_x, out_y)


def _finish(df: pd.DataFrame, city: _City, rng: np.random.Generator, system: np.ndarray,
            out_x: np.ndarray, out_y: np.ndarray) -> pd.DataFrame:
    m = len(df)
    comm_idx = city.comms.sindex.nearest(gpd.points_from_xy(df["x"], df["y"]), return_all=False)[1]
    comm = city.comms.iloc[comm_idx]
    comm_name = comm["name"].to_numpy()
    sub_name = comm["subdistrict_code"].astype(str).map(city.sub_names).to_numpy()
    all_poi = city.pois["name"].to_numpy()
    poi_xy = shapely.get_coordinates(city.pois.geometry.centroid.values)
    nearest_poi = city.pois.sindex.nearest(gpd.points_from_xy(df["x"], df["y"]), return_all=False)[1]
    d_poi = np.hypot(poi_xy[nearest_poi, 0] - df["x"], poi_xy[nearest_poi, 1] - df["y"])
    place = np.where(d_poi < 300, all_poi[nearest_poi], comm_name)
    template_pick = rng.random(m)
    desc = np.empty(m, dtype=object)
    for code, group in df.groupby("_code").groups.items():
        options = _TEMPLATES[code]
        idx = np.asarray(group)
        choice = (template_pick[idx] * len(options)).astype(int)
        desc[idx] = [options[c].format(place=place[i]) for c, i in zip(choice, idx, strict=True)]
    channel = df["_channel"].to_numpy()
    seq = pd.Series(np.arange(m)).groupby(channel).cumcount().to_numpy() + 1
    year = df["local"].dt.year.astype(str).to_numpy()
    prefix = pd.Series(channel).map(_TICKET_PREFIX).to_numpy()
    ticket = prefix + "-" + year + "-" + pd.Series(seq).map("{:07d}".format).to_numpy()
    caller = np.isin(channel, ("hotline_12345", "app"))
    surname = rng.choice(_SURNAMES, size=m)
    title = np.where(rng.random(m) < 0.5, "先生", "女士")
    phones = pd.Series(rng.integers(130_0000_0000, 189_9999_9999, size=m)).astype(str).to_numpy()
    anonymous = rng.random(m) < 0.15
    name = np.where(caller & ~anonymous, surname + title, np.where(channel == "patrol", "巡查员" + surname, ""))
    phone = np.where(caller & ~anonymous, phones, "")
    photo = np.where(np.isin(channel, ("app", "patrol")),
                     "https://sample.casegrid.invalid/photos/" + pd.Series(ticket).to_numpy() + ".jpg", "")
    return pd.DataFrame({
        "工单编号": ticket,
        "来源渠道": pd.Series(channel).map(_CHANNEL_TEXT).to_numpy(),
        "诉求类型": df["_code"].map(lambda c: CATEGORIES[c][1]).to_numpy(),
        "诉求内容": desc,
        "地址": "滕州市" + sub_name + comm_name + np.where(place != comm_name, place + "附近", ""),
        "经度": np.round(out_x, 6),
        "纬度": np.round(out_y, 6),
        "坐标系": system,
        "来电时间": df["local"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(),
        "来电人": name,
        "联系电话": phone,
        "附件": photo,
        "备注": "合成样例数据(SYNTHETIC)",
        "_code": df["_code"].to_numpy(),
        "_channel": channel,
        "_lon": df["_lon"].to_numpy(),
        "_lat": df["_lat"].to_numpy(),
        "_community": comm["code"].astype(str).to_numpy(),
    })


def write_sample_csv(path: str | Path, n: int = DEFAULT_N, seed: int = DEFAULT_SEED,
                     start: pd.Timestamp = PERIOD_START) -> Path:
    """Write the synthetic complaints as a 12345-style CSV (UTF-8 with BOM) and return the path."""
    path = Path(path)
    frame = generate(n, seed, start)
    frame[[c for c in frame.columns if not c.startswith("_")]].to_csv(
        path, index=False, encoding="utf-8-sig")
    return path


def load_sample_complaints(conn_or_engine: Engine | Connection, n: int = DEFAULT_N,
                           seed: int = DEFAULT_SEED, progress=None,  # noqa: ANN001
                           start: pd.Timestamp | None = PERIOD_START):  # noqa: ANN201
    """Generate the synthetic year and load it through the bulk import (committed,
    backdated: received at the reported time). Returns the import's ``BulkReport``.
    ``start=None`` takes the year that ended yesterday (the demo). Loading the same
    ``(n, seed, start)`` twice stores nothing twice (ticket numbers are deterministic)."""
    start = recent_period_start() if start is None else start
    from cases.bulk_import import import_cases

    with tempfile.TemporaryDirectory(prefix="casegrid-sample-") as tmp:
        csv_path = write_sample_csv(Path(tmp) / f"sample_complaints_{seed}.csv", n, seed, start)
        return import_cases(conn_or_engine, csv_path, MAPPING, commit=True, backdate=True,
                            actor="sample-generator (synthetic)", progress=progress,
                            rejects_path=Path(tmp) / "rejects.csv")

