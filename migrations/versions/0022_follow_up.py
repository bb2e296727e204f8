"""the citizen's side of the loop: follow-up (回访), reopening (发回重办), reply templates, the
/track throttle.

* ``"case"`` gains ``follow_up_result`` / ``follow_up_at`` (the last follow-up: the last one
  counts), ``reopen_count`` (times sent back to be redone).
* ``case_follow_stat``: per (dimension, day of receipt, key) the follow-up counts of
  ``cases.stats`` (回访数, 满意数, 重办数, and reopened cases waiting for their new reply),
  kept by row triggers whose ``WHEN`` clause lets a row without any follow-up or reopening
  through at the cost of one comparison, so intake and the other workflow steps pay
  nothing for it. ``case_stat`` (0003) is not touched.
* ``response_template``: 常用回复 per category (``*``: any category).
* ``track_throttle``: failed ``/track`` look-ups per address and per number, in windows.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# A row's contribution (sign s): one definition, used by the three trigger functions.
_MERGE = """
INSERT INTO case_follow_stat AS t (dim, day, key, followed_up, satisfied, reopened,
                                   reopened_unreplied)
SELECT v.dim, (r.received_at AT TIME ZONE 'Asia/Shanghai')::date, v.key,
       s * coalesce(r.channel <> 'patrol' AND r.follow_up_result IN
            ('satisfied', 'basically_satisfied', 'dissatisfied'), false)::int,
       s * coalesce(r.channel <> 'patrol' AND r.follow_up_result IN
            ('satisfied', 'basically_satisfied'), false)::int,
       s * (r.channel <> 'patrol' AND r.reopen_count > 0)::int,
       s * (r.channel <> 'patrol' AND r.reopen_count > 0 AND r.replied_at IS NULL)::int
FROM (VALUES ('community', coalesce(r.community_code, '')),
             ('subdistrict', coalesce(r.subdistrict_code, '')),
             ('category', r.category_code), ('channel', r.channel)) AS v(dim, key)
ON CONFLICT (dim, day, key) DO UPDATE SET
    followed_up = t.followed_up + EXCLUDED.followed_up,
    satisfied = t.satisfied + EXCLUDED.satisfied,
    reopened = t.reopened + EXCLUDED.reopened,
    reopened_unreplied = t.reopened_unreplied + EXCLUDED.reopened_unreplied
"""

_SIG = ("({p}.follow_up_result, {p}.reopen_count, {p}.replied_at IS NULL, {p}.received_at, "
        "{p}.community_code, {p}.subdistrict_code, {p}.category_code, {p}.channel)")
_INVOLVED = "({p}.follow_up_result IS NOT NULL OR {p}.reopen_count > 0)"


def _fn(name: str, body: str) -> str:
    return f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n" \
           f"DECLARE r record; s int;\nBEGIN\n{body}\nRETURN NULL;\nEND $$;"


def _merge(row: str, sign: int) -> str:
    return f"r := {row}; s := {sign};\n{_MERGE};"


UPGRADE = f"""
ALTER TABLE "case" ADD COLUMN follow_up_result text, ADD COLUMN follow_up_at timestamptz,
    ADD COLUMN reopen_count integer NOT NULL DEFAULT 0;
ALTER TABLE "case" ADD CONSTRAINT case_follow_up_result CHECK (follow_up_result IN
    ('satisfied', 'basically_satisfied', 'dissatisfied', 'unreachable'));

CREATE TABLE case_follow_stat (
    dim text NOT NULL,
    day date NOT NULL,
    key text NOT NULL,
    followed_up integer NOT NULL DEFAULT 0,
    satisfied integer NOT NULL DEFAULT 0,
    reopened integer NOT NULL DEFAULT 0,
    reopened_unreplied integer NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, day, key)
);
{_fn("case_follow_stat_ins", _merge("NEW", 1))}
{_fn("case_follow_stat_del", _merge("OLD", -1))}
{_fn("case_follow_stat_upd", _merge("OLD", -1) + chr(10) + _merge("NEW", 1))}
CREATE TRIGGER case_follow_stat_ins AFTER INSERT ON "case" FOR EACH ROW
    WHEN {_INVOLVED.format(p="NEW")} EXECUTE FUNCTION case_follow_stat_ins();
CREATE TRIGGER case_follow_stat_del AFTER DELETE ON "case" FOR EACH ROW
    WHEN {_INVOLVED.format(p="OLD")} EXECUTE FUNCTION case_follow_stat_del();
CREATE TRIGGER case_follow_stat_upd AFTER UPDATE ON "case" FOR EACH ROW
    WHEN (({_INVOLVED.format(p="OLD")} OR {_INVOLVED.format(p="NEW")})
          AND {_SIG.format(p="OLD")} IS DISTINCT FROM {_SIG.format(p="NEW")})
    EXECUTE FUNCTION case_follow_stat_upd();

CREATE TABLE response_template (
    id serial PRIMARY KEY,
    category_code text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    UNIQUE (category_code, title)
);

CREATE TABLE track_throttle (
    scope text NOT NULL,
    key text NOT NULL,
    window_start timestamptz NOT NULL,
    failures integer NOT NULL,
    PRIMARY KEY (scope, key)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS track_throttle;
DROP TABLE IF EXISTS response_template;
DROP TRIGGER IF EXISTS case_follow_stat_upd ON "case";
DROP TRIGGER IF EXISTS case_follow_stat_del ON "case";
DROP TRIGGER IF EXISTS case_follow_stat_ins ON "case";
DROP FUNCTION IF EXISTS case_follow_stat_upd();
DROP FUNCTION IF EXISTS case_follow_stat_del();
DROP FUNCTION IF EXISTS case_follow_stat_ins();
DROP TABLE IF EXISTS case_follow_stat;
ALTER TABLE "case" DROP CONSTRAINT IF EXISTS case_follow_up_result;
ALTER TABLE "case" DROP COLUMN IF EXISTS reopen_count, DROP COLUMN IF EXISTS follow_up_at,
    DROP COLUMN IF EXISTS follow_up_result;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
