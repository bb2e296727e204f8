"""The access log ``casegrid serve`` writes (api/access_log.py): the lines uvicorn's default
logger would write, byte for byte, gathered per event-loop turn; any other logging set-up
keeps uvicorn's own path."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
import uvicorn
from uvicorn.logging import AccessFormatter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.access_log import UVICORN_ACCESS_FORMAT, TurnAccessLog, turn_access_log
from api.http_protocol import GatheringHttpToolsProtocol
from tests.test_http_protocol import FakeTransport


class CountingStream(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


@pytest.fixture
def access_logger():
    """A function that sets ``uvicorn.access`` up as uvicorn's default logging config does,
    writing to a counting stream, and returns (logger, stream); restored afterwards. Tests
    call it in their body: pytest adds its capture handlers to loggers when the test
    starts, after the fixtures ran."""
    logger = logging.getLogger("uvicorn.access")
    saved = (logger.handlers[:], logger.level, logger.propagate, logger.filters[:])

    def set_up() -> tuple[logging.Logger, CountingStream]:
        stream = CountingStream()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(AccessFormatter(UVICORN_ACCESS_FORMAT, use_colors=False))
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.filters = []
        return logger, stream

    yield set_up
    logger.handlers, logger.level, logger.propagate, logger.filters = saved


async def _app(scope, receive, send):  # noqa: ANN001
    if scope["type"] != "http":
        return
    status = int(scope["path"].rsplit("/", 1)[-1])
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _serve(protocol_class: type, requests: list[bytes]) -> None:
    """Each request on its own connection, all arriving in the same loop turn (as a batch
    of intake answers is released at once)."""

    async def scenario() -> None:
        config = uvicorn.Config(_app, log_config=None, access_log=True)
        loop = asyncio.get_running_loop()
        protocols = [protocol_class(config, ServerState(), {}, loop) for _ in requests]
        for protocol, request in zip(protocols, requests, strict=True):
            protocol.connection_made(FakeTransport())  # type: ignore[arg-type]
            protocol.data_received(request)
        for _ in range(30):
            await asyncio.sleep(0)
        for protocol in protocols:
            protocol.connection_lost(None)

    asyncio.run(scenario())


_REQUESTS = [f"GET /s/{code}?q=1&x=%E5%99%AA HTTP/1.1\r\nHost: t\r\n\r\n".encode()
             for code in (200, 201, 404, 422, 599)]


def test_the_lines_are_uvicorn_s_own_and_leave_in_one_write(access_logger):
    _logger, stream = access_logger()
    _serve(HttpToolsProtocol, _REQUESTS)  # uvicorn's own logging path
    uvicorn_lines, uvicorn_writes = stream.getvalue(), stream.writes
    stream.seek(0)
    stream.truncate()
    stream.writes = 0
    _serve(GatheringHttpToolsProtocol, _REQUESTS)
    assert stream.getvalue() == uvicorn_lines
    assert uvicorn_lines.count("\n") == 5 and '"GET /s/599?q=1&x=%E5%99%AA HTTP/1.1" 599 \n' in uvicorn_lines
    assert '127.0.0.1:50000 - "GET /s/201?q=1&x=%E5%99%AA HTTP/1.1" 201 Created' in uvicorn_lines
    assert uvicorn_writes >= 5 and stream.writes == 1


@pytest.mark.parametrize("change", ["colours", "filter", "level", "propagate", "format", "file"])
def test_any_other_logging_set_up_keeps_uvicorn_s_path(access_logger, change, tmp_path):
    logger, stream = access_logger()
    handler = logger.handlers[0]
    if change == "colours":
        handler.setFormatter(AccessFormatter(UVICORN_ACCESS_FORMAT, use_colors=True))
    elif change == "filter":
        handler.addFilter(lambda record: record.args[4] >= 400)  # e.g. errors only
    elif change == "level":
        logger.setLevel(logging.WARNING)
    elif change == "propagate":
        logger.propagate = True
    elif change == "format":
        handler.setFormatter(AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s'))
    else:
        logger.handlers = [logging.FileHandler(tmp_path / "access.log")]
    loop = asyncio.new_event_loop()
    try:
        assert turn_access_log(logger, loop) is None
    finally:
        loop.close()
    if change == "filter":  # and the configured path is what runs
        _serve(GatheringHttpToolsProtocol, _REQUESTS)
        assert stream.getvalue().count("\n") == 3  # 404, 422, 599


def test_a_call_in_another_shape_goes_to_the_logger(access_logger):
    logger, stream = access_logger()
    loop = asyncio.new_event_loop()
    try:
        log = turn_access_log(logger, loop)
        assert isinstance(log, TurnAccessLog)
        seen: list[logging.LogRecord] = []
        collector = logging.Handler()
        collector.emit = seen.append  # type: ignore[method-assign]
        logger.addHandler(collector)
        log.info("%s something else", "x")
        assert [r.getMessage() for r in seen] == ["x something else"]
        assert stream.writes == 0  # nothing of it went through the gathered lines
    finally:
        loop.close()


def test_a_broken_stream_costs_the_lines_not_the_request(access_logger, caplog):
    logger, stream = access_logger()
    stream.close()  # e.g. the log pipe's reader went away
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        _serve(GatheringHttpToolsProtocol, _REQUESTS)
    assert "access log not written" in caplog.text
