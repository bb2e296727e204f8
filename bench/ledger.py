"""A million-case ledger for the statistics and map benchmarks.

* :func:`write_hotline_csv` writes a 12345 work-order export (the shipped
  ``hotline12345_zh`` mapping's columns) fast and deterministically: locations from
  :mod:`bench.points`, categories and channels in the shares of
  ``casegrid.demo.complaints`` (noise first), each channel's coordinate system (apps and the
  platform GCJ-02, the hotline's map GCJ-02 or BD-09, patrol handsets WGS-84), timestamps
  over the sample year. (``casegrid.demo.complaints.generate`` makes richer rows but takes
  minutes for a million on this machine.)
* :func:`ensure_cases` tops the ledger up to ``n`` cases with one set-based
  ``INSERT ... SELECT`` (cases and their register events) when the bulk-import benchmark
  did not run or did not finish; each case gets a street address (one of
  :data:`STREETS`, house numbers 1-800) and, from the hotline and the app, a mobile
  number, as the search box meets them.
* :func:`fill_workflow` moves the cases through the closed loop set-based, in one UPDATE:
  the newest 10% (by receipt) are still open, spread over the open states; of the rest
  about 5% were rejected at review and the others closed, some late, some reworked or
  extended. Only ``"case"`` columns are written: ``cases.stats`` and the maps read those,
  never ``case_event`` (which keeps the import's register events).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from bench.points import generate_points
from casegrid.demo.complaints import CATEGORIES, PERIOD_DAYS, PERIOD_START
from geo.coords import wgs84_to_bd09, wgs84_to_gcj02

MAPPING = "hotline12345_zh"
OPEN_SHARE = 0.10
_CHANNELS = {"12345热线": 0.55, "城管平台": 0.25, "巡查上报": 0.15, "手机APP": 0.05}
_PREFIX = {"12345热线": "TZ12345", "城管平台": "CGPT", "巡查上报": "XC", "手机APP": "APP"}
# Streets of ensure_cases' addresses ("滕州市<street><n>号").
STREETS = ["文昌路", "善国北路", "学院路", "杏坛路", "北辛路", "荆河路", "塔寺路", "大同路",
           "龙泉路", "平行路", "解放路", "府前路", "益康大道", "红荷大道", "墨子路", "鲁班大道",
           "振兴路", "科圣路", "吉祥路", "春秋路"]
HOUSES = 800
_PLACES = ["文昌路", "善国北路", "龙泉广场", "南关农贸市场", "实验小学", "市立医院", "荆河公园",
           "学院路", "杏坛路", "北辛市场"]


def write_hotline_csv(path: Path, n: int, seed: int = 3) -> Path:
    """Write ``n`` synthetic 12345 work orders (UTF-8 with BOM, Chinese headers)."""
    rng = np.random.default_rng(seed)
    lon, lat = generate_points(n, seed=seed)
    codes = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in codes])
    code_idx = rng.choice(len(codes), size=n, p=shares / shares.sum())
    names = np.array([CATEGORIES[c][1] for c in codes], dtype=object)
    channels = np.array(list(_CHANNELS), dtype=object)
    ch = channels[rng.choice(len(channels), size=n, p=np.array(list(_CHANNELS.values())))]
    system = np.where(ch == "巡查上报", "WGS84", "GCJ-02").astype(object)
    system[(ch == "12345热线") & (rng.random(n) < 0.2)] = "BD-09"
    gx, gy = wgs84_to_gcj02(lon, lat)
    bx, by = wgs84_to_bd09(lon, lat)
    x = np.where(system == "WGS84", lon, np.where(system == "BD-09", bx, gx))
    y = np.where(system == "WGS84", lat, np.where(system == "BD-09", by, gy))
    seconds = np.sort(rng.integers(0, PERIOD_DAYS * 86400, n))
    local = PERIOD_START.tz_localize(None) + pd.to_timedelta(seconds, unit="s")
    place = np.array(_PLACES, dtype=object)[rng.integers(0, len(_PLACES), n)]
    seq = pd.Series(np.arange(1, n + 1)).map("{:08d}".format).to_numpy()
    ticket = pd.Series(ch).map(_PREFIX).to_numpy() + "-BENCH-" + seq
    caller = np.isin(ch, ("12345热线", "手机APP"))
    phone = np.where(caller, pd.Series(rng.integers(130_0000_0000, 189_9999_9999, n)).astype(str), "")
    frame = pd.DataFrame({
        "工单编号": ticket, "来源渠道": ch, "诉求类型": names[code_idx],
        "诉求内容": place + "附近" + names[code_idx] + ",请尽快处理",
        "地址": "滕州市" + place, "经度": np.round(x, 6), "纬度": np.round(y, 6),
        "坐标系": system, "来电时间": local.strftime("%Y-%m-%d %H:%M:%S"),
        "来电人": np.where(caller, "王先生", ""), "联系电话": phone, "附件": "",
        "备注": "合成基准数据(SYNTHETIC)",
    })
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def case_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text('SELECT count(*) FROM "case"')).scalar_one()


# One statement: the points staged in bench_pts become cases (category and channel by the
# sample shares, received over the sample year, routed by one ST_Covers join), each with
# its register event, as the bulk import would write them.
_INSERT_SQL = """
WITH src AS (
    SELECT p.id, p.lon, p.lat,
           ((hashint8(p.id * 3 + CAST(:salt AS bigint)) & 1048575) / 1048576.0)::float8 AS rc,
           ((hashint8(p.id * 5 + CAST(:salt AS bigint)) & 1048575) / 1048576.0)::float8 AS rh,
           hashint8(p.id * 11 + CAST(:salt AS bigint)) & 2147483647 AS ra,
           CAST(:t0 AS timestamptz) + (p.id - 1) * (CAST(:span AS float8) / :n) * interval '1 second' AS at
    FROM bench_pts p
), ins AS (
    INSERT INTO "case" (channel, external_id, category_code, description, address,
                        reporter_phone, reported_at,
                        received_at, geom, input_lon, input_lat, input_crs, community_code,
                        subdistrict_code, post_id, generation_id, route_rule, route_distance_m)
    SELECT CASE WHEN s.rh < 0.55 THEN 'hotline_12345' WHEN s.rh < 0.80 THEN 'platform'
                WHEN s.rh < 0.95 THEN 'patrol' ELSE 'app' END,
           'bench-sql-' || (CAST(:salt AS bigint) + s.id), (CAST(:codes AS text[]))[1 + floor(s.rc * cardinality(CAST(:codes AS text[])))::int],
           '基准数据(SYNTHETIC)',
           '滕州市' || (CAST(:streets AS text[]))[1 + (s.ra % cardinality(CAST(:streets AS text[])))]
               || (1 + (s.ra / 64) % :houses) || '号',
           CASE WHEN s.rh < 0.55 OR s.rh >= 0.95
                THEN '13' || lpad(((s.ra / 64) % 1000000000)::text, 9, '0') END,
           s.at, s.at, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326),
           s.lon, s.lat, 'wgs84', c.code, c.subdistrict_code, po.id, :gen,
           CASE WHEN c.id IS NULL THEN 'outside' ELSE 'inside' END,
           CASE WHEN c.id IS NULL THEN NULL ELSE 0.0 END
    FROM src s
    LEFT JOIN LATERAL (SELECT cp.community_id FROM community_piece cp
                       WHERE cp.generation_id = :gen
                         AND ST_Covers(cp.geom, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326))
                       LIMIT 1) hit ON true
    LEFT JOIN community c ON c.id = hit.community_id
    LEFT JOIN community_post po ON po.community_code = c.code
    RETURNING id, received_at, route_rule
)
INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, data)
SELECT id, received_at, 'bench ledger fill', 'intake', 'register', NULL, 'registered',
       jsonb_build_object('rule', route_rule, 'source', 'bench (synthetic)')
