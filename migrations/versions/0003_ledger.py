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

-- Indicators (cases/stats.py): per day of receipt and per dimension, the counts that no
-- longer depend on the clock, kept by statement-level triggers in the same transaction as
-- every write to "case" (intake, bulk import, workflow, hand edits alike), set-based through
-- transition tables. The clock-dependent parts ("past its deadline by now") are counted
-- live over the open cases only (index case_open_received).
CREATE TABLE case_stat (
    dim              text NOT NULL CHECK (dim IN ('community', 'subdistrict', 'category', 'channel')),
    day              date NOT NULL,
    key              text NOT NULL,   -- '' where the case has none (unrouted)
    accepted         integer NOT NULL DEFAULT 0,
    registered       integer NOT NULL DEFAULT 0,
    dispatched       integer NOT NULL DEFAULT 0,
    closed           integer NOT NULL DEFAULT 0,
    closed_on_time   integer NOT NULL DEFAULT 0,
    closed_reworked  integer NOT NULL DEFAULT 0,
    closed_extended  integer NOT NULL DEFAULT 0,
    handled          integer NOT NULL DEFAULT 0,
    handled_on_time  integer NOT NULL DEFAULT 0,
    replied          integer NOT NULL DEFAULT 0,
    replied_on_time  integer NOT NULL DEFAULT 0,
    hours_sum        double precision NOT NULL DEFAULT 0,
    hours_n          integer NOT NULL DEFAULT 0,
    -- handled cases per handling-time bucket h01..h32 (edges in case_stat_merge_sql,
    -- working hours): plain columns, so summing a year of rows is one cheap aggregate
    h01 integer NOT NULL DEFAULT 0,
    h02 integer NOT NULL DEFAULT 0,
    h03 integer NOT NULL DEFAULT 0,
    h04 integer NOT NULL DEFAULT 0,
    h05 integer NOT NULL DEFAULT 0,
    h06 integer NOT NULL DEFAULT 0,
    h07 integer NOT NULL DEFAULT 0,
    h08 integer NOT NULL DEFAULT 0,
    h09 integer NOT NULL DEFAULT 0,
    h10 integer NOT NULL DEFAULT 0,
    h11 integer NOT NULL DEFAULT 0,
    h12 integer NOT NULL DEFAULT 0,
    h13 integer NOT NULL DEFAULT 0,
    h14 integer NOT NULL DEFAULT 0,
    h15 integer NOT NULL DEFAULT 0,
    h16 integer NOT NULL DEFAULT 0,
    h17 integer NOT NULL DEFAULT 0,
    h18 integer NOT NULL DEFAULT 0,
    h19 integer NOT NULL DEFAULT 0,
    h20 integer NOT NULL DEFAULT 0,
    h21 integer NOT NULL DEFAULT 0,
    h22 integer NOT NULL DEFAULT 0,
    h23 integer NOT NULL DEFAULT 0,
    h24 integer NOT NULL DEFAULT 0,
    h25 integer NOT NULL DEFAULT 0,
    h26 integer NOT NULL DEFAULT 0,
    h27 integer NOT NULL DEFAULT 0,
    h28 integer NOT NULL DEFAULT 0,
    h29 integer NOT NULL DEFAULT 0,
    h30 integer NOT NULL DEFAULT 0,
    h31 integer NOT NULL DEFAULT 0,
    h32 integer NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, day, key)
);
-- Covering, so the live part of the indicators reads the index alone.
CREATE INDEX case_open_received ON "case" (received_at)
    INCLUDE (community_code, subdistrict_code, category_code, channel, dispatched_at,
             handled_at, handle_due_at, replied_at, reply_due_at, rework_count, extension_count)
    WHERE closed_at IS NULL;

