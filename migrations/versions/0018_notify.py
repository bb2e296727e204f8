"""Notifications: the transactional outbox, deliveries and their attempts, reminders sent,
the worker's heartbeat, and acknowledgement (签收) and escalation (督办) on the case.

* ``outbox_event``: a ledger change someone must hear about, written by ``cases/`` in the
  same transaction as the change (``cases.notices``). ``routed_at`` is set once the worker
  has turned it into deliveries.
* ``outbox_delivery``: one event to one target of one channel (a webhook URL, a phone, an
  email address); ``pending`` until delivered, retried with backoff, ``failed`` after
  ``CASEGRID_NOTIFY_GIVE_UP_S``. ``outbox_attempt``: every attempt, kept.
* ``case_reminder``: the reminders already sent, one per case, kind and round (the dispatch
  they belong to): the primary key makes a reminder idempotent under concurrent workers.
* ``worker_heartbeat``: the worker's last sign of life (``casegrid.heartbeat``).
* ``"case"``: ``acknowledge_due_at``/``acknowledged_at`` (the ``acknowledge`` step of
  ``cases.deadlines``), ``acknowledged_on_time`` (the first acknowledgement of the case was
  within its limit: 按时签收率), ``handle_soon_at`` (when the due-soon reminder is due),
  ``escalated_at`` (督办).
* ``case_stat.acknowledged_on_time``: kept by the ``acknowledge`` action.
* ``community_post.webhook_url``: a post's own webhook.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE "case"
    ADD COLUMN acknowledge_due_at   timestamptz,
    ADD COLUMN acknowledged_at      timestamptz,
    ADD COLUMN acknowledged_on_time boolean,
    ADD COLUMN handle_soon_at       timestamptz,
    ADD COLUMN escalated_at         timestamptz;
-- The reminder pass reads the cases at the posts (status 'dispatched') only.
CREATE INDEX case_dispatched_reminders ON "case" (id)
    INCLUDE (acknowledge_due_at, acknowledged_at, handle_soon_at, handle_due_at, dispatched_at)
    WHERE status = 'dispatched';
CREATE INDEX case_escalated ON "case" (escalated_at) WHERE escalated_at IS NOT NULL;

ALTER TABLE case_stat ADD COLUMN acknowledged_on_time integer NOT NULL DEFAULT 0;
ALTER TABLE community_post ADD COLUMN webhook_url text;

ALTER TABLE time_limit DROP CONSTRAINT IF EXISTS time_limit_step_check;
ALTER TABLE time_limit ADD CONSTRAINT time_limit_step_check
    CHECK (step IN ('review', 'dispatch', 'acknowledge', 'handle', 'reply'));
INSERT INTO time_limit (category_code, channel, step, amount, unit, note, updated_by)
VALUES ('*', '*', 'acknowledge', 2, 'working_hours',
        '签收: the post acknowledges a dispatched case within 2 working hours', 'migration 0018')
ON CONFLICT DO NOTHING;

CREATE TABLE outbox_event (
    id          bigserial PRIMARY KEY,
    type        text NOT NULL,
    case_id     bigint REFERENCES "case"(id),
    at          timestamptz NOT NULL DEFAULT now(),
    -- who must hear of it: ["post", "subdistrict", "supervisor", ...] (cases.notices)
    recipients  jsonb NOT NULL,
    payload     jsonb NOT NULL,
    routed_at   timestamptz
);
CREATE INDEX outbox_event_unrouted ON outbox_event (id) WHERE routed_at IS NULL;
CREATE INDEX outbox_event_case ON outbox_event (case_id);

CREATE TABLE outbox_delivery (
    id            bigserial PRIMARY KEY,
    event_id      bigint NOT NULL REFERENCES outbox_event(id),
    channel       text NOT NULL CHECK (channel IN ('webhook', 'sms', 'email')),
    target        text NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    last_error    text,
    UNIQUE (event_id, channel, target)
);
CREATE INDEX outbox_delivery_due ON outbox_delivery (next_at) WHERE status = 'pending';
CREATE INDEX outbox_delivery_failed ON outbox_delivery (id) WHERE status = 'failed';

CREATE TABLE outbox_attempt (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES outbox_delivery(id),
    at           timestamptz NOT NULL DEFAULT now(),
    ok           boolean NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  double precision,
    worker       text
);
CREATE INDEX outbox_attempt_delivery ON outbox_attempt (delivery_id);

CREATE TABLE case_reminder (
    case_id   bigint NOT NULL REFERENCES "case"(id),
    kind      text NOT NULL CHECK (kind IN ('ack_late', 'due_soon', 'overdue', 'escalated')),
    round     timestamptz NOT NULL,   -- the dispatch the reminder belongs to
    sent_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, kind, round)
);

CREATE TABLE worker_heartbeat (
    name   text PRIMARY KEY,
    at     timestamptz NOT NULL,
    pid    integer,
    host   text,
    info   jsonb NOT NULL DEFAULT '{}'::jsonb
);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS worker_heartbeat, case_reminder, outbox_attempt, outbox_delivery, outbox_event;
DELETE FROM time_limit WHERE step = 'acknowledge';
ALTER TABLE time_limit DROP CONSTRAINT IF EXISTS time_limit_step_check;
ALTER TABLE time_limit ADD CONSTRAINT time_limit_step_check
    CHECK (step IN ('review', 'dispatch', 'handle', 'reply'));
ALTER TABLE community_post DROP COLUMN IF EXISTS webhook_url;
ALTER TABLE case_stat DROP COLUMN IF EXISTS acknowledged_on_time;
DROP INDEX IF EXISTS case_dispatched_reminders, case_escalated;
ALTER TABLE "case"
    DROP COLUMN IF EXISTS acknowledge_due_at, DROP COLUMN IF EXISTS acknowledged_at,
    DROP COLUMN IF EXISTS acknowledged_on_time, DROP COLUMN IF EXISTS handle_soon_at,
    DROP COLUMN IF EXISTS escalated_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
