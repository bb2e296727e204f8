"""The delivery side of the outbox: events become deliveries, deliveries are claimed, sent
and recorded.

* :func:`route_events` turns new ``outbox_event`` rows into ``outbox_delivery`` rows, one
  per channel and target (the recipients' webhook URLs, the post's phone, the roles' email
  addresses), and marks the events routed, in one transaction: an event is routed once.
* :func:`claim_due` locks deliveries that are due with ``FOR UPDATE SKIP LOCKED``: the
  caller sends them while holding the locks and records the outcomes
  (:func:`record_outcomes`) in the same transaction. Two workers never hold the same
  delivery; a worker that dies mid-batch loses its locks with its connection and its
  uncommitted outcomes with its transaction, so the batch is sent again (at least once;
  receivers drop repeats by the event id).
* A failed attempt is retried after ``base x 2^(n-1)`` seconds until
  ``CASEGRID_NOTIFY_GIVE_UP_S`` after the delivery was created, then kept as ``failed``
  (:func:`list_deliveries`, :func:`retry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput, NotFound
from casegrid.settings import Settings
from notify import sms
from notify.base import Message, Outcome

_UNROUTED_SQL = """
SELECT id, type, at, recipients, payload FROM outbox_event
WHERE routed_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
"""
_INSERT_DELIVERIES_SQL = """
INSERT INTO outbox_delivery (event_id, channel, target, next_at, created_at)
SELECT * FROM unnest(CAST(:e AS bigint[]), CAST(:c AS text[]), CAST(:t AS text[]),
                     CAST(:n AS timestamptz[]), CAST(:n AS timestamptz[]))
