"""Known place names by a word of two characters (the workbench's search box).

pg_trgm cannot serve ``address ILIKE '%善国%'``: a word shorter than three characters has no
trigram inside the pattern, so the ledger would be read case by case. The search box looks
such a word up in the gazetteer's names instead (``geo.place_names``), through this GIN
index on each name's two-character pieces (``casegrid_bigrams``), and searches the ledger
by the names found, each long enough for ``case_address_trgm``. Doorplates and crossings
are left out: their names are a road's name with a number, which the road already gives.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION casegrid_bigrams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ARRAY(SELECT DISTINCT substr(lower(t), i, 2)
                   FROM generate_series(1, char_length(t) - 1) AS i) $$;
CREATE INDEX gazetteer_entry_name_bigrams ON gazetteer_entry
    USING gin (casegrid_bigrams(name)) WHERE kind NOT IN ('doorplate', 'crossing');
""")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS gazetteer_entry_name_bigrams")
    op.execute("DROP FUNCTION IF EXISTS casegrid_bigrams(text)")
