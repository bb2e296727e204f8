"""Indicators of the case ledger (DOMAIN.md), by community, subdistrict, category, channel
or month.

**Population.** Every figure describes the cohort of cases *received* in the period
(``received_at`` from ``date_from`` 00:00 to the end of ``date_to``, Beijing time, both days
included), as they stand at ``as_of`` (default: now). Each milestone column it reads is
written by exactly one kind of history event (``cases.workflow``), so every figure can be
recomputed from ``case_event``; ``tests/test_stats.py`` does so on a hand-built ledger.

**Counts** (one case counts at most once in each):

* ``accepted`` (受理数): cases received.
* ``registered`` (立案数): accepted at review (an ``accept`` event; ``reviewed_at`` set).
  Rejected cases, merged duplicates included, are accepted but not registered.
* ``dispatched`` (派遣数): dispatched at least once (``dispatched_at`` set).
* ``due_to_close`` (应结案数): dispatched cases that are closed, or whose handling deadline
  (``handle_due_at``, after approved extensions) has passed by ``as_of``. A case still
  inside its time limit is not yet due, so it neither helps nor hurts the rates.
* ``closed`` (结案数): dispatched cases that are closed.
* ``closed_on_time`` (按期结案数): closed cases whose final accepted handling (the ``handle``
  event that verification did not send back) is at or before ``handle_due_at``.
* ``due_to_handle`` (应处置数): dispatched cases handled, or past ``handle_due_at``;
  ``handled_on_time`` (按期处置数): the final handling at or before ``handle_due_at``.
* ``reworked`` (返工数): cases due to close that failed verification at least once.
* ``extended`` (延期数): cases due to close with at least one approved extension.
* ``due_reply`` (应回复数): complainants owed an answer: cases from every channel except
  ``patrol`` (found by inspectors: nobody to answer) that were answered, or whose reply
  deadline has passed. Each merged duplicate is its own complainant.
* ``replied`` (回复数) / ``replied_on_time`` (按期回复数): answered / answered at or before
  ``reply_due_at``.
* ``acknowledged_on_time`` (按时签收数): dispatched cases whose first acknowledgement (签收)
  came within its limit (``acknowledged_on_time``, set by the ``acknowledge`` action, which
  also keeps this count in ``case_stat``).

* ``due_follow_up`` (应回访数): complainants (not ``patrol``) answered at least once: replied
  now, or sent back to be redone (``reopen``) and waiting for the new reply.
* ``followed_up`` (回访数): those whose last follow-up reached them (满意, 基本满意 or 不满意;
  未能联系 is an attempt, not a follow-up); ``satisfied`` (满意数): last result 满意 or 基本满意.
* ``reopened`` (重办数): cases sent back to be redone (发回重办) at least once.

**Rates** (None when the denominator is 0): 立案率 ``registered/accepted``; 派遣率
``dispatched/registered``; 结案率 ``closed/due_to_close``; 按期结案率
``closed_on_time/due_to_close``; 按期处置率 ``handled_on_time/due_to_handle``; 返工率
``reworked/due_to_close``; 延期率 ``extended/due_to_close``; 回复率
``replied_on_time/due_reply``; 按时签收率 ``acknowledged_on_time/dispatched``; 回访率
``followed_up/due_follow_up``; 满意率 ``satisfied/followed_up`` (commonly graded against an
85% floor); 重办率 ``reopened/due_follow_up``.

**Handling time**: working hours (work periods of working days only) from the last dispatch
to the final handling, ``handle_hours``; average and 90th percentile (continuous) over the
handled cases of the group.

**Ranking of community posts**: communities with at least one case due to close, by
按期结案率, then 结案率, then more cases due to close, then community code.

**How it is computed.** Counts that no longer change with the clock are read from
``case_stat`` (per day of receipt and dimension, kept by triggers on ``"case"`` in the same
transaction as every write: migration 0003), the follow-up counts from ``case_follow_stat``
(kept the same way by row triggers that skip cases without follow-up: migration 0022); the
parts that depend on ``as_of`` (past the handling or reply deadline but not done) are
counted live over the *open* cases of the period only. :func:`compute_stats_direct` computes the same figures with one scan of
``"case"``; tests check that both agree. The 90th percentile comes from a 32-bucket
histogram of handling times (linear inside the bucket: exact to within the bucket width,
0.5 h below 2 h, up to 1 working day around 15 working days); the average is exact.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput
from cases.calendar import CITY_TZ
from cases.filters import day_window
from cases.vocabulary import has_complainant_sql, unclosed_sql

GROUPS: dict[str, str] = {
    "community": "community_code",
    "subdistrict": "subdistrict_code",
    "category": "category_code",
    "channel": "channel",
    "month": f"to_char(received_at AT TIME ZONE '{CITY_TZ.key}', 'YYYY-MM')",
}
COUNTS: tuple[str, ...] = (
    "accepted", "registered", "dispatched", "due_to_close", "closed", "closed_on_time",
    "due_to_handle", "handled_on_time", "reworked", "extended", "due_reply", "replied",
    "replied_on_time", "acknowledged_on_time", "due_follow_up", "followed_up", "satisfied",
    "reopened",
)
RATES: dict[str, tuple[str, str]] = {
    "registration_rate": ("registered", "accepted"),        # 立案率
    "dispatch_rate": ("dispatched", "registered"),          # 派遣率
    "close_rate": ("closed", "due_to_close"),               # 结案率
    "on_time_close_rate": ("closed_on_time", "due_to_close"),  # 按期结案率
    "on_time_handle_rate": ("handled_on_time", "due_to_handle"),  # 按期处置率
    "rework_rate": ("reworked", "due_to_close"),            # 返工率
    "extension_rate": ("extended", "due_to_close"),         # 延期率
    "reply_rate": ("replied_on_time", "due_reply"),         # 回复率
    "on_time_ack_rate": ("acknowledged_on_time", "dispatched"),  # 按时签收率
    "follow_up_rate": ("followed_up", "due_follow_up"),     # 回访率
    "satisfaction_rate": ("satisfied", "followed_up"),      # 满意率
    "reopen_rate": ("reopened", "due_follow_up"),           # 重办率
}
LABELS_ZH: dict[str, str] = {
    "key": "分组", "name": "名称", "accepted": "受理数", "registered": "立案数",
    "dispatched": "派遣数", "due_to_close": "应结案数", "closed": "结案数",
    "closed_on_time": "按期结案数", "due_to_handle": "应处置数", "handled_on_time": "按期处置数",
    "reworked": "返工数", "extended": "延期数", "due_reply": "应回复数", "replied": "回复数",
    "replied_on_time": "按期回复数", "acknowledged_on_time": "按时签收数",
    "on_time_ack_rate": "按时签收率", "registration_rate": "立案率", "dispatch_rate": "派遣率",
    "due_follow_up": "应回访数", "followed_up": "回访数",
    "satisfied": "满意数", "reopened": "重办数", "follow_up_rate": "回访率",
    "satisfaction_rate": "满意率", "reopen_rate": "重办率",
    "close_rate": "结案率", "on_time_close_rate": "按期结案率", "on_time_handle_rate": "按期处置率",
    "rework_rate": "返工率", "extension_rate": "延期率", "reply_rate": "回复率",
    "avg_handle_hours": "平均处置时长(工作小时)", "p90_handle_hours": "90%处置时长(工作小时)",
    "rank": "排名", "post_name": "城市管理岗",
}

_DUE_CLOSE = "dispatched_at IS NOT NULL AND (closed_at IS NOT NULL OR handle_due_at <= :as_of)"
# Cases with someone to answer (no inspector's own find): the reply and follow-up rates' base.
_COMPLAINANT = has_complainant_sql("")
_UNCLOSED = unclosed_sql("")
_STATS_SQL = f"""
WITH cohort AS (
    SELECT {{key}} AS key, community_code, channel, reviewed_at, dispatched_at, handled_at,
           handle_due_at, closed_at, replied_at, reply_due_at, rework_count, extension_count,
           handle_hours, acknowledged_on_time, follow_up_result, reopen_count
    FROM "case"
    WHERE received_at >= :lo AND received_at < :hi
)
SELECT GROUPING(key) AS g_key, GROUPING(community_code) AS g_comm, key, community_code,
       count(*) AS accepted,
       count(*) FILTER (WHERE reviewed_at IS NOT NULL) AS registered,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL) AS dispatched,
       count(*) FILTER (WHERE {_DUE_CLOSE}) AS due_to_close,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND closed_at IS NOT NULL) AS closed,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND closed_at IS NOT NULL
                          AND handled_at <= handle_due_at) AS closed_on_time,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL
                          AND (handled_at IS NOT NULL OR handle_due_at <= :as_of)) AS due_to_handle,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND handled_at <= handle_due_at)
           AS handled_on_time,
       count(*) FILTER (WHERE {_DUE_CLOSE} AND rework_count > 0) AS reworked,
       count(*) FILTER (WHERE {_DUE_CLOSE} AND extension_count > 0) AS extended,
       count(*) FILTER (WHERE {_COMPLAINANT}
                          AND (replied_at IS NOT NULL OR reply_due_at <= :as_of)) AS due_reply,
       count(*) FILTER (WHERE {_COMPLAINANT} AND replied_at IS NOT NULL) AS replied,
       count(*) FILTER (WHERE {_COMPLAINANT} AND replied_at <= reply_due_at)
           AS replied_on_time,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND acknowledged_on_time)
           AS acknowledged_on_time,
       count(*) FILTER (WHERE {_COMPLAINANT} AND (replied_at IS NOT NULL
                                                       OR reopen_count > 0)) AS due_follow_up,
       count(*) FILTER (WHERE {_COMPLAINANT} AND follow_up_result
                          IN ('satisfied', 'basically_satisfied', 'dissatisfied')) AS followed_up,
       count(*) FILTER (WHERE {_COMPLAINANT} AND follow_up_result
                          IN ('satisfied', 'basically_satisfied')) AS satisfied,
       count(*) FILTER (WHERE {_COMPLAINANT} AND reopen_count > 0) AS reopened,
       avg(handle_hours) AS avg_handle_hours,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY handle_hours) AS p90_handle_hours
