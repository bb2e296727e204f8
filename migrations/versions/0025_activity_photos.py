"""Photos of activities (issue 25) through the evidence table of issue 22.

An ``attachment`` row belongs to a case or to an activity, never both nor neither
(``case_id`` becomes nullable, ``activity_id`` is new). Activity photos are filed under
their own stage ``activity``, so every query of a case's files (``WHERE case_id = ...``)
and the store's sweep (every row's file is kept) work unchanged.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE attachment ALTER COLUMN case_id DROP NOT NULL;
ALTER TABLE attachment ADD COLUMN activity_id bigint REFERENCES activity(id);
ALTER TABLE attachment DROP CONSTRAINT attachment_stage_check;
ALTER TABLE attachment ADD CONSTRAINT attachment_stage_check CHECK (stage IN
    ('intake', 'handle', 'verify_pass', 'verify_fail', 'return', 'added', 'activity'));
ALTER TABLE attachment ADD CONSTRAINT attachment_one_owner CHECK (
    (case_id IS NULL) <> (activity_id IS NULL)
    AND (stage = 'activity') = (activity_id IS NOT NULL));
CREATE INDEX attachment_activity_idx ON attachment (activity_id, id)
    WHERE activity_id IS NOT NULL;
"""

DOWNGRADE = r"""
DELETE FROM attachment WHERE activity_id IS NOT NULL;
DROP INDEX attachment_activity_idx;
ALTER TABLE attachment DROP CONSTRAINT attachment_one_owner;
ALTER TABLE attachment DROP CONSTRAINT attachment_stage_check;
ALTER TABLE attachment ADD CONSTRAINT attachment_stage_check CHECK (stage IN
    ('intake', 'handle', 'verify_pass', 'verify_fail', 'return', 'added'));
ALTER TABLE attachment DROP COLUMN activity_id;
ALTER TABLE attachment ALTER COLUMN case_id SET NOT NULL;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