ON CONFLICT (event_id, channel, target) DO NOTHING
"""


def route_events(conn: Connection, settings: Settings, now: datetime, limit: int = 1000) -> int:
    """Route up to ``limit`` new events into deliveries (caller's transaction); return how
    many events were routed."""
    events = conn.execute(text(_UNROUTED_SQL), {"limit": limit}).mappings().all()
    if not events:
        return 0
    post_ids = {e["payload"]["case"].get("post_id") for e in events} - {None}
    posts = {r.id: r for r in conn.execute(text(
        "SELECT id, phone, webhook_url FROM community_post WHERE id = ANY(:ids)"),
        {"ids": sorted(post_ids)})}
    rows: list[tuple[int, str, str, datetime]] = []
    for e in events:
        rows.extend((e["id"], ch, target, at) for ch, target, at in
                    targets(e["recipients"], e["payload"]["case"], posts, settings, now))
    if rows:
        conn.execute(text(_INSERT_DELIVERIES_SQL), {
            "e": [r[0] for r in rows], "c": [r[1] for r in rows], "t": [r[2] for r in rows],
            "n": [r[3] for r in rows]})
    conn.execute(text("UPDATE outbox_event SET routed_at = :now WHERE id = ANY(:ids)"),
                 {"now": now, "ids": [e["id"] for e in events]})
    return len(events)


def targets(recipients: list[str], case: dict, posts: dict, settings: Settings,
            now: datetime) -> set[tuple[str, str, datetime]]:
    """``(channel, target, not before)`` of one event: a webhook URL per recipient (the
    post's own, the role's own, else ``CASEGRID_WEBHOOK_URL``), an SMS to the post's phone
    (held through quiet hours unless the category is urgent), an email to each address of
    a role. Channels without settings are skipped."""
    out: set[tuple[str, str, datetime]] = set()
    post = posts.get(case.get("post_id"))
    urgent = case.get("category_code") in settings.sms_urgent_categories
    for who in recipients:
        url = (post.webhook_url if who == "post" and post is not None else None) \
            or settings.webhook_role_urls.get(who) or settings.webhook_url
        if url:
            out.add(("webhook", url, now))
        if who == "post" and post is not None and post.phone and settings.sms_gateway_url:
            out.add(("sms", post.phone, sms.allowed_at(now, settings.sms_quiet_hours, urgent)))
        if settings.smtp_host:
            out.update(("email", addr, now) for addr in settings.email_role_addresses.get(who, []))
    return out


@dataclass(frozen=True)
class Claimed:
    """A delivery locked by this worker's transaction."""

    message: Message
    channel: str
    attempts: int
    created_at: datetime
    urgent_category: str | None


_CLAIM_SQL = """
SELECT d.id, d.event_id, d.channel, d.target, d.attempts, d.created_at, e.type, e.at,
       e.recipients, e.payload
FROM outbox_delivery d JOIN outbox_event e ON e.id = d.event_id
WHERE d.status = 'pending' AND d.next_at <= :now
ORDER BY d.next_at, d.id
LIMIT :limit
FOR UPDATE OF d SKIP LOCKED
"""


def claim_due(conn: Connection, now: datetime, limit: int) -> list[Claimed]:
    """Lock up to ``limit`` deliveries due at ``now`` that no other worker holds."""
    out = []
    for r in conn.execute(text(_CLAIM_SQL), {"now": now, "limit": limit}).mappings():
        payload = r["payload"]
        body = {"id": r["event_id"], "type": r["type"], "at": r["at"].isoformat(),
                "case": payload.get("case"), "data": payload.get("data") or {},
                "recipients": r["recipients"]}
        out.append(Claimed(Message(r["id"], r["event_id"], r["type"], r["target"], body),
                           r["channel"], r["attempts"], r["created_at"],
                           (payload.get("case") or {}).get("category_code")))
    return out


_ATTEMPTS_SQL = """
INSERT INTO outbox_attempt (delivery_id, at, ok, status_code, error, duration_ms, worker)
SELECT d, :now, o, s, e, ms, :worker
FROM unnest(CAST(:d AS bigint[]), CAST(:o AS boolean[]), CAST(:s AS int[]),
            CAST(:e AS text[]), CAST(:ms AS float8[])) AS u(d, o, s, e, ms)
"""
_UPDATE_SQL = """
UPDATE outbox_delivery x
SET status = u.status, attempts = x.attempts + 1, next_at = u.next_at, last_error = u.error,
    delivered_at = CASE WHEN u.status = 'delivered' THEN CAST(:now AS timestamptz) END
FROM unnest(CAST(:d AS bigint[]), CAST(:st AS text[]), CAST(:n AS timestamptz[]),
            CAST(:e AS text[])) AS u(id, status, next_at, error)
WHERE x.id = u.id
"""


def next_attempt(c: Claimed, now: datetime, settings: Settings) -> datetime | None:
    """When a failed delivery is tried again (exponential backoff; an SMS waits out the
    quiet hours too), or None once the give-up time has passed."""
    delay = settings.notify_retry_base_s * 2 ** c.attempts
    at = now + timedelta(seconds=delay)
    if c.channel == "sms":
        at = sms.allowed_at(at, settings.sms_quiet_hours,
                            c.urgent_category in settings.sms_urgent_categories)
    if at > c.created_at + timedelta(seconds=settings.notify_give_up_s):
        # One last try at the give-up time itself, unless that time has come already.
        last = c.created_at + timedelta(seconds=settings.notify_give_up_s)
        return last if last > now else None
    return at


def record_outcomes(conn: Connection, claimed: list[Claimed], outcomes: list[tuple[Outcome, float]],
                    settings: Settings, now: datetime, worker: str) -> dict[str, int]:
    """Record each attempt and the deliveries' new state, set-based, in the claiming
    transaction; return counts of delivered, retrying and failed."""
    if not claimed:
        return {"delivered": 0, "retrying": 0, "failed": 0}
    status, next_at = [], []
    for c, (o, _ms) in zip(claimed, outcomes, strict=True):
        if o.ok:
            status.append("delivered")
            next_at.append(now)
            continue
        later = next_attempt(c, now, settings)
        status.append("pending" if later else "failed")
        next_at.append(later or now)
    ids = [c.message.delivery_id for c in claimed]
    errors = [o.error for o, _ in outcomes]
    conn.execute(text(_ATTEMPTS_SQL), {
        "now": now, "worker": worker, "d": ids, "o": [o.ok for o, _ in outcomes],
        "s": [o.status_code for o, _ in outcomes], "e": errors,
        "ms": [ms for _, ms in outcomes]})
    conn.execute(text(_UPDATE_SQL), {"now": now, "d": ids, "st": status, "n": next_at,
                                     "e": errors})
    return {"delivered": status.count("delivered"),
            "retrying": sum(1 for s, (o, _) in zip(status, outcomes, strict=True)
                            if s == "pending" and not o.ok),
            "failed": status.count("failed")}


def list_deliveries(conn: Connection, *, failed_only: bool = False, limit: int = 50) -> list[dict]:
    """Deliveries, newest first (``failed_only``: the failed ones), with their event."""
    where = "WHERE d.status = 'failed'" if failed_only else ""
    rows = conn.execute(text(
        "SELECT d.id, d.event_id, e.type, e.case_id, c.case_no, d.channel, d.target, d.status, "
        "d.attempts, d.next_at, d.delivered_at, d.last_error FROM outbox_delivery d "
        'JOIN outbox_event e ON e.id = d.event_id LEFT JOIN "case" c ON c.id = e.case_id '
        f"{where} ORDER BY d.id DESC LIMIT :limit"), {"limit": limit})
    return [dict(r) for r in rows.mappings()]


def failed_count(conn: Connection) -> int:
    """How many deliveries have been given up (the admins' workbench shows it)."""
    return conn.execute(text("SELECT count(*) FROM outbox_delivery WHERE status = 'failed'")
                        ).scalar_one()


def retry(conn: Connection, delivery_id: int) -> dict:
    """Send a failed delivery again at the next pass (its give-up clock starts afresh)."""
    row = conn.execute(text("SELECT status FROM outbox_delivery WHERE id = :id"),
                       {"id": delivery_id}).first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}; see `casegrid outbox list`", field="id")
    if row.status == "delivered":
        raise InvalidInput(f"delivery {delivery_id} was delivered already", field="id")
    conn.execute(text("UPDATE outbox_delivery SET status = 'pending', next_at = now(), "
                      "created_at = now(), attempts = 0 WHERE id = :id"), {"id": delivery_id})
    return {"id": delivery_id, "status": "pending"}