FROM cohort
GROUP BY GROUPING SETS ((key), (community_code), ())
"""


HIST_EDGES: tuple[float, ...] = (0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 21, 24, 30,
                                 36, 45, 54, 60, 75, 90, 105, 120, 150, 180, 225, 270, 360,
                                 450, 600)
_STORED = ("accepted", "registered", "dispatched", "closed", "closed_on_time",
           "closed_reworked", "closed_extended", "handled", "handled_on_time", "replied",
           "replied_on_time", "acknowledged_on_time")
_HIST = tuple(f"h{i:02d}" for i in range(1, len(HIST_EDGES) + 1))
_AGG_SQL = """
SELECT {key} AS key, {sums}, sum(hours_sum) AS hours_sum, sum(hours_n)::int AS hours_n
FROM case_stat WHERE dim = :dim AND day BETWEEN :d1 AND :d2 GROUP BY 1
HAVING sum(accepted) > 0
"""
_LIVE_SQL = f"""
SELECT GROUPING({{key}}) AS g_key, GROUPING(community_code) AS g_comm, {{key}} AS key,
       community_code,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND handle_due_at <= :as_of) AS due_open,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND handle_due_at <= :as_of
                          AND rework_count > 0) AS reworked_open,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND handle_due_at <= :as_of
                          AND extension_count > 0) AS extended_open,
       count(*) FILTER (WHERE dispatched_at IS NOT NULL AND handled_at IS NULL
                          AND handle_due_at <= :as_of) AS handle_open,
       count(*) FILTER (WHERE {_COMPLAINANT} AND replied_at IS NULL
                          AND reply_due_at <= :as_of) AS reply_open
