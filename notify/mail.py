"""Email channel over SMTP (standard library ``smtplib``), for supervisors and the bureau."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from casegrid.settings import Settings
from cases.notices import LABELS_ZH
from notify.base import Message, Outcome
from notify.sms import sms_text


def compose(message: Message, sender: str) -> EmailMessage:
    """The email of one event: subject with the notice and case number, the text and the
    event as JSON-like lines below."""
    case = message.body.get("case") or {}
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.target
    mail["Subject"] = f"[casegrid] {LABELS_ZH.get(message.type, message.type)} {case.get('case_no')}"
    mail["X-Casegrid-Delivery"] = str(message.event_id)
    lines = [sms_text(message.body), ""]
    lines += [f"{k}: {v}" for k, v in case.items()]
    mail.set_content("\n".join(lines))
    return mail


class EmailChannel:
    """Sends one email per message through the configured SMTP server."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, message: Message) -> Outcome:
        """Send the event to ``message.target`` (an email address)."""
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.webhook_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password)
                smtp.send_message(compose(message, s.smtp_from))
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(False, getattr(exc, "smtp_code", None), f"{type(exc).__name__}: {exc}"[:500])
        return Outcome(True, 250)
