"""Finding a case by what a person has at hand: its case number, the hotline's ticket
number, the reporter's phone, or words of its address."""

from __future__ import annotations

from sqlalchemy import Connection, text

from cases import queries
from cases.tokens import Principal

MAX_RESULTS = 30


def search_cases(conn: Connection, q: str, principal: Principal,
                 limit: int = MAX_RESULTS) -> list[dict]:
    """Cases ``principal`` may see matching ``q``: exact case number, ticket number or
    phone first (indexed look-ups); when none matches, addresses containing ``q``, newest
    first. Planners never search by phone (they may not see it)."""
    q = (q or "").strip()[:100]
    if not q:
        return []
    exact = ["c.case_no = :q", "(c.channel = ANY(:channels) AND c.external_id = :q)"]
    if principal.sees_reporter:
        exact.append("c.reporter_phone = :q")
    params = {"q": q, "channels": list(queries.CHANNELS), "limit": limit}
    for condition in exact:  # one at a time: each can use its own index
        rows = _select(conn, principal, condition, params)
        if rows:
            return rows
    like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return _select(conn, principal, "c.address ILIKE :like", {**params, "like": like})


def _select(conn: Connection, principal: Principal, condition: str, params: dict) -> list[dict]:
    where, scope = queries.where_sql(queries.CaseFilters(), principal, [(condition, {})])
    sql = queries.CASE_SELECT + where + " ORDER BY c.reported_at DESC, c.id DESC LIMIT :limit"
    rows = conn.execute(text(sql), {**params, **scope}).mappings()
    return [queries.redact(dict(r), principal) for r in rows]
