"""uvicorn's access log, its lines written together once per event-loop turn.

uvicorn logs each response through the ``logging`` module: a ``LogRecord``, the handler's
lock, its ``AccessFormatter`` (a copy of the record, the status phrase, the request line),
then a write and a flush of the stream for every line: a visible share of a worker's time
under intake load (``py-spy`` of a worker under ``wrk``).

When the access logger is set up as uvicorn sets it up by default (one stream handler
with uvicorn's ``AccessFormatter`` and its default format, no colours, INFO enabled),
:class:`TurnAccessLog` writes the very same lines, formatted directly and written in one
go at the end of each loop turn, as :mod:`api.http_protocol` does with responses. Any
other logging set-up (a ``--log-config``, JSON lines, colours, a filter, a file handler)
keeps uvicorn's own path, and so does a call in a shape this module does not know.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import IO

from uvicorn.logging import AccessFormatter

# The call uvicorn's HTTP protocols make for every response (client, method, path with
# query string, HTTP version, status), and the format of its default access formatter.
UVICORN_ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d'
UVICORN_ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
# "INFO" + ":" padded to 9 characters, then the format's space (uvicorn's levelprefix).
_PREFIX = "INFO:     "
_STATUS = {s.value: f"{s.value} {s.phrase}" for s in http.HTTPStatus}

_by_loop: dict[asyncio.AbstractEventLoop, TurnAccessLog] = {}


class TurnAccessLog:
    """Stands in for the ``uvicorn.access`` logger in uvicorn's protocols (they call only
    ``info``): each line is formatted as uvicorn's default formatter would, kept until the
    end of the loop turn and written with the others of that turn."""

    def __init__(self, logger: logging.Logger, stream: IO[str], loop: asyncio.AbstractEventLoop):
        self._logger = logger
        self._stream = stream
        self._loop = loop
        self._lines: list[str] = []
        self._scheduled = False

    def info(self, msg: str, *args: object) -> None:
        """Log one response (uvicorn's call)."""
        if msg != UVICORN_ACCESS_MESSAGE or len(args) != 5:
            self._logger.info(msg, *args)  # not the call this class knows: uvicorn's path
            return
        client, method, path, version, status = args
        phrase = _STATUS.get(status) or f"{status} "  # type: ignore[call-overload]
        self._lines.append(f'{_PREFIX}{client} - "{method} {path} HTTP/{version}" {phrase}\n')
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the pending lines. As ``logging`` does, a failing stream never fails the
        request: the lines are dropped and the error reported once on stderr."""
        self._scheduled = False
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError) as exc:  # a closed pipe or file
            logging.getLogger("uvicorn.error").warning("access log not written: %s", exc)


def turn_access_log(logger: logging.Logger, loop: asyncio.AbstractEventLoop) -> TurnAccessLog | None:
    """The loop's :class:`TurnAccessLog` for ``logger``, or None when ``logger`` is not set
    up as uvicorn's default (see the module docstring), so uvicorn's own path stays."""
    if not _is_uvicorn_default(logger):
        return None
    found = _by_loop.get(loop)
    if found is None or found._logger is not logger:
        _by_loop.clear()  # one event loop per worker process; a new one replaces the old
        found = _by_loop[loop] = TurnAccessLog(logger, logger.handlers[0].stream, loop)
    return found


def _is_uvicorn_default(logger: logging.Logger) -> bool:
    if logger.propagate or logger.filters or len(logger.handlers) != 1:
        return False
    if not logger.isEnabledFor(logging.INFO):
        return False
    handler = logger.handlers[0]
    formatter = handler.formatter
    return (type(handler) is logging.StreamHandler and not handler.filters
            and handler.level <= logging.INFO
            and type(formatter) is AccessFormatter and not formatter.use_colors
            and formatter._fmt == UVICORN_ACCESS_FORMAT)
