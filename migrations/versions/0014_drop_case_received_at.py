"""drop ``case_received_at``, an index no product query reads.

``case_received_at`` (0003) was made for the indicators' cohorts, the cases received in a
period. The indicators read the per-day counts of ``case_stat`` (0003 too) and the open
cases, which have their own partial index, ``case_open_received``. What is left
reading cases by a ``received_at`` range is ``cases.stats.compute_stats_direct``, the exact
reference the tests compare ``compute_stats`` with (a year is a large share of the ledger,
scanned either way), the statistics benchmark's ``count(*)`` baseline, and the sample
generator's pass over its own fresh cases. Every registered case paid a B-tree insertion
for it, and the first load of a city's history rebuilt it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_received_at")


def downgrade() -> None:
    op.execute('CREATE INDEX IF NOT EXISTS case_received_at ON "case" (received_at)')
