"""Backup and restore: a worked ledger and its attachment files come back whole in a fresh
cluster; a damaged backup is refused naming the file; an interrupted restore is repaired by
running it again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from casegrid.backup import (
    DUMP,
    MANIFEST,
    BackupError,
    backup,
    database_is_empty,
    restore,
    sha256_file,
    verify,
)
from casegrid.cluster import Cluster, free_port
from casegrid.errors import Conflict, InvalidInput
from cases.calendar import CITY_TZ
from tests.helpers.cli import cli_database

UNTIL = datetime(2026, 11, 1, 12, 0, tzinfo=CITY_TZ)
# Tables whose every row is compared by checksum, not only counted.
CHECKSUMMED = ('"case"', "case_event")


def table_counts(url: str) -> dict[str, int]:
    """Rows of every table of the public schema (extensions' own tables left out)."""
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            names = conn.execute(text(
                "SELECT format('%I', c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'p') AND NOT EXISTS (SELECT 1 FROM pg_depend d "
                "WHERE d.objid = c.oid AND d.deptype = 'e') ORDER BY 1")).scalars().all()
            return {n: conn.execute(text(f"SELECT count(*) FROM {n}")).scalar_one()
                    for n in names}
    finally:
        eng.dispose()


def table_checksum(url: str, table: str) -> str:
    """md5 of every row of ``table`` as text, in primary-key order."""
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(text(
                f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM {table} t"
            )).scalar_one()
    finally:
        eng.dispose()


@pytest.fixture(scope="module")
def worked_city(pg_cluster, city_template):
    """The sample city with 400 complaints worked through the loop, and a store of
    attachment files; shared by the tests of this module (they only read it)."""
    import casegrid.demo.history as sim
    from casegrid.demo.complaints import load_sample_complaints

    name = "cg_backup_source"
    pg_cluster.create_database(name, template=city_template)
    url = pg_cluster.url(name)
    eng = create_engine(url, poolclass=NullPool)
    load_sample_complaints(eng, n=400)
    with eng.begin() as conn:
        sim.simulate_ledger(conn, until=UNTIL)
    eng.dispose()
    store = Path(tempfile.mkdtemp(prefix="cg-store-"))
    add_photos(url, store, 3)
    yield url, store
    pg_cluster.drop_database(name)


def add_photos(url: str, store: Path, n: int) -> None:
    """``n`` real PNG photos on the first cases, through the evidence code (file store, then
    rows), as the handling officer's upload would add them."""
    import io

    from PIL import Image

    from casegrid.settings import Settings
    from cases.attachments import add_to_case, prepare_all, store_for, write_files
    from cases.images import Upload
    from cases.tokens import Principal

    settings = Settings(attachment_dir=store)
    admin = Principal(1, "admin", "admin")
    eng = create_engine(url, poolclass=NullPool)
    with eng.begin() as conn:
        ids = conn.execute(text('SELECT id FROM "case" ORDER BY id LIMIT :n'), {"n": n}).scalars()
        for i, case_id in enumerate(ids):
            buf = io.BytesIO()
            Image.new("RGB", (64 + i, 48), (40 * i, 120, 200)).save(buf, "PNG")
            prepared = prepare_all([Upload("photo", 0, f"p{i}.png", buf.getvalue())], settings)
            write_files(store_for(settings), prepared)
            add_to_case(conn, case_id, prepared, admin, settings, caption=f"photo {i}")
    eng.dispose()


@pytest.fixture
def second_cluster():
    """A fresh, empty cluster: where a bureau restores after losing its disk."""
    cluster = Cluster(data_dir=Path(tempfile.mkdtemp(prefix="cg-restore-")), port=free_port(),
                      db_name="restored")
    cluster.start(fast=True)
    cluster.create_database("restored")
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_backup_restores_every_row_and_file_into_a_fresh_cluster(worked_city, second_cluster,
                                                                  tmp_path):
    url, store = worked_city
    out = tmp_path / "nightly"
    manifest = backup(url, out, store)
    assert (out / MANIFEST).is_file() and not list(tmp_path.glob(".*partial"))
    before = table_counts(url)
    assert manifest["counts"]["cases"] == before['"case"'] == 400
    assert manifest["counts"]["history"] == before["case_event"] > 400
    assert manifest["schema_revision"]
    assert manifest["counts"]["attachments"] == before["attachment"] == 3
    # each photo's served copy and its thumbnail
    assert sum(1 for f in manifest["files"] if f.startswith("attachments/")) == 6

    target = second_cluster.url("restored")
    new_store = tmp_path / "restored-store"
    report = restore(target, out, new_store)
    assert report.counts == manifest["counts"]
    assert table_counts(target) == before
    for table in CHECKSUMMED:
        assert table_checksum(target, table) == table_checksum(url, table), table
    restored = sorted(p.relative_to(new_store) for p in new_store.rglob("*") if p.is_file())
    original = sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file())
    assert restored == original
    for rel in original:
        assert sha256_file(new_store / rel) == sha256_file(store / rel)