-- The merge statement; %s is a query of (sign, received_at, community_code, subdistrict_code, category_code, channel, reviewed_at, dispatched_at, closed_at, handled_at, handle_due_at, replied_at, reply_due_at, rework_count, extension_count, handle_hours...) rows drawn from the
-- trigger's transition tables (+1 for new rows, -1 for old ones).
CREATE FUNCTION case_stat_merge_sql(src text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
WITH x AS MATERIALIZED (
    SELECT v.dim, (c.received_at AT TIME ZONE 'Asia/Shanghai')::date AS day, v.key,
        c.s AS accepted,
        c.s * (c.reviewed_at IS NOT NULL)::int AS registered,
        c.s * (c.dispatched_at IS NOT NULL)::int AS dispatched,
        c.s * (c.dispatched_at IS NOT NULL AND c.closed_at IS NOT NULL)::int AS closed,
        c.s * (c.dispatched_at IS NOT NULL AND c.closed_at IS NOT NULL
               AND coalesce(c.handled_at <= c.handle_due_at, false))::int AS closed_on_time,
        c.s * (c.dispatched_at IS NOT NULL AND c.closed_at IS NOT NULL
               AND c.rework_count > 0)::int AS closed_reworked,
        c.s * (c.dispatched_at IS NOT NULL AND c.closed_at IS NOT NULL
               AND c.extension_count > 0)::int AS closed_extended,
        c.s * (c.dispatched_at IS NOT NULL AND c.handled_at IS NOT NULL)::int AS handled,
        c.s * (c.dispatched_at IS NOT NULL
               AND coalesce(c.handled_at <= c.handle_due_at, false))::int AS handled_on_time,
        c.s * (c.channel <> 'patrol' AND c.replied_at IS NOT NULL)::int AS replied,
        c.s * (c.channel <> 'patrol'
               AND coalesce(c.replied_at <= c.reply_due_at, false))::int AS replied_on_time,
        c.s * coalesce(c.handle_hours, 0) AS hours_sum,
        c.s * (c.handle_hours IS NOT NULL)::int AS hours_n,
        CASE WHEN c.handle_hours IS NOT NULL THEN width_bucket(c.handle_hours,
            ARRAY[0,0.5,1,1.5,2,3,4,5,6,8,10,12,15,18,21,24,30,36,45,54,60,75,90,105,120,
                  150,180,225,270,360,450,600]::float8[]) END AS bucket
    FROM (%s) AS c(s, received_at, community_code, subdistrict_code, category_code, channel, reviewed_at, dispatched_at, closed_at, handled_at, handle_due_at, replied_at, reply_due_at, rework_count, extension_count, handle_hours)
    CROSS JOIN LATERAL (VALUES ('community', coalesce(c.community_code, '')),
                               ('subdistrict', coalesce(c.subdistrict_code, '')),
                               ('category', c.category_code), ('channel', c.channel)) AS v(dim, key)
),
g AS (
    SELECT dim, day, key, sum(accepted)::int AS accepted, sum(registered)::int AS registered,
           sum(dispatched)::int AS dispatched, sum(closed)::int AS closed,
           sum(closed_on_time)::int AS closed_on_time, sum(closed_reworked)::int AS closed_reworked,
           sum(closed_extended)::int AS closed_extended, sum(handled)::int AS handled,
           sum(handled_on_time)::int AS handled_on_time, sum(replied)::int AS replied,
           sum(replied_on_time)::int AS replied_on_time, sum(hours_sum) AS hours_sum,
           sum(hours_n)::int AS hours_n,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 1), 0)::int AS h01,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 2), 0)::int AS h02,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 3), 0)::int AS h03,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 4), 0)::int AS h04,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 5), 0)::int AS h05,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 6), 0)::int AS h06,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 7), 0)::int AS h07,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 8), 0)::int AS h08,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 9), 0)::int AS h09,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 10), 0)::int AS h10,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 11), 0)::int AS h11,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 12), 0)::int AS h12,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 13), 0)::int AS h13,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 14), 0)::int AS h14,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 15), 0)::int AS h15,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 16), 0)::int AS h16,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 17), 0)::int AS h17,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 18), 0)::int AS h18,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 19), 0)::int AS h19,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 20), 0)::int AS h20,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 21), 0)::int AS h21,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 22), 0)::int AS h22,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 23), 0)::int AS h23,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 24), 0)::int AS h24,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 25), 0)::int AS h25,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 26), 0)::int AS h26,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 27), 0)::int AS h27,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 28), 0)::int AS h28,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 29), 0)::int AS h29,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 30), 0)::int AS h30,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 31), 0)::int AS h31,
           coalesce(sum(hours_n) FILTER (WHERE bucket = 32), 0)::int AS h32
    FROM x GROUP BY dim, day, key
)
INSERT INTO case_stat AS t (dim, day, key, accepted, registered, dispatched, closed,
    closed_on_time, closed_reworked, closed_extended, handled, handled_on_time, replied,
    replied_on_time, hours_sum, hours_n, h01, h02, h03, h04, h05, h06, h07, h08, h09, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23, h24, h25, h26, h27, h28, h29, h30, h31, h32)
