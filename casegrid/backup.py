"""Backup and restore of a casegrid ledger: the database and the attachment store.

A backup is a directory::

    database.dump        pg_dump custom format, taken in one exported snapshot
    attachments/<sha256> the attachment store's files (content-addressed)
    manifest.json        written last: each file's SHA-256 and size, the schema revision,
                         the casegrid version and the counts of cases, history entries and
                         attachments, read in the same snapshot as the dump

It is written under a temporary name beside ``--out`` and renamed when complete, so a
directory named like the target is always a whole backup. A restore checks every file
against the manifest before it touches the target, restores the attachments (idempotent:
files are named by their hash) and then the database in one transaction
(``pg_restore --single-transaction``): an interrupted restore leaves either no ledger at all,
which a re-run fills, or the whole one. Migrations then run forward, so an older backup
comes up at the current schema.

The dump and restore are PostgreSQL's own tools, from the system's client of the server's
major version (``/usr/lib/postgresql/<major>/bin``), which is what ``pg_dump`` requires.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from casegrid.db import normalise_url
from casegrid.errors import CasegridError, Conflict, InvalidInput

MANIFEST = "manifest.json"
DUMP = "database.dump"
ATTACHMENTS = "attachments"
FORMAT = 1
# Tables counted in the manifest, by the name the manifest gives them.
COUNTED = {"cases": '"case"', "history": "case_event", "attachments": "attachment"}

Progress = Callable[[str], None]


class BackupError(CasegridError):
    """A backup cannot be taken or restored; the message names the file or step at fault."""

    code = "backup_error"


@dataclass(frozen=True)
class RestoreReport:
    """What a restore found: the manifest's counts beside the restored database's."""

    manifest: dict
    counts: dict[str, int | None]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks (photos and dumps can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pg_tool(conn: Connection, name: str) -> Path:
    """Path of ``pg_dump``/``pg_restore`` of the server's major version (pg_dump refuses a
    server newer than itself, and an older client's dump may not restore everything)."""
    major = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    path = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    if not path.exists():
        found = shutil.which(name)
        raise BackupError(
            f"{name} for PostgreSQL {major} is not installed ({path} is missing"
            f"{f'; {found} is another version' if found else ''}). Install it with "
            f"`sudo apt-get install postgresql-client-{major}`.")
    return path