FROM ins
"""


def ensure_cases(engine: Engine, n: int, gen: int, log=print) -> int:  # noqa: ANN001
    """Top the ledger up to at least ``n`` cases with one set-based INSERT ... SELECT (a
    no-op after the bulk-import benchmark committed its million); return the count."""
    have = case_count(engine)
    if have >= n:
        return have
    need = n - have
    codes = list(CATEGORIES)  # the sample shares, as a weighted array of codes
    weighted = [c for c in codes for _ in range(int(round(CATEGORIES[c][0] * 100)))]
    log(f"ledger: {have:,} cases, inserting {need:,} more (one INSERT ... SELECT)")
    lon, lat = generate_points(need, seed=have + 101)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("CREATE TEMP TABLE bench_pts (id bigint PRIMARY KEY, lon float8,"
                          " lat float8) ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy("COPY bench_pts (id, lon, lat) FROM STDIN") as copy:
            for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True), start=1):
                copy.write_row((i, x, y))
        conn.execute(text("ANALYZE bench_pts"))
        conn.execute(text(_INSERT_SQL), {
            "salt": have, "t0": PERIOD_START.to_pydatetime(), "span": PERIOD_DAYS * 86400,
            "n": need, "codes": weighted, "gen": gen, "streets": STREETS, "houses": HOUSES})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text('ANALYZE "case"'))
    return case_count(engine)


# r1..r4: independent, deterministic uniform draws in [0, 1) per case.
_FILL_SQL = """
WITH cut AS (
    SELECT percentile_disc(:closed_share) WITHIN GROUP (ORDER BY received_at) AS t FROM "case"
), r AS (
    SELECT c.id, c.received_at, c.received_at >= cut.t AS is_open,
           ((hashint8(c.id) & 1048575) / 1048576.0)::float8 AS r1,
           ((hashint8(c.id * 7 + 1) & 1048575) / 1048576.0)::float8 AS r2,
           ((hashint8(c.id * 13 + 2) & 1048575) / 1048576.0)::float8 AS r3,
           ((hashint8(c.id * 31 + 3) & 1048575) / 1048576.0)::float8 AS r4
    FROM "case" c, cut
), plan AS (
    SELECT id, received_at, is_open, r2, r3, r4,
           CASE WHEN is_open THEN (CASE WHEN r1 < 0.25 THEN 'registered' WHEN r1 < 0.40 THEN 'reviewed'
                                        WHEN r1 < 0.85 THEN 'dispatched' ELSE 'handled' END)
                WHEN r1 < 0.05 THEN 'rejected' ELSE 'closed' END AS st
    FROM r
), t AS (
    SELECT id, st, is_open, r2, r3, r4,
           received_at + interval '2 hours' + r2 * interval '6 hours' AS rev,
           received_at + interval '4 hours' + r2 * interval '20 hours' AS dis,
           -- most handled inside the 3-day limit, about 12% late
           received_at + interval '4 hours' + r2 * interval '20 hours'
               + (r3 * r3) * interval '96 hours' AS han
    FROM plan
)
UPDATE "case" c SET
    status = t.st,
    version = c.version + 1,
    reviewed_at = CASE WHEN t.st <> 'registered' AND t.st <> 'rejected' THEN t.rev END,
    reject_reason = CASE WHEN t.st = 'rejected' THEN 'out_of_scope' END,
    dispatched_at = CASE WHEN t.st IN ('dispatched', 'handled', 'closed') THEN t.dis END,
    handle_due_at = CASE WHEN t.st IN ('dispatched', 'handled', 'closed')
                         THEN t.dis + interval '72 hours' + CASE WHEN t.r4 < 0.03
                              THEN interval '48 hours' ELSE interval '0' END END,
    handled_at = CASE WHEN t.st IN ('handled', 'closed') THEN t.han END,
    handle_hours = CASE WHEN t.st IN ('handled', 'closed')
                        THEN extract(epoch FROM t.han - t.dis) / 3600 * 0.4 END,
    verified_at = CASE WHEN t.st = 'closed' THEN t.han + interval '6 hours' END,
    replied_at = CASE WHEN t.st = 'closed' AND c.channel <> 'patrol' THEN t.han + interval '12 hours'
                      WHEN t.st = 'rejected' AND c.channel <> 'patrol' THEN t.rev END,
    closed_at = CASE WHEN t.st = 'closed' THEN t.han + interval '24 hours' END,
    rework_count = CASE WHEN t.st = 'closed' AND t.r4 > 0.97 THEN 1 ELSE 0 END,
    extension_count = CASE WHEN t.st IN ('dispatched', 'handled', 'closed') AND t.r4 < 0.03
                           THEN 1 ELSE 0 END,
    current_due_at = CASE WHEN t.st = 'dispatched' THEN t.dis + interval '72 hours'
                          WHEN t.st IN ('closed', 'rejected') THEN NULL
                          ELSE c.current_due_at END,
    updated_at = now()
