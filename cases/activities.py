"""The activities ledger (活动台账): community city-management activities (volunteer
clean-ups, garbage-sorting outreach, the "五进" into schools, communities, plazas, parks and
villages, clean-up campaigns), their posts, place and people reached, and the counts the
bureau reports by month, type, community and subdistrict.

One activity may be held by several posts together (``activity_community``): it counts once
for each of them in the per-community figures and once in every total, so a joint
activity is never counted twice in the city's or a subdistrict's figures.

Who records: community officers (for their own communities only), dispatchers, supervisors
and admins; planners and the other roles read.

Titles, places and notes are free text: stored masked by the one rule of
:mod:`cases.privacy`, their text as written kept in ``personal_text`` and read only through
:func:`cases.personal_text.reveal_activity`, which the activity's history
(``activity_event``) records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from casegrid.errors import Forbidden, InvalidInput, NotFound
from cases.calendar import CITY_TZ
from cases.personal_text import ACTIVITY_TEXT_FIELDS, mask_payload
from cases.personal_text import store as store_originals
from cases.stats import period_bounds
from cases.tokens import Principal
from geo.coords import check_point, to_wgs84

# kind -> (Chinese, English)
KINDS: dict[str, tuple[str, str]] = {
    "volunteer": ("志愿服务", "volunteer service"),
    "sorting_outreach": ("垃圾分类科普", "garbage-sorting outreach"),
    "school": ("进校园", "into schools"),
    "community": ("进社区", "into communities"),
    "plaza": ("进广场", "into plazas"),
    "park": ("进公园", "into parks"),
    "village": ("进村居", "into villages"),
    "campaign": ("集中整治", "clean-up campaign"),
    "other": ("其他", "other"),
}
KIND_BY_NAME = {zh: k for k, (zh, _en) in KINDS.items()} | {k: k for k in KINDS}
RECORDERS = ("community_officer", "dispatcher", "supervisor", "admin")
SOURCES = ("api", "workbench", "import", "synthetic")
MAX_PEOPLE = 1_000_000


@dataclass(frozen=True)
class NewActivity:
    """A checked activity, ready to store (``lon``/``lat`` in WGS-84)."""

    started_at: datetime
    ended_at: datetime | None
    kind: str
    kind_name: str | None
    title: str
    communities: tuple[str, ...]
    place: str | None
    poi_id: int | None
    lon: float | None
    lat: float | None
    staff: int
    volunteers: int
    reached: int
    note: str | None
    # The texts as written where masking changed them, by field (cases.personal_text).
    originals: dict[str, str] = field(default_factory=dict)


def _count(data: dict, name: str) -> int:
    value = data.get(name, 0)
    if value in (None, ""):
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"{name} must be a whole number of people", field=name)
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number of people, not {value!r}",
                           field=name) from None
    if number != int(number) or not 0 <= number <= MAX_PEOPLE:
        raise InvalidInput(f"{name} must be a whole number from 0 to {MAX_PEOPLE:,}",
                           field=name)
    return int(number)


def _time(value: Any, name: str) -> datetime:
    form = f"{name} must be an ISO 8601 time with its offset, e.g. 2026-05-20T09:00:00+08:00"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{form}, not {value!r}", field=name) from None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{form}, not {str(value)!r}", field=name)
    return value


def check_activity(conn: Connection, data: dict, actor: Principal) -> NewActivity:
    """Check an activity's fields (422 naming the field) and the actor's right to record it
    for its communities (403)."""
    if actor.role not in RECORDERS:
        raise Forbidden(f"role {actor.role!r} may not record activities; allowed: "
                        f"{', '.join(RECORDERS)}", field="role")
    kind = KIND_BY_NAME.get(str(data.get("kind") or "").strip())
    if kind is None:
        raise InvalidInput("kind must be one of " + ", ".join(
            f"{k} ({zh})" for k, (zh, _) in KINDS.items()), field="kind")
    kind_name = (data.get("kind_name") or "").strip() or None
    if kind == "other" and not kind_name:
        raise InvalidInput("kind other needs kind_name: what the activity was", field="kind_name")
    title = str(data.get("title") or "").strip()
    if not 1 <= len(title) <= 200:
        raise InvalidInput("title is required (at most 200 characters)", field="title")
    codes = data.get("communities") or data.get("community_codes")
    if isinstance(codes, str):
        codes = [c.strip() for c in codes.replace("、", ",").split(",") if c.strip()]
    if not codes or not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise InvalidInput("communities must list the code of at least one community post "
                           "that held the activity", field="communities")
    codes = tuple(dict.fromkeys(codes))
    known = set(conn.execute(text(
        "SELECT c.code FROM community c JOIN boundary_generation g ON g.id = c.generation_id "
        "AND g.active WHERE c.code = ANY(:k)"), {"k": list(codes)}).scalars())
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise InvalidInput(f"communities: no community {', '.join(unknown)} in the active "
                           "boundaries", field="communities")
    foreign = [c for c in codes if not actor.may_see_community(c)]
    if foreign:
        raise Forbidden(f"you record activities for your own communities only, not "
                        f"{', '.join(foreign)}", field="communities")
    started = _time(data.get("started_at"), "started_at")
    ended = _time(data["ended_at"], "ended_at") if data.get("ended_at") else None
    if ended is not None and ended < started:
        raise InvalidInput("ended_at is before started_at", field="ended_at")
    poi_id = data.get("poi_id")
    if poi_id is not None and (isinstance(poi_id, bool) or not isinstance(poi_id, int) or not
                               conn.execute(text("SELECT 1 FROM poi WHERE id = :i"),
                                            {"i": poi_id}).first()):
        raise InvalidInput(f"poi_id {poi_id!r} is not a point of interest", field="poi_id")
    lon = lat = None
    if data.get("lon") is not None or data.get("lat") is not None:
        x, y = check_point(data.get("lon"), data.get("lat"))
        wx, wy = to_wgs84([x], [y], str(data.get("crs") or "wgs84"))
        lon, lat = float(wx[0]), float(wy[0])
    texts = {"title": title, "place": (data.get("place") or "").strip() or None,
             "note": (data.get("note") or "").strip() or None}
    originals = mask_payload(texts, fields=ACTIVITY_TEXT_FIELDS)
    return NewActivity(started, ended, kind, kind_name if kind == "other" else None,
                       texts["title"], codes, texts["place"], poi_id, lon, lat,
                       _count(data, "staff"), _count(data, "volunteers"),
                       _count(data, "reached"), texts["note"], originals)


def may_see(actor: Principal, communities: list[str] | tuple[str, ...]) -> bool:
    """Whether ``actor`` sees an activity held by ``communities``: every role that sees the
    whole city does; a community officer when one of them is theirs (as in
    :func:`list_activities`)."""
    return any(actor.may_see_community(c) for c in communities)


def check_recorder(conn: Connection, activity_id: int, actor: Principal) -> list[str]:
    """The communities of an activity ``actor`` may add to (photos): 404 when there is no
    such activity in the actor's sight, 403 for a role that only reads."""
    communities = conn.execute(text(
        "SELECT array_agg(community_code ORDER BY community_code) FROM activity_community "
        "WHERE activity_id = :i"), {"i": activity_id}).scalar_one()
    if not communities or not may_see(actor, communities):
        raise NotFound(f"no activity {activity_id}", field="activity_id")
    if actor.role not in RECORDERS:
        raise Forbidden(f"role {actor.role!r} may not add to activities; allowed: "
                        f"{', '.join(RECORDERS)}", field="role")
    return communities