FROM "case"
WHERE {_UNCLOSED} AND received_at >= :lo AND received_at < :hi
GROUP BY GROUPING SETS (({{key}}), (community_code), ())
"""
_LIVE = ("due_open", "reworked_open", "extended_open", "handle_open", "reply_open")
_FOLLOW = ("followed_up", "satisfied", "reopened", "reopened_unreplied")
_FOLLOW_SQL = """
SELECT {key} AS key, {sums} FROM case_follow_stat
WHERE dim = :dim AND day BETWEEN :d1 AND :d2 GROUP BY 1
"""


def period_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The half-open moment range of the days ``date_from``..``date_to`` in the city's time
    zone (:func:`cases.filters.day_window`), refused when ``to`` is before ``from``."""
    if date_to < date_from:
        raise InvalidInput(f"to ({date_to}) is before from ({date_from})", field="to")
    return day_window(date_from, date_to)


def rates(row: dict) -> dict[str, float | None]:
    """The DOMAIN.md rates of one row of counts (None where the denominator is 0)."""
    return {name: (round(row[num] / row[den], 4) if row[den] else None)
            for name, (num, den) in RATES.items()}


def _checked_period(conn: Connection, group_by: str, date_from: date, date_to: date,
                    as_of: datetime | None) -> tuple[datetime, datetime, datetime]:
    """The grouping checked, the period's bounds, and ``as_of`` (the database's now when
    not given): what both ways of computing the statistics start from."""
    if group_by not in GROUPS:
        raise InvalidInput(f"group_by must be one of {', '.join(GROUPS)}, not {group_by!r}",
                           field="group_by")
    lo, hi = period_bounds(date_from, date_to)
    if as_of is None:
        as_of = conn.execute(text("SELECT now()")).scalar_one()
    return lo, hi, as_of