_PURGE_SQL = """
WITH old AS MATERIALIZED (
    SELECT e.id FROM outbox_event e
    WHERE e.routed_at IS NOT NULL AND e.at < now() - make_interval(days => :days)
      AND NOT EXISTS (SELECT 1 FROM outbox_delivery d
                      WHERE d.event_id = e.id AND d.status <> 'delivered')
), a AS (
    DELETE FROM outbox_attempt t USING outbox_delivery d, old
    WHERE t.delivery_id = d.id AND d.event_id = old.id
), d AS (
    DELETE FROM outbox_delivery d USING old WHERE d.event_id = old.id
)
DELETE FROM outbox_event e USING old WHERE e.id = old.id
"""


def purge(conn: Connection, days: int) -> int:
    """Delete events older than ``days`` whose every delivery was delivered, with their
    deliveries and attempts (pending and failed ones are kept), in one statement (the
    foreign keys are checked at its end); return how many events went."""
    if days < 1:
        raise InvalidInput("keep at least one day of deliveries", field="days")
    return conn.execute(text(_PURGE_SQL), {"days": days}).rowcount


def stats(conn: Connection) -> dict[str, int]:
    """Deliveries by status and events not yet routed."""
    out = {r.status: r.n for r in conn.execute(text(
        "SELECT status, count(*) AS n FROM outbox_delivery GROUP BY status"))}
    out["unrouted"] = conn.execute(text(
        "SELECT count(*) FROM outbox_event WHERE routed_at IS NULL")).scalar_one()
    return out


def as_json(rows: list[dict]) -> str:
    """Rows as JSON text (the CLI's --json)."""
    return json.dumps(rows, default=str, ensure_ascii=False, indent=2)
