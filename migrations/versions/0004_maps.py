"""maps schema additions: a GiST index on each case's point in the metric CRS.

Distance rings around points of interest and duplicate radii are metric work done with
``ST_DWithin(ST_Transform(geom, 4527), ...)`` (EPSG:4527, CGCS2000 / 3-degree Gauss-Kruger
zone 39, the project's metric CRS, ``geo.coords.METRIC_CRS``); this expression index lets
those queries use an index without a metric copy of the point in the table. (A stored
generated column was tried and dropped: PostgreSQL 15 cannot pass whole rows of a table with
generated columns from statement-trigger transition tables, which the ledger's statistics
triggers do.)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('CREATE INDEX case_geom_4527_gist ON "case" USING gist (ST_Transform(geom, 4527))')


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_geom_4527_gist")
