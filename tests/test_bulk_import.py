"""Bulk import of hotline exports: validation, rejects, routing, idempotence, atomicity."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import text

from casegrid.errors import ImportFailed, InvalidInput
from cases.bulk_import import import_cases
from cases.mappings import MAPPINGS_DIR, load_mapping, parse_mapping
from tests.helpers.paths import PROJECT_ROOT, require_realdata

FIXTURES = Path(__file__).parent / "fixtures" / "bulk"
CSV_FIXTURE = FIXTURES / "hotline12345_small.csv"
XLSX_FIXTURE = FIXTURES / "hotline12345_small.xlsx"
CITY_TZ = ZoneInfo("Asia/Shanghai")
# The fixture, line by line (header = line 1): which lines are bad and why.
BAD_LINES = {6: "lon", 7: "lat", 8: "not handled", 9: "unknown category", 10: "reported_at",
             11: "swapped", 15: "channel", 16: "coordinate system", 17: "future"}


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(text('SELECT count(*) FROM "case"')).scalar_one(),
                conn.execute(text("SELECT count(*) FROM case_event")).scalar_one())


def _read_rejects(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_fixture_import_counts_rejects_and_routing(city_engine, tmp_path):
    rejects = tmp_path / "rejects.csv"
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                          rejects_path=rejects)
    assert (report.read, report.valid, report.rejected) == (17, 8, 9)
    # line 14 repeats line 2's ticket number: one complaint, the first row wins
    assert (report.inserted, report.duplicates_in_file, report.already_present) == (7, 1, 1)
    assert report.routed == {"inside": 6, "outside": 1}

    rows = _read_rejects(rejects)
    assert [int(r["line"]) for r in rows] == sorted(BAD_LINES)
    for r in rows:
        assert BAD_LINES[int(r["line"])] in r["reason"], r
        assert r["工单编号"]  # the source row travels with its reason, ready to fix
    assert _counts(city_engine) == (7, 7)

    with city_engine.connect() as conn:
        first = conn.execute(text(
            "SELECT * FROM \"case\" WHERE external_id = '12345-2025-000101'")).mappings().one()
        events = conn.execute(text(
            "SELECT action, role, to_state, data FROM case_event WHERE case_id = :id"),
            {"id": first["id"]}).mappings().all()
        hashed = conn.execute(text(
            "SELECT external_id, community_code FROM \"case\" WHERE external_id LIKE 'row:%'")).all()
        outside = conn.execute(text(
            "SELECT route_rule, community_code, post_id FROM \"case\" "
            "WHERE external_id = '12345-2025-000111'")).one()
        photos = conn.execute(text(
            "SELECT photo_urls FROM \"case\" WHERE external_id = '12345-2025-000103'")).scalar_one()
        bd = conn.execute(text(
            "SELECT input_crs, community_code, channel, category_code FROM \"case\" "
            "WHERE external_id = '12345-2025-000104'")).one()
    # GCJ-02 input converted before routing: the point is 文昌社区's interior point in WGS-84
    assert first["community_code"] == "370481001001"
    assert first["input_crs"] == "gcj02" and first["input_lon"] == pytest.approx(117.165711)
    assert first["description"].startswith("晚上广场舞")
    assert first["channel"] == "hotline_12345" and first["category_code"] == "0599"
    assert first["reported_at"] == datetime(2025, 6, 12, 20, 41, 5, tzinfo=CITY_TZ)
    assert first["reporter_name"] == "张先生" and first["status"] == "registered"
    assert first["post_id"] is not None and first["review_due_at"] is not None
    assert [e["action"] for e in events] == ["register"]
    assert events[0]["data"]["line"] == 2 and events[0]["data"]["rule"] == "inside"
    assert len(hashed) == 1 and hashed[0].community_code == "370481005010"
    assert (outside.route_rule, outside.community_code, outside.post_id) == ("outside", None, None)
    assert photos == ["https://img.example.cn/a1.jpg", "https://img.example.cn/a2.jpg"]
    assert tuple(bd) == ("bd09", "370481002008", "platform", "0102")


def test_second_run_stores_nothing_twice(city_engine):
    first = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True)
    again = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True)
    assert first.inserted == 7
    assert (again.inserted, again.already_present, again.valid) == (0, 8, 8)
    quick = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True, deadlines=False)
    assert (quick.inserted, quick.already_present) == (0, 8)
    assert _counts(city_engine) == (7, 7)


def test_dry_run_reports_but_writes_nothing(city_engine, tmp_path):
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=False,
                          rejects_path=tmp_path / "r.csv")
    assert not report.committed
    assert report.inserted == 7 and report.routed["inside"] == 6
    assert _counts(city_engine) == (0, 0)
    assert (tmp_path / "r.csv").exists()  # the reject report is written in a dry run too


def test_dry_run_inside_callers_transaction_rolls_back_only_itself(city_engine):
    with city_engine.begin() as conn:
        conn.execute(text("INSERT INTO category (code, name_zh, name_en) VALUES ('0998', 'x', 'x')"))
        report = import_cases(conn, CSV_FIXTURE, "hotline12345_zh", commit=False)
        assert report.inserted == 7
        assert conn.execute(text('SELECT count(*) FROM "case"')).scalar_one() == 0
    with city_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM category WHERE code = '0998'")).scalar_one() == 1


def test_failure_midway_leaves_zero_rows(city_engine):
    stages = []

    def crash_after_insert(stage, done, total):
        stages.append(stage)
        if stage == "insert" and done == total == 1:  # the INSERT has run in the transaction
            raise RuntimeError("simulated crash after the insert")

    with pytest.raises(RuntimeError, match="simulated crash"):
        import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                     progress=crash_after_insert)
    assert "dedup" in stages and "insert" in stages
    assert _counts(city_engine) == (0, 0)


def test_small_chunks_give_the_same_result(city_engine, tmp_path):
    rejects = tmp_path / "r.csv"
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                          rejects_path=rejects, chunk_rows=4)
    assert (report.read, report.valid, report.rejected, report.inserted) == (17, 8, 9, 7)
    assert [int(r["line"]) for r in _read_rejects(rejects)] == sorted(BAD_LINES)


def test_gb18030_export_is_detected(city_engine, tmp_path):
    gbk = tmp_path / "export_gbk.csv"
    gbk.write_bytes(CSV_FIXTURE.read_text(encoding="utf-8").encode("gb18030"))
    report = import_cases(city_engine, gbk, "hotline12345_zh", commit=True)
    assert (report.valid, report.inserted) == (8, 7)
    with city_engine.connect() as conn:
        assert conn.execute(text(
            "SELECT reporter_name FROM \"case\" WHERE external_id = '12345-2025-000101'")
        ).scalar_one() == "张先生"


def test_xlsx_with_numeric_ids_and_excel_dates(city_engine, tmp_path):
    rejects = tmp_path / "r.csv"
    report = import_cases(city_engine, XLSX_FIXTURE, "hotline12345_zh", commit=True,
                          rejects_path=rejects)
    assert (report.read, report.valid, report.rejected, report.inserted) == (4, 2, 2, 2)
    assert {int(r["line"]) for r in _read_rejects(rejects)} == {4, 5}
    with city_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT external_id, reported_at, community_code FROM \"case\" "
            "WHERE external_id = '2025000201'")).one()
    assert row.reported_at == datetime(2025, 7, 3, 20, 15, tzinfo=CITY_TZ)
    assert row.community_code == "370481001006"


def test_crs_option_overrides_the_mapping_default(city_engine, tmp_path):
    # Same GCJ-02 numbers, but the 坐标系 cells blanked: the default decides.
    frame = pd.read_csv(CSV_FIXTURE, dtype=str, keep_default_na=False).iloc[[0]]
    frame["坐标系"] = ""
    path = tmp_path / "blank_crs.csv"
    frame.to_csv(path, index=False)
    as_gcj = import_cases(city_engine, path, "hotline12345_zh", commit=False)
    with city_engine.connect() as conn:
        import_cases(conn, path, "hotline12345_zh", crs="wgs84", commit=True)
        stored = conn.execute(text("SELECT input_crs, ST_X(geom) FROM \"case\"")).one()
    assert as_gcj.routed == {"inside": 1}
    # read as WGS-84 the point is not moved by the GCJ-02 offset (~550 m in longitude)
    assert stored[0] == "wgs84" and stored[1] == pytest.approx(117.165711)


def test_missing_required_column_fails_before_anything(city_engine, tmp_path):
    frame = pd.read_csv(CSV_FIXTURE, dtype=str, keep_default_na=False).drop(columns=["纬度"])
    path = tmp_path / "no_lat.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ImportFailed, match="纬度") as err:
        import_cases(city_engine, path, "hotline12345_zh", commit=True)
    assert err.value.field == "lat"
    assert _counts(city_engine) == (0, 0)


def test_unsupported_file_and_empty_file(city_engine, tmp_path):
    odd = tmp_path / "export.json"
    odd.write_text("[]")
    with pytest.raises(ImportFailed, match="csv or .xlsx"):
        import_cases(city_engine, odd, "hotline12345_zh")
    empty = tmp_path / "empty.csv"
    empty.write_text(CSV_FIXTURE.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="no data rows"):
        import_cases(city_engine, empty, "hotline12345_zh")


def test_mapping_errors_name_the_problem():
    with pytest.raises(InvalidInput, match="lon"):
        parse_mapping({"columns": {"category": "a", "lat": "b", "reported_at": "c"}})
    with pytest.raises(InvalidInput, match="unknown field"):
        parse_mapping({"columns": {"category": "a", "lon": "x", "lat": "b", "reported_at": "c",
                                   "colour": "d"}})
    with pytest.raises(InvalidInput, match="4-digit"):
        parse_mapping({"columns": {"category": "a", "lon": "x", "lat": "b", "reported_at": "c"},
                       "category": {"map": {"Noise": "noise"}}})
    with pytest.raises(InvalidInput, match="channel"):
        parse_mapping({"columns": {"category": "a", "lon": "x", "lat": "b", "reported_at": "c"},
                       "channel": {"default": "fax"}})
    with pytest.raises(InvalidInput, match="neither a file nor a shipped mapping"):
        load_mapping("no_such_mapping")


def test_shipped_mappings_use_only_catalogue_codes(engine):
    with engine.connect() as conn:
        codes = {r[0] for r in conn.execute(text("SELECT code FROM category"))}
    for path in MAPPINGS_DIR.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        used = {v for v in data["category"]["map"].values() if v != "reject"}
        assert used <= codes, (path.name, used - codes)


@pytest.mark.realdata
def test_nyc_311_export(city_engine, tmp_path):
    path = require_realdata("nyc", "311_service_requests_2022-05-01.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    category_map = tomllib.loads((MAPPINGS_DIR / "nyc311.toml").read_text())["category"]["map"]
    mapped = raw["Complaint Type"].map(category_map).fillna("reject") != "reject"
    has_coords = (raw["Latitude"] != "") & (raw["Longitude"] != "")
    rejects = tmp_path / "nyc_rejects.csv"
    report = import_cases(city_engine, path, "nyc311", commit=True, rejects_path=rejects)
    assert report.read == len(raw)
    # A row without coordinates but with an address is taken for the address matcher
    # (issue 27); one with neither is rejected.
    has_address = (raw[["Incident Address", "City", "Incident Zip"]] != "").any(axis=1)
    address_only = mapped & ~has_coords & has_address
    assert address_only.sum() > 0
    assert report.valid == int((mapped & (has_coords | has_address)).sum())
    assert report.inserted == report.valid  # Unique Key is unique
    # New York is nowhere near Tengzhou: every case waits in the unrouted queue (nor does
    # the sample city's gazetteer know a New York address)
    assert report.routed == {"outside": int((mapped & has_coords).sum()),
                             "unlocated": int(address_only.sum())}
    lines = {int(r["line"]) for r in _read_rejects(rejects)}
    assert lines == {i + 2 for i in raw.index[~(mapped & (has_coords | has_address))]}
    with city_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT channel, reported_at, category_code FROM \"case\" WHERE external_id = :k"),
            {"k": raw.loc[0, "Unique Key"]}).one()
    # 05/01/2022 12:00:03 AM New York time (EDT) is 04:00:03 UTC; ONLINE -> platform
    assert row.reported_at == datetime(2022, 5, 1, 4, 0, 3, tzinfo=ZoneInfo("UTC"))
    assert row.channel == "platform" and row.category_code == "0599"


def test_cli_dry_run_then_commit(city_db_url, city_engine, tmp_path):
    env = {**os.environ, "DATABASE_URL": city_db_url}
    cmd = [str(PROJECT_ROOT / ".venv" / "bin" / "casegrid"), "cases", "import", str(CSV_FIXTURE),
           "--mapping", "hotline12345_zh", "--rejects", str(tmp_path / "r.csv")]
    dry = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "would insert" in dry.stdout
    assert _counts(city_engine) == (0, 0)
    done = subprocess.run([*cmd, "--commit"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "inserted" in done.stdout
    assert _counts(city_engine) == (7, 7)
    bad = subprocess.run([*cmd[:4], "--crs", "mars2000"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "crs" in bad.stderr


_KILL_SCRIPT = """
import sys
from casegrid.db import make_engine
from cases.bulk_import import import_cases
engine = make_engine(sys.argv[1])
import_cases(engine, sys.argv[2], "hotline12345_zh", commit=True, chunk_rows=500)
"""


@pytest.mark.slow
def test_killed_import_leaves_nothing_and_rerun_is_complete(city_db_url, city_engine, tmp_path):
    from casegrid.demo.complaints import write_sample_csv

    path = write_sample_csv(tmp_path / "big.csv", n=20_000, seed=7)
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, city_db_url, str(path)],
                            cwd=PROJECT_ROOT)
    # Wait until the import is inside its transaction (its backend has started on the
    # staging table; the table itself is invisible to us until commit), then kill it.
    deadline = time.monotonic() + 60
    with city_engine.connect() as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            busy = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND query LIKE '%cg_stage%' AND state <> 'idle'")).scalar_one()
            conn.rollback()
            if busy:
                break
            time.sleep(0.01)
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _counts(city_engine)[0] == 0
    report = import_cases(city_engine, path, "hotline12345_zh", commit=True, deadlines=False)
    assert report.rejected == 0 and report.inserted == 20_000
    assert _counts(city_engine) == (20_000, 20_000)


# --- large imports: secondary indexes and foreign keys rebuilt, not maintained per row ----

_SCHEMA_SNAPSHOT = """
SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename IN ('case', 'case_event')
UNION ALL
SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
FROM pg_constraint WHERE conrelid IN ('"case"'::regclass, 'case_event'::regclass)
ORDER BY 1
"""


def _schema(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(text(_SCHEMA_SNAPSHOT)).scalars().all()


def _cases(engine) -> list[tuple]:
    """Every stored column of each case and its events but the generated ids and the row
    timestamps, in id order (ids follow the file's line order on both paths)."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT to_jsonb(c) - 'id' - 'case_no' - 'created_at' - 'updated_at',"
            " (SELECT jsonb_agg(to_jsonb(e) - 'id' - 'case_id' ORDER BY e.id)"
            "  FROM case_event e WHERE e.case_id = c.id)"
            ' FROM "case" c ORDER BY c.id')).all()


