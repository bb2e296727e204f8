"""Staff accounts for people, their sign-in and their server-side sessions.

API tokens (:mod:`cases.tokens`) stay for machines; people sign in to the workbench with a
username and password. Passwords are hashed with argon2id (``argon2-cffi``'s
``PasswordHasher``, its current memory-hard defaults) and never logged or stored in clear.

A session is a random secret in an HttpOnly cookie; the server stores only its SHA-256 with
the session's form token (CSRF), so a session is revocable: logout, a disabled account,
a password reset, or idle time (:class:`SessionPolicy`) end it at once.

Repeated failures are slowed down per username and per address: within the window the
first few failures are free, then each further attempt must wait, twice as long each time
(5 s, 10 s, 20 s, ... 5 min); an attempt made too early is refused before the password is
checked (:class:`SignInThrottled`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, text

from casegrid.db import RawQuery
from casegrid.errors import InvalidInput, NotFound, Unauthorized
from cases.tokens import Principal, check_communities

# People's roles: the tokens' roles but ``intake``, which is for machines.
USER_ROLES = ("admin", "dispatcher", "supervisor", "community_officer", "planner")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
FIRST_WAIT_S = 5
MAX_WAIT_S = 300
_HASHER = PasswordHasher()
# Checked when the username is unknown, so an unknown name takes as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class SignInThrottled(Unauthorized):
    """Too many failed sign-ins for a username or address: try again after ``retry_after``
    seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, field="username")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: ``idle`` without a request, ``max_age`` after sign-in;
    failed sign-ins: ``free_failures`` within ``failure_window`` before waits begin."""

    idle: timedelta = timedelta(minutes=120)
    max_age: timedelta = timedelta(hours=14)
    free_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, s) -> SessionPolicy:  # noqa: ANN001 - casegrid.settings.Settings
        return cls(timedelta(minutes=s.session_idle_minutes), timedelta(hours=s.session_max_hours),
                   s.login_free_failures, timedelta(minutes=s.login_failure_window_minutes))


@dataclass(frozen=True)
class Session:
    """A signed-in person: who, and the form token their changing forms must carry."""

    principal: Principal
    csrf_token: str
    # The request transaction's now(), read with the session: pages need it and it saves
    # them a round trip.
    now: datetime | None = None
    # The row of session_for's ``beside`` statement, read with the session.
    beside: dict | None = None

    def csrf_ok(self, presented: str | None) -> bool:
        """True when ``presented`` is this session's form token (constant-time compare)."""
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf_token.encode())


# -- accounts --------------------------------------------------------------------------------


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                           field="password")


def _check_username(username: str) -> str:
    name = (username or "").strip().lower()
    if not (2 <= len(name) <= 63 and name[0].isalnum() and name.isascii()
            and all(ch.isalnum() or ch in "._-" for ch in name)):
        raise InvalidInput("username must be 2-63 characters of a-z, 0-9, '.', '_' or '-', "
                           "starting with a letter or digit", field="username")
    return name


def create_user(conn: Connection, username: str, role: str, password: str, *,
                communities: list[str] | None = None, display_name: str | None = None) -> int:
    """Store a new account and return its id (``InvalidInput`` naming the field otherwise)."""
    name = _check_username(username)
    if role not in USER_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(USER_ROLES)}, not {role!r} "
                           "(machines use API tokens)", field="role")
    codes = check_communities(conn, role, communities, "account")
    _check_password(password)
    if conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"), {"u": name}).first():
        raise InvalidInput(f"username {name!r} is taken", field="username")
    return conn.execute(
        text("INSERT INTO app_user (username, display_name, role, communities, password_hash) "
             "VALUES (:u, :d, :r, :c, :h) RETURNING id"),
        {"u": name, "d": (display_name or "").strip() or name, "r": role, "c": codes,
         "h": _HASHER.hash(password)}).scalar_one()


def list_users(conn: Connection) -> list[dict]:
    """All accounts (never their password hashes)."""
    return [dict(r) for r in conn.execute(text(
        "SELECT id, username, display_name, role, communities, created_at, disabled_at "
        "FROM app_user ORDER BY username")).mappings()]


def _user_id(conn: Connection, username: str) -> int:
    uid = conn.execute(text("SELECT id FROM app_user WHERE username = :u"),
                       {"u": (username or "").strip().lower()}).scalar()
    if uid is None:
        raise NotFound(f"no account {username!r}", field="username")
    return uid


def disable_user(conn: Connection, username: str) -> None:
    """Disable an account: it can no longer sign in and its sessions end at once."""
    uid = _user_id(conn, username)
    conn.execute(text("UPDATE app_user SET disabled_at = coalesce(disabled_at, now()) "
                      "WHERE id = :id"), {"id": uid})
    revoke_user_sessions(conn, uid)


def reset_password(conn: Connection, username: str, password: str) -> None:
    """Set a new password; every session of the account ends."""
    _check_password(password)
    uid = _user_id(conn, username)
    conn.execute(text("UPDATE app_user SET password_hash = :h, password_changed_at = now() "
                      "WHERE id = :id"), {"h": _HASHER.hash(password), "id": uid})
    revoke_user_sessions(conn, uid)


