"""``casegrid db start|stop|status|url|migrate``: the embedded PostGIS cluster."""

from __future__ import annotations

import typer

from casegrid.cli._common import cli_errors, console

db_app = typer.Typer(help="Manage the embedded project-local PostGIS cluster.", no_args_is_help=True)


def _cluster():
    from casegrid.cluster import embedded_cluster

    return embedded_cluster()


def ensure_running() -> None:
    """Start the embedded cluster if configured and create its database (not migrated:
    a restore wants it empty)."""
    from casegrid.settings import get_settings

    settings = get_settings()
    if not settings.database_url:
        cluster = _cluster()
        cluster.start()
        cluster.create_database(settings.db_name)


def ensure_database() -> str:
    """Start the embedded cluster if configured, create the database, migrate; return the URL."""
    from casegrid.db import migrate, resolve_database_url

    ensure_running()
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


replica_app = typer.Typer(help="A streaming hot standby of the embedded cluster, on another "
                          "port (CASEGRID_REPLICA_PORT), for CASEGRID_READ_DATABASE_URL.",
                          no_args_is_help=True)
db_app.add_typer(replica_app, name="replica")


def _standby():
    from casegrid.cluster import Cluster
    from casegrid.settings import get_settings

    s = get_settings()
    return Cluster(data_dir=s.data_dir / "replica", port=s.replica_port, db_name=s.db_name)


@replica_app.command("start")
@cli_errors
def replica_start() -> None:
    """Create the standby the first time (pg_basebackup -R from the running primary), start
    it, and print the URL to set as CASEGRID_READ_DATABASE_URL."""
    primary, standby = _cluster(), _standby()
    if not primary.running():
        ensure_running()
    if not standby.initialised():
        console.print(f"copying the primary into {standby.pgdata} (pg_basebackup)")
        standby.clone_from(primary)
    # hot_standby_feedback: the primary keeps the rows a long read on the standby (a year's
    # export, say) still needs, instead of the standby cancelling that read when the
    # primary's vacuum removes them (PostgreSQL's "conflict with recovery").
    standby.start(settings={"hot_standby_feedback": "on"})
    console.print(f"[green]standby running[/] on port {standby.port}; read from it with\n"
                  f"  CASEGRID_READ_DATABASE_URL={standby.url()}")


@replica_app.command("stop")
@cli_errors
def replica_stop() -> None:
    """Stop the standby (its files stay; `start` resumes streaming where it stopped)."""
    _standby().stop()
    console.print("standby stopped")


@replica_app.command("status")
@cli_errors
def replica_status() -> None:
    """Whether the standby runs, and how far behind the primary it is."""
    import psycopg

    standby = _standby()
    if not standby.running():
        console.print(f"{'stopped' if standby.initialised() else 'not created'}: {standby.pgdata}")
        raise typer.Exit(3)
    from casegrid.replica import LAG_SQL

    with psycopg.connect(host="127.0.0.1", port=standby.port, user="casegrid",
                         dbname=standby.db_name) as conn:
        lag = conn.execute(str(LAG_SQL)).fetchone()[0]
    console.print(f"running on port {standby.port}, {lag:.1f} s behind the primary")
