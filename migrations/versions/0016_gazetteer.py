"""The gazetteer, the address memory and what the matcher said about each case's address.

* ``gazetteer_entry``: the city's own names (subdistricts, communities, posts, compounds,
  roads with house-number ranges, landmarks...) with a point, line or polygon and the
  community they lie in (by routing, in the generation named beside it).
* ``gazetteer_name``: the lookup keys of each entry: its normalised name and aliases
  (``exact``) and, for names of three characters or more, each one-character deletion
  (SymSpell's trick: two names one typo apart share a deletion, so a typo is an equality
  join on a btree, not a scan). pg_trgm's GIN index serves the fuzzy lookups of longer text
  (the address memory); trigrams of a three-character Chinese name share too little with
  a one-character typo of it to find it.
* ``address_memory``: normalised address -> mean point, per community label learned, with
  how often; an address seen in two communities keeps both rows. ``street_key`` and
  ``house_no`` let the matcher place a number between two learned numbers of one street.
* ``case_locate``: the matcher's answer for an address-only case: rule, confidence, up to
  three suggestions (each with its community and why).

``case.route_rule`` learns the address rules.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ADDRESS_RULES = ("address_memory", "address_doorplate", "address_compound", "address_crossing",
                 "address_road", "address_landmark", "address_community")
_OLD_RULES = ("inside", "on_boundary", "nearest", "outside", "unlocated", "manual")


def _rule_check(rules: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{r}'" for r in rules)
    return (
        'ALTER TABLE "case" DROP CONSTRAINT IF EXISTS case_route_rule_check;\n'
        f'ALTER TABLE "case" ADD CONSTRAINT case_route_rule_check CHECK (route_rule IN ({listed}));'
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("""
CREATE TABLE gazetteer_entry (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('subdistrict', 'community', 'post', 'compound',
                        'building', 'road', 'doorplate', 'crossing', 'poi', 'landmark')),
    name            text NOT NULL,
    aliases         text[] NOT NULL DEFAULT '{}',
    geom            geometry(Geometry, 4326) NOT NULL,
    community_code  text,
    generation_id   integer REFERENCES boundary_generation(id),
    house_from      integer,
    house_to        integer,
    source          text NOT NULL,
    synthetic       boolean NOT NULL DEFAULT false,
    properties      jsonb NOT NULL DEFAULT '{}',
    imported_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gazetteer_entry_geom_gist ON gazetteer_entry USING gist (geom);
CREATE INDEX gazetteer_entry_source ON gazetteer_entry (source);

CREATE TABLE gazetteer_name (
    entry_id  bigint NOT NULL REFERENCES gazetteer_entry(id) ON DELETE CASCADE,
    name_key  text NOT NULL,
    exact     boolean NOT NULL
);
CREATE INDEX gazetteer_name_key ON gazetteer_name (name_key);
CREATE INDEX gazetteer_name_entry ON gazetteer_name (entry_id);

CREATE TABLE address_memory (
    key              text NOT NULL,
    community_label  text NOT NULL,
    n                integer NOT NULL,
    sum_lon          double precision NOT NULL,
    sum_lat          double precision NOT NULL,
    street_key       text,
    house_no         integer,
    source           text NOT NULL,
    first_at         timestamptz NOT NULL DEFAULT now(),
    last_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, community_label)
);
CREATE INDEX address_memory_street ON address_memory (street_key, house_no)
    WHERE street_key IS NOT NULL;
CREATE INDEX address_memory_key_trgm ON address_memory USING gin (key gin_trgm_ops);

CREATE TABLE case_locate (
    case_id      bigint PRIMARY KEY REFERENCES "case"(id) ON DELETE CASCADE,
    rule         text,
    confidence   double precision NOT NULL,
    normalized   text NOT NULL,
    why          text,
    suggestions  jsonb NOT NULL DEFAULT '[]',
    at           timestamptz NOT NULL DEFAULT now()
);
""")
    op.execute(_rule_check(_OLD_RULES + ADDRESS_RULES))


def downgrade() -> None:
    op.execute('UPDATE "case" SET route_rule = \'unlocated\' WHERE route_rule LIKE \'address_%\'')
    op.execute(_rule_check(_OLD_RULES))
    op.execute("DROP TABLE IF EXISTS case_locate, address_memory, gazetteer_name, gazetteer_entry")