def test_rebuild_path_stores_the_same_cases_and_restores_every_index(city_engine):
    schema = _schema(city_engine)
    assert any("case_open_geom_gist" in s for s in schema)  # a partial GiST index
    assert any("case_event_case_id_fkey" in s for s in schema)
    # backdated: due times from the reported time, not the clock, so both runs agree
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                          backdate=True, rebuild_indexes=True)
    assert (report.inserted, report.duplicates_in_file) == (7, 1)
    assert "indexes" in report.seconds  # the rebuild path ran
    assert _schema(city_engine) == schema  # same names, definitions, validity
    rebuilt = _cases(city_engine)
    with city_engine.begin() as conn:
        conn.execute(text('TRUNCATE "case", case_event, case_stat CASCADE'))
    row_by_row = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                              backdate=True, rebuild_indexes=False)
    assert "indexes" not in row_by_row.seconds
    assert row_by_row.inserted == 7 and _cases(city_engine) == rebuilt
    # The rebuilt foreign keys are real: a case with an unknown post is refused.
    with city_engine.connect() as conn, pytest.raises(Exception, match="case_post_id_fkey"):
        conn.execute(text('UPDATE "case" SET post_id = -1 WHERE external_id = \'12345-2025-000101\''))


@pytest.mark.parametrize("stage, at", [
    ("insert", 0),     # everything dropped, nothing written yet
    ("indexes", 1),    # the first key rebuilt (the INSERT has run)
    ("indexes", 4),    # keys back, the plain indexes still dropped
    ("indexes", -1),   # all but the last foreign key back
])
def test_rebuild_path_crash_restores_indexes_and_leaves_zero_rows(city_engine, stage, at):
    schema = _schema(city_engine)
    seen = []

    def crash(name, done, total):
        if name == stage and done == (total + at if at < 0 else at):
            seen.append((name, done))
            raise RuntimeError("simulated crash while rebuilding")

    with pytest.raises(RuntimeError, match="simulated crash"):
        import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                     rebuild_indexes=True, progress=crash)
    assert seen  # it crashed where meant to
    assert _counts(city_engine) == (0, 0)
    assert _schema(city_engine) == schema  # keys, unique indexes, foreign keys: all back


