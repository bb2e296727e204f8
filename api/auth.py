"""Authentication and role checks for the HTTP API.

Usage in a route::

    @router.get("/x")
    def x(principal: Annotated[Principal, Depends(require_roles("dispatcher", "admin"))]): ...

or ``CurrentPrincipal`` for any valid token. Tokens come as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import ConnDep
from cases.tokens import Principal, authenticate, role_refusal

_bearer = HTTPBearer(auto_error=False, description="A casegrid API token (`casegrid token create`).")


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def current_principal(conn: ConnDep, creds: BearerCredentials) -> Principal:
    """The caller, from its bearer token (401 when missing, unknown or revoked), read on
    the request's own connection (the one its handler gets as ``ConnDep``)."""
    return authenticate(conn, creds.credentials if creds else None)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency that admits only the given roles (admin always admitted); 403 otherwise."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if (refusal := role_refusal(principal, roles)) is not None:
            raise refusal
        return principal

    return dependency
