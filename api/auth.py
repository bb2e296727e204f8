"""Authentication and role checks for the HTTP API.

Usage in a route::

    @router.get("/x")
    def x(principal: Annotated[Principal, Depends(require_roles("dispatcher", "admin"))]): ...

or ``CurrentPrincipal`` for any valid token. Tokens come as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from casegrid.db import single_read
from casegrid.errors import Forbidden
from cases.tokens import Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="A casegrid API token (`casegrid token create`).")


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def bearer_secret(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, as ``HTTPBearer`` with
    ``auto_error=False`` reads it (scheme case-insensitive; None when absent, of another
    scheme, or empty), for handlers that read the header themselves."""
    scheme, secret = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not secret:
        return None
    return secret


def current_principal(request: Request, creds: BearerCredentials) -> Principal:
    """The caller, from its bearer token (401 when missing, unknown or revoked)."""
    secret = creds.credentials if creds else None
    with single_read(request.app.state.engine) as conn:
        return authenticate(conn, secret)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def role_refusal(principal: Principal, roles: tuple[str, ...] | set[str]) -> Forbidden | None:
    """The 403 for a principal whose role is not among ``roles`` (admin always admitted),
    or None when it is."""
    allowed = set(roles) | {"admin"}
    if principal.role in allowed:
        return None
    return Forbidden(f"role {principal.role!r} may not do this; allowed: {', '.join(sorted(allowed))}",
                     field="Authorization")


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency that admits only the given roles (admin always admitted); 403 otherwise."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if (refusal := role_refusal(principal, roles)) is not None:
            raise refusal
        return principal

    return dependency