def test_rebuild_path_duplicate_found_by_a_rebuilt_key_rolls_everything_back(city_engine, tmp_path):
    """The exclusive path drops the keys and unique indexes too; a duplicate that only their
    rebuild finds (here case numbers drawn again after the sequence was set back) fails
    the import, and nothing of it stays: no case, no event, no statistics, every index."""
    from casegrid.demo.complaints import write_sample_csv

    import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True)
    schema, counts, stats = _schema(city_engine), _counts(city_engine), _case_stat(city_engine)
    path = write_sample_csv(tmp_path / "more.csv", n=50, seed=3)
    with city_engine.begin() as conn:
        conn.execute(text("SELECT setval('case_no_seq', 1, false)"))  # numbers 1.. again
    with pytest.raises(Exception, match="case_case_no_key"):
        import_cases(city_engine, path, "hotline12345_zh", commit=True, rebuild_indexes=True)
    assert _counts(city_engine) == counts
    assert _case_stat(city_engine) == stats
    assert _schema(city_engine) == schema
    assert _stats_trigger_enabled(city_engine) == "O"


def test_small_import_keeps_row_by_row_upkeep(city_engine):
    """Auto mode: a small import never takes the exclusive lock nor drops anything."""
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True)
    assert report.inserted == 7 and "indexes" not in report.seconds


