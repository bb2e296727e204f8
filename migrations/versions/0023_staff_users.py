"""Staff accounts for people, their server-side sessions, failed sign-ins, and the person
named on each history entry.

* ``app_user``: one row per person (dispatcher, supervisor, community officer, ...), with
  an argon2 password hash; ``disabled_at`` ends every session at once. API tokens stay for
  machines (hotline gateway, Open311 clients).
* ``user_session``: one row per signed-in browser; only the SHA-256 of the cookie's secret
  is stored, with the form token (CSRF) of that session. Revocable: logout, a disabled
  user, idle expiry (``last_seen_at``).
* ``login_failure``: failed attempts per username and per address, read to slow repeated
  guessing down.
* ``case_event.user_id``: the person who acted (NULL for token and system actions).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE app_user (
    id                  bigserial PRIMARY KEY,
    username            text NOT NULL,
    display_name        text NOT NULL,
    role                text NOT NULL,
    communities         text[] NOT NULL DEFAULT '{}',
    password_hash       text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    disabled_at         timestamptz,
    CONSTRAINT app_user_username_form CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$')
);
CREATE UNIQUE INDEX app_user_username ON app_user (username);

CREATE TABLE user_session (
    id_hash       text PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES app_user(id),
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    address       text
);
CREATE INDEX user_session_user ON user_session (user_id);

CREATE TABLE login_failure (
    id        bigserial PRIMARY KEY,
    username  text NOT NULL,
    address   text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failure_username ON login_failure (username, at);
CREATE INDEX login_failure_address ON login_failure (address, at);

ALTER TABLE case_event ADD COLUMN user_id bigint REFERENCES app_user(id);
""")


def downgrade() -> None:
    op.execute("ALTER TABLE case_event DROP COLUMN IF EXISTS user_id")
    op.execute("DROP TABLE IF EXISTS login_failure, user_session, app_user")