FROM t WHERE t.id = c.id
"""


def fill_workflow(engine: Engine, log=print) -> dict[str, int]:  # noqa: ANN001
    """Move every case through the loop (see the module docstring) unless done already;
    VACUUM ANALYZE afterwards. Returns cases per status."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, n bigint)"))
        total = conn.execute(text('SELECT count(*) FROM "case"')).scalar_one()
        done = conn.execute(text("SELECT n FROM bench_meta WHERE key = 'workflow'")).scalar()
    if done != total:
        log(f"ledger: moving {total:,} cases through the workflow (one UPDATE)")
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text(_FILL_SQL), {"closed_share": 1 - OPEN_SHARE})
            conn.execute(text("INSERT INTO bench_meta VALUES ('workflow', :n) ON CONFLICT (key)"
                              " DO UPDATE SET n = EXCLUDED.n"), {"n": total})
        log("ledger: VACUUM ANALYZE")
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text('VACUUM (ANALYZE) "case"'))
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(
            text('SELECT status, count(*) FROM "case" GROUP BY status ORDER BY status'))}


_REPLIES_SQL = """
INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, note, data)
SELECT c.id, c.replied_at, 'bench', 'dispatcher', 'reply', 'verified', 'replied', t.txt,
       jsonb_build_object('channel', 'phone', 'text', t.txt, 'on_time', true)
FROM "case" c
CROSS JOIN LATERAL (SELECT '您反映的问题已由' || coalesce(c.community_code, '') ||
                           '社区城市管理岗处理完毕,感谢您的监督。' AS txt) t
WHERE c.replied_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id AND e.action = 'reply')
"""


def fill_replies(engine: Engine, log=print) -> int:  # noqa: ANN001
    """Give every answered case of :func:`fill_workflow` its reply event (the text the
    ledger export and the hotline replies read), set-based, unless done already; returns
    the reply events."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, n bigint)"))
        want = conn.execute(text('SELECT count(*) FROM "case" WHERE replied_at IS NOT NULL')
                            ).scalar_one()
        done = conn.execute(text("SELECT n FROM bench_meta WHERE key = 'replies'")).scalar()
    if done != want:
        log(f"ledger: writing {want:,} reply events (one INSERT ... SELECT)")
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text(_REPLIES_SQL))
            conn.execute(text("INSERT INTO bench_meta VALUES ('replies', :n) ON CONFLICT (key)"
                              " DO UPDATE SET n = EXCLUDED.n"), {"n": want})
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM (ANALYZE) case_event"))
    return want
