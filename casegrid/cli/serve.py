"""``casegrid serve``: the API, the maps and the workbench with uvicorn. (The demo's own
commands, ``sample load``, ``demo-accounts`` and ``demo-token``, are in casegrid/demo/cli.py.)"""

from __future__ import annotations

import typer

from casegrid.cli._common import cli_errors


@cli_errors
def serve(
    host: str = typer.Option(None, help="bind address (default from settings: 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default 8000)"),
    workers: int = typer.Option(1, min=1, help="worker processes (uvicorn's own --workers; "
                                "in production put a reverse proxy in front, see README)"),
) -> None:
    """Serve the API and the maps with uvicorn."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from casegrid.logs import log_config
    from casegrid.settings import get_settings

    s = get_settings()
    metrics_dir = None
    if workers > 1:
        # prometheus-client's multiprocess mode (its documented set-up): each worker writes
        # its metrics to files here, and /metrics adds them up whichever worker answers. A
        # fresh directory per start, so a restarted server does not add old counts; the
        # workers inherit the variable (uvicorn starts them after this). Workers that end
        # are marked dead by casegrid.metrics.
        metrics_dir = tempfile.mkdtemp(prefix="casegrid-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("api.main:app", host=host or s.host, port=port or s.port, workers=workers,
                    log_level="info", log_config=log_config(s.log_format),
                    timeout_worker_healthcheck=s.serve_worker_healthcheck_s, **proxy_options(s))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def proxy_options(s) -> dict:
    """uvicorn's documented proxy settings from ours: X-Forwarded-For/-Proto are believed
    only from ``CASEGRID_TRUSTED_PROXIES`` (never by default: uvicorn's own default trusts
    127.0.0.1, and its FORWARDED_ALLOW_IPS variable is not consulted), and the app is served
    under ``CASEGRID_ROOT_PATH``."""
    trusted = [a.strip() for a in s.trusted_proxies.split(",") if a.strip()]
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or [],
            "root_path": s.root_path}


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
