"""bulk import performance: drop ``case_reported_at``, which ``case_reported_at_id`` covers.

``case_reported_at (reported_at)`` duplicates the leading column of the keyset index
``case_reported_at_id (reported_at DESC, id DESC)`` (migration 0002): a B-tree serves range
conditions and either sort direction on its leading column, so every query that could use
the narrow index (``reported_at >= ...``, ``ORDER BY reported_at``) can use the wide one.
Each case written paid for both; a bulk import of a million cases spent about half a
second building the duplicate (and a few microseconds per case maintaining it row by row).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_reported_at")


def downgrade() -> None:
    op.execute('CREATE INDEX IF NOT EXISTS case_reported_at ON "case" (reported_at)')
