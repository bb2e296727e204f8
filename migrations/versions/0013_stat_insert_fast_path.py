"""statistics on insert: new registrations count as ``accepted`` with one small upsert.

Almost every INSERT into ``"case"`` is a complaint being registered (intake, Open311, the
row path of a bulk import): no review, dispatch, reply or handling time yet. In
``case_stat_merge_sql``'s aggregate such a case adds 1 to ``accepted`` and 0 to every other
column (each other count needs one of reviewed_at, dispatched_at, replied_at or
handle_hours). The insert trigger still ran the whole 50-column aggregate and rewrote all
50 columns of each row it touched, while holding those rows locked until COMMIT.

``case_stat_ins`` now checks the inserted rows first: when none of them has any of those
four values it adds the counts to ``accepted`` alone (the grouping the large bulk import
already uses, ``cases.bulk_import.first_load.STATS_LOCKED_CTE``); otherwise it runs the full
statement, as 0011 made it. Tests compare the fast path with the full one.

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-26
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def _load_0011():  # noqa: ANN202 - a module
    """Migration 0011, by path (the migrations directory need not be importable)."""
    spec = importlib.util.spec_from_file_location(
        "_casegrid_0011", Path(__file__).with_name("0011_static_stat_triggers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_static = _load_0011()

# The inserted rows add to `accepted` only when none has a workflow value (module docstring).
ACCEPTED_ONLY_TEST = ("NOT EXISTS (SELECT 1 FROM case_stat_new WHERE reviewed_at IS NOT NULL "
                      "OR dispatched_at IS NOT NULL OR replied_at IS NOT NULL "
                      "OR handle_hours IS NOT NULL)")
ACCEPTED_ONLY_SQL = """
INSERT INTO case_stat AS t (dim, day, key, accepted)
SELECT v.dim, (c.received_at AT TIME ZONE 'Asia/Shanghai')::date, v.key, count(*)::int
FROM case_stat_new c
CROSS JOIN LATERAL (VALUES ('community', coalesce(c.community_code, '')),
                           ('subdistrict', coalesce(c.subdistrict_code, '')),
                           ('category', c.category_code), ('channel', c.channel)) AS v(dim, key)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
ON CONFLICT (dim, day, key) DO UPDATE SET accepted = t.accepted + EXCLUDED.accepted"""


def upgrade() -> None:
    full = _static.SOURCES["case_stat_ins"].replace("'", "''")
    fast = ACCEPTED_ONLY_SQL.replace("'", "''")
    op.execute(f"""
DO $do$
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION case_stat_ins() RETURNS trigger LANGUAGE plpgsql AS %L',
        'BEGIN IF {ACCEPTED_ONLY_TEST} THEN {fast}; ELSE '
        || case_stat_merge_sql('{full}') || '; END IF; RETURN NULL; END');
END $do$;
""")


def downgrade() -> None:
    op.execute(_static._regenerate(static=True))
