"""API tokens and roles.

A token is shown once when created; only its SHA-256 hash is stored. Roles:

* ``admin``             – everything.
* ``dispatcher``        – sees all cases, routes, dispatches, re-routes.
* ``supervisor``        – reviews, verifies and closes (never a case its own unit handled).
* ``community_officer`` – sees and works only the cases of its own communities.
* ``planner``           – reads cases and statistics, never the reporter's name or phone.
* ``intake``            – submits cases (hotline and platform connectors).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from casegrid.db import RawQuery
from casegrid.errors import Forbidden, InvalidInput, NotFound, Unauthorized

ROLES = ("admin", "dispatcher", "supervisor", "community_officer", "planner", "intake")
TOKEN_PREFIX = "cg_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stored token's identity and scope, or a signed-in person's
    (``user_id`` set, ``token_id`` None; ``name`` is then the person's display name, the
    name the history shows)."""

    token_id: int | None
    name: str
    role: str
    communities: tuple[str, ...] = field(default_factory=tuple)
    user_id: int | None = None
    username: str | None = None

    @property
    def sees_all_communities(self) -> bool:
        """Every role but a community officer sees the whole city."""
        return self.role != "community_officer"

    @property
    def sees_reporter(self) -> bool:
        """Planners never see the reporter's name or phone."""
        return self.role != "planner"

    @property
    def reads_personal_text(self) -> bool:
        """Who may read free text as written, unmasked (cases.personal_text.reveal): the
        people who call reporters back, every role that sees the reporter but the intake
        connectors, which only submit."""
        return self.sees_reporter and self.role != "intake"

    def may_see_community(self, code: str | None) -> bool:
        return self.sees_all_communities or (code is not None and code in self.communities)


def hash_token(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_communities(conn: Connection, role: str, communities: list[str] | None,
                      what: str) -> list[str]:
    """The role checked and the community codes sorted and checked against the boundaries
    (a community officer's ``what``, token or account, needs at least one)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}", field="role")
    communities = sorted(set(communities or []))
    if role == "community_officer" and not communities:
        raise InvalidInput(
            f"a community_officer {what} needs at least one --community CODE", field="community"
        )
    if communities:
        known = {
            r[0]
            for r in conn.execute(
                text("SELECT DISTINCT code FROM community WHERE code = ANY(:codes)"),
                {"codes": communities},
            )
        }
        unknown = [c for c in communities if c not in known]
        if unknown:
            raise InvalidInput(f"unknown community codes: {', '.join(unknown)}", field="community")
    return communities


def create_token(
    conn: Connection, role: str, name: str, communities: list[str] | None = None
) -> tuple[int, str]:
    """Store a new token and return ``(id, secret)``; the secret is not stored anywhere."""
    communities = check_communities(conn, role, communities, "token")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        text(
            "INSERT INTO api_token (name, role, communities, token_hash) "
            "VALUES (:name, :role, :communities, :hash) RETURNING id"
        ),
        {"name": name, "role": role, "communities": communities, "hash": hash_token(secret)},
    ).scalar_one()
    return token_id, secret


def authenticate(conn: Connection, secret: str | None) -> Principal:
    """The principal of a presented token; ``Unauthorized`` when missing, unknown or revoked."""
    found = authenticate_many(conn, [secret])[secret]
    if isinstance(found, Unauthorized):
        raise found
    return found


# What authentication reads of a token (cases.intake_lookups reads the same).
TOKEN_COLUMNS = "id, name, role, communities, revoked_at, token_hash"
_BY_HASHES = RawQuery(f"SELECT {TOKEN_COLUMNS} FROM api_token WHERE token_hash = ANY(:h)")


def authenticate_many(conn: Connection, secrets: list[str | None]) -> dict[str | None, Principal | Unauthorized]:
    """Each presented token -> its principal, or the ``Unauthorized`` that
    :func:`authenticate` would raise for it. One query for all of them (intake batches
    read the rows with their other lookups: :func:`principals_from_rows`)."""
    hashes = sorted({hash_token(s) for s in secrets if s})
    rows = {r["token_hash"]: r for r in _BY_HASHES.rows(conn, {"h": hashes})} if hashes else {}
    return principals_from_rows(secrets, rows)


def principals_from_rows(secrets: list[str | None],
                         rows_by_hash: dict[str, dict]) -> dict[str | None, Principal | Unauthorized]:
    """:func:`authenticate_many` from the ``api_token`` rows (:data:`TOKEN_COLUMNS`) already
    read for the secrets' hashes (intake reads them with its other lookups)."""
    out: dict[str | None, Principal | Unauthorized] = {}
    for secret in set(secrets):
        row = rows_by_hash.get(hash_token(secret)) if secret else None
        if not secret:
            out[secret] = Unauthorized("missing token: send `Authorization: Bearer <token>`",
                                       field="Authorization")
        elif row is None:
            out[secret] = Unauthorized("unknown token", field="Authorization")
        elif row["revoked_at"] is not None:
            out[secret] = Unauthorized("this token was revoked", field="Authorization")
        else:
            out[secret] = Principal(row["id"], row["name"], row["role"],
                                    tuple(row["communities"] or ()))
    return out


def role_refusal(principal: Principal, roles: tuple[str, ...] | set[str]) -> Forbidden | None:
    """The 403 for a principal whose role is not among ``roles`` (admin always admitted),
    or None when it is."""
    allowed = set(roles) | {"admin"}
    if principal.role in allowed:
        return None
    return Forbidden(f"role {principal.role!r} may not do this; allowed: {', '.join(sorted(allowed))}",
                     field="Authorization")


def list_tokens(conn: Connection) -> list[dict]:
    """All tokens (never their secrets)."""
    rows = conn.execute(
        text(
            "SELECT id, name, role, communities, created_at, revoked_at, last_used_at "
            "FROM api_token ORDER BY id"
        )
    ).mappings()
    return [dict(r) for r in rows]


def revoke_token(conn: Connection, token_id: int) -> None:
    """Revoke a token; it stops working immediately."""
    done = conn.execute(
        text("UPDATE api_token SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"),
        {"id": token_id},
    ).rowcount
    if not done:
        raise NotFound(f"no active token {token_id}", field="id")
