"""What a channel is given and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One event to one target of one channel (a row of ``outbox_delivery``)."""

    delivery_id: int
    event_id: int
    type: str
    target: str
    body: dict  # the event as JSON: id, type, at, case, data, recipients


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: ``ok`` means delivered; otherwise the worker retries."""

    ok: bool
    status_code: int | None = None
    error: str | None = None


class Channel(Protocol):
    """A delivery channel: ``name`` as stored in ``outbox_delivery.channel``."""

    name: str

    def send(self, message: Message) -> Outcome:
        """Try to deliver ``message`` once; never raise for the peer's failures."""
        ...