def test_backup_refuses_a_directory_that_holds_something(worked_city, tmp_path):
    url, store = worked_city
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        backup(url, tmp_path, store)
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def one_backup(worked_city, tmp_path_factory):
    url, store = worked_city
    out = tmp_path_factory.mktemp("b") / "backup"
    backup(url, out, store)
    return out


def copy_of(backup_dir: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(backup_dir, dst)
    return dst


def test_a_truncated_dump_is_refused_naming_the_file(one_backup, second_cluster, tmp_path):
    damaged = copy_of(one_backup, tmp_path)
    dump = damaged / DUMP
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    with pytest.raises(BackupError, match=f"{DUMP}.*damaged or partial"):
        restore(second_cluster.url("restored"), damaged, tmp_path / "store")
    assert _is_empty(second_cluster.url("restored"))
    assert not (tmp_path / "store").exists()


def test_a_changed_photo_is_refused_naming_the_file(one_backup, second_cluster, tmp_path):
    damaged = copy_of(one_backup, tmp_path)
    photo = next(p for p in (damaged / "attachments").rglob("*") if p.is_file())
    data = bytearray(photo.read_bytes())
    data[10] ^= 0xFF  # same size, other bytes
    photo.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=rf"{photo.name}.*SHA-256"):
        verify(damaged)
    with pytest.raises(BackupError, match=photo.name):
        restore(second_cluster.url("restored"), damaged, tmp_path / "store")
    assert _is_empty(second_cluster.url("restored"))


def test_a_backup_without_its_manifest_is_not_a_backup(one_backup, tmp_path):
    partial = copy_of(one_backup, tmp_path)
    (partial / MANIFEST).unlink()
    with pytest.raises(BackupError, match="not a complete backup"):
        verify(partial)


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(one_backup, worked_city,
                                                                     second_cluster, tmp_path):
    target = second_cluster.url("restored")
    restore(target, one_backup, tmp_path / "store")
    with pytest.raises(Conflict, match="not empty.*same counts"):
        restore(target, one_backup, tmp_path / "store")
    eng = create_engine(target, poolclass=NullPool)
    with eng.begin() as conn:
        conn.execute(text("UPDATE \"case\" SET description = 'changed after the backup' "
                          "WHERE id = (SELECT min(id) FROM \"case\")"))
    eng.dispose()
    report = restore(target, one_backup, tmp_path / "store", force=True)
    assert report.counts == json.loads((one_backup / MANIFEST).read_text())["counts"]
    for table in CHECKSUMMED:
        assert table_checksum(target, table) == table_checksum(worked_city[0], table), table


