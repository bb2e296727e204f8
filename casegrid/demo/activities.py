"""A SYNTHETIC year of community city-management activities for the sample city.

Nothing here is real: every activity is made up by a seeded random generator (same seed,
same activities). The shape follows what Tengzhou's bureau reports (DOMAIN.md: 500+
activities reaching 900,000+ people, volunteer clean-ups and garbage-sorting outreach into
schools, communities, plazas, parks and villages): about ten activities a week across the 55
posts, outreach into schools at a school, into parks and plazas at a park or plaza, campaigns
at markets; one in ten held jointly with a neighbouring post; mostly on working days in
daytime, volunteer clean-ups on weekends. Each is stored with ``source = 'synthetic'`` and
its note says so. Loading again stores nothing twice (each has its own import key).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
from sqlalchemy import Connection, text

from cases.activities import NewActivity, store_activity
from cases.calendar import CITY_TZ
from cases.privacy import mask_contacts

SYNTHETIC_NOTE = ("SYNTHETIC sample data (casegrid/demo/activities.py): this activity is "
                  "generated, not real.")
DEFAULT_SEED = 20260101
PER_WEEK = 10
# kind -> (share, POI kind it takes place at or None, median people reached)
PROFILE: dict[str, tuple[float, str | None, int]] = {
    "sorting_outreach": (0.22, None, 900),
    "volunteer": (0.20, None, 300),
    "school": (0.14, "school", 1200),
    "community": (0.14, None, 1500),
    "plaza": (0.10, "park_plaza", 3500),
    "park": (0.08, "park_plaza", 2500),
    "village": (0.04, None, 800),
    "campaign": (0.08, "market", 600),
}
TITLES = {
    "sorting_outreach": "垃圾分类科普宣传", "volunteer": "志愿者环境清扫",
    "school": "城市管理进校园", "community": "城市管理进社区", "plaza": "城市管理进广场",
    "park": "城市管理进公园", "village": "城市管理进村居", "campaign": "集中整治",
}


def load_sample_activities(conn: Connection, start: date, days: int = 365,
                           seed: int = DEFAULT_SEED) -> int:
    """Store the synthetic activities of ``days`` days from ``start``; returns how many were
    new (0 when they are there already)."""
    rng = np.random.default_rng(seed)
    comms = conn.execute(text(
        "SELECT c.code, c.name, ST_X(p) AS lon, ST_Y(p) AS lat FROM community c "
        "JOIN boundary_generation g ON g.id = c.generation_id AND g.active "
        "CROSS JOIN LATERAL ST_PointOnSurface(c.geom) p ORDER BY c.code")).all()
    if not comms:
        return 0
    pois = {}
    for r in conn.execute(text(
            "SELECT kind, id, name, ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) "
            "AS lat, (SELECT c.code FROM community c JOIN boundary_generation g ON "
            "g.id = c.generation_id AND g.active WHERE ST_Covers(c.geom, ST_PointOnSurface(poi.geom)) "
            "LIMIT 1) AS community FROM poi ORDER BY id")):
        pois.setdefault(r.kind, []).append(r)
    kinds = list(PROFILE)
    shares = np.array([PROFILE[k][0] for k in kinds])
    n = int(days / 7 * PER_WEEK)
    stored = 0
    for i in range(n):
        kind = kinds[rng.choice(len(kinds), p=shares / shares.sum())]
        day = start + timedelta(days=int(rng.integers(0, days)))
        if kind == "volunteer" and rng.random() < 0.6:
            day += timedelta(days=(5 - day.weekday()) % 7)  # the next Saturday
        elif day.weekday() >= 5:
            day += timedelta(days=7 - day.weekday())  # the Monday after
        if day >= start + timedelta(days=days):
            day -= timedelta(days=7)
        hour = int(rng.choice([9, 10, 14, 15, 16] if kind != "volunteer" else [8, 9]))
        started = datetime.combine(day, time(hour, 0), CITY_TZ)
        poi_kind = PROFILE[kind][1]
        place_poi = None
        if poi_kind and pois.get(poi_kind):
            place_poi = pois[poi_kind][int(rng.integers(0, len(pois[poi_kind])))]
        home = next((c for c in comms if place_poi is not None and c.code == place_poi.community),
                    comms[int(rng.integers(0, len(comms)))])
        codes = [home.code]
        if rng.random() < 0.1:
            codes.append(comms[(comms.index(home) + 1) % len(comms)].code)
        lon, lat = ((place_poi.lon, place_poi.lat) if place_poi is not None else
                    (home.lon + float(rng.normal(0, 0.002)), home.lat + float(rng.normal(0, 0.002))))
        reached = int(max(20, rng.lognormal(np.log(PROFILE[kind][2]), 0.5)))
        staff = int(rng.integers(2, 8))
        activity = NewActivity(
            started_at=started, ended_at=started + timedelta(hours=2), kind=kind, kind_name=None,
            title=f"{home.name}{TITLES[kind]}", communities=tuple(codes),
            place=place_poi.name if place_poi is not None else home.name,
            poi_id=place_poi.id if place_poi is not None else None, lon=lon, lat=lat,
            staff=staff, volunteers=int(rng.integers(0, 30)), reached=reached,
            note=mask_contacts(SYNTHETIC_NOTE))  # as every activity note is stored
        if store_activity(conn, activity, "sample activities", "synthetic",
                          f"synthetic:{seed}:{start.isoformat()}:{i}") is not None:
            stored += 1
    return stored

