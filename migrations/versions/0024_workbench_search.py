"""Indexes for the workbench's search box (``cases.search``) on a ledger of millions.

* ``case_address_trgm``: a pg_trgm GIN index on the address, so ``address ILIKE '%...%'``
  (words of an address typed into the box) reads the index instead of every case. Three
  characters or more give trigrams; shorter words fall back to the newest-first scan.
* ``case_reporter_phone_digits``: the reporter's phone as digits only (it is stored as
  typed: ``138 1234 5678``, ``0632-5512345``), so a phone typed in any spacing is one
  index look-up. The expression is ``cases.search.PHONE_DIGITS_SQL``'s; both must match
  for the planner to use the index.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute('CREATE INDEX case_address_trgm ON "case" USING gin (address gin_trgm_ops)')
    op.execute("CREATE INDEX case_reporter_phone_digits ON \"case\" "
               "((regexp_replace(reporter_phone, '[^0-9]', '', 'g'))) "
               "WHERE reporter_phone IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_reporter_phone_digits")
    op.execute("DROP INDEX IF EXISTS case_address_trgm")
