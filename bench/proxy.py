"""nginx in front of several ``casegrid serve`` instances, as README's "Serving" paragraph
tells a production deployment to run them: an ``upstream`` of one-worker instances with
``least_conn`` and kept-alive connections to them, so that each request (not each client
connection) goes to the least busy worker.

Used by the intake benchmark to measure the deployment the README recommends beside stock
uvicorn's own ``--workers`` (one shared listening socket, where the kernel, not the load,
decides which worker keeps a client's connection). Debian's nginx runs unprivileged paths
only: its configuration, logs and temporary files live in the benchmark's work folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from casegrid.cluster import free_port


def nginx_binary() -> str | None:
    """Debian's nginx, or None when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def nginx_conf(folder: Path, http_body: str, worker_connections: int = 512) -> str:
    """nginx's main configuration for a run from ``folder`` (its pid, error log and temporary
    files there), in the foreground, with ``http_body`` inside the ``http`` block."""
    temp_paths = "\n".join(f"    {kind}_temp_path {folder}/{kind};" for kind in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would switch to "nobody", who cannot use the folder.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections {worker_connections}; }}
http {{
{temp_paths}
{http_body}
}}
"""


def balancing_config(upstream_ports: list[int], port: int, folder: Path) -> str:
    """The nginx configuration: one listening port on loopback, ``least_conn`` over the
    instances, ``keepalive`` to them (HTTP/1.1, Connection cleared), no access log (casegrid
    logs every request itself)."""
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    return nginx_conf(folder, f"""    access_log off;
    upstream casegrid_app {{
        least_conn;
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://casegrid_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}""")


@contextmanager
def nginx_balancing(upstream_ports: list[int], folder: Path) -> Iterator[str]:
    """Run nginx balancing over ``upstream_ports`` until the block ends; yields its base URL.
    Raises RuntimeError naming nginx's own message when it refuses the configuration."""
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(balancing_config(upstream_ports, port, folder), encoding="utf-8")
    args = [nginx, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx refused its configuration: {check.stderr.strip()}")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {proc.stderr.read().decode().strip()}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not pass /health through within 20 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
