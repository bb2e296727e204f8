"""``casegrid worker`` and ``casegrid outbox list|retry``: delivering notifications."""

from __future__ import annotations

import signal
import threading

import typer
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine

outbox_app = typer.Typer(help="Notification deliveries: list them, retry failed ones.",
                         no_args_is_help=True)


@cli_errors
def worker(
    once: bool = typer.Option(False, "--once", help="run one pass and exit (for cron)"),
    name: str = typer.Option("", help="this worker's name in the heartbeat table"),
) -> None:
    """Deliver notifications: reminders, webhook, SMS and email, until stopped."""
    from casegrid.logs import configure
    from casegrid.settings import get_settings
    from casegrid.worker import Worker

    # The server's log set-up (text or CASEGRID_LOG_FORMAT=json, database errors redacted).
    settings = get_settings()
    configure(settings.log_format)
    w = Worker(engine(), settings, name or None)
    if once:
        console.print(w.run_pass(), highlight=False)
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    w.run(stop)


@outbox_app.command("list")
@cli_errors
def list_cmd(
    failed: bool = typer.Option(False, "--failed", help="only deliveries given up"),
    limit: int = typer.Option(50, min=1, max=10000),
) -> None:
    """Deliveries, newest first."""
    from notify.outbox import list_deliveries, stats

    with engine().connect() as conn:
        rows = list_deliveries(conn, failed_only=failed, limit=limit)
        counts = stats(conn)
    table = Table("id", "event", "type", "case", "channel", "target", "status", "attempts",
                  "next / delivered", "last error")
    for r in rows:
        when = r["delivered_at"] or r["next_at"]
        table.add_row(str(r["id"]), str(r["event_id"]), r["type"], str(r["case_id"]),
                      r["channel"], r["target"], r["status"], str(r["attempts"]),
                      f"{when:%Y-%m-%d %H:%M:%S}", (r["last_error"] or "")[:60])
    console.print(table)
    console.print(counts, highlight=False)


@outbox_app.command("retry")
@cli_errors
def retry_cmd(delivery_id: int = typer.Argument(..., help="delivery id from `outbox list`")) -> None:
    """Send a failed delivery again at the worker's next pass."""
    from notify.outbox import retry

    with engine().begin() as conn:
        retry(conn, delivery_id)
    console.print(f"delivery {delivery_id} will be sent again at the worker's next pass")


@outbox_app.command("purge")
@cli_errors
def purge_cmd(days: int = typer.Option(90, min=1, help="keep this many days")) -> None:
    """Delete delivered events older than --days, with their deliveries and attempts."""
    from notify.outbox import purge

    with engine().begin() as conn:
        n = purge(conn, days)
    console.print(f"purged {n} delivered events older than {days} days")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.add_typer(outbox_app, name="outbox")
