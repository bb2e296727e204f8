"""What the public sees of a case: one publication policy for every route that needs no
credentials (Open311 GET requests and tokens, the citizen's tracking page, any public map).

The policy, in one place:

* **Per category, public or not** (``category.public``). Noise complaints are not public by
  default (their location is usually the complainant's home, and publishing it tells the
  noisy neighbour who complained); a city marks any other category sensitive by clearing
  the flag (:func:`set_category_public`: ``casegrid privacy category``, ``PUT
  /api/v1/categories/{code}/public``). A case of a category that is not public does not
  exist for the public: 404, the same as an unknown case.
* **A coarsened location** for public cases: the centre of the case's cell of a square grid
  in the metric CRS (``CASEGRID_PRIVACY_GRID_M``, default 100 m), or with
  ``CASEGRID_PRIVACY_PUBLIC_LOCATION=community`` no coordinates at all. The address shown is
  the community's (and subdistrict's) name, never the address as reported.
* **No description** unless a staff member approved one for publication (the
  ``publish_description`` action of :mod:`cases.workflow`, which stores the approved,
  masked text in ``case.public_description``).
* No reporter data, no photos, no notes. Category, status, responsible post (and its public
  phone) and dates stay public, so Open311 clients keep working; so does the reply to the
  reporter once there is one (stored masked), and the time of the last public step
  (:data:`PUBLIC_ACTIONS`) is the case's public ``updated_at``.

**The reporter's own view** (:func:`reporters_case`, the citizen's ``/track`` page once the
case number and the last digits of the reporter's phone match): the same public form, also
for a category that is not public (the flag keeps a complaint from the neighbours, not from
the person who made it: a noise complainant may follow their own case), but never with
coordinates, not even the coarsened cell, and with nothing else the public form leaves out.

Public routes read cases only through :data:`PUBLIC_SELECT` (or :func:`reporters_case`) and
the functions here; which public cases they ask for is a :class:`cases.filters.CaseFilters`,
as everywhere else.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput, NotFound
from casegrid.settings import Settings, get_settings
from cases.filters import CaseFilters, filter_sql
from cases.vocabulary import settled_sql
from geo.boundaries import boundary_name_join
from geo.coords import grid_centre_sql

# A case the public may see at all.
PUBLIC_WHERE = "cat.public"

# The steps of a case's history the public sees, with their names; every other action
# (review notes, extensions, verification, 退单, approving a description) is internal.
# ``updated_datetime`` and the citizen's /track page move with these only.
PUBLIC_ACTIONS: dict[str, tuple[str, str]] = {
    "register": ("已受理", "received"),
    "accept": ("已立案", "registered"),
    "reject": ("不予立案", "not accepted"),
    "dispatch": ("已派遣", "dispatched"),
    "redispatch": ("已改派", "dispatched again"),
    "handle": ("已处置", "handled"),
    "reply": ("已答复", "replied"),
    "close": ("已结案", "closed"),
    "follow_up": ("已回访", "followed up"),
    "reopen": ("发回重办", "sent back to be redone"),
}
PUBLIC_ACTIONS_SQL = ", ".join(f"'{a}'" for a in PUBLIC_ACTIONS)


def reply_text_sql(alias: str = "c") -> str:
    """SQL for the text of a case's current reply (NULL until replied), per row of ``alias``."""
    return (f"CASE WHEN {alias}.replied_at IS NOT NULL THEN (SELECT e.data->>'text' FROM "
            f"case_event e WHERE e.case_id = {alias}.id AND e.action = 'reply' "
            "ORDER BY e.at DESC, e.id DESC LIMIT 1) END")


def public_updated_sql(alias: str = "c") -> str:
    """SQL for the time of a case's last public step, per row of ``alias``."""
    return (f"(SELECT max(e.at) FROM case_event e WHERE e.case_id = {alias}.id "
            f"AND e.action IN ({PUBLIC_ACTIONS_SQL}))")

