"""The intake benchmark's nginx (bench/proxy.py) balances requests, not connections: with one
upstream slow and one fast, the fast one serves most requests of clients that keep their
connection, and a request is never lost. Real nginx and two real HTTP servers on loopback."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bench.proxy import nginx_balancing, nginx_binary

pytestmark = pytest.mark.skipif(nginx_binary() is None,
                                reason="nginx is not installed (scripts/setup.sh --test installs it)")


def _upstream(name: str, delay_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as casegrid's uvicorn answers

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path != "/health":
                time.sleep(delay_s)
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_requests_go_to_the_least_busy_upstream(tmp_path):
    slow, fast = _upstream("slow", 0.2), _upstream("fast", 0.0)
    try:
        ports = [slow.server_address[1], fast.server_address[1]]
        with nginx_balancing(ports, tmp_path / "nginx") as base:
            # Four clients, each on one kept-alive connection to nginx, ten requests each.
            def client(_: int) -> list[str]:
                with httpx.Client(base_url=base, timeout=10) as c:
                    return [c.get("/work").text for _ in range(10)]

            with ThreadPoolExecutor(4) as pool:
                answers = [a for got in pool.map(client, range(4)) for a in got]
    finally:
        slow.shutdown()
        fast.shutdown()
    assert len(answers) == 40 and set(answers) <= {"slow", "fast"}
    # Per connection, the clients would have split 20/20; least_conn sends each request to
    # the upstream with fewer requests in flight, which is the fast one nearly every time.
    assert answers.count("fast") >= 30


def test_a_configuration_nginx_refuses_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="nginx"), nginx_balancing([], tmp_path / "nginx"):
        pass
