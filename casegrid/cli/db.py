"""``casegrid db start|stop|status|url|migrate``: the embedded PostGIS cluster."""

from __future__ import annotations

import typer

from casegrid.cli._common import cli_errors, console

db_app = typer.Typer(help="Manage the embedded project-local PostGIS cluster.", no_args_is_help=True)


def _cluster():
    from casegrid.cluster import embedded_cluster

    return embedded_cluster()


def ensure_database() -> str:
    """Start the embedded cluster if configured, create the database, migrate; return the URL."""
    from casegrid.db import migrate, resolve_database_url
    from casegrid.settings import get_settings

    settings = get_settings()
    if not settings.database_url:
        cluster = _cluster()
        cluster.start()
        cluster.create_database(settings.db_name)
    url = resolve_database_url()
    migrate(url)
    return url


@db_app.command("start")
@cli_errors
def start() -> None:
    """Initialise (first time) and start the cluster, create the database, run migrations."""
    from casegrid.settings import get_settings

    if get_settings().database_url:
        console.print("DATABASE_URL is set: using that database, migrating it.")
    url = ensure_database()
    console.print(f"[green]ready[/] {url}")


@db_app.command("stop")
@cli_errors
def stop() -> None:
    """Stop the embedded cluster (fast shutdown)."""
    _cluster().stop()
    console.print("stopped")


@db_app.command("status")
@cli_errors
def status() -> None:
    """Say whether the embedded cluster is initialised and running."""
    c = _cluster()
    state = "running" if c.running() else ("stopped" if c.initialised() else "not initialised")
    console.print(f"{state}: {c.pgdata} port {c.port}")
    if state != "running":
        raise typer.Exit(3)


@db_app.command("url")
@cli_errors
def url() -> None:
    """Print the database URL casegrid uses."""
    from casegrid.db import resolve_database_url

    typer.echo(resolve_database_url())


@db_app.command("migrate")
@cli_errors
def migrate_cmd() -> None:
    """Run the migrations on the configured database."""
    from casegrid.db import migrate, resolve_database_url

    migrate(resolve_database_url())
    console.print("migrated")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