def test_rebuild_decision_counts_the_tables(city_engine):
    """A table the import does not outgrow keeps its indexes (only the others are rebuilt);
    an outgrown table loses its keys too, and so do the foreign keys that reference them."""
    from cases.bulk_import.first_load import drop_secondary

    import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True)
    with city_engine.connect() as conn, conn.begin():
        # 7 cases, 7 events: 6 new rows outgrow neither (no lock either)
        assert drop_secondary(conn, 6) == (False, [])
        locked, recreate = drop_secondary(conn, 7)
        assert locked
        for name in ("case_geom_gist", "case_event_case", "case_pkey", "case_case_no_key",
                     "case_channel_external_id", "case_event_pkey", "case_event_case_id_fkey"):
            assert sum(name + " " in s for s in recreate) == 1, name  # each once
        # keys first, foreign keys (which need them) last
        steps = [0 if " PRIMARY KEY " in s or " UNIQUE (" in s else 2 if "FOREIGN KEY" in s else 1
                 for s in recreate]
        assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 2
        left = conn.execute(text(
            "SELECT count(*) FROM pg_indexes WHERE tablename IN ('case', 'case_event')"
        )).scalar_one()
        assert left == 0  # dropped inside this transaction ...
        conn.rollback()
    assert any("case_geom_gist" in s for s in _schema(city_engine))  # ... and back after rollback

    with city_engine.begin() as conn:  # more events than cases: 7 new rows outgrow "case" only
        conn.execute(text("INSERT INTO case_event (case_id, actor, role, action)"
                          " SELECT id, 'test', 'dispatcher', 'note' FROM \"case\""))
    with city_engine.connect() as conn, conn.begin():
        locked, recreate = drop_secondary(conn, 7)
        assert locked and any("case_pkey" in s for s in recreate)
        # case_event keeps its own indexes, but its reference to case's key is rebuilt
        assert not any("case_event_pkey" in s or "case_event_case " in s for s in recreate)
        # every reference to case's key (case_event's and any other table's) is rebuilt, last
        assert any(s.startswith("ALTER TABLE case_event ADD CONSTRAINT case_event_case_id_fkey")
                   for s in recreate)
        assert all("FOREIGN KEY" in s for s in recreate[recreate.index(next(
            s for s in recreate if "FOREIGN KEY" in s)):])
        conn.rollback()
    assert any("case_event_case_id_fkey" in s for s in _schema(city_engine))


def test_rebuild_path_inside_callers_transaction_puts_work_mem_back(city_engine):
    with city_engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '7MB'; SET LOCAL maintenance_work_mem = '9MB'"))
        report = import_cases(conn, CSV_FIXTURE, "hotline12345_zh", commit=True,
                              rebuild_indexes=True)
        assert report.inserted == 7 and "indexes" in report.seconds
        assert conn.execute(text("SHOW work_mem")).scalar_one() == "7MB"
        assert conn.execute(text("SHOW maintenance_work_mem")).scalar_one() == "9MB"
    assert _counts(city_engine) == (7, 7)


@pytest.mark.parametrize("group_by", ["community", "category", "channel"])
def test_rebuild_path_statistics_agree_with_a_direct_scan(city_engine, tmp_path, group_by):
    """The statistics trigger still sees every case of a large (rebuild-path) import."""
    from casegrid.demo.complaints import PERIOD_DAYS, PERIOD_START, write_sample_csv
    from cases.stats import compute_stats, compute_stats_direct

    path = write_sample_csv(tmp_path / "year.csv", n=3_000, seed=11)
    report = import_cases(city_engine, path, "hotline12345_zh", commit=True, backdate=True,
                          rebuild_indexes=True)
    assert report.inserted > 2_900 and "indexes" in report.seconds
    first = PERIOD_START.date()
    last = (PERIOD_START + pd.Timedelta(days=PERIOD_DAYS)).date()
    with city_engine.connect() as conn:
        fast = compute_stats(conn, group_by, first, last)
        slow = compute_stats_direct(conn, group_by, first, last)
        stored = conn.execute(text(
            "SELECT sum(accepted) FROM case_stat WHERE dim = 'channel'")).scalar_one()
    assert stored == report.inserted
    assert fast["total"]["accepted"] == slow["total"]["accepted"] == report.inserted
    strip = [{k: v for k, v in g.items() if k != "p90_handle_hours"} for g in fast["groups"]]
    assert strip == [{k: v for k, v in g.items() if k != "p90_handle_hours"}
                     for g in slow["groups"]]


def _case_stat(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM case_stat ORDER BY dim, day, key")).all()


def _stats_trigger_enabled(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'case_stat_ins'"
            " AND tgrelid = '\"case\"'::regclass")).scalar_one()


def _stats_trigger_def(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'case_stat_ins'"
            " AND tgrelid = '\"case\"'::regclass")).scalar_one()


