"""Evidence: photos and documents attached to a case (``cases.attachments``).

A row names its file in the store (``casegrid.filestore``) by SHA-256: ``sha256`` is the
copy anyone allowed may see (an image re-encoded without its metadata; a PDF as sent),
``thumb_sha256`` its thumbnail, ``original_sha256`` the bytes as received (kept as a fact,
not as a file: the original of a phone photo carries the reporter's position). ``stage``
says which step the file is evidence of; ``event_id`` the ledger event it came with.
``taken_at`` and ``taken_geom`` are the original's EXIF time and GPS position (WGS-84):
staff-only facts, never served with the file.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE attachment (
    id              bigserial PRIMARY KEY,
    case_id         bigint NOT NULL REFERENCES "case"(id),
    event_id        bigint REFERENCES case_event(id),
    stage           text NOT NULL CHECK (stage IN
                        ('intake', 'handle', 'verify_pass', 'verify_fail', 'return', 'added')),
    kind            text NOT NULL CHECK (kind IN ('image', 'pdf')),
    media_type      text NOT NULL,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    thumb_sha256    text CHECK (thumb_sha256 ~ '^[0-9a-f]{64}$'),
    original_sha256 text NOT NULL CHECK (original_sha256 ~ '^[0-9a-f]{64}$'),
    original_name   text,
    size_bytes      integer NOT NULL CHECK (size_bytes > 0),
    width           integer,
    height          integer,
    pages           integer,
    caption         text,
    taken_at        timestamptz,
    taken_geom      geometry(Point, 4326),
    uploaded_by     text NOT NULL,
    uploaded_role   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachment_case_idx ON attachment (case_id, id);
CREATE INDEX attachment_sha_idx ON attachment (sha256);
CREATE INDEX attachment_thumb_idx ON attachment (thumb_sha256);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS attachment")
