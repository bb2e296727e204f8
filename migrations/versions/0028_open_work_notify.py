"""The 待签收 and 督办 lists' columns in the open-work index (issue 23).

``case_open_work`` (0027) carries the columns the queues filter on so that the home page's
counts are an index-only scan of the open cases. The 待签收 queue filters on
``acknowledged_at`` and the 督办 queue on ``escalated_at``: without them in the index, the
counts of every officer, supervisor and dispatcher (whose home shows those queues) would
visit each open case's row again. The index is rebuilt with both.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_COLUMNS = "community_code, route_rule, near_boundary, pending_extension, closed_at"


def _index(include: str) -> None:
    op.execute("DROP INDEX IF EXISTS case_open_work")
    op.execute('CREATE INDEX case_open_work ON "case" (status, current_due_at, id) '
               f"INCLUDE ({include}) WHERE closed_at IS NULL")


def upgrade() -> None:
    _index(f"{_COLUMNS}, acknowledged_at, escalated_at")


def downgrade() -> None:
    _index(_COLUMNS)
