"""Activities' free text under the one masking rule (issue 28).

* ``personal_text.activity_id``: the text as written of an activity's title, place or note
  whose stored form was masked (``cases.privacy``); a row belongs to a case or to an
  activity, never both. Read through ``cases.personal_text.reveal_activity`` only.
* ``activity_event``: an activity's history, where each reveal of its texts is recorded
  (who, when, which texts), as a case's reveals are in ``case_event``.

Titles and places stored before this migration are masked here (notes were masked when
stored, their text as written was not kept), so every reader sees masked text from now on.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE personal_text ALTER COLUMN case_id DROP NOT NULL,
    ADD COLUMN activity_id bigint REFERENCES activity(id) ON DELETE CASCADE,
    ADD CONSTRAINT personal_text_of_case_or_activity
        CHECK ((case_id IS NULL) <> (activity_id IS NULL));
CREATE INDEX personal_text_activity ON personal_text (activity_id) WHERE activity_id IS NOT NULL;
CREATE TABLE activity_event (
    id          bigserial PRIMARY KEY,
    activity_id bigint NOT NULL REFERENCES activity(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    role        text NOT NULL,
    user_id     bigint REFERENCES app_user(id),
    action      text NOT NULL,
    data        jsonb
);
CREATE INDEX activity_event_activity ON activity_event (activity_id);
"""

# Rows that may hold a number of ten digits or more, or an e-mail address (as 0017).
_MAYBE = r"~ '[0-9０-９]([^0-9０-９]?[0-9０-９]){9}|[@＠]'"


def upgrade() -> None:
    from cases.privacy import masked_and_original

    op.execute(UPGRADE)
    conn = op.get_bind()
    for column in ("title", "place"):
        rows = conn.execute(sa.text(
            f"SELECT id, {column} FROM activity WHERE {column} {_MAYBE}")).all()
        for activity_id, value in rows:
            masked, original = masked_and_original(value)
            if original is None:
                continue
            conn.execute(sa.text(f"UPDATE activity SET {column} = :m WHERE id = :i"),
                         {"m": masked, "i": activity_id})
            conn.execute(sa.text("INSERT INTO personal_text (activity_id, field, original) "
                                 "VALUES (:i, :f, :o)"),
                         {"i": activity_id, "f": column, "o": original})


def downgrade() -> None:
    # The masked text stays masked; the originals of activities go with their rows.
    op.execute("""
DROP TABLE IF EXISTS activity_event;
DELETE FROM personal_text WHERE activity_id IS NOT NULL;
ALTER TABLE personal_text DROP CONSTRAINT IF EXISTS personal_text_of_case_or_activity,
    DROP COLUMN IF EXISTS activity_id, ALTER COLUMN case_id SET NOT NULL;
""")
