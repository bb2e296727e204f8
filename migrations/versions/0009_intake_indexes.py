"""intake performance: drop two indexes nothing reads, key the open-cases GiST by category.

* ``case_geom_4527_gist``, a GiST index on ``ST_Transform(geom, 4527)`` (0004): the hotspot
  analysis used to filter cases by metric distance in SQL; it now reads the filtered points
  and projects them with pyproj (``geo.hotspots``), so no query puts the expression in a
  condition (its ``idx_scan`` was 0 on a scratch ledger of 1M cases used for intake and
  map experiments). Every insert still paid a projection and a GiST insertion for it, and
  a large first import rebuilt it.
* ``case_event_action (case_id, action)`` (0003): ``case_event_case (case_id, at)`` answers
  the same lookups by case (a case has a handful of events; the action is filtered among
  them), so the second index only cost each event insert.
* ``case_open_geom_gist`` (0006) becomes ``(category_code, geom)`` (``btree_gist`` gives text
  a GiST operator class). The duplicate search at intake asks for open cases *of one
  category* near a point; with the category in the index it reads only those, not every
  open case nearby (a batch of 32 mixed-category points on a ledger of 100k open cases
  went from about 5,300 buffer reads to 1,050 in EXPLAIN ANALYZE). Bounding-box queries
  without a category (the dispatcher map) still use it: GiST searches any column subset.
  Same name and predicate, so the map queries and their tests are unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


_OPEN = "WHERE closed_at IS NULL AND status NOT IN ('closed', 'rejected')"


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_geom_4527_gist")
    op.execute("DROP INDEX IF EXISTS case_event_action")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")  # trusted: the owner may create it
    op.execute("DROP INDEX IF EXISTS case_open_geom_gist")
    op.execute(f'CREATE INDEX case_open_geom_gist ON "case" USING gist (category_code, geom) {_OPEN}')


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS case_open_geom_gist")
    op.execute(f'CREATE INDEX case_open_geom_gist ON "case" USING gist (geom) {_OPEN}')
    op.execute("CREATE INDEX IF NOT EXISTS case_event_action ON case_event (case_id, action)")
    op.execute('CREATE INDEX IF NOT EXISTS case_geom_4527_gist ON "case" '
               "USING gist (ST_Transform(geom, 4527))")
