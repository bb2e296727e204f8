"""The workbench's lists and counts on a ledger of millions, and the phone index's statistics.

* ``case_open_work``: open cases by (status, current_due_at, id), carrying the columns the
  queues filter on. A queue's page is then read from it in due order (one status at a
  time: ``cases.queries.list_due_first``) instead of sorting every open case of the queue,
  and the queue counts of the home page (``cases.queries.count_each``) are an index-only
  scan of the open cases instead of a visit to each one's row.
* ``case_reporter_phone_digits`` rebuilt without its ``WHERE reporter_phone IS NOT NULL``:
  PostgreSQL keeps statistics of an index's expression only for indexes without a
  predicate, and without them it took a phone for a common value and scanned the ledger
  newest first instead of looking the phone up (0024).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_PHONE = "(regexp_replace(reporter_phone, '[^0-9]', '', 'g'))"


def upgrade() -> None:
    op.execute('CREATE INDEX case_open_work ON "case" (status, current_due_at, id) '
               "INCLUDE (community_code, route_rule, near_boundary, pending_extension, closed_at) "
               "WHERE closed_at IS NULL")
    op.execute("DROP INDEX IF EXISTS case_reporter_phone_digits")
    op.execute(f'CREATE INDEX case_reporter_phone_digits ON "case" ({_PHONE})')
    op.execute('ANALYZE "case"')


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_reporter_phone_digits")
    op.execute(f'CREATE INDEX case_reporter_phone_digits ON "case" ({_PHONE}) '
               "WHERE reporter_phone IS NOT NULL")
    op.execute("DROP INDEX IF EXISTS case_open_work")
