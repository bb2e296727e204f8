"""The address matcher's explanation as codes with parameters (``case_locate.reasons``).

``case_locate.why`` keeps the English words (the CLI and API read them); ``reasons`` holds
the same explanation as a list of ``{"code": ..., **params}`` (``geo.address_why``), so the
workbench says it in the page's language. Answers stored before have no reasons (NULL):
their words are shown as stored.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE case_locate ADD COLUMN reasons jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE case_locate DROP COLUMN IF EXISTS reasons")
