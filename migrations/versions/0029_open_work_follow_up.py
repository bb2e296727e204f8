"""The 待回访 list's columns in the open-work index.

The 待回访 queue (``follow_up_due``, cases/filters.py) reads ``replied_at``, ``channel``,
``follow_up_at`` and ``follow_up_result``; without them in ``case_open_work`` (0027, 0028)
the home page's counts of every dispatcher and supervisor visit each open case's row
instead of being an index-only scan. The index is rebuilt with them.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_COLUMNS = ("community_code, route_rule, near_boundary, pending_extension, closed_at, "
            "acknowledged_at, escalated_at")


def _index(include: str) -> None:
    op.execute("DROP INDEX IF EXISTS case_open_work")
    op.execute('CREATE INDEX case_open_work ON "case" (status, current_due_at, id) '
               f"INCLUDE ({include}) WHERE closed_at IS NULL")


def upgrade() -> None:
    _index(f"{_COLUMNS}, replied_at, channel, follow_up_at, follow_up_result")


def downgrade() -> None:
    _index(_COLUMNS)