def libpq_args(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for PostgreSQL's command-line tools, and the environment that
    carries the password (never on the command line, where ``ps`` would show it)."""
    u = make_url(normalise_url(url))
    args = ["--dbname", u.database or "postgres"]
    if u.host:
        args += ["--host", u.host]
    if u.port:
        args += ["--port", str(u.port)]
    if u.username:
        args += ["--username", u.username]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    return args, env


def _version() -> str:
    try:
        return metadata.version("casegrid")
    except metadata.PackageNotFoundError:
        return "unknown"


def _table_exists(conn: Connection, name: str) -> bool:
    return conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar_one()


def ledger_counts(conn: Connection) -> dict[str, int | None]:
    """Rows of cases, history entries and attachments (None: the table does not exist in
    this schema revision)."""
    out: dict[str, int | None] = {}
    for key, table in COUNTED.items():
        out[key] = (conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                    if _table_exists(conn, table) else None)
    return out


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at."""
    if not _table_exists(conn, "alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


@contextmanager
def _snapshot(url: str) -> Iterator[tuple[Connection, str]]:
    """A repeatable-read transaction held open with its snapshot exported, so the dump
    (``pg_dump --snapshot``) and the manifest's counts see the same instant."""
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snap = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                yield conn, snap
    finally:
        engine.dispose()


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BackupError(f"{what} failed ({proc.returncode}): {detail[-1] if detail else ''}")


def backup(url: str, out: Path, attachments_dir: Path | None,
           progress: Progress = lambda _m: None) -> dict:
    """Write a backup of the database at ``url`` and the attachment store to ``out`` (which
    must not exist yet) and return its manifest."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} exists and is not empty; choose a new directory",
                           field="out")
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / ATTACHMENTS).mkdir(parents=True)
    try:
        with _snapshot(url) as (conn, snap):
            args, env = libpq_args(url)
            progress("dumping the database")
            _run([str(pg_tool(conn, "pg_dump")), "--format=custom", "--no-owner",
                  f"--snapshot={snap}", f"--file={work / DUMP}", *args], env, "pg_dump")
            manifest = {
                "format": FORMAT,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "casegrid_version": _version(),
                "schema_revision": schema_revision(conn),
                "server_version": conn.execute(text("SHOW server_version")).scalar_one(),
                "counts": ledger_counts(conn),
                "files": {},
            }
        # After the dump: every file a dumped row names was written before its row (the
        # store's rule), so it is in the directory now.
        if attachments_dir is not None and attachments_dir.is_dir():
            files = sorted(p for p in attachments_dir.rglob("*") if p.is_file()
                           and not p.name.startswith("."))
            progress(f"copying {len(files)} attachment files")
            for src in files:
                rel = src.relative_to(attachments_dir)
                dst = work / ATTACHMENTS / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        progress("checksumming")
        for path in sorted(p for p in work.rglob("*") if p.is_file()):
            rel = path.relative_to(work).as_posix()
            manifest["files"][rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        _fsync_tree(work)
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())


def verify(backup_dir: Path) -> dict:
    """Check a backup against its manifest; return the manifest. Refuses (naming the file)
    a missing manifest, a missing, truncated or changed file."""
    manifest_path = backup_dir / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{manifest_path} is missing: {backup_dir} is not a complete backup")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{manifest_path} cannot be read as a casegrid manifest") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{manifest_path} has format {manifest.get('format')!r}; "
                          f"this casegrid reads format {FORMAT}")
    if DUMP not in files:
        raise BackupError(f"{manifest_path} lists no {DUMP}")
    for rel, meta in files.items():
        path = backup_dir / rel
        if not path.is_file():
            raise BackupError(f"{path} is missing from the backup")
        if path.stat().st_size != meta["bytes"]:
            raise BackupError(f"{path} has {path.stat().st_size} bytes, the manifest says "
                              f"{meta['bytes']}: the file is damaged or partial")
        if sha256_file(path) != meta["sha256"]:
            raise BackupError(f"{path} does not match its SHA-256 in the manifest: "
                              "the file was changed or damaged")
    return manifest


def database_is_empty(conn: Connection) -> bool:
    """True when the database holds no casegrid table (extensions' own tables, such as
    PostGIS's ``spatial_ref_sys``, do not count)."""
    return not conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' AND NOT EXISTS (SELECT 1 FROM pg_depend d "
        "WHERE d.objid = c.oid AND d.deptype = 'e'))")).scalar_one()


def restore(url: str, backup_dir: Path, attachments_dir: Path | None, force: bool = False,
            progress: Progress = lambda _m: None) -> RestoreReport:
    """Restore a backup into the database at ``url`` (empty, unless ``force``) and the
    attachment store; migrate forward; return the counts beside the manifest's."""
    from casegrid.db import migrate

    progress("checking the backup against its manifest")
    manifest = verify(backup_dir)
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            empty = database_is_empty(conn)
            if not empty and not force:
                counts = ledger_counts(conn)
                same = counts == manifest["counts"]
                raise Conflict(
                    f"the target database is not empty ({counts['cases']} cases)"
                    + ("; it holds the same counts as this backup: a restore of it may have "
                       "finished already (run `casegrid db migrate`)" if same else "")
                    + ". Restore into an empty database, or pass --force to replace it.")
            dump_tool = pg_tool(conn, "pg_restore")
        if attachments_dir is not None:
            _restore_attachments(backup_dir, manifest, attachments_dir, progress)
        args, env = libpq_args(url)
        progress("restoring the database (one transaction)")
        cmd = [str(dump_tool), "--single-transaction", "--exit-on-error", "--no-owner"]
        if not empty:
            cmd += ["--clean", "--if-exists"]
        _run([*cmd, *args, str(backup_dir / DUMP)], env, "pg_restore")
        progress("running migrations forward")
        migrate(url)
        with engine.connect() as conn:
            counts = ledger_counts(conn)
    finally:
        engine.dispose()
    return RestoreReport(manifest=manifest, counts=counts)


def _restore_attachments(backup_dir: Path, manifest: dict, target: Path,
                         progress: Progress) -> None:
    names = [rel for rel in manifest["files"] if rel.startswith(f"{ATTACHMENTS}/")]
    progress(f"restoring {len(names)} attachment files")
    for rel in names:
        src = backup_dir / rel
        dst = target / Path(rel).relative_to(ATTACHMENTS)
        if dst.is_file() and sha256_file(dst) == manifest["files"][rel]["sha256"]:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.restoring")
        shutil.copyfile(src, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(dst)
