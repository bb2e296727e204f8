"""outbox_event without its case_id index: every intake batch writes one event per case,
and no query looks events up by case (the case's history is case_event), so the index cost
intake a write per case for nothing.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS outbox_event_case")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS outbox_event_case ON outbox_event (case_id)")