# Triggers that make PostgreSQL keep a transition table of the rows an INSERT into "case"
# writes (tgtype bit 2 = INSERT), whether they are enabled or not.
_CAPTURING_TRIGGERS_SQL = """
SELECT tgname || ':' || tgenabled::text FROM pg_trigger
WHERE tgrelid = '"case"'::regclass AND tgnewtable IS NOT NULL AND tgtype & 4 <> 0
"""


@pytest.mark.parametrize("state", ["on", "off"])
def test_rebuild_path_insert_runs_with_no_transition_table(city_engine, monkeypatch, state):
    """While the exclusive INSERT runs, no trigger on "case" asks for its new rows (a
    disabled one still would: PostgreSQL fills transition tables before it looks at
    tgenabled), and afterwards case_stat_ins is back exactly as it was, on or off."""
    import cases.bulk_import.first_load as bulk

    if state == "off":
        with city_engine.begin() as conn:
            conn.execute(text('ALTER TABLE "case" DISABLE TRIGGER case_stat_ins'))
    before = _stats_trigger_def(city_engine), _stats_trigger_enabled(city_engine)
    seen: list[list[str]] = []
    take_trigger = bulk.drop_stats_trigger

    def spy(conn):  # on the import's connection, the last DDL before the INSERT
        restore = take_trigger(conn)
        seen.append(conn.execute(text(_CAPTURING_TRIGGERS_SQL)).scalars().all())
        return restore

    monkeypatch.setattr(bulk, "drop_stats_trigger", spy)
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                          rebuild_indexes=True)
    assert report.inserted == 7 and "indexes" in report.seconds
    assert seen == [[]]
    assert (_stats_trigger_def(city_engine), _stats_trigger_enabled(city_engine)) == before
    with city_engine.connect() as conn:
        assert conn.execute(text(_CAPTURING_TRIGGERS_SQL)).scalars().all() == [
            "case_stat_ins:" + ("O" if state == "on" else "D")]
        counted = conn.execute(text(
            "SELECT coalesce(sum(accepted), 0) FROM case_stat WHERE dim = 'channel'")).scalar_one()
    assert counted == (7 if state == "on" else 0)


def test_rebuild_path_statistics_equal_the_trigger_path(city_engine, tmp_path):
    """The exclusive path adds the statistics itself (trigger off during its INSERT): every
    case_stat row and column equals what the trigger makes of the same imports, including
    rows that already existed (the second import lands on days the first one counted)."""
    from casegrid.demo.complaints import write_sample_csv

    year = write_sample_csv(tmp_path / "year.csv", n=2_000, seed=5)
    earlier = write_sample_csv(tmp_path / "earlier.csv", n=300, seed=6)  # same year, other tickets
    frame = pd.read_csv(earlier, dtype=str, keep_default_na=False)
    frame["工单编号"] = "EARLIER-" + frame["工单编号"]
    frame.to_csv(earlier, index=False, encoding="utf-8-sig")

    def run(rebuild: bool) -> list[tuple]:
        with city_engine.begin() as conn:
            conn.execute(text('TRUNCATE "case", case_event, case_stat CASCADE'))
        import_cases(city_engine, earlier, "hotline12345_zh", commit=True, backdate=True,
                     rebuild_indexes=False)
        with city_engine.begin() as conn:  # counted cases further in the loop than 'registered'
            conn.execute(text("UPDATE \"case\" SET status = 'reviewed', reviewed_at = received_at"
                              " WHERE right(external_id, 1) IN ('0', '3', '6')"))
        report = import_cases(city_engine, year, "hotline12345_zh", commit=True, backdate=True,
                              rebuild_indexes=rebuild)
        assert report.inserted > 1_900 and ("indexes" in report.seconds) == rebuild
        return _case_stat(city_engine)

    rebuilt = run(True)
    assert any(r.accepted > r.registered > 0 for r in rebuilt)  # the imports shared days
    assert _stats_trigger_enabled(city_engine) == "O"  # switched back on
    assert rebuilt == run(False)
    with city_engine.connect() as conn:
        assert sum(r.accepted for r in rebuilt if r.dim == "channel") == conn.execute(
            text('SELECT count(*) FROM "case"')).scalar_one()


def test_rebuild_path_with_the_statistics_trigger_off_leaves_it_off(city_engine):
    """An operator who switched the trigger off (e.g. to rebuild case_stat by hand) finds it
    still off, and the import adds nothing to case_stat behind their back."""
    with city_engine.begin() as conn:
        conn.execute(text('ALTER TABLE "case" DISABLE TRIGGER case_stat_ins'))
    report = import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True,
                          rebuild_indexes=True)
    assert report.inserted == 7
    assert _stats_trigger_enabled(city_engine) == "D"
    assert _case_stat(city_engine) == []


@pytest.mark.parametrize("backdate", [True, False])
def test_due_times_equal_the_calendar_walk(city_engine, tmp_path, backdate):
    """Due times computed with each chunk (cases.deadlines_vec) equal what intake's walk
    (cases.deadlines.initial_deadlines_many) gives each stored case."""
    from casegrid.demo.complaints import write_sample_csv
    from cases.deadlines import initial_deadlines_many

    path = write_sample_csv(tmp_path / "year.csv", n=2_000, seed=7)
    with city_engine.begin() as conn:  # a pair without a reply limit: its reply stays unset
        conn.execute(text("DELETE FROM time_limit WHERE step = 'reply' AND channel = 'hotline_12345'"))
        conn.execute(text("UPDATE time_limit SET channel = 'app' WHERE step = 'reply'"
                          " AND category_code = '*' AND channel = '*'"))
    report = import_cases(city_engine, path, "hotline12345_zh", commit=True, backdate=backdate)
    assert report.inserted > 1_900
    columns = ("review_due_at", "reply_due_at", "current_due_at", "due_provisional")
    with city_engine.begin() as conn:
        rows = conn.execute(text(
            f'SELECT category_code, channel, received_at, {", ".join(columns)} FROM "case"')).mappings().all()
        differ = 0
        for r in rows[::7]:  # every 7th case: the walk costs a query per case here
            pair = (r["category_code"], r["channel"])
            # the import counts from whole seconds (its times travel as epoch seconds)
            start = r["received_at"].replace(microsecond=0)
            expected = initial_deadlines_many(conn, [pair], start)[pair]
            differ += {c: r[c] for c in columns} != expected
    assert differ == 0
    assert sum(r["review_due_at"] is None for r in rows) == 0
    assert 0 < sum(r["reply_due_at"] is None for r in rows) < len(rows)


