"""A small HTTP client for the channels: standard library ``http.client``, one kept-alive
connection per thread and origin, so the worker's parallel sends each reuse their own.

(httpx was tried first: its cost per POST on loopback capped one worker far below what a
receiver takes; ``python -m bench --only notify`` measures the channel.)
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit


class HttpError(Exception):
    """The request could not be sent or answered (connection refused, timeout, bad URL)."""


class HttpClient:
    """``request(method, url, body, headers) -> (status, text)`` over kept-alive
    connections (one per thread and scheme://host:port); a connection that fails is
    dropped and the request tried once more on a fresh one."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, netloc))
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = pool[(scheme, netloc)] = cls(netloc, timeout=self.timeout_s)
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._local.__dict__.get("pool", {}).pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def request(self, method: str, url: str, body: bytes | None,
                headers: dict[str, str]) -> tuple[int, str]:
        """Send one request; the status and (the start of) the answer's text."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise HttpError(f"not an http(s) URL: {url!r}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            conn = self._connection(parts.scheme, parts.netloc)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read(65536).decode("utf-8", "replace")
                if resp.will_close:
                    self._drop(parts.scheme, parts.netloc)
                return resp.status, text
            except (OSError, http.client.HTTPException) as exc:
                self._drop(parts.scheme, parts.netloc)
                # A kept-alive connection the peer closed meanwhile: once more, fresh. A
                # refusal or timeout on a fresh connection is the answer.
                if attempt == 2 or isinstance(exc, TimeoutError | ConnectionRefusedError):
                    raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")
