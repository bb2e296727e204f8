"""Serving under a proxy's path prefix (``CASEGRID_ROOT_PATH``, ASGI's ``root_path``).

nginx serves casegrid at ``/casegrid/`` and strips the prefix; the server passes it on as
the request's ``root_path``. Inside the app a path such as ``/login`` means the app's own
``/login``, so whatever goes back to a browser must carry the prefix:

* links written into pages and scripts: :func:`app_path` (pages call it, one rule);
* redirects and cookies: :class:`RootPathResponses` rewrites a root-relative ``Location``
  and a cookie's ``Path`` in one place, so no route has to remember it. A location already
  under the prefix (built from ``request.url``, which includes it) is left alone.
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COOKIE_PATH = re.compile(rb"(;\s*path=)(/[^;]*)", re.I)


def root_of(scope: Scope) -> str:
    """The app's prefix for this request ('' when served at the root)."""
    return scope.get("app_root_path", scope.get("root_path", "")) or ""


def app_path(request: Request, path: str) -> str:
    """``path`` (root-relative inside the app, e.g. ``/static/vendor``) as the browser must
    ask for it."""
    return root_of(request.scope) + path


def path_in_app(request: Request) -> str:
    """The request's path inside the app, without the prefix (``request.url.path`` has it:
    under uvicorn's root_path the path is the full one the browser asked for)."""
    root, path = root_of(request.scope), request.url.path
    return path[len(root):] if root and path.startswith(root) else path


def _under(root: bytes, value: bytes) -> bytes:
    if not value.startswith(b"/") or value.startswith(b"//"):
        return value  # absolute URL, scheme-relative URL or relative path: as it is
    if value == root or value.startswith(root + b"/") or value.startswith(root + b"?"):
        return value
    return root + value


class RootPathResponses:
    """ASGI middleware: prefix root-relative ``Location`` headers and cookie paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = root_of(scope).encode("latin-1") if scope["type"] == "http" else b""
        if not root:
            await self.app(scope, receive, send)
            return

        async def send_under_root(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers", []):
                    if name.lower() == b"location":
                        value = _under(root, value)
                    elif name.lower() == b"set-cookie":
                        value = _COOKIE_PATH.sub(
                            lambda m: m[1] + _under(root, m[2]).rstrip(b"/")
                            if m[2] == b"/" else m[1] + _under(root, m[2]), value)
                    headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_under_root)
