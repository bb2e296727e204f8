"""A plain webhook receiver for the notification benchmark, run as its own process:
``python -m bench.webhook_receiver PORT LOG``. Answers every POST with 200, and on SIGTERM
writes one line per request received: ``<X-Casegrid-Delivery> <arrival time.time()>``."""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_seen: list[tuple[str, float]] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        _seen.append((self.headers.get("X-Casegrid-Delivery") or "-", time.time()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a load generator hanging up at the end of its run is no news


def main() -> None:
    port, log = int(sys.argv[1]), sys.argv[2]
    server = _Server(("127.0.0.1", port), _Handler)

    def stop(*_args) -> None:  # noqa: ANN002
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    with open(log, "w") as fh:
        fh.writelines(f"{i} {t:.6f}\n" for i, t in _seen)


if __name__ == "__main__":
    main()
