"""maps schema additions: a stored metric copy of each case's point.

Hotspot grids, distance rings around points of interest and duplicate radii are metric
work. Transforming a million points on every page build costs seconds, so the case keeps a
generated EPSG:4527 copy of its point (CGCS2000 / 3-degree Gauss-Kruger zone 39, the
project's metric CRS, ``geo.coords.METRIC_CRS``), GiST-indexed, maintained by PostgreSQL
itself whatever path writes the case.

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
    op.execute(
        'ALTER TABLE "case" ADD COLUMN geom_m geometry(Point, 4527) '
        "GENERATED ALWAYS AS (ST_Transform(geom, 4527)) STORED"
    )
    op.execute('CREATE INDEX case_geom_m_gist ON "case" USING gist (geom_m)')


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_geom_m_gist")
    op.execute('ALTER TABLE "case" DROP COLUMN IF EXISTS geom_m')