def store_activity(conn: Connection, a: NewActivity, created_by: str, source: str = "api",
                   import_key: str | None = None) -> int | None:
    """Insert the activity with its communities; returns its id, or None when an activity
    with the same ``import_key`` is stored already (an import run again)."""
    row = conn.execute(text(
        "INSERT INTO activity (started_at, ended_at, kind, kind_name, title, place, poi_id, "
        "geom, staff, volunteers, reached, note, source, import_key, created_by) "
        "SELECT :s, :e, :k, :kn, :t, :pl, CAST(:poi AS integer), coalesce(CASE WHEN "
        "CAST(:x AS float8) IS NOT NULL THEN ST_SetSRID(ST_MakePoint(:x, :y), 4326) END, "
        "(SELECT ST_PointOnSurface(geom) FROM poi WHERE id = CAST(:poi AS integer))), "
        ":st, :v, :r, :n, :src, :key, :by "
        "ON CONFLICT (import_key) DO NOTHING RETURNING id"),
        {"s": a.started_at, "e": a.ended_at, "k": a.kind, "kn": a.kind_name, "t": a.title,
         "pl": a.place, "poi": a.poi_id, "x": a.lon, "y": a.lat, "st": a.staff,
         "v": a.volunteers, "r": a.reached, "n": a.note, "src": source, "key": import_key,
         "by": created_by}).first()
    if row is None:
        return None
    conn.execute(text("INSERT INTO activity_community (activity_id, community_code) "
                      "SELECT :i, unnest(CAST(:c AS text[]))"),
                 {"i": row.id, "c": list(a.communities)})
    store_originals(conn, None, a.originals, activity_id=row.id)
    return row.id


