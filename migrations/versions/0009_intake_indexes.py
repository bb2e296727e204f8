"""intake performance: drop two indexes nothing reads.

* ``case_geom_4527_gist``, a GiST index on ``ST_Transform(geom, 4527)`` (0004): the hotspot
  analysis used to filter cases by metric distance in SQL; it now reads the filtered points
  and projects them with pyproj (``geo.hotspots``), so no query puts the expression in a
  condition. Every insert still paid a projection and a GiST insertion for it, and a large
  first import rebuilt it.
* ``case_event_action (case_id, action)`` (0003): ``case_event_case (case_id, at)`` answers
  the same lookups by case (a case has a handful of events; the action is filtered among
  them), so the second index only cost each event insert.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_geom_4527_gist")
    op.execute("DROP INDEX IF EXISTS case_event_action")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS case_event_action ON case_event (case_id, action)")
    op.execute('CREATE INDEX IF NOT EXISTS case_geom_4527_gist ON "case" '
               "USING gist (ST_Transform(geom, 4527))")
