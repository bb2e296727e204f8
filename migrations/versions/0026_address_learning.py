"""Learning the address memory from GPS/app cases, incrementally (issue 27).

* ``address_learn_state``: the learner's watermark, per learner name: the last case id
  read, and since when it has waited for a missing id (a transaction still running, or one
  that rolled back) before passing it.
* ``address_sighting``: one row per GPS/app case with an address: its normalised address,
  its point and community. The memory learns a sighting only when enough reporters agree
  on where that address is (``geo.address_learning``); ``learned`` marks those counted.
  Keyed by the case, so reading a case twice (a rescan) changes nothing.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE address_learn_state (
    name          text PRIMARY KEY,
    last_case_id  bigint NOT NULL DEFAULT 0,
    gap_since     timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE address_sighting (
    case_id          bigint PRIMARY KEY REFERENCES "case"(id),
    key              text NOT NULL,
    community_label  text NOT NULL,
    lon              double precision NOT NULL,
    lat              double precision NOT NULL,
    street_key       text,
    house_no         integer,
    learned          boolean NOT NULL DEFAULT false,
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX address_sighting_key ON address_sighting (key);
""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS address_sighting; DROP TABLE IF EXISTS address_learn_state")