def test_rebuild_path_numbers_cases_like_the_column_default(city_engine):
    """The exclusive path draws case numbers itself (case_no_of): in file order, from the
    same sequence, in next_case_no()'s format, so the next default number follows on."""
    import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=True, rebuild_indexes=True)
    with city_engine.begin() as conn:
        stored = conn.execute(text('SELECT case_no FROM "case" ORDER BY id')).scalars().all()
        after = conn.execute(text("SELECT next_case_no()")).scalar_one()
        year = conn.execute(text("SELECT to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')"))
        prefix = "CG" + year.scalar_one()
    numbers = [int(no.removeprefix(prefix)) for no in [*stored, after]]
    assert all(no == f"{prefix}{n:07d}" for no, n in zip([*stored, after], numbers, strict=True))
    assert numbers == list(range(numbers[0], numbers[0] + len(stored) + 1))


# --- routing of the new rows: cells first, route_sql for the rest -------------------------

_TEST_POINTS = """
CREATE TEMP TABLE cg_new ON COMMIT DROP AS
WITH ext AS (SELECT ST_Extent(geom) AS b FROM community_piece WHERE generation_id = :gen),
spread AS (    -- anywhere in (and a little beyond) the city
    SELECT ST_XMin(b) - 0.01 + random() * (ST_XMax(b) - ST_XMin(b) + 0.02) AS lon,
           ST_YMin(b) - 0.01 + random() * (ST_YMax(b) - ST_YMin(b) + 0.02) AS lat
    FROM ext, generate_series(1, 20000)
),
vertex AS (    -- every boundary vertex exactly, and a cloud of points around some of them
    SELECT ST_X(d.geom) AS x, ST_Y(d.geom) AS y
    FROM community c, ST_DumpPoints(c.geom) d WHERE c.generation_id = :gen
),
edge AS (      -- points on (or a rounding error off) the edges
    SELECT ST_X(p) AS lon, ST_Y(p) AS lat
    FROM community c,
         LATERAL (SELECT (ST_Dump(ST_Boundary(c.geom))).geom AS ring) r,
         LATERAL generate_series(1, 40) k,
         LATERAL ST_LineInterpolatePoint(r.ring, k / 41.0) p
    WHERE c.generation_id = :gen
),
cloud AS (     -- 0-60 m around vertices: near, on and across the margin
    SELECT x + (random() - 0.5) * 0.0012 AS lon, y + (random() - 0.5) * 0.0012 AS lat
    FROM (SELECT * FROM vertex ORDER BY random() LIMIT 400) v, generate_series(1, 25)
)
SELECT row_number() OVER () + 1 AS line, lon, lat
FROM (SELECT lon, lat FROM spread UNION ALL SELECT x, y FROM vertex
      UNION ALL SELECT lon, lat FROM edge UNION ALL SELECT lon, lat FROM cloud) a
"""


def test_bulk_routing_equals_route_sql(city_engine):
    """Cells first, route_sql for the rest, chunk by chunk as the import stages them
    (geo.route_cells.route_lines, cells probed in one chunk reused by the next) gives
    every point exactly what route_sql alone gives: random points over the city and up to
    1 km beyond it, every boundary vertex, points on edges and clouds of points around
    vertices (near and across the margin)."""
    from casegrid.settings import get_settings
    from geo.route_cells import ROUTE_CELL_DEG, begin, finish, route_lines
    from geo.routing import require_generation, route_sql

    settings = get_settings()
    with city_engine.connect() as conn, conn.begin():
        gen = require_generation(conn)
        params = {"gen": gen, "tol_m": settings.gap_tolerance_m,
                  "margin_m": settings.near_boundary_margin_m}
        conn.execute(text("SELECT setseed(0.42)"))
        conn.execute(text(_TEST_POINTS), {"gen": gen})
        begin(conn, params)
        last = conn.execute(text("SELECT max(line) FROM cg_new")).scalar_one()
        # Uneven chunks, the way a file with rejected lines is staged; the last one past the end.
        bounds = [2, 7001, 7002, 19_000, last + 5]
        easy = sum(route_lines(conn, params, "cg_new", a, b - 1)
                   for a, b in zip(bounds, bounds[1:], strict=False))
        finish(conn)
        points = "SELECT line AS id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS geom FROM cg_new"
        conn.execute(text(f"CREATE TEMP TABLE alone ON COMMIT DROP AS {route_sql(points)}"), params)
        cols = "id, rule, distance_m, community_id, alternates, near_boundary"
        only_cells = conn.execute(text(
            f"SELECT count(*) FROM (SELECT {cols} FROM cg_routed EXCEPT SELECT {cols} FROM alone) x"
        )).scalar_one()
        only_alone = conn.execute(text(
            f"SELECT count(*) FROM (SELECT {cols} FROM alone EXCEPT SELECT {cols} FROM cg_routed) x"
        )).scalar_one()
        total, cells, far = conn.execute(text(
            "SELECT (SELECT count(*) FROM cg_new), (SELECT count(*) FROM cg_cells),"
            " (SELECT count(*) FROM cg_cells WHERE far)")).one()
        distinct_cells = conn.execute(text(
            "SELECT count(DISTINCT (floor(lon / :s), floor(lat / :s))) FROM cg_new"),
            {"s": ROUTE_CELL_DEG}).scalar_one()
        rules = dict(conn.execute(text("SELECT rule, count(*) FROM alone GROUP BY rule")).all())
        near = conn.execute(text("SELECT count(*) FROM alone WHERE near_boundary")).scalar_one()
        conn.rollback()
    assert (only_cells, only_alone) == (0, 0)
    assert 0.2 * total < easy < total  # both ways were taken
    assert far > 100  # the points far beyond the city went by their cell too
    assert cells == distinct_cells  # each cell probed once, whichever chunks it spans
    assert set(rules) == {"inside", "on_boundary", "nearest", "outside"} and near > 1000