def revoke_user_sessions(conn: Connection, user_id: int) -> int:
    """End every open session of an account; returns how many."""
    return conn.execute(text("UPDATE user_session SET revoked_at = now() "
                             "WHERE user_id = :id AND revoked_at IS NULL"), {"id": user_id}).rowcount


def _principal(row) -> Principal:  # noqa: ANN001 - a row with the app_user columns
    return Principal(None, row["display_name"], row["role"], tuple(row["communities"] or ()),
                     user_id=row["id"], username=row["username"])


# -- signing in ------------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _wait_left(conn: Connection, username: str, address: str, policy: SessionPolicy,
               now: datetime) -> int:
    """Seconds to wait before another attempt for this username or address (0: go ahead)."""
    rows = conn.execute(text(
        "SELECT count(*) AS n, max(at) AS last FROM login_failure "
        "WHERE (username = :u OR address = :a) AND at > :since"),
        {"u": username, "a": address, "since": now - policy.failure_window}).mappings().one()
    extra = rows["n"] - policy.free_failures
    if extra < 0:
        return 0
    wait = min(FIRST_WAIT_S * 2 ** extra, MAX_WAIT_S)
    left = (rows["last"] + timedelta(seconds=wait) - now).total_seconds()
    return max(0, int(left + 0.999))


def sign_in(conn: Connection, username: str, password: str, address: str,
            policy: SessionPolicy) -> tuple[str, Session]:
    """Check a username and password; on success open a session and return ``(cookie
    secret, session)``. ``Unauthorized`` (the same words for an unknown name, a wrong password
    and a disabled account) or :class:`SignInThrottled`. A failure is recorded: the caller
    must commit even when this raises."""
    name = (username or "").strip().lower()[:100]
    now = conn.execute(text("SELECT now()")).scalar_one()
    wait = _wait_left(conn, name, address, policy, now)
    if wait:
        raise SignInThrottled(f"too many failed sign-ins: try again in {wait} s", wait)
    row = conn.execute(text(
        "SELECT id, username, display_name, role, communities, password_hash, disabled_at "
        "FROM app_user WHERE username = :u"), {"u": name}).mappings().first()
    ok = False
    try:
        ok = _HASHER.verify(row["password_hash"] if row else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or row["disabled_at"] is not None:
        conn.execute(text("INSERT INTO login_failure (username, address, at) VALUES (:u, :a, :t)"),
                     {"u": name, "a": address, "t": now})
        raise Unauthorized("wrong username or password", field="password")
    if _HASHER.check_needs_rehash(row["password_hash"]):
        conn.execute(text("UPDATE app_user SET password_hash = :h WHERE id = :id"),
                     {"h": _HASHER.hash(password), "id": row["id"]})
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(text("INSERT INTO user_session (id_hash, user_id, csrf_token, created_at, "
                      "last_seen_at, address) VALUES (:h, :u, :c, :t, :t, :a)"),
                 {"h": _hash(secret), "u": row["id"], "c": csrf, "t": now, "a": address})
    return secret, Session(_principal(row), csrf)


# A session is touched at most once a minute: most page views then write nothing.
_TOUCH = timedelta(seconds=60)


_SESSION_SQL = (
    "SELECT u.id, u.username, u.display_name, u.role, u.communities, s.csrf_token, "
    "       s.last_seen_at, now() AS now{more} "
    "FROM user_session s JOIN app_user u ON u.id = s.user_id{beside} "
    "WHERE s.id_hash = :h AND s.revoked_at IS NULL AND u.disabled_at IS NULL "
    "  AND s.last_seen_at > now() - :idle AND s.created_at > now() - :max")
_session_queries: dict[str | None, RawQuery] = {}


def _session_query(beside: str | None) -> RawQuery:
    query = _session_queries.get(beside)
    if query is None:
        query = _session_queries[beside] = RawQuery(_SESSION_SQL.format(
            more=", b.*" if beside else "", beside=f" CROSS JOIN ({beside}) b" if beside else ""))
    return query


def session_for(conn: Connection, secret: str | None, policy: SessionPolicy, *,
                beside: str | None = None) -> Session | None:
    """The live session of a cookie secret, or None (unknown, revoked, idle too long, too
    old, or its account disabled). ``beside``: a one-row SELECT read in the same statement
    (its columns in :attr:`Session.beside`; a page's version stamps, :mod:`cases.reference`),
    which saves the page that round trip."""
    if not secret or len(secret) > 200:
        return None
    rows = _session_query(beside).rows(
        conn, {"h": _hash(secret), "idle": policy.idle, "max": policy.max_age})
    if not rows:
        return None
    row = rows[0]
    if row["now"] - row["last_seen_at"] > _TOUCH:
        conn.execute(text("UPDATE user_session SET last_seen_at = now() WHERE id_hash = :h"),
                     {"h": _hash(secret)})
    return Session(_principal(row), row["csrf_token"], row["now"], row if beside else None)


def sign_out(conn: Connection, secret: str | None) -> None:
    """End the session of a cookie secret (nothing happens for an unknown one)."""
    if secret:
        conn.execute(text("UPDATE user_session SET revoked_at = now() "
                          "WHERE id_hash = :h AND revoked_at IS NULL"), {"h": _hash(secret)})
