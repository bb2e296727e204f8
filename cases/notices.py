"""Events of the ledger that someone must hear about: the transactional outbox.

An event is written by ``cases/`` in the **same transaction** as the change it reports
(``outbox_event``, migration 0018): if the change rolls back, so does the event, and an
event that exists describes a change that happened. Delivery is the worker's business
(``casegrid.worker`` with the channels of ``notify/``); nothing here talks to the network.

Each event has a unique id (the row's), a type (:data:`EVENTS`), the case, the time, its
recipients (kinds of recipient, resolved to webhook URLs, phones and email addresses when
the worker routes it) and a payload: the case as the notice needs it (number, category,
address, community, post, deadlines), written by one statement for one case or thousands.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, text

# Event type -> who must hear of it. "post": the case's community post (its officer);
# "subdistrict": the case's subdistrict office; anything else is a role.
EVENTS: dict[str, tuple[str, ...]] = {
    "case.registered": ("supervisor",),          # 受理: waits for review
    "case.reviewed": ("dispatcher",),            # 立案: waits for dispatch
    "case.dispatched": ("post",),                # 派遣: the post must acknowledge and handle
    "case.returned": ("dispatcher",),            # 退单: back to the dispatchers
    "case.handled": ("supervisor",),             # 处置: waits for verification
    "case.verify_failed": ("post",),             # 返工
    "case.replied": ("bureau",),                 # 反馈
    "case.ack_late": ("post", "dispatcher"),     # 签收超时
    "case.due_soon": ("post",),                  # 即将到期
    "case.overdue": ("post", "subdistrict"),     # 催办
    "case.escalated": ("supervisor", "bureau"),  # 督办
}
LABELS_ZH: dict[str, str] = {
    "case.registered": "新受理", "case.reviewed": "已立案待派遣", "case.dispatched": "新派遣",
    "case.returned": "退单", "case.handled": "已处置待核查", "case.verify_failed": "核查不通过(返工)",
    "case.replied": "已反馈", "case.ack_late": "签收超时", "case.due_soon": "即将到期",
    "case.overdue": "催办", "case.escalated": "督办",
}
# Workflow actions that raise an event (cases.workflow.apply_action).
ACTION_EVENTS: dict[str, str] = {
    "accept": "case.reviewed", "dispatch": "case.dispatched", "redispatch": "case.dispatched",
    "return": "case.returned", "handle": "case.handled", "verify_fail": "case.verify_failed",
    "reply": "case.replied",
    "reopen": "case.dispatched",   # 发回重办: a new round at the post
}

WAKE_CHANNEL = "casegrid_outbox"  # LISTENed to by casegrid.worker


def _payload_sql(c: str, k: str, type_sql: str, data_sql: str) -> str:
    """The payload of an event about case row ``c`` (category row ``k``): one definition for
    every writer."""
    return f"""jsonb_build_object(
           'type', {type_sql},
           'case', jsonb_build_object(
               'id', {c}.id, 'case_no', {c}.case_no, 'status', {c}.status,
               'category_code', {c}.category_code, 'category', {k}.name_zh,
               'address', {c}.address, 'community_code', {c}.community_code,
               'subdistrict_code', {c}.subdistrict_code, 'post_id', {c}.post_id,
               'due_at', {c}.current_due_at, 'acknowledge_due_at', {c}.acknowledge_due_at,
               'handle_due_at', {c}.handle_due_at, 'escalated_at', {c}.escalated_at),
           'data', {data_sql})"""


_RECORD_SQL = f"""
WITH ins AS (
INSERT INTO outbox_event (type, case_id, at, recipients, payload)
SELECT :type, c.id, coalesce(CAST(:at AS timestamptz), now()), CAST(:recipients AS jsonb),
       {_payload_sql("c", "k", "CAST(:type AS text)", "CAST(:data AS jsonb)")}
FROM "case" c JOIN category k ON k.code = c.category_code
WHERE c.id = ANY(CAST(:ids AS bigint[]))
RETURNING id, case_id
)
SELECT ins.id, ins.case_id FROM ins{{wake}}
"""
# Wakes an idle worker when the transaction commits (NOTIFY is transactional; repeats
# within a transaction are folded into one).
_WAKE = ", (SELECT pg_notify('casegrid_outbox', '')) AS wake"


def registered_sql(source: str) -> str:
    """An INSERT of ``case.registered`` events for the new case rows of relation ``source``,
    for intake to run as a CTE of its own INSERT statement: the batch's events cost no
    statement, no round trip and no NOTIFY of their own (the worker's poll picks them up
    within ``CASEGRID_WORKER_POLL_S``)."""
    recipients = json.dumps(list(EVENTS["case.registered"]))
    return f"""INSERT INTO outbox_event (type, case_id, recipients, payload)
    SELECT 'case.registered', s.id, '{recipients}'::jsonb,
           {_payload_sql("s", "k", "'case.registered'", "'{}'::jsonb")}
    FROM {source} s JOIN category k ON k.code = s.category_code"""


def record(conn: Connection, type_: str, case_ids: list[int], *, at: datetime | None = None,
           data: dict | None = None, wake: bool = True) -> dict[int, int]:
    """Write event ``type_`` for each case in ``case_ids`` in the caller's transaction, with
    one statement; return ``{case_id: event_id}``. ``at`` is when it happened (default:
    the transaction's time). ``wake``: NOTIFY the idle workers at commit."""
    if type_ not in EVENTS:
        raise ValueError(f"unknown event type {type_!r}; one of {', '.join(EVENTS)}")
    if not case_ids:
        return {}
    rows = conn.execute(text(_RECORD_SQL.replace("{wake}", _WAKE if wake else "")), {
        "type": type_, "ids": list(case_ids), "at": at,
        "recipients": json.dumps(list(EVENTS[type_])),
        "data": json.dumps(data or {}, default=str, ensure_ascii=False)}).all()
    return {r.case_id: r.id for r in rows}


def record_action(conn: Connection, case_id: int, action: str, at: datetime,
                  data: dict | None = None) -> None:
    """The event of a workflow action, if it raises one (:data:`ACTION_EVENTS`)."""
    type_ = ACTION_EVENTS.get(action)
    if type_ is not None:
        record(conn, type_, [case_id], at=at, data=data)
