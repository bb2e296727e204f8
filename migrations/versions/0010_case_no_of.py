"""case numbers: the format as an inlinable function of the number.

``next_case_no()`` (0008) draws the number and formats it in one SQL function, which the
planner cannot inline (its ``FROM nextval(...)``), so a statement storing many cases runs
the SQL-function machinery once per row. ``case_no_of(n)`` is the format alone, a single
expression, inlined where it is called with a column: the large bulk import draws its case
numbers set-based (``cases.bulk_import``) and formats them with it. ``next_case_no()`` now
calls it, so there is one format; its numbers are unchanged.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION case_no_of(n bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'CG' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')
           || lpad(n::text, greatest(7, length(n::text)), '0')
$$;
CREATE OR REPLACE FUNCTION next_case_no() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT case_no_of(n) FROM nextval('case_no_seq') AS n
$$;
""")


def downgrade() -> None:
    op.execute("""
CREATE OR REPLACE FUNCTION next_case_no() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'CG' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')
           || lpad(n::text, greatest(7, length(n::text)), '0')
    FROM nextval('case_no_seq') AS n
$$;
DROP FUNCTION IF EXISTS case_no_of(bigint);
""")