SELECT * FROM g ORDER BY dim, day, key
ON CONFLICT (dim, day, key) DO UPDATE SET
    accepted = t.accepted + EXCLUDED.accepted, registered = t.registered + EXCLUDED.registered,
    dispatched = t.dispatched + EXCLUDED.dispatched, closed = t.closed + EXCLUDED.closed,
    closed_on_time = t.closed_on_time + EXCLUDED.closed_on_time,
    closed_reworked = t.closed_reworked + EXCLUDED.closed_reworked,
    closed_extended = t.closed_extended + EXCLUDED.closed_extended,
    handled = t.handled + EXCLUDED.handled,
    handled_on_time = t.handled_on_time + EXCLUDED.handled_on_time,
    replied = t.replied + EXCLUDED.replied,
    replied_on_time = t.replied_on_time + EXCLUDED.replied_on_time,
    hours_sum = t.hours_sum + EXCLUDED.hours_sum, hours_n = t.hours_n + EXCLUDED.hours_n,
    h01 = t.h01 + EXCLUDED.h01,
    h02 = t.h02 + EXCLUDED.h02,
    h03 = t.h03 + EXCLUDED.h03,
    h04 = t.h04 + EXCLUDED.h04,
    h05 = t.h05 + EXCLUDED.h05,
    h06 = t.h06 + EXCLUDED.h06,
    h07 = t.h07 + EXCLUDED.h07,
    h08 = t.h08 + EXCLUDED.h08,
    h09 = t.h09 + EXCLUDED.h09,
    h10 = t.h10 + EXCLUDED.h10,
    h11 = t.h11 + EXCLUDED.h11,
    h12 = t.h12 + EXCLUDED.h12,
    h13 = t.h13 + EXCLUDED.h13,
    h14 = t.h14 + EXCLUDED.h14,
    h15 = t.h15 + EXCLUDED.h15,
    h16 = t.h16 + EXCLUDED.h16,
    h17 = t.h17 + EXCLUDED.h17,
    h18 = t.h18 + EXCLUDED.h18,
    h19 = t.h19 + EXCLUDED.h19,
    h20 = t.h20 + EXCLUDED.h20,
    h21 = t.h21 + EXCLUDED.h21,
    h22 = t.h22 + EXCLUDED.h22,
    h23 = t.h23 + EXCLUDED.h23,
    h24 = t.h24 + EXCLUDED.h24,
    h25 = t.h25 + EXCLUDED.h25,
    h26 = t.h26 + EXCLUDED.h26,
    h27 = t.h27 + EXCLUDED.h27,
    h28 = t.h28 + EXCLUDED.h28,
    h29 = t.h29 + EXCLUDED.h29,
    h30 = t.h30 + EXCLUDED.h30,
    h31 = t.h31 + EXCLUDED.h31,
    h32 = t.h32 + EXCLUDED.h32
$q$, src)
$f$;