def test_an_interrupted_restore_is_repaired_by_running_it_again(one_backup, second_cluster,
                                                                tmp_path):
    """Kill the restoring process while pg_restore runs: the database is left as it was
    (one transaction), and the same command run again completes."""
    target = second_cluster.url("restored")
    store = tmp_path / "store"
    script = (
        "import sys; from pathlib import Path; from casegrid.backup import restore; "
        f"restore({target!r}, Path({str(one_backup)!r}), Path({str(store)!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _pg_restore_running(target):
        time.sleep(0.02)
    assert proc.poll() is None, "restore finished before it could be interrupted"
    import os

    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pg_restore child
    proc.wait()
    _wait_no_restore_session(target)
    assert _is_empty(target)
    report = restore(target, one_backup, store)
    assert report.counts == report.manifest["counts"]


def _is_empty(url: str) -> bool:
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            return database_is_empty(conn)
    finally:
        eng.dispose()


def _pg_restore_running(url: str) -> bool:
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore' "
                "AND state <> 'idle'")).scalar_one() > 0
    finally:
        eng.dispose()


def _wait_no_restore_session(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _pg_restore_running(url):
        time.sleep(0.1)


def test_the_commands_back_up_and_restore_with_the_attachment_store(worked_city, pg_cluster,
                                                                     tmp_path, monkeypatch):
    """`casegrid backup --out` and `casegrid restore` on a DATABASE_URL server, with the
    attachment store the settings name (CASEGRID_ATTACHMENT_DIR)."""
    from typer.testing import CliRunner

    from casegrid.cli import app

    url, store = worked_city

    def run(args, database, attachments):
        with cli_database(monkeypatch, database, CASEGRID_ATTACHMENT_DIR=str(attachments)):
            return CliRunner().invoke(app, args)

    out = run(["backup", "--out", str(tmp_path / "b")], url, store)
    assert out.exit_code == 0, out.output
    assert "400 cases" in out.output and "3 attachments" in out.output
    pg_cluster.create_database("cg_restore_cli")
    try:
        target_store = tmp_path / "store2"
        out = run(["restore", str(tmp_path / "b")], pg_cluster.url("cg_restore_cli"), target_store)
        assert out.exit_code == 0, out.output
        assert "restored" in out.output and "(migrations changed this)" not in out.output
        assert sorted(p.name for p in target_store.rglob("*") if p.is_file()) == \
            sorted(p.name for p in store.rglob("*") if p.is_file() and not p.name.startswith("."))
        out = run(["restore", str(tmp_path / "b")], pg_cluster.url("cg_restore_cli"), target_store)
        assert out.exit_code == 2 and "not empty" in out.output
    finally:
        pg_cluster.drop_database("cg_restore_cli")


def test_an_older_backup_is_migrated_forward_on_restore(pg_cluster, second_cluster, tmp_path):
    """A backup taken by an older casegrid (schema revision 0020) restores with its rows,
    and the restore runs the newer migrations over them (0025 gives attachments an
    activity_id: the old activity is still there and can take photos)."""
    from alembic import command

    from casegrid.db import _alembic_config, migration_heads, schema_revision

    pg_cluster.create_database("cg_older")
    url = pg_cluster.url("cg_older")
    try:
        command.upgrade(_alembic_config(url), "0020")
        eng = create_engine(url, poolclass=NullPool)
        try:
            with eng.begin() as conn:
                conn.execute(text(
                    "INSERT INTO activity (started_at, kind, title, created_by) "
                    "VALUES ('2026-05-20 09:00+08', 'volunteer', '旧版活动', 'old casegrid')"))
        finally:
            eng.dispose()
        manifest = backup(url, tmp_path / "old", None)
        assert manifest["schema_revision"] == "0020"
        target = second_cluster.url("restored")
        restore(target, tmp_path / "old", None)
        eng = create_engine(target, poolclass=NullPool)
        try:
            with eng.connect() as conn:
                assert (schema_revision(conn),) == migration_heads()
                assert conn.execute(text("SELECT title FROM activity")).scalar_one() == "旧版活动"
                assert conn.execute(text(
                    "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                    "'attachment' AND column_name = 'activity_id'")).scalar_one() == 1
        finally:
            eng.dispose()
    finally:
        pg_cluster.drop_database("cg_older")
