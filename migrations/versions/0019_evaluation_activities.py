"""Evaluation (考核) of posts and subdistricts, and the activities ledger (活动台账).

* ``community.population``: residents, where known (optional): the case load per 1,000
  residents joins the evaluation only for communities that have it.
* ``evaluation_indicator``: the composite's indicators, each with its weight and direction
  (an admin changes them with ``casegrid evaluation weights set``); ``evaluation_config``:
  the score scale and the minimum number of cases below which a post is listed apart.
  The defaults are casegrid's own, explained in ``cases/evaluation.py``.
* ``activity`` and ``activity_community``: community city-management activities (volunteer
  clean-ups, garbage-sorting outreach, the "五进"), one row each, with the posts that held
  it (several for a joint activity).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE community ADD COLUMN population integer CHECK (population > 0);

CREATE TABLE evaluation_indicator (
    indicator   text PRIMARY KEY,
    weight      numeric NOT NULL CHECK (weight >= 0 AND weight <= 1000),
    direction   text NOT NULL CHECK (direction IN ('higher', 'lower')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT 'migration 0019'
);
INSERT INTO evaluation_indicator (indicator, weight, direction) VALUES
    ('on_time_ack_rate', 15, 'higher'),
    ('on_time_close_rate', 30, 'higher'),
    ('rework_rate', 15, 'lower'),
    ('reply_rate', 20, 'higher'),
    ('satisfaction_rate', 20, 'higher'),
    ('cases_per_1000', 0, 'lower');

CREATE TABLE evaluation_config (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    scale       numeric NOT NULL DEFAULT 100 CHECK (scale > 0),
    min_cases   integer NOT NULL DEFAULT 10 CHECK (min_cases >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT 'migration 0019'
);
INSERT INTO evaluation_config DEFAULT VALUES;

CREATE TABLE activity (
    id              bigserial PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
    kind            text NOT NULL CHECK (kind IN ('volunteer', 'sorting_outreach', 'school',
                        'community', 'plaza', 'park', 'village', 'campaign', 'other')),
    kind_name       text CHECK (kind <> 'other' OR kind_name IS NOT NULL),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    place           text,
    poi_id          integer REFERENCES poi(id),
    geom            geometry(Point, 4326),
    staff           integer NOT NULL DEFAULT 0 CHECK (staff >= 0),
    volunteers      integer NOT NULL DEFAULT 0 CHECK (volunteers >= 0),
    reached         integer NOT NULL DEFAULT 0 CHECK (reached >= 0),
    note            text,
    source          text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'workbench',
                        'import', 'synthetic')),
    -- The import's key of the row (file's own id, or a digest of date, title and posts):
    -- an import run again stores nothing twice.
    import_key      text UNIQUE,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_started_at ON activity (started_at);
CREATE INDEX activity_geom_gist ON activity USING gist (geom);

CREATE TABLE activity_community (
    activity_id     bigint NOT NULL REFERENCES activity(id) ON DELETE CASCADE,
    community_code  text NOT NULL,
    PRIMARY KEY (activity_id, community_code)
);
CREATE INDEX activity_community_code ON activity_community (community_code);
"""

DOWNGRADE = r"""
DROP TABLE activity_community;
DROP TABLE activity;
DROP TABLE evaluation_config;
DROP TABLE evaluation_indicator;
ALTER TABLE community DROP COLUMN population;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
