"""``community_piece_geom_gist``: small leaf pages, so each routing probe reads few pieces.

The piece table is small (a few hundred pieces per generation) and read once or more for
every point routed. Built with the defaults, its GiST index packs the pieces into three or
four leaf pages of about two hundred entries each, and every probe tests the point against
every entry of each leaf it visits. Built with ``fillfactor = 10`` the leaves hold about
twenty entries each, and a probe tests a tenth as many boxes: the point-in-polygon
routing join reads the pieces much faster (``bench/RESULTS.md``, routing).

A GiST index honours its fillfactor only while it is built, and only in the insertion
build: the sorted build (the default where the operator class can sort, as PostGIS's can)
fills its pages whole. Hence ``buffering = on``, which selects the insertion build, and
``geo.boundaries.subdivide_generation`` rebuilds the index after writing a generation's
pieces (pieces inserted one by one fill the leaves up again).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS community_piece_geom_gist")
    op.execute("CREATE INDEX community_piece_geom_gist ON community_piece USING gist (geom)"
               " WITH (fillfactor = 10, buffering = on)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS community_piece_geom_gist")
    op.execute("CREATE INDEX community_piece_geom_gist ON community_piece USING gist (geom)")
