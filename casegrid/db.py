"""The database handle: one engine per process, made once, with a bounded pool.

``resolve_database_url`` decides where the database is: ``DATABASE_URL`` when set,
otherwise the embedded project-local cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import pydantic_core
from sqlalchemy import Connection, Engine, Transaction, create_engine, event

from casegrid.settings import PROJECT_ROOT, Settings, get_settings


def normalise_url(url: str) -> str:
    """Make a libpq-style URL usable by SQLAlchemy with the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def resolve_database_url(settings: Settings | None = None) -> str:
    """The SQLAlchemy URL of the database casegrid should use."""
    s = settings or get_settings()
    if s.database_url:
        return normalise_url(s.database_url)
    from casegrid.cluster import embedded_cluster

    return embedded_cluster().url(s.db_name)


def make_engine(url: str, settings: Settings | None = None,
                application_name: str = "casegrid") -> Engine:
    """Create an engine with explicit pool limits, pre-ping and recycle. Its sessions carry
    ``application_name``, so ``pg_stat_activity`` tells casegrid's readers from its writers."""
    s = settings or get_settings()
    engine = create_engine(
        normalise_url(url),
        pool_size=s.pool_size,
        max_overflow=s.pool_max_overflow,
        pool_pre_ping=True,
        # The connection given back last is handed out first: steady traffic (intake
        # batches) keeps reusing the same few, whose backends have its statements prepared
        # and its tables cached, instead of cycling through every connection a burst of
        # other requests opened; the idle ones age out through pool_recycle.
        pool_use_lifo=True,
        pool_recycle=s.pool_recycle_s,
        pool_timeout=s.db_queue_wait_s,
        # Bound parameters carry reporter names, phones and texts as written: kept out of
        # log lines and error strings (issue 28: no log line holds personal data).
        hide_parameters=True,
        connect_args={"connect_timeout": 5, "application_name": application_name},
    )
    timeout = s.statement_timeout_ms
    zone = s.time_zone

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001 - DBAPI hook signature
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {int(timeout)}")
            # JIT compilation costs more than it saves on casegrid's short, index-driven queries.
            cur.execute("SET jit = off")
            cur.execute(f"SET TIME ZONE '{zone}'")  # a checked IANA name (settings)
        dbapi_conn.commit()

    return engine


@contextmanager
def single_read(engine: Engine) -> Iterator[Connection]:
    """A pooled connection in autocommit, for a read of one statement (a token lookup, a
    health check): no BEGIN or ROLLBACK round trips, and the connection keeps its prepared
    statements, which psycopg forgets at every ROLLBACK (and a plain ``engine.connect()``
    ends with one). Each statement sees its own snapshot, so reads that must agree with
    each other belong in ``engine.begin()``."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@contextmanager
def commit_only_if(trans: Transaction, commit: bool) -> Iterator[None]:
    """Run the block in ``trans`` (a transaction or a savepoint): rolled back on an error,
    and after a dry run, so a dry run never writes, whatever the code under it does;
    committed only when ``commit``. The one dry-run rule of the imports and their CLI."""
    try:
        yield
    except BaseException:
        trans.rollback()
        raise
    if commit:
        trans.commit()
    else:
        trans.rollback()


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(resolve_database_url())


def _alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        cfg.attributes["url"] = normalise_url(url)
    return cfg


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (alembic upgrade head)."""
    from alembic import command

    command.upgrade(_alembic_config(url), "head")


@lru_cache(maxsize=1)
def migration_heads() -> tuple[str, ...]:
    """The head revision(s) of this code's migrations (what ``migrate`` upgrades to)."""
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(_alembic_config()).get_heads())


def schema_revision(conn: Connection) -> str | None:
    """The migration revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def json_param(value: object) -> str:
    """``value`` as the text of a JSON parameter (``CAST(:x AS jsonb)``), for the documents
    intake batches send (rows to insert, points to route). pydantic-core writes them in
    Rust; ``json.dumps(..., default=str)`` made a Python call per datetime, which dominated
    its time. Timestamps go as ISO 8601, which ``timestamptz`` reads; floats in their
    shortest exact form, so PostgreSQL gets the same doubles."""
    return pydantic_core.to_json(value, fallback=str).decode()


class RawQuery:
    """A textual statement for hot paths, run on the driver's own cursor.

    ``conn.execute(text(sql))`` builds result metadata for every column of every execution
    and wraps each row; for the few statements intake runs per batch (a wide case row, the
    routing, the duplicates) that bookkeeping was a large share of the batch's Python time
    (profiled under load). The SQL is written with SQLAlchemy's ``:name`` parameters and compiled
    once for psycopg (``%(name)s``); rows come back as plain dicts. It runs in the
    caller's transaction (the same DBAPI connection).
    """

    def __init__(self, sql: str):
        from sqlalchemy import text
        from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

        self.sql = str(text(sql).compile(dialect=PGDialect_psycopg()))

    def rows(self, conn: Connection, params: dict) -> list[dict]:
        """Execute with ``params`` and return every row as a dict of column name to value.
        Driver errors are raised as SQLAlchemy raises them (``IntegrityError``,
        ``DataError``, ``OperationalError``...), so callers handle them the same way."""
        import psycopg
        from sqlalchemy.exc import DBAPIError

        try:
            with conn.connection.driver_connection.cursor() as cur:
                cur.execute(self.sql, params)
                result = cur.pgresult
                if result is None or not result.nfields:
                    return []
                # The names straight from the result: cursor.description builds a Column
                # object per column at every call, a visible share of a wide case row's cost.
                names = [result.fname(i).decode() for i in range(result.nfields)]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            # As conn.execute does: a lost connection is invalidated, so the pool discards
            # it instead of resetting a dead socket when it is given back.
            lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
            if lost:
                conn.invalidate(exc)
            raise DBAPIError.instance(self.sql, params, exc, psycopg.Error, dialect=conn.dialect,
                                      connection_invalidated=lost) from exc


def pipelined(conn: Connection, statements: list[tuple[RawQuery, dict]],
              as_dicts: bool = False) -> list[list]:
    """Run ``statements`` in the caller's transaction in one round trip (psycopg's pipeline
    mode: sent together, run back to back by the server); the rows of each, as named
    tuples (``as_dicts``: as dicts of column name to value). On a loaded machine every
    round trip is a wait to be scheduled again, which a single lookup's p99 feels most.
    Driver errors are raised as SQLAlchemy raises them."""
    import psycopg
    from psycopg.rows import dict_row, namedtuple_row
    from sqlalchemy.exc import DBAPIError

    raw = conn.connection.driver_connection
    sql = ""
    try:
        cursors = []
        with raw.pipeline():
            for query, params in statements:
                sql = query.sql
                cur = raw.cursor(row_factory=dict_row if as_dicts else namedtuple_row)
                cur.execute(query.sql, params)
                cursors.append(cur)
        out = []
        for cur in cursors:
            out.append(cur.fetchall())
            cur.close()
        return out
    except psycopg.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, {}, exc, psycopg.Error, dialect=conn.dialect,
                                  connection_invalidated=lost) from exc