def record_activity_event(conn: Connection, activity_id: int, actor: Principal, action: str,
                          data: dict) -> None:
    """An entry in the activity's history (who, when, what: a reveal of its texts)."""
    conn.execute(text(
        "INSERT INTO activity_event (activity_id, actor, role, user_id, action, data) "
        "VALUES (:a, :n, :r, :u, :act, CAST(:d AS jsonb))"),
        {"a": activity_id, "n": actor.name, "r": actor.role, "u": actor.user_id,
         "act": action, "d": json.dumps(data, ensure_ascii=False)})


def create_activity(conn: Connection, data: dict, actor: Principal,
                    source: str = "api") -> dict:
    """Check and store one activity; return it as :func:`list_activities` shows it."""
    new = check_activity(conn, data, actor)
    activity_id = store_activity(conn, new, actor.name, source)
    return list_activities(conn, actor, activity_id=activity_id)[0]


_LIST_SQL = """
SELECT a.id, a.started_at, a.ended_at, a.kind, a.kind_name, a.title, a.place, a.poi_id,
       ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat, a.staff, a.volunteers, a.reached, a.note,
       a.source, a.created_by, a.created_at, p.name AS poi_name,
       array_agg(ac.community_code ORDER BY ac.community_code) AS communities
FROM activity a JOIN activity_community ac ON ac.activity_id = a.id
LEFT JOIN poi p ON p.id = a.poi_id
WHERE (CAST(:id AS bigint) IS NULL OR a.id = :id)
  AND (CAST(:lo AS timestamptz) IS NULL OR a.started_at >= :lo)
  AND (CAST(:hi AS timestamptz) IS NULL OR a.started_at < :hi)
  AND (CAST(:kind AS text) IS NULL OR a.kind = :kind)
  AND (CAST(:comms AS text[]) IS NULL OR EXISTS (SELECT 1 FROM activity_community x
       WHERE x.activity_id = a.id AND x.community_code = ANY(:comms)))
GROUP BY a.id, p.name ORDER BY a.started_at DESC, a.id DESC LIMIT :limit OFFSET :offset
"""


def list_activities(conn: Connection, actor: Principal, *, date_from: date | None = None,
                    date_to: date | None = None, kind: str | None = None,
                    communities: list[str] | None = None, activity_id: int | None = None,
                    limit: int = 100, offset: int = 0) -> list[dict]:
    """Activities started in the period (newest first), filtered; a community officer sees
    those of its own communities only."""
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be 1-1000 and offset 0 or more", field="limit")
    if not actor.sees_all_communities:
        communities = [c for c in (communities or actor.communities) if c in actor.communities]
        if not communities:
            return []
    lo, hi = period_bounds(date_from or date(1970, 1, 1), date_to or date(9999, 12, 30)) \
        if (date_from or date_to) else (None, None)
    rows = conn.execute(text(_LIST_SQL), {
        "id": activity_id, "lo": lo, "hi": hi, "kind": kind,
        "comms": communities or None, "limit": limit, "offset": offset}).mappings().all()
    out = []
    for r in rows:
        item = dict(r)
        item["kind_zh"] = KINDS[item["kind"]][0]
        out.append(item)
    return out


