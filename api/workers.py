"""Serving the app in several worker processes, each listening on its own socket.

uvicorn's ``--workers`` shares one listening socket among its workers, and whichever worker
wakes first accepts the connection. A few long-lived keep-alive clients (dispatch consoles,
the 12345 gateway, a load generator) can then mostly land in one worker while the other
idles, and the idle one registers its cases in batches of one. With ``SO_REUSEPORT`` every worker binds its own socket to the same address
and the kernel spreads new connections over the sockets by a hash of the client's address
and port, so each worker gets its share.

The parent process only supervises: it checks that the address is free (a second server on
the same port fails at once with a clear message, instead of silently sharing the port),
holds it with a bound socket that does not listen (so it receives no connections), restarts
a worker that dies, and on SIGINT/SIGTERM stops the workers gracefully (uvicorn finishes the
requests in flight).

Without ``SO_REUSEPORT`` (not Linux) or with one worker, uvicorn's own runner is used.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from typing import Any

log = logging.getLogger("casegrid.serve")

APP = "api.main:app"
STOP_GRACE_S = 30.0  # uvicorn's own graceful shutdown finishes well within this


def reuse_port_supported() -> bool:
    """Whether this platform spreads connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (listening unless
    ``listen=False``); ``OSError`` if the address is taken by a socket without it."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _run_worker(host: str, port: int, config: dict[str, Any]) -> None:
    """One worker process: its own listening socket, one uvicorn server on it."""
    import uvicorn

    sock = reuse_port_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(APP, **config))
    server.run(sockets=[sock])


def serve(host: str, port: int, workers: int, **config: Any) -> None:
    """Serve :data:`APP` on ``host:port`` with ``workers`` processes (see the module
    docstring); ``config`` goes to ``uvicorn.Config``. Returns when stopped by a signal."""
    import uvicorn

    if workers <= 1 or not reuse_port_supported():
        uvicorn.run(APP, host=host, port=port, workers=workers, **config)
        return
    try:
        # A plain bind first: SO_REUSEPORT sockets of the same user may share a port, so only
        # a socket without it notices another casegrid (or anything else) already there.
        probe = socket.socket(_family(host), socket.SOCK_STREAM)
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        # Held, not listening: keeps the address ours until the workers bind theirs.
        holder = reuse_port_socket(host, port, listen=False)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                         "is another server running there? choose another --port") from None
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_run_worker, args=(host, port, config), daemon=False)
        process.start()
        return process

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    log.warning("casegrid: %d workers on http://%s:%d (one SO_REUSEPORT socket each)",
                workers, host, port)
    try:
        while not stopping:
            time.sleep(0.5)
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.warning("worker %s exited with %s; starting a new one",
                                process.pid, process.exitcode)
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn shuts down gracefully
        deadline = time.monotonic() + STOP_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
