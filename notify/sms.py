"""SMS channel through the city's HTTP SMS gateway, and the SMS text.

Cities use different gateways, so the request is a template in settings: URL, method,
content type and body, in which ``{phone}`` and ``{text}`` are replaced (URL-encoded in the
URL and in a form body, JSON-escaped in a JSON body). A 2xx answer is a delivery.

Quiet hours (``CASEGRID_SMS_QUIET_HOURS``, default 22:00-07:00 local time) hold messages
until the window ends, except for the categories in ``CASEGRID_SMS_URGENT_CATEGORIES``:
:func:`allowed_at` gives the earliest moment a message may go.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from urllib.parse import quote, quote_plus

from casegrid.settings import Settings
from cases.calendar import CITY_TZ
from cases.notices import LABELS_ZH
from notify.base import Message, Outcome
from notify.http import HttpClient, HttpError


def quiet_window(spec: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` as (start, end); ``""`` for none. ValueError names the form."""
    if not spec.strip():
        return None
    try:
        a, b = (time.fromisoformat(p.strip()) for p in spec.split("-"))
    except ValueError:
        raise ValueError(f"sms_quiet_hours must look like 22:00-07:00, not {spec!r}") from None
    return a, b


def allowed_at(at: datetime, spec: str, urgent: bool = False) -> datetime:
    """The earliest moment from ``at`` an SMS may be sent: ``at`` itself outside quiet hours
    (or for an urgent category), else the end of the quiet window (local time)."""
    window = quiet_window(spec)
    if urgent or window is None:
        return at
    start, end = window
    local = at.astimezone(CITY_TZ)
    t = local.time()
    quiet = (start <= t or t < end) if start > end else (start <= t < end)
    if not quiet:
        return at
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=CITY_TZ)


def sms_text(body: dict) -> str:
    """Short Chinese text: what happened, case number, category, address, deadline."""
    case = body.get("case") or {}
    due = case.get("handle_due_at") or case.get("due_at")
    if isinstance(due, str):
        due = datetime.fromisoformat(due)
    when = due.astimezone(CITY_TZ).strftime("%m-%d %H:%M") if isinstance(due, datetime) else "无"
    address = (case.get("address") or "地址未详")[:30]
    return (f"【城管】{LABELS_ZH.get(body.get('type', ''), '通知')}: 案件{case.get('case_no')} "
            f"{case.get('category') or case.get('category_code')} {address}, 期限{when}。")


class SmsChannel:
    """Sends one SMS through the configured gateway template."""

    name = "sms"

    def __init__(self, settings: Settings) -> None:
        self.url = settings.sms_gateway_url
        self.method = settings.sms_gateway_method.upper()
        self.body = settings.sms_gateway_body
        self.content_type = settings.sms_gateway_content_type
        self.client = HttpClient(settings.webhook_timeout_s)

    def request(self, phone: str, text: str) -> tuple[str, bytes]:
        """The gateway URL and body for one message."""
        url = self.url.replace("{phone}", quote(phone)).replace("{text}", quote(text))
        if "json" in self.content_type:
            esc = lambda v: json.dumps(v, ensure_ascii=False)[1:-1]  # noqa: E731
        elif "x-www-form-urlencoded" in self.content_type:
            esc = quote_plus
        else:
            esc = str
        body = self.body.replace("{phone}", esc(phone)).replace("{text}", esc(text))
        return url, body.encode("utf-8")

    def send(self, message: Message) -> Outcome:
        """Send the event's SMS to ``message.target`` (a phone number)."""
        url, body = self.request(message.target, sms_text(message.body))
        try:
            status, answer = self.client.request(
                self.method, url, body if self.method != "GET" else None,
                {"Content-Type": self.content_type})
        except HttpError as exc:
            return Outcome(False, None, str(exc)[:500])
        if 200 <= status < 300:
            return Outcome(True, status)
        return Outcome(False, status, f"HTTP {status}: {answer[:200]}")