def _report(conn: Connection, group_by: str, date_from: date, date_to: date, as_of: datetime,
            groups: list[dict], total: dict, communities: list[dict]) -> dict[str, Any]:
    """The statistics as both ways return them: the groups named and sorted (no key last),
    the totals, and the post ranking of ``communities``."""
    names = _names(conn, group_by, [g["key"] for g in groups])
    for g in groups:
        g["name"] = names.get(g["key"])
    groups.sort(key=lambda g: (g["key"] is None, g["key"] or ""))
    return {
        "group_by": group_by, "from": date_from.isoformat(), "to": date_to.isoformat(),
        "as_of": as_of.isoformat(), "groups": groups, "total": total,
        "ranking": _ranking(conn, communities),
    }


def compute_stats(
    conn: Connection, group_by: str, date_from: date, date_to: date,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Indicators of the cases received from ``date_from`` to ``date_to`` (both included),
    grouped by ``group_by`` (one of :data:`GROUPS`), plus totals and the post ranking.
    Reads ``case_stat`` plus the open cases (see module docstring)."""
    lo, hi, as_of = _checked_period(conn, group_by, date_from, date_to, as_of)
    d = {"d1": date_from, "d2": date_to}
    dim = "channel" if group_by == "month" else group_by
    key = "to_char(day, 'YYYY-MM')" if group_by == "month" else "key"
    main = _stored(conn, dim, key, d)
    comm = main if group_by == "community" else _stored(conn, "community", "key", d)
    total = _sum_stored(main.values())
    follow = _follow(conn, dim, key, d)
    follow_comm = follow if group_by == "community" else _follow(conn, "community", "key", d)
    follow_total = {c: sum(f[c] for f in follow.values()) for c in _FOLLOW}
    live = conn.execute(
        text(_LIVE_SQL.replace("{key}", GROUPS[group_by])),
        {"lo": lo, "hi": hi, "as_of": as_of}).mappings().all()
    live_main, live_comm, live_total = {}, {}, {}
    for r in live:
        vals = {k: r[k] for k in _LIVE}
        if r["g_key"] == 0:
            live_main[_k(r["key"])] = vals
        elif r["g_comm"] == 0:
            live_comm[_k(r["community_code"])] = vals
        else:
            live_total = vals
    if group_by == "community":  # both grouping sets are the same column then
        live_comm = live_main
    groups = [{"key": None if k == "" else k,
               **_combine(main.get(k), live_main.get(k), follow.get(k))}
              for k in sorted(set(main) | set(live_main))]
    communities = [{"key": None if k == "" else k,
                    **_combine(comm.get(k), live_comm.get(k), follow_comm.get(k))}
                   for k in set(comm) | set(live_comm)]
    return _report(conn, group_by, date_from, date_to, as_of, groups,
                   _combine(total or None, live_total or None, follow_total), communities)


def _k(value: object) -> str:
    return "" if value is None else str(value)


def _stored(conn: Connection, dim: str, key: str, d: dict) -> dict[str, dict]:
    sums = ", ".join(f"sum({c})::int AS {c}" for c in _STORED + _HIST)
    out: dict[str, dict] = {}
    for r in conn.execute(text(_AGG_SQL.format(key=key, sums=sums)), {"dim": dim, **d}).mappings():
        out[r["key"]] = {**dict(r), "hist": [r[h] for h in _HIST]}
    return out


def _follow(conn: Connection, dim: str, key: str, d: dict) -> dict[str, dict]:
    sums = ", ".join(f"sum({c})::int AS {c}" for c in _FOLLOW)
    rows = conn.execute(text(_FOLLOW_SQL.format(key=key, sums=sums)), {"dim": dim, **d})
    return {r["key"]: dict(r) for r in rows.mappings()}


def _sum_stored(rows) -> dict | None:
    rows = list(rows)
    if not rows:
        return None
    out = {c: sum(r[c] for r in rows) for c in (*_STORED, "hours_sum", "hours_n")}
    out["hist"] = [sum(col) for col in zip(*(r["hist"] for r in rows), strict=True)]
    return out


def _combine(stored: dict | None, live: dict | None, follow: dict | None = None) -> dict:
    s = stored or {c: 0 for c in _STORED} | {"hours_sum": 0.0, "hours_n": 0, "hist": []}
    lv = live or dict.fromkeys(_LIVE, 0)
    f = follow or dict.fromkeys(_FOLLOW, 0)
    counts = {
        "accepted": s["accepted"], "registered": s["registered"], "dispatched": s["dispatched"],
        "due_to_close": s["closed"] + lv["due_open"], "closed": s["closed"],
        "closed_on_time": s["closed_on_time"],
        "due_to_handle": s["handled"] + lv["handle_open"],
        "handled_on_time": s["handled_on_time"],
        "reworked": s["closed_reworked"] + lv["reworked_open"],
        "extended": s["closed_extended"] + lv["extended_open"],
        "due_reply": s["replied"] + lv["reply_open"], "replied": s["replied"],
        "replied_on_time": s["replied_on_time"],
        "acknowledged_on_time": s["acknowledged_on_time"],
        "due_follow_up": s["replied"] + f["reopened_unreplied"], "followed_up": f["followed_up"],
        "satisfied": f["satisfied"], "reopened": f["reopened"],
    }
    out = {c: int(counts[c]) for c in COUNTS}
    out.update(rates(out))
    n = s["hours_n"]
    out["avg_handle_hours"] = round(s["hours_sum"] / n, 2) if n else None
    out["p90_handle_hours"] = histogram_quantile(s["hist"], 0.9)
    return out


def histogram_quantile(hist: list[int], q: float) -> float | None:
    """The ``q`` quantile (continuous, like ``percentile_cont``) of values counted in the
    :data:`HIST_EDGES` buckets, assuming values spread evenly inside each bucket."""
    n = sum(hist)
    if n <= 0:
        return None
    rank = q * (n - 1) + 0.5  # position of the quantile among n evenly spread values
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            lo = HIST_EDGES[i]
            hi = HIST_EDGES[i + 1] if i + 1 < len(HIST_EDGES) else lo * 1.5
            return round(lo + (hi - lo) * (rank - seen) / count, 2)
        seen += count
    return float(HIST_EDGES[-1])


def compute_stats_direct(
    conn: Connection, group_by: str, date_from: date, date_to: date,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The same indicators from one scan of ``"case"`` (exact percentile; slow at a million
    cases): the reference :func:`compute_stats` is checked against."""
    lo, hi, as_of = _checked_period(conn, group_by, date_from, date_to, as_of)
    rows = conn.execute(text(_STATS_SQL.replace("{key}", GROUPS[group_by])),
                        {"lo": lo, "hi": hi, "as_of": as_of}).mappings().all()
    groups, communities, total = [], [], None
    for r in rows:
        item = _finish(dict(r))
        if r["g_key"] == 0:
            groups.append({"key": r["key"], **item})
        elif r["g_comm"] == 0:
            communities.append({"key": r["community_code"], **item})
        else:
            total = item
    return _report(conn, group_by, date_from, date_to, as_of, groups,
                   total or _finish({c: 0 for c in COUNTS} | {"avg_handle_hours": None,
                                                               "p90_handle_hours": None}),
                   communities)


def _finish(r: dict) -> dict:
    out = {c: int(r[c]) for c in COUNTS}
    out.update(rates(out))
    for k in ("avg_handle_hours", "p90_handle_hours"):
        out[k] = None if r.get(k) is None else round(float(r[k]), 2)
    return out


def _names(conn: Connection, group_by: str, keys: list) -> dict:
    keys = [k for k in keys if k is not None]
    if group_by == "community":
        sql = ("SELECT DISTINCT ON (c.code) c.code, c.name FROM community c JOIN "
               "boundary_generation g ON g.id = c.generation_id WHERE c.code = ANY(:k) "
               "ORDER BY c.code, g.active DESC, g.id DESC")
    elif group_by == "subdistrict":
        sql = ("SELECT DISTINCT ON (s.code) s.code, s.name FROM subdistrict s JOIN "
               "boundary_generation g ON g.id = s.generation_id WHERE s.code = ANY(:k) "
               "ORDER BY s.code, g.active DESC, g.id DESC")
    elif group_by == "category":
        sql = "SELECT code, name_zh AS name FROM category WHERE code = ANY(:k)"
    else:
        return {}
    return {r.code: r.name for r in conn.execute(text(sql), {"k": keys})}


def _ranking(conn: Connection, communities: list[dict]) -> list[dict]:
    ranked = [c for c in communities if c["key"] is not None and c["due_to_close"] > 0]
    ranked.sort(key=lambda c: (-(c["on_time_close_rate"] or 0), -(c["close_rate"] or 0),
                               -c["due_to_close"], c["key"]))
    names = _names(conn, "community", [c["key"] for c in ranked])
    posts = {r.community_code: r.name for r in conn.execute(
        text("SELECT community_code, name FROM community_post WHERE community_code = ANY(:k)"),
        {"k": [c["key"] for c in ranked]})}
    return [{"rank": i, "community_code": c["key"], "name": names.get(c["key"]),
             "post_name": posts.get(c["key"]), "due_to_close": c["due_to_close"],
             "closed": c["closed"], "closed_on_time": c["closed_on_time"],
             "close_rate": c["close_rate"], "on_time_close_rate": c["on_time_close_rate"],
             "reply_rate": c["reply_rate"], "satisfaction_rate": c["satisfaction_rate"]}
            for i, c in enumerate(ranked, start=1)]
