"""Ledger schema: per-step due times and outcome columns on "case", per-category time
limits, the status vocabulary, and the index the indicators filter by.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE "case"
    ADD COLUMN review_due_at     timestamptz,
    ADD COLUMN dispatch_due_at   timestamptz,
    ADD COLUMN handle_due_at     timestamptz,
    ADD COLUMN reply_due_at      timestamptz,
    -- working hours from the last dispatch to the (final) handling, set by the handle action
    ADD COLUMN handle_hours      double precision,
    ADD COLUMN reject_reason     text CHECK (reject_reason IN ('invalid', 'out_of_scope', 'duplicate')),
    -- an extension request awaiting a decision: {"amount", "unit", "reason", "by", "at"}
    ADD COLUMN pending_extension jsonb;

ALTER TABLE "case" ADD CONSTRAINT case_status_known CHECK (status IN
    ('registered', 'reviewed', 'rejected', 'dispatched', 'returned', 'handled', 'verified',
     'replied', 'closed'));

-- A dispatcher may move a case by hand (re-route across a boundary): 'manual'.
ALTER TABLE "case" DROP CONSTRAINT IF EXISTS case_route_rule_check;
ALTER TABLE "case" ADD CONSTRAINT case_route_rule_check CHECK (route_rule IN
    ('inside', 'on_boundary', 'nearest', 'outside', 'unlocated', 'manual'));

-- Indicators take the cohort of cases received in a period.
CREATE INDEX case_received_at ON "case" (received_at);
CREATE INDEX case_merged_into ON "case" (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX case_event_action ON case_event (case_id, action);

-- Time limits per category, channel and step. '*' matches any category / any channel; the
-- most specific row wins (category+channel, category, channel, default).
CREATE TABLE time_limit (
    category_code   text NOT NULL CHECK (category_code = '*' OR category_code ~ '^[0-9]{4}$'),
    channel         text NOT NULL DEFAULT '*',
    step            text NOT NULL CHECK (step IN ('review', 'dispatch', 'handle', 'reply')),
    amount          numeric NOT NULL CHECK (amount >= 0 AND amount <= 1000),
    unit            text NOT NULL CHECK (unit IN
                        ('working_hours', 'working_days', 'calendar_hours', 'calendar_days')),
    note            text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL DEFAULT 'migration 0003',
    PRIMARY KEY (category_code, channel, step)
);
"""

# Defaults from DOMAIN.md (city handbooks, 12345 rules); editable by an admin.
SEED = [
    ("*", "*", "review", 4, "working_hours", "审核: 4 working hours after receipt"),
    ("*", "*", "dispatch", 2, "working_hours", "派遣: 2 working hours after review"),
    ("*", "*", "handle", 5, "working_days", "处置: default 5 working days"),
    ("*", "*", "reply", 5, "working_days", "反馈: default 5 working days after receipt"),
    ("*", "hotline_12345", "reply", 13, "working_days", "12345 complaints: 13 working days"),
    ("0101", "*", "handle", 15, "working_days",
     "私搭乱建: demolition 15 working days (stop-work order within 4 working hours)"),
    ("0102", "*", "handle", 1, "working_days", "暴露垃圾: 4 h to 1 day"),
    ("0103", "*", "handle", 1, "working_days", "积存垃圾渣土"),
    ("0104", "*", "handle", 5, "working_hours", "道路不洁: 2-5 h"),
    ("0106", "*", "handle", 1, "working_days", "绿地脏乱"),
    ("0201", "*", "handle", 1, "working_days", "非法小广告"),
    ("0301", "*", "handle", 0, "working_days", "施工扰民: same working day"),
    ("0302", "*", "handle", 1, "working_days", "工地扬尘"),
    ("0304", "*", "handle", 2, "working_days", "施工占道"),
    ("0406", "*", "handle", 4, "working_hours", "道路积水: emergency"),
    ("0501", "*", "handle", 1, "working_days", "无照经营游商"),
    ("0504", "*", "handle", 1, "working_days", "店外经营"),
    ("0505", "*", "handle", 1, "working_days", "机动车乱停放"),
    ("0506", "*", "handle", 1, "working_days", "非机动车乱停放"),
    ("0507", "*", "handle", 2, "working_days", "乱堆物料"),
    ("0508", "*", "handle", 0, "working_days", "商业/社会生活噪音: same working day"),
    ("0510", "*", "handle", 0, "working_days", "露天烧烤: same working day"),
    ("0599", "*", "handle", 0, "working_days", "社会生活噪音扰民: same working day"),
]

DOWNGRADE = r"""
DROP TABLE IF EXISTS time_limit;
DROP INDEX IF EXISTS case_event_action;
DROP INDEX IF EXISTS case_merged_into;
DROP INDEX IF EXISTS case_received_at;
ALTER TABLE "case" DROP CONSTRAINT IF EXISTS case_route_rule_check;
ALTER TABLE "case" ADD CONSTRAINT case_route_rule_check CHECK (route_rule IN
    ('inside', 'on_boundary', 'nearest', 'outside', 'unlocated'));
ALTER TABLE "case" DROP CONSTRAINT IF EXISTS case_status_known;
ALTER TABLE "case" DROP COLUMN review_due_at, DROP COLUMN dispatch_due_at,
    DROP COLUMN handle_due_at, DROP COLUMN reply_due_at, DROP COLUMN handle_hours,
    DROP COLUMN reject_reason, DROP COLUMN pending_extension;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    bind = op.get_bind()
    from sqlalchemy import text

    bind.execute(
        text(
            "INSERT INTO time_limit (category_code, channel, step, amount, unit, note) "
            "VALUES (:c, :ch, :s, :a, :u, :n)"
        ),
        [dict(zip(("c", "ch", "s", "a", "u", "n"), row, strict=True)) for row in SEED],
    )


def downgrade() -> None:
    op.execute(DOWNGRADE)
