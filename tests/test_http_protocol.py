"""The HTTP protocol ``casegrid serve`` runs (api/http_protocol.py): a response leaves in
one write instead of uvicorn's two (headers, then body), large bodies are not held back,
and nothing is lost, reordered or written after the connection is gone."""

from __future__ import annotations

import asyncio
import json

import httpx
import uvicorn
from uvicorn.server import ServerState

from api.http_protocol import GATHER_MAX_BYTES, GatheringHttpToolsProtocol, GatheringTransport
from tests.conftest import running_server


class FakeTransport:
    """Records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):  # noqa: ANN001, ANN201
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def test_small_writes_of_one_loop_turn_leave_together_at_its_end():
    async def scenario() -> list[list[bytes]]:
        raw = FakeTransport()
        t = GatheringTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b'{"a": 1}')
        during = list(raw.writes)
        await asyncio.sleep(0)  # the turn ends
        return [during, raw.writes]

    during, after = asyncio.run(scenario())
    assert during == []
    assert after == [b'HTTP/1.1 200 OK\r\n\r\n{"a": 1}']


def test_a_large_write_goes_out_at_once_after_what_was_pending():
    async def scenario() -> list[bytes]:
        raw = FakeTransport()
        t = GatheringTransport(raw, asyncio.get_running_loop())
        t.write(b"head")
        big = b"x" * (GATHER_MAX_BYTES + 1)
        t.write(big)
        assert raw.writes == [b"head", big]  # in order, before the turn ends
        t.write(b"tail")
        await asyncio.sleep(0)
        return raw.writes

    assert asyncio.run(scenario())[-1] == b"tail"


def test_close_sends_what_is_pending_and_nothing_is_written_after():
    async def scenario() -> FakeTransport:
        raw = FakeTransport()
        t = GatheringTransport(raw, asyncio.get_running_loop())
        t.write(b"bye")
        t.close()
        t.write(b"late")  # e.g. a response finished after the client went away
        await asyncio.sleep(0)
        return raw

    raw = asyncio.run(scenario())
    assert raw.writes == [b"bye"] and raw.closed


def test_uvicorn_writes_a_whole_response_in_one_write():
    """Through uvicorn's own protocol code: status line, headers and body in one write."""

    async def app(scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return
        body = json.dumps({"ok": True}).encode()
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def scenario() -> list[bytes]:
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        protocol = GatheringHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        raw = FakeTransport()
        protocol.connection_made(raw)  # type: ignore[arg-type]
        protocol.data_received(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        for _ in range(20):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return raw.writes

    writes = asyncio.run(scenario())
    assert len(writes) == 1
    head, body = writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 201") and json.loads(body) == {"ok": True}


def test_a_keep_alive_connection_gets_small_and_large_answers_intact(city_engine, city_db_url):
    """The real app over a real socket: a large document (the OpenAPI schema, sent at once)
    between small answers on one connection, each complete and in order."""
    from api.app import create_app

    with running_server(create_app(database_url=city_db_url)) as base, httpx.Client() as client:
        for _ in range(3):
            assert client.get(f"{base}/health").json()["status"] == "ok"
            schema = client.get(f"{base}/openapi.json")
            assert len(schema.content) > GATHER_MAX_BYTES
            assert "/api/v1/cases" in schema.json()["paths"]
            assert client.get(f"{base}/open311/v2/discovery.json").status_code == 200
