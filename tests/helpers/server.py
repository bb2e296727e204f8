"""The app served by uvicorn on loopback, for the tests whose requests must really overlap
or go through a real browser."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from casegrid.cluster import free_port


@contextmanager
def running_server(app, **config) -> Iterator[str]:  # noqa: ANN001 - a FastAPI app
    """Serve ``app`` with uvicorn on a free loopback port in a background thread (so
    requests really overlap, unlike TestClient's); yields the base URL. ``config``: more
    ``uvicorn.Config`` options (proxy headers, root_path, logging)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, **{"host": "127.0.0.1", "port": port,
                                                   "log_level": "warning", "lifespan": "on",
                                                   **config}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
