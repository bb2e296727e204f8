"""Reminders (催办) and escalation (督办) of the cases at the posts, on the working calendar.

For a dispatched case, each dispatch (a *round*, keyed by ``dispatched_at``) earns at most
one of each reminder:

* ``ack_late`` (签收超时) once ``acknowledge_due_at`` has passed unacknowledged;
* ``due_soon`` (即将到期) at ``handle_soon_at``: the share of the handling's working time set
  by ``CASEGRID_REMIND_DUE_SOON_SHARE`` (computed by the workflow, ``deadlines.share_point``),
  unless the case is overdue by then;
* ``overdue`` (催办, to the post and the subdistrict) once ``handle_due_at`` has passed;
* ``escalated`` (督办) once it is still unhandled ``CASEGRID_ESCALATE_AFTER_WORKING_DAYS``
  working days after ``handle_due_at`` (``WorkCalendar.add``): the case is flagged
  (``escalated_at``), joins the supervisors' 督办 queue (:func:`escalated_cases`) and they
  are notified.

Each reminder is a ``case_reminder`` row (primary key case, kind, round) inserted with
``ON CONFLICT DO NOTHING`` in the same transaction as its outbox event, its history entry
(action ``remind``) and the flag: two workers running the pass at once send each reminder
once (the second waits for the first's row, then inserts nothing).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, text

from casegrid.settings import Settings, get_settings
from cases import notices, queries
from cases.calendar_store import load_calendar
from cases.filters import CaseFilters
from cases.tokens import Principal

KINDS = ("ack_late", "due_soon", "overdue", "escalated")
NOTE_ZH = {"ack_late": "签收超时提醒", "due_soon": "即将到期提醒", "overdue": "催办: 已超期",
           "escalated": "督办: 超期未处置"}
ACTOR = "casegrid-worker"

_SENT = ("NOT EXISTS (SELECT 1 FROM case_reminder r WHERE r.case_id = c.id "
         "AND r.round = c.dispatched_at AND r.kind = '{kind}')")
# The cases that may owe a reminder now. The escalation test is coarse here (a deadline N
# working days back lies at least N-1 calendar days back) and exact in Python.
_CANDIDATES_SQL = f"""
SELECT c.id, c.dispatched_at, c.acknowledge_due_at, c.acknowledged_at, c.handle_soon_at,
       c.handle_due_at
FROM "case" c
WHERE c.status = 'dispatched' AND c.dispatched_at IS NOT NULL AND (
       (c.acknowledged_at IS NULL AND c.acknowledge_due_at <= :now
        AND {_SENT.format(kind='ack_late')})
    OR (c.handle_soon_at <= :now AND c.handle_due_at > :now AND {_SENT.format(kind='due_soon')})
    OR (c.handle_due_at <= :now AND {_SENT.format(kind='overdue')})
    OR (c.handle_due_at <= CAST(:now AS timestamptz) - make_interval(days => :esc_days)
        AND {_SENT.format(kind='escalated')}))
ORDER BY c.id
LIMIT :limit
"""
_CLAIM_SQL = """
INSERT INTO case_reminder (case_id, kind, round, sent_at)
SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:kinds AS text[]),
                     CAST(:rounds AS timestamptz[]), CAST(:at AS timestamptz[]))