_COUNT_SQL = f"""
WITH a AS (
    SELECT a.id, a.kind, a.reached,
           to_char(a.started_at AT TIME ZONE '{CITY_TZ.key}', 'YYYY-MM') AS month
    FROM activity a WHERE a.started_at >= :lo AND a.started_at < :hi
), ac AS (
    SELECT a.*, x.community_code, c.subdistrict_code
    FROM a JOIN activity_community x ON x.activity_id = a.id
    LEFT JOIN community c ON c.code = x.community_code AND c.generation_id =
        (SELECT id FROM boundary_generation WHERE level = 'community' AND active)
)
SELECT 'month' AS dim, month AS key, count(*) AS held, sum(reached) AS reached FROM a GROUP BY month
UNION ALL SELECT 'kind', kind, count(*), sum(reached) FROM a GROUP BY kind
UNION ALL SELECT 'community', community_code, count(*), sum(reached) FROM ac GROUP BY community_code
UNION ALL SELECT 'subdistrict', subdistrict_code, count(*), sum(reached)
    FROM (SELECT DISTINCT id, subdistrict_code, reached FROM ac) s GROUP BY subdistrict_code
UNION ALL SELECT 'total', NULL, count(*), coalesce(sum(reached), 0) FROM a
ORDER BY 1, 2
"""


def activity_counts(conn: Connection, date_from: date, date_to: date) -> dict[str, Any]:
    """Activities held and people reached in the period, by month, kind, community and
    subdistrict, and in total (a joint activity once per community, once in each total)."""
    lo, hi = period_bounds(date_from, date_to)
    out: dict[str, Any] = {"from": date_from.isoformat(), "to": date_to.isoformat(),
                           "by_month": [], "by_kind": [], "by_community": [],
                           "by_subdistrict": [], "total": {"held": 0, "reached": 0}}
    for r in conn.execute(text(_COUNT_SQL), {"lo": lo, "hi": hi}):
        item = {"key": r.key, "held": int(r.held), "reached": int(r.reached or 0)}
        if r.dim == "total":
            out["total"] = {"held": item["held"], "reached": item["reached"]}
        else:
            if r.dim == "kind":
                item["name"] = KINDS[r.key][0]
            out[f"by_{r.dim}"].append(item)
    return out


def activity_rows(counts: dict[str, Any]) -> list[list]:
    """The counts as one table for the Excel report (first row: headers)."""
    rows: list[list] = [["分组", "键", "名称", "活动数", "参与/覆盖人数"]]
    labels = {"by_month": "按月份", "by_kind": "按类型", "by_subdistrict": "按街道",
              "by_community": "按社区"}
    for dim, label in labels.items():
        rows += [[label, r["key"], r.get("name"), r["held"], r["reached"]] for r in counts[dim]]
    rows.append(["合计", None, None, counts["total"]["held"], counts["total"]["reached"]])
    return rows


def activity_points(conn: Connection, date_from: date | None, date_to: date | None) -> list[dict]:
    """Located activities of the period for a map layer: point, kind, title, reached."""
    lo, hi = period_bounds(date_from or date(1970, 1, 1), date_to or date(9999, 12, 30))
    return [dict(r) for r in conn.execute(text(
        "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat, kind, title, reached, "
        "started_at FROM activity WHERE geom IS NOT NULL AND started_at >= :lo "
        "AND started_at < :hi ORDER BY started_at"), {"lo": lo, "hi": hi}).mappings()]
