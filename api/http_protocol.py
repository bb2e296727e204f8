"""uvicorn's httptools protocol, with each response sent in one system call.

uvicorn writes a response in two steps: the status line and headers when the app sends
``http.response.start``, the body when it sends ``http.response.body``. Each step is a
``transport.write``, which uvloop turns straight into a ``send()`` system call, so every
small JSON answer (an intake's 201, a case) costs two calls and two TCP segments, and the
client wakes up twice. Under load those calls are a large share of a worker's time, taken
while holding the GIL.

:class:`GatheringHttpToolsProtocol` hands uvicorn a transport that keeps the small writes
made during one turn of the event loop and sends them together when that turn ends (a
``call_soon``): a response written in one go leaves in one ``send()``. Large writes (a
GeoJSON page, a map) go out at once, after whatever was gathered before them, so nothing
large is copied and the order of bytes never changes. Closing the transport sends what is
pending first. The access log's lines are gathered per turn too, where the access logger
is uvicorn's default (:mod:`api.access_log`). Everything else is uvicorn's own protocol.

Used by ``casegrid serve`` (``api.workers``): ``uvicorn.Config(http=GatheringHttpToolsProtocol)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.access_log import turn_access_log

# Writes up to this size wait for the end of the loop turn; larger ones are sent at once.
GATHER_MAX_BYTES = 64 * 1024


class GatheringTransport:
    """A proxy of an asyncio transport whose small writes are joined per loop turn (see
    the module docstring). Every other attribute is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the end of this loop turn, or send it now if it is large."""
        if len(data) > GATHER_MAX_BYTES:
            self.flush()
            self._transport.write(data)
            return
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_scheduled)

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Send what is pending, in one write (dropped if the connection is already gone)."""
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Send what is pending, then close."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatheringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`GatheringTransport`, with the access log of
    :func:`api.access_log.turn_access_log` where it applies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.access_log:
            gathered = turn_access_log(self.access_logger, self.loop)
            if gathered is not None:
                self.access_logger = gathered  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(GatheringTransport(transport, self.loop))  # type: ignore[arg-type]