ON CONFLICT DO NOTHING
RETURNING case_id, kind
"""
_HISTORY_SQL = """
INSERT INTO case_event (case_id, at, actor, role, action, note, data)
SELECT i, :at, :actor, 'system', 'remind', :note, CAST(:data AS jsonb)
FROM unnest(CAST(:ids AS bigint[])) AS i
"""


def send_reminders(conn: Connection, now: datetime | None = None,
                   settings: Settings | None = None, limit: int = 2000) -> dict[str, int]:
    """Write every reminder due at ``now`` (default: the database's now) and not yet sent,
    in the caller's transaction; return the count of each kind written."""
    settings = settings or get_settings()
    if now is None:
        now = conn.execute(text("SELECT now()")).scalar_one()
    n_esc = settings.escalate_after_working_days
    rows = conn.execute(text(_CANDIDATES_SQL), {
        "now": now, "esc_days": max(n_esc - 1, 0), "limit": limit}).all()
    if not rows:
        return dict.fromkeys(KINDS, 0)
    calendar = load_calendar(conn)
    want: list[tuple[int, str, datetime]] = []
    for r in rows:
        if r.acknowledged_at is None and r.acknowledge_due_at and r.acknowledge_due_at <= now:
            want.append((r.id, "ack_late", r.dispatched_at))
        if r.handle_soon_at and r.handle_soon_at <= now < r.handle_due_at:
            want.append((r.id, "due_soon", r.dispatched_at))
        if r.handle_due_at and r.handle_due_at <= now:
            want.append((r.id, "overdue", r.dispatched_at))
            if calendar.add(r.handle_due_at, n_esc, "working_days").at <= now:
                want.append((r.id, "escalated", r.dispatched_at))
    claimed = conn.execute(text(_CLAIM_SQL), {
        "ids": [w[0] for w in want], "kinds": [w[1] for w in want],
        "rounds": [w[2] for w in want], "at": [now] * len(want)}).all()
    by_kind: dict[str, list[int]] = {k: [] for k in KINDS}
    for c in claimed:
        by_kind[c.kind].append(c.case_id)
    if by_kind["escalated"]:
        conn.execute(text('UPDATE "case" SET escalated_at = :now WHERE id = ANY(:ids) '
                          "AND escalated_at IS NULL"), {"now": now, "ids": by_kind["escalated"]})
    for kind, ids in by_kind.items():
        if not ids:
            continue
        notices.record(conn, f"case.{kind}", ids, at=now, data={"reminder": kind})
        conn.execute(text(_HISTORY_SQL), {
            "ids": ids, "at": now, "actor": ACTOR, "note": NOTE_ZH[kind],
            "data": json.dumps({"reminder": kind, "event": f"case.{kind}"})})
    return {k: len(v) for k, v in by_kind.items()}


# The 督办 queue's condition, once: escalated and still waiting at the post (the workbench's
# queue and escalated_cases both use it).
ESCALATED = CaseFilters(status=("dispatched",), escalated=True)


def escalated_cases(conn: Connection, actor: Principal, limit: int = 200) -> list[dict]:
    """The 督办 queue: escalated cases still waiting at their post, longest first (only the
    communities ``actor`` may see)."""
    where, params = queries.where_sql(ESCALATED, actor)
    rows = conn.execute(text(
        "SELECT c.id, c.case_no, c.category_code, c.address, c.community_code, "
        f'c.subdistrict_code, c.status, c.handle_due_at, c.escalated_at FROM "case" c{where} '
        "ORDER BY c.escalated_at, c.id LIMIT :limit"), {**params, "limit": limit})
    return [dict(r) for r in rows.mappings()]


_ESCALATION_SQL = """
SELECT DISTINCT ON (e.case_id) e.case_id, e.at, e.actor, e.role, e.note,
       c.escalated_at, c.handle_due_at
FROM case_event e JOIN "case" c ON c.id = e.case_id
WHERE e.case_id = ANY(:ids) AND e.action = 'remind' AND e.data->>'reminder' = 'escalated'
ORDER BY e.case_id, e.at DESC, e.id DESC
"""


def add_escalations(conn: Connection, rows: list[dict]) -> None:
    """Give each case row of the 督办 queue its ``escalation``: when, by whom (the worker's
    reminder pass) and why (its history entry's note, and the handling deadline it passed)."""
    if not rows:
        return
    found = {r["case_id"]: dict(r) for r in conn.execute(
        text(_ESCALATION_SQL), {"ids": [r["id"] for r in rows]}).mappings()}
    for r in rows:
        r["escalation"] = found.get(r["id"])


def add_acknowledge_due(conn: Connection, rows: list[dict]) -> None:
    """Give each case row of the 待签收 queue its ``acknowledge_due_at`` and whether that has
    passed (``acknowledge_late``); the rows carry the current step's deadline, the
    handling's, which every list is sorted by."""
    if not rows:
        return
    found = {r.id: r for r in conn.execute(text(
        'SELECT id, acknowledge_due_at, acknowledge_due_at < now() AS late FROM "case" '
        "WHERE id = ANY(:ids)"), {"ids": [r["id"] for r in rows]})}
    for r in rows:
        got = found.get(r["id"])
        r["acknowledge_due_at"] = got.acknowledge_due_at if got else None
        r["acknowledge_late"] = bool(got and got.late)
