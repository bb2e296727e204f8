"""Webhook channel: the event as JSON, POSTed and signed.

Headers: ``X-Casegrid-Event`` (the type), ``X-Casegrid-Delivery`` (the event id: a
receiver drops repeats by it, as delivery is at least once) and ``X-Casegrid-Signature:
sha256=<hex HMAC-SHA256 of the raw body under CASEGRID_WEBHOOK_SECRET>``. Any 2xx answer
is a delivery; anything else, or no answer, is retried by the worker.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from urllib.parse import urlsplit

from casegrid.errors import InvalidInput
from notify.base import Message, Outcome
from notify.http import HttpClient, HttpError

LOOPBACK_NAMES = ("localhost",)


def check_url(url: str, field: str = "url") -> str:
    """``url`` as a webhook target, or ``InvalidInput`` naming ``field``: https, or plain
    http only to this machine (127.0.0.0/8, ::1, localhost: a receiver or relay beside
    casegrid). Events carry addresses and deadlines, so they never cross a network in clear."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise InvalidInput(f"{field}: {url!r} is not a URL ({exc})", field=field) from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(f"{field} must be an https:// URL with a host (or http:// to this "
                           f"machine: 127.0.0.1, [::1], localhost), not {url!r}", field=field)
    if parts.scheme == "http" and not _loopback(host):
        raise InvalidInput(f"{field}: plain http is allowed only to this machine (127.0.0.1, "
                           f"[::1], localhost); use https://{parts.netloc}{parts.path}",
                           field=field)
    return url


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def signature(secret: str, body: bytes) -> str:
    """The ``X-Casegrid-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode(body: dict) -> bytes:
    """The raw JSON body sent (UTF-8, Chinese as is)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


class WebhookChannel:
    """POSTs events to their target URL (kept-alive connections, one per sending thread)."""

    name = "webhook"

    def __init__(self, secret: str, timeout_s: float = 5.0) -> None:
        self.secret = secret
        self.client = HttpClient(timeout_s)

    def send(self, message: Message) -> Outcome:
        """POST the event once."""
        body = encode(message.body)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Casegrid-Event": message.type,
                   "X-Casegrid-Delivery": str(message.event_id),
                   "X-Casegrid-Signature": signature(self.secret, body),
                   "User-Agent": "casegrid-webhook"}
        try:
            status, answer = self.client.request("POST", message.target, body, headers)
        except HttpError as exc:
            return Outcome(False, None, str(exc)[:500])
        if 200 <= status < 300:
            return Outcome(True, status)
        return Outcome(False, status, f"HTTP {status}: {answer[:200]}")
