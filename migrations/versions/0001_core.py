"""Core schema: boundary generations, subdistricts, communities and their subdivided
pieces, community posts, points of interest, category catalogue, cases and their history,
API tokens, the working calendar.

Written as plain DDL on purpose: spatial indexes are declared explicitly (GeoAlchemy2's
automatic index and autogenerate fight each other), and every geometry column names SRID 4326.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE EXTENSION IF NOT EXISTS postgis;

-- One import of one boundary level. Never overwritten: a redistricting is a new generation,
-- and cases keep the generation id that routed them.
CREATE TABLE boundary_generation (
    id              serial PRIMARY KEY,
    level           text NOT NULL CHECK (level IN ('subdistrict', 'community')),
    source          text NOT NULL,
    source_crs      text NOT NULL,
    note            text,
    feature_count   integer NOT NULL DEFAULT 0,
    report          jsonb NOT NULL DEFAULT '{}'::jsonb,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    active          boolean NOT NULL DEFAULT false,
    activated_at    timestamptz
);
-- At most one active generation per level.
CREATE UNIQUE INDEX boundary_generation_one_active
    ON boundary_generation (level) WHERE active;

CREATE TABLE subdistrict (
    id              serial PRIMARY KEY,
    generation_id   integer NOT NULL REFERENCES boundary_generation(id),
    code            text NOT NULL,
    name            text NOT NULL,
    properties      jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom            geometry(MultiPolygon, 4326) NOT NULL,
    UNIQUE (generation_id, code)
);
CREATE INDEX subdistrict_geom_gist ON subdistrict USING gist (geom);

CREATE TABLE community (
    id               serial PRIMARY KEY,
    generation_id    integer NOT NULL REFERENCES boundary_generation(id),
    code             text NOT NULL,
    name             text NOT NULL,
    subdistrict_code text,
    area_m2          double precision,
    properties       jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom             geometry(MultiPolygon, 4326) NOT NULL,
    UNIQUE (generation_id, code)
);
CREATE INDEX community_geom_gist ON community USING gist (geom);
CREATE INDEX community_code ON community (code);

-- ST_Subdivide'd copies of community polygons: small pieces make ST_Covers fast and
-- their bounding boxes tight (MapIt's approach).
CREATE TABLE community_piece (
    id              bigserial PRIMARY KEY,
    community_id    integer NOT NULL REFERENCES community(id) ON DELETE CASCADE,
    generation_id   integer NOT NULL REFERENCES boundary_generation(id),
    geom            geometry(Polygon, 4326) NOT NULL
);
CREATE INDEX community_piece_geom_gist ON community_piece USING gist (geom);
CREATE INDEX community_piece_generation ON community_piece (generation_id);

-- The city-management post of a community (城市管理岗). Keyed by community code, which is
-- stable across boundary generations.
CREATE TABLE community_post (
    id              serial PRIMARY KEY,
    community_code  text NOT NULL UNIQUE,
    name            text NOT NULL,
    contact_name    text,
    phone           text,
    address         text,
    hours           text,
    geom            geometry(Point, 4326),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX community_post_geom_gist ON community_post USING gist (geom);

-- Points of interest that planners study: schools, hospitals, markets, parks and plazas.
-- Any geometry: a campus polygon lets "200 m from the wall" be measured correctly.
CREATE TABLE poi (
    id              serial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('school', 'hospital', 'market', 'park_plaza')),
    name            text NOT NULL,
    source_id       text,
    source          text,
    properties      jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom            geometry(Geometry, 4326) NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX poi_geom_gist ON poi USING gist (geom);
CREATE INDEX poi_kind ON poi (kind);

-- Category catalogue (事件 codes: 2-digit major + 2-digit minor, cities extend with 99).
CREATE TABLE category (
    code                   text PRIMARY KEY CHECK (code ~ '^[0-9]{4}$'),
    name_zh                text NOT NULL,
    name_en                text NOT NULL,
    major_zh               text,
    major_en               text,
    description            text,
    active                 boolean NOT NULL DEFAULT true,
    duplicate_radius_m     double precision,
    duplicate_window_days  integer
);

-- A case on the work ledger (工作台账). Case numbers: CG + year + 7-digit sequence.
CREATE SEQUENCE case_no_seq;
CREATE TABLE "case" (
    id                  bigserial PRIMARY KEY,
    case_no             text NOT NULL UNIQUE DEFAULT
                            'CG' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')
                            || lpad(nextval('case_no_seq')::text, 7, '0'),
    channel             text NOT NULL CHECK (channel IN
                            ('hotline_12345', 'platform', 'patrol', 'app', 'open311', 'walk_in')),
    external_id         text,
    category_code       text NOT NULL REFERENCES category(code),
    description         text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    address             text,
    reported_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    reporter_name       text,
    reporter_phone      text,
    photo_urls          text[] NOT NULL DEFAULT '{}',
    -- what the reporter sent, before conversion
    input_lon           double precision,
    input_lat           double precision,
    input_crs           text,
    geom                geometry(Point, 4326),
    -- routing, frozen at intake (or at an explicit re-route)
    community_code      text,
    subdistrict_code    text,
    post_id             integer REFERENCES community_post(id),
    generation_id       integer REFERENCES boundary_generation(id),
    route_rule          text CHECK (route_rule IN
                            ('inside', 'on_boundary', 'nearest', 'outside', 'unlocated')),
    route_distance_m    double precision,
    near_boundary       boolean NOT NULL DEFAULT false,
    route_alternates    jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- workflow
    status              text NOT NULL DEFAULT 'registered',
    version             integer NOT NULL DEFAULT 1,
    merged_into         bigint REFERENCES "case"(id),
    -- deadlines (working calendar) and milestones, maintained by cases/workflow.py
    current_due_at      timestamptz,
    due_provisional     boolean NOT NULL DEFAULT false,
    reviewed_at         timestamptz,
    dispatched_at       timestamptz,
    handled_at          timestamptz,
    verified_at         timestamptz,
    replied_at          timestamptz,
    closed_at           timestamptz,
    rework_count        integer NOT NULL DEFAULT 0,
    extension_count     integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- The same ticket from the same channel is one case, whoever races to submit it.
CREATE UNIQUE INDEX case_channel_external_id
    ON "case" (channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX case_geom_gist ON "case" USING gist (geom);
CREATE INDEX case_status ON "case" (status);
CREATE INDEX case_community ON "case" (community_code);
CREATE INDEX case_category_reported ON "case" (category_code, reported_at);
CREATE INDEX case_reported_at ON "case" (reported_at);
CREATE INDEX case_open_due ON "case" (current_due_at) WHERE closed_at IS NULL;

-- Append-only history: who did what to a case, when, from which state to which.
CREATE TABLE case_event (
    id              bigserial PRIMARY KEY,
    case_id         bigint NOT NULL REFERENCES "case"(id),
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    role            text NOT NULL,
    action          text NOT NULL,
    from_state      text,
    to_state        text,
    note            text,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX case_event_case ON case_event (case_id, at);

CREATE FUNCTION case_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_event is append-only';
END $$;
CREATE TRIGGER case_event_no_update BEFORE UPDATE OR DELETE ON case_event
    FOR EACH ROW EXECUTE FUNCTION case_event_append_only();

-- API tokens: only a SHA-256 hash of the secret is stored.
CREATE TABLE api_token (
    id              serial PRIMARY KEY,
    name            text NOT NULL,
    role            text NOT NULL CHECK (role IN
                        ('admin', 'dispatcher', 'supervisor', 'community_officer', 'planner', 'intake')),
    communities     text[] NOT NULL DEFAULT '{}',
    token_hash      text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    last_used_at    timestamptz
);

-- Chinese working calendar: public holidays and make-up working days (调休).
CREATE TABLE calendar_year (
    year            integer PRIMARY KEY,
    source          text NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE calendar_day (
    day             date PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name            text
);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS calendar_day, calendar_year, api_token, case_event, "case", category,
    poi, community_post, community_piece, community, subdistrict, boundary_generation CASCADE;
DROP FUNCTION IF EXISTS case_event_append_only();
DROP SEQUENCE IF EXISTS case_no_seq;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