@pytest.mark.parametrize("fixture", [CSV_FIXTURE, XLSX_FIXTURE], ids=["csv", "xlsx"])
def test_readers_keep_text_in_python_strings(fixture):
    """Every cell comes out as casegrid.csv_text.TEXT (text in Python strings, NaN for
    missing), not pandas 3's Arrow-backed default that pyarrow's presence would give
    ``dtype=str``: the validation runs slower on that (figures at TEXT)."""
    from casegrid.csv_text import TEXT
    from cases.bulk_import import read_chunks

    chunks = list(read_chunks(fixture, load_mapping("hotline12345_zh"), chunk_rows=3))
    assert len(chunks) > 1  # the last, short chunk too
    for chunk in chunks:
        assert set(chunk.dtypes) == {TEXT}
        assert type(chunk.iloc[:, 0].array).__name__ == "StringArray"


def _copied(engine, columns_ddl: str, data: str | bytes) -> list:
    """The rows ``COPY ... (FORMAT csv)`` reads from ``data`` into a temporary table of
    ``columns_ddl`` (the first column is ``line``), in line order."""
    with engine.connect() as conn, conn.begin():
        conn.execute(text(f"CREATE TEMP TABLE t ({columns_ddl}) ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy("COPY t FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)
        back = conn.execute(text("SELECT * FROM t ORDER BY line")).all()
        conn.rollback()
    return back


def test_chunk_csv_text_equals_pandas_to_csv(city_engine):
    """The staged chunk's CSV (casegrid.csv_text.csv_text) is pandas' to_csv text byte for
    byte: quotes, separators and line breaks inside text, blanks and missing values (NULL),
    floats that need all 17 digits, nullable due times and flags."""
    import io

    import numpy as np

    from casegrid.csv_text import csv_text as _csv_text

    frame = pd.DataFrame({
        "line": np.array([2, 3, 4, 5], dtype=np.int64),
        "text": pd.array(['a "quoted", comma', "line\nbreak\r\n", "", None], dtype="string"),
        "plain": pd.array(["x", "简体中文", "  spaces  ", "\\N"], dtype="string"),
        "obj": np.array(["a,b", None, "c", "d"], dtype=object),
        "ids": np.array(["A-1", None, "", "b"], dtype=object),  # nothing to quote
        "mixed": np.array([1, "x", None, 2.5], dtype=object),  # not all text
        "lon": np.array([117.14874991734213, np.nan, 0.1 + 0.2, -0.0]),
        "due": pd.array([1762012885, None, 0, -5], dtype="Int64"),
        "flag": pd.array([True, None, False, True], dtype="boolean"),
        "ok": np.array([True, False, True, False]),
    })
    columns = tuple(frame.columns)
    expected = io.StringIO()
    frame.to_csv(expected, header=False, index=False, columns=list(columns))
    assert _csv_text(frame, columns) == expected.getvalue()
    assert _csv_text(frame.iloc[:0], columns) == ""
    # and COPY reads it back as the same values
    back = _copied(city_engine, "line bigint, text text, plain text, obj text, ids text,"
                   " mixed text, lon float8, due bigint, flag boolean, ok boolean",
                   _csv_text(frame, columns))
    assert [r.text for r in back] == ['a "quoted", comma', "line\nbreak\r\n", None, None]
    assert [r.obj for r in back] == ["a,b", None, "c", "d"]
    assert [r.ids for r in back] == ["A-1", None, None, "b"]
    assert [r.mixed for r in back] == ["1", "x", None, "2.5"]
    assert back[0].lon == 117.14874991734213 and back[2].lon == 0.1 + 0.2 and back[1].lon is None
    assert [r.due for r in back] == [1762012885, None, 0, -5]
    assert [r.flag for r in back] == [True, None, False, True]


def test_copy_csv_reads_back_as_csv_text(city_engine):
    """The import's staging CSV (casegrid.csv_text.copy_csv, Arrow's writer) gives COPY the
    same values as csv_text: NULL for missing values and empty text alike, quotes, commas and
    line breaks kept, every digit of a float, nullable integers and flags, a column of
    mixed values as their text."""
    import numpy as np

    from casegrid.csv_text import copy_csv, csv_text

    frame = pd.DataFrame({
        "line": np.array([2, 3, 4, 5, 6], dtype=np.int64),
        "text": pd.array(['a "quoted", comma', "line\nbreak\r\n", "", None, "\\N"],
                         dtype="string"),
        "plain": pd.Series(["x", "简体中文", "  spaces  ", "", None], dtype="str"),
        "obj": np.array(["a,b", None, "c", "", "d"], dtype=object),
        "mixed": np.array([1, "x", None, 2.5, np.nan], dtype=object),
        "lon": np.array([117.14874991734213, np.nan, 0.1 + 0.2, -0.0, 1e-300]),
        "due": pd.array([1762012885, None, 0, -5, 2**62], dtype="Int64"),
        "flag": pd.array([True, None, False, True, False], dtype="boolean"),
        "ok": np.array([True, False, True, False, True]),
    })
    columns = tuple(frame.columns)
    assert copy_csv(frame.iloc[:0], columns) == b""
    ddl = ("line bigint, text text, plain text, obj text, mixed text, lon float8, due bigint,"
           " flag boolean, ok boolean")
    back = _copied(city_engine, ddl, copy_csv(frame, columns))
    assert back == _copied(city_engine, ddl, csv_text(frame, columns))
    assert [r[1] for r in back] == ['a "quoted", comma', "line\nbreak\r\n", None, None, "\\N"]
    assert [r[4] for r in back] == ["1", "x", None, "2.5", None]
    assert [r[5] for r in back][2:] == [0.1 + 0.2, -0.0, 1e-300]


def test_repeats_keep_the_first_line_across_chunks(city_engine, tmp_path):
    """A ticket repeated within the file is stored once, from its first line, whichever
    chunks the lines fall in; a repeat of a ticket that is already a case counts as already
    present, not as a duplicate in the file."""
    lines = CSV_FIXTURE.read_text(encoding="utf-8-sig").splitlines()
    # line 14 repeats line 2 (chunks of 4: lines 2-5 and 14-17); a third copy in between
    path = tmp_path / "repeats.csv"
    path.write_text("\n".join([*lines[:8], lines[13], *lines[8:]]) + "\n", encoding="utf-8")
    report = import_cases(city_engine, path, "hotline12345_zh", commit=True, chunk_rows=4)
    assert (report.valid, report.inserted, report.duplicates_in_file) == (9, 7, 2)
    assert report.already_present == 2 and sum(report.routed.values()) == 7
    with city_engine.connect() as conn:
        kept = conn.execute(text(
            "SELECT c.description, e.data->>'line' FROM \"case\" c JOIN case_event e"
            " ON e.case_id = c.id WHERE c.external_id = '12345-2025-000101'")).all()
    assert len(kept) == 1 and kept[0][1] == "2" and kept[0][0].startswith("晚上广场舞")

    with city_engine.begin() as conn:
        conn.execute(text('TRUNCATE "case", case_event, case_stat CASCADE'))
    only = tmp_path / "only.csv"
    only.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    assert import_cases(city_engine, only, "hotline12345_zh", commit=True).inserted == 1
    again = import_cases(city_engine, path, "hotline12345_zh", commit=True, chunk_rows=4)
    # the ticket of lines 2, 9 and 15 is stored: all three are already present
    assert (again.inserted, again.duplicates_in_file, again.already_present) == (6, 0, 3)


def test_repeats_filter_counts_each_ticket():
    """Repeats drops later lines of a ticket, within one chunk and across chunks, and
    tells the same external id on two channels apart."""
    from cases.bulk_import.stage import Repeats

    def chunk(*rows):
        return pd.DataFrame(rows, columns=["channel", "external_id"])

    r = Repeats()
    first = r.drop(chunk(("app", "1"), ("patrol", "1"), ("app", "1"), ("app", "2")))
    assert first.values.tolist() == [["app", "1"], ["patrol", "1"], ["app", "2"]]
    second = r.drop(chunk(("app", "2"), ("app", "3"), ("patrol", "1"), ("app", "1\x1fx")))
    assert second.values.tolist() == [["app", "3"], ["app", "1\x1fx"]]
    assert r.dropped == {"app\x1f1": 1, "app\x1f2": 1, "patrol\x1f1": 1}
    assert r.drop(chunk()).empty


def test_validation_strips_cells_and_decides_each_distinct_value():
    """Cells lose leading and trailing whitespace of any kind (as str.strip), and channel,
    category and coordinate system are decided per distinct value and given to the right
    rows, reasons included."""
    from cases.mappings.apply import validate_chunk

    mapping = load_mapping("hotline12345_zh")
    catalogue = set(mapping.category_map.values()) - {"reject"}
    base = {"工单编号": "A1", "来源渠道": "巡查上报", "诉求类型": "私搭乱建", "诉求内容": "x",
            "地址": "", "经度": "117.15", "纬度": "35.09", "坐标系": "WGS84",
            "来电时间": "2025-06-13 09:12:00", "来电人": "", "联系电话": "", "附件": ""}
    rows = [
        {**base, "工单编号": " A1\u3000", "来源渠道": "\xa0巡查上报 ", "诉求类型": "\t私搭乱建\n",
         "诉求内容": " \u2003 ", "坐标系": " WGS84 "},
        {**base, "工单编号": "A2", "诉求类型": "nope"},
        {**base, "工单编号": "A3", "来源渠道": "bogus"},
        {**base, "工单编号": "A4", "坐标系": "weird"},
        {**base, "工单编号": "A5", "来电时间": "2025-13-01 00:00:00"},
        {**base, "工单编号": "A6"},
    ]
    good, bad = validate_chunk(pd.DataFrame(rows, dtype=str), mapping, catalogue, "wgs84",
                               first_line=2)
    assert good["external_id"].tolist() == ["A1", "A6"]
    assert good["channel"].tolist() == ["patrol", "patrol"]
    assert good["category_code"].tolist() == [mapping.category_map["私搭乱建"]] * 2
    assert good["description"].tolist() == ["", "x"] and good["input_crs"].tolist() == ["wgs84"] * 2
    reasons = dict(zip(bad["line"], bad["reason"], strict=True))
    assert sorted(reasons) == [3, 4, 5, 6]
    assert "unknown category 'nope'" in reasons[3] and "channel 'bogus'" in reasons[4]
    assert "coordinate system 'weird'" in reasons[5]
    assert "reported_at '2025-13-01 00:00:00' does not match" in reasons[6]


def test_the_cli_progress_names_every_phase_and_closes_reading_at_dedup(city_engine):
    """`casegrid cases import` draws one labelled bar per phase the import reports; when
    the deduplication starts, reading and validating are over."""
    from io import StringIO

    from rich.console import Console
    from rich.progress import Progress

    from casegrid.cli.cases_import import _LABELS, RichProgress

    seen: list[str] = []
    with Progress(console=Console(file=StringIO())) as bar:
        hook = RichProgress(bar)

        def progress(phase: str, done: float, total: float | None) -> None:
            seen.append(phase)
            hook(phase, done, total)
            if phase == "dedup":
                for earlier in ("read", "validate+copy"):
                    task = bar.tasks[hook.tasks[earlier]]
                    assert task.finished, f"{earlier} still open when dedup started"

        import_cases(city_engine, CSV_FIXTURE, "hotline12345_zh", commit=False, progress=progress)
        hook.close()
        labels = [t.description for t in bar.tasks]
    assert {"read", "validate+copy", "dedup", "insert"} <= set(seen)
    assert labels == [_LABELS[p] for p in dict.fromkeys(seen)]
