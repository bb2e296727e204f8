"""maps performance: a spatial index on the open cases only.

The dispatcher map opens on every open case of the city (about 10 % of the ledger) and asks
for them by viewport, ``geom && box AND closed_at IS NULL AND status NOT IN ('closed',
'rejected')`` (``cases.filters.filter_sql``, spelled exactly as this predicate so that the
planner can prove the index applies). Without it the query reads every case of the ledger,
closed ones included: at a million cases the first view took seconds. The partial index
holds only open cases, so it stays small however long the ledger grows; a case leaves it when
it is closed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        'CREATE INDEX case_open_geom_gist ON "case" USING gist (geom) '
        "WHERE closed_at IS NULL AND status NOT IN ('closed', 'rejected')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_open_geom_gist")