-- Columns whose change can change a case's contribution.
CREATE FUNCTION case_stat_sig(c "case") RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT row(c.received_at, c.community_code, c.subdistrict_code, c.category_code, c.channel,
               c.reviewed_at IS NULL, c.dispatched_at IS NULL, c.closed_at IS NULL,
               c.handled_at, c.handle_due_at, c.replied_at, c.reply_due_at,
               c.rework_count > 0, c.extension_count > 0, c.handle_hours)::text
$$;

CREATE FUNCTION case_stat_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE case_stat_merge_sql('SELECT 1, received_at, community_code, subdistrict_code, category_code, channel, reviewed_at, dispatched_at, closed_at, handled_at, handle_due_at, replied_at, reply_due_at, rework_count, extension_count, handle_hours FROM case_stat_new');
    RETURN NULL;
END $$;
CREATE FUNCTION case_stat_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE case_stat_merge_sql('SELECT -1, received_at, community_code, subdistrict_code, category_code, channel, reviewed_at, dispatched_at, closed_at, handled_at, handle_due_at, replied_at, reply_due_at, rework_count, extension_count, handle_hours FROM case_stat_old');
    RETURN NULL;
END $$;
-- Only rows whose contribution can have changed are merged (not every version bump).
CREATE FUNCTION case_stat_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE case_stat_merge_sql(
        'SELECT v.* FROM case_stat_old o JOIN case_stat_new n ON n.id = o.id '
        'CROSS JOIN LATERAL (VALUES (-1, o.received_at, o.community_code, o.subdistrict_code, o.category_code, o.channel, o.reviewed_at, o.dispatched_at, o.closed_at, o.handled_at, o.handle_due_at, o.replied_at, o.reply_due_at, o.rework_count, o.extension_count, o.handle_hours), '
        '(1, n.received_at, n.community_code, n.subdistrict_code, n.category_code, n.channel, n.reviewed_at, n.dispatched_at, n.closed_at, n.handled_at, n.handle_due_at, n.replied_at, n.reply_due_at, n.rework_count, n.extension_count, n.handle_hours)) AS v '
        'WHERE (o.received_at, o.community_code, o.subdistrict_code, o.category_code, o.channel, o.reviewed_at IS NULL, o.dispatched_at IS NULL, o.closed_at IS NULL, o.handled_at, o.handle_due_at, o.replied_at, o.reply_due_at, o.rework_count > 0, o.extension_count > 0, o.handle_hours) IS DISTINCT FROM '
        '(n.received_at, n.community_code, n.subdistrict_code, n.category_code, n.channel, n.reviewed_at IS NULL, n.dispatched_at IS NULL, n.closed_at IS NULL, n.handled_at, n.handle_due_at, n.replied_at, n.reply_due_at, n.rework_count > 0, n.extension_count > 0, n.handle_hours)');
    RETURN NULL;
END $$;
CREATE TRIGGER case_stat_ins AFTER INSERT ON "case" REFERENCING NEW TABLE AS case_stat_new
    FOR EACH STATEMENT EXECUTE FUNCTION case_stat_ins();
CREATE TRIGGER case_stat_upd AFTER UPDATE ON "case"
    REFERENCING OLD TABLE AS case_stat_old NEW TABLE AS case_stat_new
    FOR EACH STATEMENT EXECUTE FUNCTION case_stat_upd();
CREATE TRIGGER case_stat_del AFTER DELETE ON "case" REFERENCING OLD TABLE AS case_stat_old
    FOR EACH STATEMENT EXECUTE FUNCTION case_stat_del();
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
DROP TRIGGER IF EXISTS case_stat_ins ON "case";
DROP TRIGGER IF EXISTS case_stat_upd ON "case";
DROP TRIGGER IF EXISTS case_stat_del ON "case";
DROP FUNCTION IF EXISTS case_stat_ins(), case_stat_upd(), case_stat_del(),
    case_stat_merge_sql(text);
DROP INDEX IF EXISTS case_open_received;
DROP TABLE IF EXISTS case_stat;
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
