"""Privacy by default (issue 28): what the public sees, masked free text, retention.

* ``category.public``: whether the public (Open311 GET, the citizen pages, public maps) sees
  the category's cases at all. Noise complaints are not public: their location is usually
  the complainant's home. A city marks other categories sensitive by clearing the flag
  (``casegrid privacy category CODE --private`` or ``PUT /api/v1/categories/{code}/public``).
* ``case.public_description``: the description text a staff member approved for
  publication (the ``publish_description`` action); the public sees no description
  without it.
* ``case.purged_at``: when the retention purge removed the case's personal data.
* ``personal_text``: the text as written of a description, address or workflow note whose
  stored form was masked (``cases.privacy``). Only roles that may see the reporter read it,
  through a reveal the history records; the purge deletes it.

Text stored before this migration is masked here, so that every reader sees masked text
from now on. ``case_event`` is append-only by trigger; the trigger is disabled for the
rewrite of the notes and enabled again in the same transaction.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE category ADD COLUMN public boolean NOT NULL DEFAULT true;
UPDATE category SET public = false WHERE name_zh ~ '噪|扰民';
ALTER TABLE "case" ADD COLUMN public_description text CHECK (length(public_description) <= 4000),
                   ADD COLUMN purged_at timestamptz;
CREATE TABLE personal_text (
    id          bigserial PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES "case"(id),
    event_id    bigint REFERENCES case_event(id),
    field       text NOT NULL,
    original    text NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX personal_text_case ON personal_text (case_id);
"""

# Rows that may hold a number of ten digits or more, or an e-mail address (cases.privacy
# decides; this only spares it the rows that cannot).
_MAYBE = r"~ '[0-9０-９]([^0-9０-９]?[0-9０-９]){9}|[@＠]'"


def _mask_existing() -> None:
    from cases.privacy import masked_and_original

    conn = op.get_bind()
    for column in ("description", "address"):
        rows = conn.execute(sa.text(
            f'SELECT id, {column} FROM "case" WHERE {column} {_MAYBE}')).all()
        for case_id, value in rows:
            masked, original = masked_and_original(value)
            if original is None:
                continue
            conn.execute(sa.text(f'UPDATE "case" SET {column} = :m WHERE id = :i'),
                         {"m": masked, "i": case_id})
            conn.execute(sa.text("INSERT INTO personal_text (case_id, field, original) "
                                 "VALUES (:i, :f, :o)"),
                         {"i": case_id, "f": column, "o": original})
    rows = conn.execute(sa.text(
        f"SELECT id, case_id, note FROM case_event WHERE note {_MAYBE}")).all()
    if not rows:
        return
    conn.execute(sa.text("ALTER TABLE case_event DISABLE TRIGGER case_event_no_update"))
    for event_id, case_id, note in rows:
        masked, original = masked_and_original(note)
        if original is None:
            continue
        conn.execute(sa.text("UPDATE case_event SET note = :m, data = CASE WHEN data ? 'text' "
                             "THEN jsonb_set(data, '{text}', to_jsonb(CAST(:m AS text))) "
                             "ELSE data END WHERE id = :i"), {"m": masked, "i": event_id})
        conn.execute(sa.text("INSERT INTO personal_text (case_id, event_id, field, original) "
                             "VALUES (:c, :e, 'note', :o)"),
                     {"c": case_id, "e": event_id, "o": original})
    conn.execute(sa.text("ALTER TABLE case_event ENABLE TRIGGER case_event_no_update"))


def upgrade() -> None:
    op.execute(UPGRADE)
    _mask_existing()


def downgrade() -> None:
    # The masked text stays masked: the originals go with their table.
    op.execute("""
DROP TABLE IF EXISTS personal_text;
ALTER TABLE "case" DROP COLUMN IF EXISTS public_description, DROP COLUMN IF EXISTS purged_at;
ALTER TABLE category DROP COLUMN IF EXISTS public;
""")
