"""case numbers past 9,999,999: widen instead of truncating.

The default from 0001 was ``'CG' || year || lpad(nextval('case_no_seq')::text, 7, '0')``.
``lpad`` also *truncates* to the given length, so from the 10,000,000th number on every
case number repeated an earlier one (``lpad('10000000', 7, '0')`` is ``'1000000'``) and
every insert failed on the unique constraint. The sequence is shared by all years and is
also consumed by rolled-back and dry-run imports, so a city importing its history reaches
that point. Numbers now keep at least 7 digits and grow beyond when they must:
CG20260000042, ..., CG20269999999, CG202610000000.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION next_case_no() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'CG' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')
           || lpad(n::text, greatest(7, length(n::text)), '0')
    FROM nextval('case_no_seq') AS n
$$;
ALTER TABLE "case" ALTER COLUMN case_no SET DEFAULT next_case_no();
""")


def downgrade() -> None:
    op.execute("""
ALTER TABLE "case" ALTER COLUMN case_no SET DEFAULT
    'CG' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')
    || lpad(nextval('case_no_seq')::text, 7, '0');
DROP FUNCTION IF EXISTS next_case_no();
""")
