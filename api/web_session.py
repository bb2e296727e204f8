"""Sessions of people signed in to the workbench, over HTTP: the cookie, the redirect to
/login when there is none, and the form token (CSRF) check.

The session cookie is HttpOnly and SameSite=Lax (a link into /work from elsewhere opens
signed in; a form posted from another site carries no cookie, and every changing form also
needs the session's own form token). The rules (passwords, expiry, revocation) are in
:mod:`cases.users`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import ConnDep
from cases import reference
from cases.users import Session, SessionPolicy, session_for

SESSION_COOKIE = "casegrid_session"


class SignInRequired(Exception):
    """No live session: the person is sent to /login and brought back to ``next_url``."""

    def __init__(self, next_url: str):
        super().__init__(next_url)
        self.next_url = next_url


def session_policy(request: Request) -> SessionPolicy:
    """The session rules from the app's settings (built once per app)."""
    state = request.app.state
    policy = getattr(state, "session_policy", None)
    if policy is None:
        policy = state.session_policy = SessionPolicy.from_settings(state.settings)
    return policy


def optional_session(request: Request, conn: ConnDep) -> Session | None:
    """The live session of the request's cookie, or None; read with the version stamps of
    the reference data the pages keep (:mod:`cases.reference`), saving them a round trip."""
    return session_for(conn, request.cookies.get(SESSION_COOKIE), session_policy(request),
                       beside=reference.STAMPS_SQL)


def current_session(request: Request, session: Annotated[Session | None, Depends(optional_session)]) -> Session:
    """The live session; without one, :class:`SignInRequired` for the address asked for
    (a POST's page is where the person was: its Referer when it is ours, else /work)."""
    if session is None:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            target = "/work"
        raise SignInRequired(target)
    return session


WebSession = Annotated[Session, Depends(current_session)]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/work"
    return target


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    """Give the browser its session cookie (Secure when served over https)."""
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https")


def install_sign_in_redirect(app: FastAPI) -> None:
    """Answer :class:`SignInRequired` with a 303 to /login?next=..."""

    async def redirect(_request: Request, exc: Exception) -> Response:
        target = safe_next(getattr(exc, "next_url", None))
        return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)

    app.add_exception_handler(SignInRequired, redirect)
