"""The embedded, project-local PostgreSQL + PostGIS cluster.

casegrid runs on a real PostGIS everywhere. When ``DATABASE_URL`` is not set it manages its
own cluster under ``CASEGRID_DATA_DIR`` (``.casegrid/`` by default) using the system's
PostgreSQL binaries. PostgreSQL refuses to run as root, so when we are root (CI, a fresh
server) the cluster is owned by and run as the unprivileged ``postgres`` system user.

The same class makes the throwaway clusters of the test suite and the benchmarks, so what
is tested is what runs.
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "casegrid"


class ClusterError(RuntimeError):
    """The embedded cluster cannot be set up or started; the message says what to do."""


def find_pg_bindir() -> Path:
    """Return the bin directory of the newest installed PostgreSQL that has PostGIS."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
        reverse=True,
    )
    for initdb in candidates:
        version = Path(initdb).parent.parent.name
        if glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"):
            return Path(initdb).parent
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(shutil.which("initdb")).parent  # type: ignore[arg-type]
    raise ClusterError(
        "No PostgreSQL server with PostGIS found. Install it with "
        "`sudo apt-get install postgresql postgresql-15-postgis-3` (or run `make run`, "
        "which does it), or point DATABASE_URL at an existing PostGIS database."
    )


# Where free_port looks, below the kernel's ephemeral range (read at each call).
_LOWEST_PORT = 20000


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux's default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free TCP port on loopback, chosen below the kernel's ephemeral range: a server
    stopped and started again on the same port (a database restart) must not find it taken
    meanwhile by some program's outgoing connection, which an ephemeral port can be
    (seen in CI: a test's restarted cluster lost its port while benchmarks ran beside it).
    Falls back to the kernel's choice when that range is too small or full."""
    low = _ephemeral_low()
    if low - _LOWEST_PORT >= 1000:
        pick = random.SystemRandom()
        for _ in range(100):
            port = pick.randrange(_LOWEST_PORT, low)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether PostgreSQL could listen on 127.0.0.1:``port`` now (bound as it binds, with
    SO_REUSEADDR, so a closed connection's TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# How long start() waits for a busy port: an outgoing connection may hold it for a moment,
# since the embedded default (55432) lies in Linux's range of ephemeral ports.
PORT_WAIT_S = 5.0


@dataclass
class Cluster:
    """A PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    db_name: str = "casegrid"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgresql.log"

    def url(self, db_name: str | None = None) -> str:
        """SQLAlchemy URL of a database in this cluster (psycopg 3 driver)."""
        return (
            f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{db_name or self.db_name}"
        )

    # -- process management -------------------------------------------------------------
    def _run_as_owner(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        bindir = find_pg_bindir()
        cmd = [str(bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise ClusterError(
                f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
                f"\nSee {self.log_file} for the server log."
            )
        return proc

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                pg = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterError(
                    "Running as root, but there is no `postgres` system user to own the "
                    "cluster. Install the `postgresql` package, or run as a normal user."
                ) from exc
            for path in (self.data_dir, self.socket_dir):
                os.chown(path, pg.pw_uid, pg.pw_gid)
            # postgres must be able to reach data_dir through its parents.
            for parent in self.data_dir.resolve().parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster files (initdb) if they do not exist yet."""
        if self.initialised():
            return
        self._prepare_dirs()
        self._run_as_owner(
            [
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                # Sort order "C": byte order, which for UTF-8 is the code point order that
                # glibc's C.UTF-8 (2.35 on) collates by too, so nothing sorts differently;
                # but PostgreSQL 15 only knows "C" as plain byte order, and compares every
                # other collation through strcoll() without abbreviated sort keys. Text
                # indexes build faster with "C" (the bulk import rebuilds several). The
                # character classes (upper(), regular expressions) stay C.UTF-8's.
                "--lc-collate=C",
            ]
        )

    def clone_from(self, primary: Cluster) -> None:
        """Make this (not yet initialised) cluster a streaming hot standby of ``primary``:
        ``pg_basebackup -R`` copies its files and writes the connection to follow it
        (``primary.running()`` required; initdb's trust rules admit replication from
        127.0.0.1). :meth:`start` then starts it as a read-only standby."""
        if self.initialised():
            raise ClusterError(f"{self.pgdata} holds a cluster already; remove it first")
        self._prepare_dirs()
        self._run_as_owner(["pg_basebackup", "-D", str(self.pgdata), "-R", "-X", "stream",
                            "-c", "fast", "-h", "127.0.0.1", "-p", str(primary.port),
                            "-U", SUPERUSER])

    def is_standby(self) -> bool:
        """Whether the cluster's files are those of a standby (``standby.signal``)."""
        return (self.pgdata / "standby.signal").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._run_as_owner(["pg_ctl", "status", "-D", str(self.pgdata)], check=False).returncode == 0

    def start(self, fast: bool = False, settings: dict[str, str] | None = None) -> None:
        """Start the server (initialising it first) and wait until it accepts connections.

        ``fast`` trades durability for speed (fsync off), for throwaway test clusters only.
        ``settings`` are more server settings (name to value) for this start, e.g. the
        benchmarks' ``shared_preload_libraries``.
        """
        extra = []
        for name, value in (settings or {}).items():
            # pg_ctl hands the options to a shell: plain names and values only.
            if not re.fullmatch(r"[a-z_.]+", name) or not re.fullmatch(r"[\w.,/-]+", value):
                raise ClusterError(f"server setting {name}={value!r} is not a plain name=value")
            extra.append(f"-c {name}={value}")
        if self.running():  # (never before initdb)
            return
        self._wait_for_port()  # before initdb: nothing set up for a server that cannot listen
        self.init()
        self._prepare_dirs()
        opts = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.socket_dir}",
            "-c max_connections=200",
            "-c shared_buffers=512MB",
            "-c work_mem=64MB",
            "-c maintenance_work_mem=256MB",
            "-c max_wal_size=4GB",
            # The server log gets an error's primary message and statement, not its DETAIL,
            # CONTEXT or HINT: a check violation's DETAIL is the whole failing row (the
            # reporter's name and phone, the description as written), COPY's CONTEXT a
            # line of the file. Statements are logged as sent: their values travel apart.
            "-c log_error_verbosity=terse",
        ]
        if fast:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        opts += extra
        self._run_as_owner(
            ["pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata),
             "-l", str(self.log_file), "-o", " ".join(opts)]
        )
        self._wait_ready()

    def _wait_for_port(self) -> None:
        """Return once 127.0.0.1:port is free; a clear error if it stays taken."""
        deadline = time.monotonic() + PORT_WAIT_S
        while not port_is_free(self.port):
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"port {self.port} on 127.0.0.1 is in use by another program, so the "
                    "database cannot listen there: stop that program, or choose another port "
                    "(for the embedded database: CASEGRID_DB_PORT)")
            time.sleep(0.2)

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise ClusterError(f"PostgreSQL did not start listening on port {self.port}; see {self.log_file}")

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown: rolls back open transactions)."""
        if self.running():
            self._run_as_owner(["pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata)])

    def destroy(self) -> None:
        """Stop the server and delete all of its files (throwaway clusters)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------
    def create_database(self, name: str, template: str | None = None) -> None:
        """Create database ``name`` (if missing) with the PostGIS extension."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                ident = psycopg.sql.Identifier(name)
                if template:
                    conn.execute(
                        psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                            ident, psycopg.sql.Identifier(template)
                        )
                    )
                else:
                    conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(ident))
        if not template:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=name, autocommit=True
            ) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions first."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


def embedded_cluster() -> Cluster:
    """The project's own cluster, as configured by the settings."""
    from casegrid.settings import get_settings

    s = get_settings()
    return Cluster(data_dir=Path(s.data_dir), port=s.db_port, db_name=s.db_name)