# The public form of a case, of any category (no WHERE yet).
_CASE_FORM = f"""
SELECT c.id, c.case_no, c.status, {settled_sql()} AS settled, c.merged_into,
       m.case_no AS merged_into_no,
       c.category_code, cat.name_zh, cat.name_en, c.public_description AS description,
       p.name AS post_name, p.phone AS post_phone, c.reported_at,
       coalesce({public_updated_sql()}, c.received_at) AS updated_at,
       {reply_text_sql()} AS reply_text, c.current_due_at, c.closed_at,
       c.replied_at, NULLIF(concat_ws(' ', sd.name, cm.name), '') AS address, cm.name AS community_name,
       cat.public AS category_public,
       CASE WHEN :grid THEN round(ST_Y(pt.g)::numeric, 6)::float8 END AS lat,
       CASE WHEN :grid THEN round(ST_X(pt.g)::numeric, 6)::float8 END AS lon
FROM "case" c
JOIN category cat ON cat.code = c.category_code
LEFT JOIN community_post p ON p.id = c.post_id
LEFT JOIN "case" m ON m.id = c.merged_into
LEFT JOIN community cm ON cm.generation_id = c.generation_id AND cm.code = c.community_code
{boundary_name_join("subdistrict", "c.subdistrict_code", "sd")}
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.geom IS NOT NULL AND :grid
                THEN {grid_centre_sql("c.geom", "cell_m")} END AS g
) pt
"""
# The public form of a case; every public route selects from it (add AND/ORDER BY).
PUBLIC_SELECT = _CASE_FORM + f"WHERE {PUBLIC_WHERE}\n"


def public_params(settings: Settings | None = None) -> dict:
    """The bound parameters :data:`PUBLIC_SELECT` needs (from the settings)."""
    settings = settings or get_settings()
    return {"grid": settings.privacy_public_location == "grid",
            "cell_m": float(settings.privacy_grid_m)}


def public_cases(conn: Connection, filters: CaseFilters | None = None, tail: str = "",
                 params: dict | None = None, settings: Settings | None = None) -> list[dict]:
    """Public cases matching ``filters`` (all public cases without), then ``tail`` (ORDER
    BY / LIMIT, with its bound ``params``), in their public form."""
    where, filter_params = filter_sql(filters or CaseFilters())
    sql = f"{PUBLIC_SELECT} AND ({where}) {tail}"
    rows = conn.execute(text(sql), {**public_params(settings), **filter_params,
                                    **(params or {})}).mappings()
    return [dict(r) for r in rows]


def public_case(conn: Connection, case_no: str, settings: Settings | None = None) -> dict:
    """One case by its number as the public may see it; ``NotFound`` when it is unknown or
    not public (indistinguishable on purpose). For the citizen's tracking page too."""
    rows = public_cases(conn, CaseFilters(case_no=(case_no,)), settings=settings)
    if not rows:
        raise NotFound(f"no case {case_no!r}", field="case_no")
    return rows[0]


def reporters_case(conn: Connection, case_no: str, settings: Settings | None = None) -> dict:
    """One case as its own reporter may see it, once they have proved it is theirs (the
    caller's job: ``cases.track.find_for_track``): the public form whatever the category's
    public flag, without coordinates. ``NotFound`` for an unknown number."""
    params = {**public_params(settings), "grid": False, "no": case_no}
    row = conn.execute(text(_CASE_FORM + "WHERE c.case_no = :no"), params).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_no!r}", field="case_no")
    return dict(row)


def is_public_case(conn: Connection, case_id: int | None) -> bool:
    """Whether the public may see the case at all (False for no case)."""
    return bool(conn.execute(text(
        'SELECT EXISTS (SELECT 1 FROM "case" c JOIN category cat ON cat.code = c.category_code '
        f"WHERE c.id = :id AND {PUBLIC_WHERE})"), {"id": case_id}).scalar_one())


def is_public_ticket(conn: Connection, channel: str, external_id: str) -> str | None:
    """The case number registered under a channel's ticket, when that case is public."""
    return conn.execute(text(
        'SELECT c.case_no FROM "case" c JOIN category cat ON cat.code = c.category_code '
        f"WHERE c.channel = :ch AND c.external_id = :t AND {PUBLIC_WHERE}"),
        {"ch": channel, "t": external_id}).scalar_one_or_none()


def set_category_public(conn: Connection, code: str, public: bool) -> dict:
    """Make a category's cases public or not (``InvalidInput`` for an unknown code)."""
    row = conn.execute(text("UPDATE category SET public = :p WHERE code = :c "
                            "RETURNING code, name_zh, name_en, public"),
                       {"p": public, "c": code}).mappings().first()
    if row is None:
        raise InvalidInput(f"unknown category {code!r}: list the codes with "
                           "GET /api/v1/categories", field="code")
    return dict(row)


def category_policy(conn: Connection) -> list[dict]:
    """Every category with its public flag."""
    rows = conn.execute(text("SELECT code, name_zh, name_en, active, public FROM category "
                             "ORDER BY code")).mappings()
    return [dict(r) for r in rows]
