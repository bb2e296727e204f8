"""Bulk import of hotline exports (CSV or XLSX) into the case ledger, set-based.

The pipeline, all in ONE transaction:

1. read the file in chunks (CSV) or row blocks (XLSX), every cell as text;
2. validate and convert each chunk with pandas/numpy (:mod:`cases.mappings.apply`): category
   through the mapping's value map, timestamps with the mapping's format and time zone,
   coordinates checked and converted to WGS-84; bad rows go to the reject CSV with their line
   number (header = line 1) and reason; the good rows get their review and reply due times
   (:mod:`cases.deadlines_vec`, vectorised);
3. ``COPY`` the good rows of each chunk into a temporary staging table (psycopg 3) and
   route that chunk's rows (by their line range) at once, appending to the routed table:
   points whose surroundings hold one community only, or none within the gap tolerance
   (binned into small cells, each cell probed once per import: ``geo.route_cells``) by a
   hash join, every other point with ONE routing join (``geo.routing.route_sql``); the
   same result as route_sql alone. Steps 1-2 run in a worker thread a chunk or two
   ahead, so Python validates the next chunks while the database stages and routes this
   one (the worker never touches the database);
4. drop the rows whose ``(channel, external_id)`` is already a case; their routing goes
   with them (routing a row that is then dropped costs a little, and only for a
   re-import); the report's ``routed`` counts the rows that remain. Repeats within the file
   never get this far: step 2 keeps the first line of each ticket and stages no other;
5. ``INSERT ... SELECT ... ON CONFLICT (channel, external_id) DO NOTHING`` into ``case``,
   deadlines included, and the ``register`` history rows with it, in one statement.

An import much larger than the ledger (the first load of a city's history: at least
``BULK_MIN_ROWS`` new cases and at least as many as ``"case"`` holds) takes the exclusive
path. It locks ``"case"`` and ``case_event`` (``ACCESS EXCLUSIVE``) before deduplicating,
so no other session can store a case or an event until it commits, and drops every index
of each table it outgrows, its primary key and unique ones included, with the foreign
keys of and to that table. It then writes in ONE statement (``_INSERT_LOCKED_SQL``): the
new rows joined once with their routing, community and post, case ids and numbers drawn
there in file order, the cases, their register events and their statistics (the
statistics trigger dropped for that statement, see ``_STATS_LOCKED_CTE``) all from that one
join; no ON CONFLICT, since no other session can have stored a ticket meanwhile and the
rows were deduplicated. Last it recreates what it dropped from the catalogue definitions
(``pg_get_constraintdef``, ``pg_get_indexdef``): keys first, then the other indexes, then
the foreign keys, each index built once from sorted input and each foreign key checked
with one join. On a million cases into an empty ledger that is several times faster than
row-by-row upkeep (figures in the commit history and ``bench/RESULTS.md``). DDL is
transactional in PostgreSQL, so a failure or a kill at any point rolls the drops back with
everything else, and a duplicate that a rebuilt key or unique index finds fails the whole
import: the tables are never left without their indexes or with half an import. The price
is the exclusive lock (also on the tables the dropped foreign keys reference) until the
import commits. An ordinary import into a populated ledger keeps the row-by-row path and
its row locks.

Without ``commit`` the same work runs and is rolled back, so the report says exactly what a
committed run would do (MapIt's dry-run convention). Because everything is one transaction,
an import killed halfway leaves nothing behind, and because of the unique
``(channel, external_id)`` index a re-run stores nothing twice.

Rows without an ``external_id`` get a deterministic one, ``row:<hash>``, from a BLAKE2 hash
of the row's cells (all columns, in file order): re-importing the same file finds the same
ids, and two byte-identical rows in one file count as one complaint.
"""

from __future__ import annotations

import codecs
import csv
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Row, text

from casegrid.csv_text import TEXT, copy_csv
from casegrid.db import json_param
from casegrid.errors import ImportFailed
from casegrid.settings import get_settings
from cases.deadlines_vec import InitialDue
from cases.mappings import CHANNELS, REQUIRED, Mapping, load_mapping
from cases.mappings.apply import STAGE_COLUMNS, validate_chunk
from cases.privacy import MAY_HOLD_CONTACTS, masked_and_original
from geo import route_cells
from geo.address_bulk import AddressLocator
from geo.coords import normalise_crs
from geo.routing import require_generation

DEFAULT_CHUNK_ROWS = 100_000
# Below this many new cases the row-by-row index upkeep costs a few seconds at most, not
# worth an exclusive lock on the ledger; above it (and when the import at least doubles the
# table) the indexes are rebuilt instead (module docstring).
BULK_MIN_ROWS = 100_000
# work_mem for the INSERT statement of a large import (this transaction only, then put
# back): its sort, hash tables and materialized join (``src``) hold a million rows; at the
# server's 64 MB they spill to temporary files. (maintenance_work_mem for the index rebuild
# made no difference: 256 MB and 1 GB alike, alternating, in a scratch database and in
# `python -m bench --only bulk_import`. The btree rebuilds run with the server's parallel
# maintenance workers, in this transaction too; without them they take longer.)
BULK_WORK_MEM = "1GB"
# Which phase is running ("read", "validate+copy" (validating, COPY and routing, chunk by
# chunk), "dedup", "insert", "indexes"), how far it got, and its total (None when unknown).
ProgressFn = Callable[[str, float, float | None], None]


@dataclass
class BulkReport:
    """What an import read, rejected, stored and how it routed the new cases."""

    file: str
    mapping: str
    committed: bool
    read: int = 0
    valid: int = 0
    rejected: int = 0
    inserted: int = 0
    already_present: int = 0
    duplicates_in_file: int = 0
    routed: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# --- reading ---------------------------------------------------------------------------


def _sniff_encoding(path: Path) -> str:
    """UTF-8 (BOM tolerated) when the start of the file decodes as UTF-8, else GB18030."""
    head = path.open("rb").read(1 << 20)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


def _csv_chunks(path: Path, mapping: Mapping, chunk_rows: int,
                progress: ProgressFn | None) -> Iterator[pd.DataFrame]:
    encoding = _sniff_encoding(path) if mapping.encoding == "auto" else mapping.encoding
    total = path.stat().st_size
    with path.open("rb") as fh:
        try:
            reader = pd.read_csv(
                fh, dtype=TEXT, keep_default_na=False, na_filter=False, encoding=encoding,
                sep=mapping.delimiter, chunksize=chunk_rows, skipinitialspace=False,
            )
            for chunk in reader:
                if progress:
                    progress("read", min(fh.tell(), total), total)
                yield chunk
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise ImportFailed(f"{path.name}: cannot read as CSV ({encoding}): {exc}",
                               field="file") from None


def _cell_text(value: object, date_format: str) -> str:
    """An XLSX cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        # Dates typed as dates in Excel: write them back in the mapping's format so one
        # parser serves CSV and XLSX.
        return value.isoformat(sep=" ") if date_format.upper() == "ISO8601" else value.strftime(date_format)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # ticket and phone numbers stored as numbers
    return str(value).strip() if isinstance(value, str) else str(value)


def _xlsx_chunks(path: Path, mapping: Mapping, chunk_rows: int,
                 progress: ProgressFn | None) -> Iterator[pd.DataFrame]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise ImportFailed(f"{path.name}: cannot open as XLSX: {exc}", field="file") from None
    try:
        sheet = mapping.sheet
        ws = wb.worksheets[sheet] if isinstance(sheet, int) else wb[sheet]
    except (IndexError, KeyError):
        raise ImportFailed(f"{path.name}: no sheet {mapping.sheet!r}; sheets: {wb.sheetnames}",
                           field="sheet") from None
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        raise ImportFailed(f"{path.name}: the sheet is empty", field="file")
    names = [_cell_text(h, "ISO8601") or f"column{i + 1}" for i, h in enumerate(header)]
    total = ws.max_row - 1 if ws.max_row else None
    done, block = 0, []
    for row in rows:
        block.append([_cell_text(v, mapping.date_format) for v in row[: len(names)]]
                     + [""] * (len(names) - len(row)))
        if len(block) >= chunk_rows:
            done += len(block)
            if progress:
                progress("read", done, total)
            yield pd.DataFrame(block, columns=names, dtype=TEXT)
            block = []
    if block:
        done += len(block)
        if progress:
            progress("read", done, total)
        yield pd.DataFrame(block, columns=names, dtype=TEXT)
    wb.close()


def read_chunks(path: Path, mapping: Mapping, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                progress: ProgressFn | None = None) -> Iterator[pd.DataFrame]:
    """The file's data rows in chunks, every cell as text ('' when blank)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_chunks(path, mapping, chunk_rows, progress)
    if suffix in (".csv", ".txt", ".tsv"):
        return _csv_chunks(path, mapping, chunk_rows, progress)
    raise ImportFailed(f"{path.name}: give a .csv or .xlsx file (got {suffix or 'no extension'})",
                       field="file")


def _check_columns(columns: list[str], mapping: Mapping, report: BulkReport) -> None:
    have = set(columns)
    for name, cols in mapping.columns.items():
        absent = [c for c in cols if c not in have]
        if not absent:
            continue
        where = f"[columns] {name} = {', '.join(map(repr, absent))}"
        if name in REQUIRED:
            raise ImportFailed(
                f"{report.file}: the file has no column {where} (mapping {mapping.name}); "
                f"its columns are: {', '.join(columns[:60])}", field=name)
        report.warnings.append(f"column {where} is not in the file: treated as blank")


# --- database ----------------------------------------------------------------------------

_STAGE_DDL = """
DROP TABLE IF EXISTS cg_stage, cg_new, cg_kinds;
CREATE TEMP TABLE cg_stage (
    line bigint PRIMARY KEY, channel text NOT NULL, external_id text NOT NULL,
    category_code text NOT NULL, description text, address text, reported_us bigint NOT NULL,
    reporter_name text, reporter_phone text, photo_urls text,
    input_lon double precision, input_lat double precision, input_crs text,
    lon double precision, lat double precision,  -- NULL: address only (geo.address_bulk)
    review_s bigint, reply_s bigint, due_prov boolean
) ON COMMIT DROP
"""

# Deduplication. Repeats within the file never reach the database: the reader keeps the
# first line of each ticket (:class:`_Repeats`), so nothing groups a million staged tickets
# to find the few repeated ones. In the database the staging table then loses the rows
# whose ticket is already a case, with their routing, and becomes cg_new (renamed: its
# primary key on line stays). The rows were routed as they were staged: cg_routed (and the
# report's counts) hold only the rows to import.
_DROP_PRESENT_SQL = """
WITH gone AS (
    DELETE FROM cg_stage s
    WHERE EXISTS (SELECT 1 FROM "case" c
                  WHERE c.channel = s.channel AND c.external_id = s.external_id)
    RETURNING s.line
), unrouted AS (
    DELETE FROM cg_routed r WHERE r.id IN (SELECT line FROM gone)
)
SELECT count(*) FROM gone
"""
# Of the tickets repeated in the file, the later lines of those already stored: the report
# counts them as already present, not as duplicates in the file (as it always has).
_PRESENT_REPEATS_SQL = """
SELECT COALESCE(sum(u.n), 0)
FROM unnest(CAST(:channels AS text[]), CAST(:ids AS text[]), CAST(:n AS int[])) AS u(ch, id, n)
WHERE EXISTS (SELECT 1 FROM "case" c WHERE c.channel = u.ch AND c.external_id = u.id)
"""


# The staged columns the statements after staging join, filter or group on; statistics of
# the descriptions, addresses and the rest cost most of a whole-table ANALYZE and no plan
# reads them.
_ANALYZE_STAGE = "ANALYZE cg_stage (line, channel, external_id, category_code)"


class _Repeats:
    """Tickets ``(channel, external_id)`` seen so far in the file; drops later lines of a
    ticket (the first line wins) and counts them per ticket."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.dropped: Counter[str] = Counter()

    def drop(self, good: pd.DataFrame) -> pd.DataFrame:
        """``good`` (validated rows, in file order) without the lines whose ticket came
        earlier, in this chunk or an earlier one."""
        if good.empty:
            return good
        # A channel is a fixed word without \x1f, so the key splits back unambiguously.
        keys = (good["channel"].astype(object) + "\x1f" + good["external_id"].astype(object))
        listed = keys.tolist()
        repeat = keys.duplicated().to_numpy() | np.fromiter(
            map(self._seen.__contains__, listed), dtype=bool, count=len(listed))
        self._seen.update(listed)
        if not repeat.any():
            return good
        self.dropped.update(keys[repeat].tolist())
        return good[~repeat]

    def stored_already(self, conn: Connection) -> int:
        """How many dropped lines repeat a ticket that is already a case."""
        if not self.dropped:
            return 0
        pairs = [k.split("\x1f", 1) for k in self.dropped]
        return conn.execute(text(_PRESENT_REPEATS_SQL), {
            "channels": [p[0] for p in pairs], "ids": [p[1] for p in pairs],
            "n": list(self.dropped.values())}).scalar_one()


_INSERT_SQL = """
WITH ins AS (
    INSERT INTO "case" (channel, external_id, category_code, description, address,
        reported_at, received_at, reporter_name, reporter_phone, photo_urls,
        input_lon, input_lat, input_crs, geom, community_code, subdistrict_code, post_id,
        generation_id, route_rule, route_distance_m, near_boundary, route_alternates, status,
        review_due_at, reply_due_at, current_due_at, due_provisional)
    SELECT n.channel, n.external_id, n.category_code, COALESCE(n.description, ''), n.address,
           t.reported_at, CASE WHEN :backdate THEN t.reported_at ELSE now() END,
           n.reporter_name, n.reporter_phone,
           COALESCE(regexp_split_to_array(NULLIF(btrim(n.photo_urls), ''), '[\\s;,]+'), '{}'),
           n.input_lon, n.input_lat, n.input_crs, ST_SetSRID(ST_MakePoint(n.lon, n.lat), 4326),
           c.code, c.subdistrict_code, p.id, :gen, r.rule, r.distance_m, r.near_boundary,
           r.alternates, 'registered',
           to_timestamp(n.review_s), to_timestamp(n.reply_s), to_timestamp(n.review_s),
           COALESCE(n.due_prov, false)
    FROM cg_new n
    CROSS JOIN LATERAL (SELECT timestamptz 'epoch' + n.reported_us * interval '1 microsecond'
                        AS reported_at) t
    JOIN cg_routed r ON r.id = n.line
    LEFT JOIN community c ON c.id = r.community_id
    LEFT JOIN community_post p ON p.community_code = c.code
    ORDER BY n.line
    ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING id, channel, external_id, reported_at, route_rule, community_code,
              subdistrict_code, post_id
)
INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, note, data)
SELECT ins.id, CASE WHEN :backdate THEN ins.reported_at ELSE now() END, :actor, 'intake',
       'register', NULL, 'registered', :note,
       jsonb_build_object('rule', ins.route_rule, 'community_code', ins.community_code,
                          'subdistrict_code', ins.subdistrict_code, 'post_id', ins.post_id,
                          'generation_id', CAST(:gen AS int), 'source', CAST(:source AS text),
                          'mapping', CAST(:mapping AS text),
                          'line', n.line)
FROM ins JOIN cg_new n ON n.channel = ins.channel AND n.external_id = ins.external_id
RETURNING case_id
"""


# Per table: the statement that drops, and the statement that recreates exactly, each of
# its indexes (primary key and unique ones included), its foreign keys and the foreign keys
# of other tables that reference it (they depend on its key and go first). step orders the
# rebuild: keys, then the other indexes, then the foreign keys, which need the keys they
# reference. An index that backs another kind of constraint (an exclusion) stays.
_SECONDARY_SQL = """
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS drop_sql,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
              pg_get_constraintdef(oid)) AS create_sql,
       CASE contype WHEN 'f' THEN 2 ELSE 0 END AS step
FROM pg_constraint
WHERE (contype = 'f' AND CAST(:tbl AS regclass) IN (conrelid, confrelid))
   OR (contype IN ('p', 'u') AND conrelid = CAST(:tbl AS regclass))
UNION ALL
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), 1
FROM pg_index i
WHERE i.indrelid = CAST(:tbl AS regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
ORDER BY step, create_sql
"""
# Tables whose upkeep a large import takes over, each with how many rows it has to exceed.
_BULK_TABLES = ('"case"', "case_event")


def _rows_up_to(conn: Connection, table: str, limit: int) -> int:
    """``min(count(*), limit + 1)``: enough to compare with ``limit`` without counting a
    large table to the end."""
    return conn.execute(text(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT :n) x"),
                        {"n": limit + 1}).scalar_one()


def _drop_secondary(conn: Connection, new: int) -> tuple[bool, list[str]]:
    """For a large import: lock ``"case"`` and ``case_event`` exclusively and drop every
    index, key and foreign key of each table the import outgrows (``new`` rows at least as
    many as it holds), and the foreign keys that reference it. Returns (locked, the
    statements that recreate what was dropped: keys, indexes, foreign keys). Same
    transaction: a rollback restores everything. Nothing is locked or dropped when neither
    table is outgrown."""
    tables = [t for t in _BULK_TABLES if _rows_up_to(conn, t, new) <= new]
    if not tables:
        return False, []
    # Both tables, up front, in a fixed order: from here on no other session writes a case,
    # so the INSERT needs no ON CONFLICT and case ids can be assigned before it.
    conn.execute(text(f"LOCK TABLE {', '.join(_BULK_TABLES)} IN ACCESS EXCLUSIVE MODE"))
    plan: dict[str, Row] = {}
    for table in tables:  # a foreign key between two outgrown tables is found twice
        for row in conn.execute(text(_SECONDARY_SQL), {"tbl": table}):
            plan.setdefault(row.drop_sql, row)
    rows = sorted(plan.values(), key=lambda r: r.step)
    for row in reversed(rows):  # foreign keys before the keys they reference
        conn.execute(text(row.drop_sql))
    return True, [r.create_sql for r in rows]


# The register events' data of the exclusive path, per routing rule and community (a few
# hundred at most): each event takes its kind's object and sets its line in it, which
# costs a fraction of a jsonb_build_object of eight values per row (whose "any" arguments
# are looked up and converted at every call).
_KINDS_SQL = """
CREATE TEMP TABLE cg_kinds ON COMMIT DROP AS
SELECT k.rule, k.cid,
       jsonb_build_object('rule', k.rule, 'community_code', c.code,
                          'subdistrict_code', c.subdistrict_code, 'post_id', p.id,
                          'generation_id', CAST(:gen AS int), 'source', CAST(:source AS text),
                          'mapping', CAST(:mapping AS text)) AS data
FROM (SELECT DISTINCT rule, COALESCE(community_id, 0) AS cid FROM cg_routed) k
LEFT JOIN community c ON c.id = k.cid
LEFT JOIN community_post p ON p.community_code = c.code
"""
# The exclusive path (large imports, tables locked before deduplication), ONE statement:
# ``src`` joins each new row with its routing, community and post once, in file order, and
# draws its case id and number there (numbers formatted by case_no_of, which the planner
# inlines, where the column default next_case_no() is a function call per row); the cases,
# their register events and ({stats}) their statistics are written from it. No ON
# CONFLICT (no other session can have stored a ticket meanwhile) and no RETURNING rows
# carried through a join. The id sequence is named as the constant its bigserial column
# gave it (0001), as cases.intake's INSERT names it: a pg_get_serial_sequence() call in the
# statement would run once per row. Same columns and values as _INSERT_SQL (tests compare
# the two paths).
_INSERT_LOCKED_SQL = """
WITH src AS MATERIALIZED (
    SELECT nextval(CAST('case_id_seq' AS regclass)) AS case_id,
           nextval(CAST('case_no_seq' AS regclass)) AS case_no_n, x.*
    FROM (SELECT n.*, t.reported_at,
                 CASE WHEN :backdate THEN t.reported_at ELSE now() END AS received_at,
                 r.rule, r.distance_m, r.near_boundary, r.alternates, r.community_id,
                 c.code AS community_code, c.subdistrict_code, p.id AS post_id
          FROM cg_new n
          CROSS JOIN LATERAL (SELECT timestamptz 'epoch' + n.reported_us * interval '1 microsecond'
                              AS reported_at) t
          JOIN cg_routed r ON r.id = n.line
          LEFT JOIN community c ON c.id = r.community_id
          LEFT JOIN community_post p ON p.community_code = c.code
          ORDER BY n.line) x
),
cases AS (
    INSERT INTO "case" (id, case_no, channel, external_id, category_code, description, address,
        reported_at, received_at, reporter_name, reporter_phone, photo_urls,
        input_lon, input_lat, input_crs, geom, community_code, subdistrict_code, post_id,
        generation_id, route_rule, route_distance_m, near_boundary, route_alternates, status,
        review_due_at, reply_due_at, current_due_at, due_provisional)
    SELECT case_id, case_no_of(case_no_n), channel, external_id, category_code,
           COALESCE(description, ''), address, reported_at, received_at,
           reporter_name, reporter_phone,
           COALESCE(regexp_split_to_array(NULLIF(btrim(photo_urls), ''), '[\\s;,]+'), '{{}}'),
           input_lon, input_lat, input_crs, ST_SetSRID(ST_MakePoint(lon, lat), 4326),
           community_code, subdistrict_code, post_id, :gen, rule, distance_m, near_boundary,
           alternates, 'registered',
           to_timestamp(review_s), to_timestamp(reply_s), to_timestamp(review_s),
           COALESCE(due_prov, false)
    FROM src
){stats}
INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, note, data)
SELECT s.case_id, s.received_at, :actor, 'intake', 'register', NULL, 'registered', :note,
       jsonb_set(k.data, '{{line}}', to_jsonb(s.line))
FROM src s JOIN cg_kinds k ON k.rule = s.rule AND k.cid = COALESCE(s.community_id, 0)
"""

# The statistics of a large import. The row path leaves them to the statement-level trigger
# case_stat_ins, which keeps a transition table of every inserted row (a million, on a first
# load) and groups it four times over, once per dimension. Every case an import stores is
# 'registered', with no workflow time yet, so it adds to ``accepted`` only (the trigger's
# own shortcut since migration 0013): on the exclusive path the trigger is dropped for the
# INSERT and created again after it from its catalogue definition (DDL is transactional, and
# the table is locked anyway), and the counts are added by the same statement, in one pass
# over the new rows: one grouping set per dimension, each (day, key) hashed once (grouping
# the rows by all five keys first, then spreading each group over the four dimensions, made
# ten times as many groups). Day and keys as case_stat_merge_sql (migration 0003) derives
# them; tests compare the two paths' tables.
# Dropped, not disabled: PostgreSQL 15 fills a trigger's transition table whether or not the
# trigger is enabled (it decides at firing time), so a disabled case_stat_ins still copied
# every new case into a tuplestore (temporary files at a small work_mem, as many as with it
# enabled). The gain is small (bench/RESULTS.md, issue 20's section). An operator's
# disabled trigger is dropped too, and comes back disabled.
_STATS_TRIGGER_SQL = """
SELECT t.tgenabled, pg_get_triggerdef(t.oid) AS create_sql
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE t.tgrelid = '"case"'::regclass AND t.tgname = 'case_stat_ins'
  AND pg_has_role(c.relowner, 'USAGE')
"""
# How ALTER TABLE puts back a trigger's firing state (pg_trigger.tgenabled).
_TRIGGER_STATE = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
_STATS_LOCKED_CTE = """,
stats AS (
    INSERT INTO case_stat AS t (dim, day, key, accepted)
    SELECT dim, day, key, sum(n)::int
    FROM (SELECT CASE WHEN GROUPING(community_code) = 0 THEN 'community'
                      WHEN GROUPING(subdistrict_code) = 0 THEN 'subdistrict'
                      WHEN GROUPING(category_code) = 0 THEN 'category'
                      ELSE 'channel' END AS dim,
                 day,
                 CASE WHEN GROUPING(community_code) = 0 THEN coalesce(community_code, '')
                      WHEN GROUPING(subdistrict_code) = 0 THEN coalesce(subdistrict_code, '')
                      WHEN GROUPING(category_code) = 0 THEN category_code
                      ELSE channel END AS key,
                 count(*) AS n
          FROM (SELECT (received_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                       community_code, subdistrict_code, category_code, channel
                FROM src) s
          GROUP BY GROUPING SETS ((day, community_code), (day, subdistrict_code),
                                  (day, category_code), (day, channel))) g
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, day, key) DO UPDATE SET accepted = t.accepted + EXCLUDED.accepted
)"""


def _drop_stats_trigger(conn: Connection) -> tuple[str, list[str]] | None:
    """Drop ``case_stat_ins`` (exclusive path, tables locked) and return its firing state
    (``pg_trigger.tgenabled``: 'O' = on) and the statements that put it back as it was;
    None, and nothing dropped, when there is no such trigger or this role does not own
    ``"case"``."""
    row = conn.execute(text(_STATS_TRIGGER_SQL)).first()
    if row is None:
        return None
    conn.execute(text('DROP TRIGGER case_stat_ins ON "case"'))
    restore = [row.create_sql]
    if row.tgenabled in _TRIGGER_STATE:
        restore.append(f'ALTER TABLE "case" {_TRIGGER_STATE[row.tgenabled]} TRIGGER case_stat_ins')
    return row.tgenabled, restore


def _insert_locked_sql(own_stats: bool) -> str:
    """_INSERT_LOCKED_SQL with the statistics CTE when ``own_stats``."""
    return _INSERT_LOCKED_SQL.format(stats=_STATS_LOCKED_CTE if own_stats else "")


# The staging table's columns in COPY order: the validated row and its due times.
_COPY_COLUMNS = (*STAGE_COLUMNS, "review_s", "reply_s", "due_prov")


def _chunk_csv(good: pd.DataFrame, due: InitialDue | None, now_s: int | None) -> bytes:
    """A validated chunk with its due times (from the reported time when ``now_s`` is None,
    else from ``now_s``) as the CSV COPY reads (an unquoted empty field = NULL)."""
    good = good.reset_index(drop=True)
    if due is None:
        good["review_s"] = good["reply_s"] = good["due_prov"] = None
    else:
        start = (good["reported_us"].to_numpy() // 1_000_000 if now_s is None
                 else np.full(len(good), now_s, dtype=np.int64))
        good["review_s"], good["reply_s"], good["due_prov"] = due.compute(
            start, good["category_code"].to_numpy(), good["channel"].to_numpy())
    return copy_csv(good, _COPY_COLUMNS)


def _copy_chunk(conn: Connection, data: bytes) -> None:
    """COPY one chunk's CSV (:func:`_chunk_csv`) into the staging table."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
        f"COPY cg_stage ({', '.join(_COPY_COLUMNS)}) FROM STDIN (FORMAT csv)"
    ) as copy:
        copy.write(data)


_T = TypeVar("_T")


def _ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """Iterate ``items`` in a worker thread, at most ``depth`` items ahead of the consumer:
    the worker reads and validates the next chunks (pandas, numpy) while the database
    ingests the current one. An exception in the worker is raised here; when the consumer
    stops early (its own error), the worker stops at its next item."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((None, exc))

    worker = threading.Thread(target=work, name="bulk-import-read", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is end:
                return
            yield item
    finally:
        stop.set()
        worker.join()


class _RejectFile:
    """The reject CSV, opened on the first rejected row (no rejects, no file)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._fh = None
        self._writer = None

    def write(self, rejects: pd.DataFrame, columns: list[str]) -> None:
        if self.path is None or rejects.empty:
            return
        if self._writer is None:
            # BOM: Excel then opens the Chinese headers correctly.
            self._fh = self.path.open("w", newline="", encoding="utf-8-sig")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["line", "reason", *columns])
        self._writer.writerows(
            rejects[["line", "reason", *columns]].itertuples(index=False, name=None))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


# --- the import --------------------------------------------------------------------------


def import_cases(
    engine_or_conn: Engine | Connection,
    path: str | Path,
    mapping: Mapping | str | Path,
    *,
    crs: str | None = None,
    commit: bool = False,
    rejects_path: str | Path | None = None,
    progress: ProgressFn | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    backdate: bool = False,
    actor: str = "bulk-import",
    deadlines: bool = True,
    rebuild_indexes: bool | None = None,
) -> BulkReport:
    """Import a hotline export and return what happened (see the module docstring).

    ``mapping`` is a :class:`Mapping`, a TOML path or a shipped mapping name. ``crs``
    overrides the mapping's default coordinate system. With an ``Engine`` the import runs in
    its own transaction, committed only when ``commit``; with a ``Connection`` it runs in a
    savepoint of the caller's transaction, rolled back unless ``commit``. ``backdate`` sets
    ``received_at`` and the register event's time to the reported time (replaying history,
    e.g. the synthetic sample year). ``deadlines=False`` leaves the review/reply due times
    unset.
    ``rebuild_indexes`` forces (True) or forbids (False) dropping and rebuilding the
    secondary indexes and foreign keys around the INSERT; ``None`` decides by size (module
    docstring). Raises
    ``ImportFailed`` when the file cannot be read
    at all; bad rows never raise, they are rejected.
    """
    path = Path(path)
    if not path.exists():
        raise ImportFailed(f"file {path} does not exist", field="file")
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    default_crs = normalise_crs(crs) if crs else mapping.crs
    report = BulkReport(file=str(path), mapping=mapping.name, committed=False,
                        rejects_path=str(rejects_path) if rejects_path else None)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            trans = conn.begin()
            try:
                _run(conn, path, mapping, default_crs, report, rejects_path, progress,
                     chunk_rows, backdate, actor, deadlines, rebuild_indexes)
            except BaseException:
                trans.rollback()
                raise
            if commit:
                trans.commit()
            else:
                trans.rollback()
    else:
        savepoint = engine_or_conn.begin_nested()
        try:
            _run(engine_or_conn, path, mapping, default_crs, report, rejects_path, progress,
                 chunk_rows, backdate, actor, deadlines, rebuild_indexes)
        except BaseException:
            savepoint.rollback()
            raise
        if commit:
            savepoint.commit()
        else:
            savepoint.rollback()
    report.committed = commit
    return report


def _mask_free_text(good: pd.DataFrame, originals: list[dict]) -> pd.DataFrame:
    """The chunk with contact details in its description and address masked
    (:mod:`cases.privacy`, as intake stores them); the texts as written go to ``originals``
    (channel, external_id, field, original), stored once the cases exist."""
    for column in ("description", "address"):
        if column not in good.columns:
            continue
        values = good[column]
        maybe = values.notna() & values.astype(object).astype(str).str.contains(
            MAY_HOLD_CONTACTS, regex=True)
        if not maybe.any():
            continue
        good = good.copy()
        for idx in maybe[maybe].index:
            masked, original = masked_and_original(values[idx])
            if original is not None:
                good.at[idx, column] = masked
                originals.append({"channel": good.at[idx, "channel"],
                                  "external_id": good.at[idx, "external_id"],
                                  "field": column, "original": original})
    return good


# The texts as written of the cases this import inserted (created in this transaction).
_ORIGINALS_SQL = """
INSERT INTO personal_text (case_id, field, original)
SELECT c.id, o.field, o.original
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS o(channel text, external_id text, field text,
                                                  original text)
JOIN "case" c ON c.channel = o.channel AND c.external_id = o.external_id
WHERE c.created_at = now()
"""


def _staged(path: Path, mapping: Mapping, catalogue: set[str], default_crs: str,
            chunk_rows: int, report: BulkReport, reasons: Counter[str], rejects: _RejectFile,
            due: InitialDue | None, now_s: int | None, repeats: _Repeats,
            originals: list[dict] | None = None
            ) -> Iterator[tuple[bytes, int, int, list[tuple]]]:
    """Read, validate and date the file chunk by chunk (no database): per chunk the CSV
    of its good rows for COPY (b'' when none), its first and last line, and the
    progress events it caused.
    Counts into ``report`` and ``reasons``, rejected rows into ``rejects``, later lines of
    a ticket into ``repeats`` (they are not staged). With ``originals``, free text is masked
    and the texts as written collected there (:func:`_mask_free_text`)."""
    events: list[tuple] = []
    next_line = 2  # the header is line 1
    columns: list[str] | None = None
    for chunk in read_chunks(path, mapping, chunk_rows, lambda *e: events.append(e)):
        if columns is None:
            columns = list(chunk.columns)
            _check_columns(columns, mapping, report)
        first = next_line
        good, bad = validate_chunk(chunk, mapping, catalogue, default_crs, first_line=first)
        next_line += len(chunk)
        report.read += len(chunk)
        report.valid += len(good)
        report.rejected += len(bad)
        if not bad.empty:
            reasons.update(bad["reason_kind"])
            rejects.write(bad, columns)
        good = repeats.drop(good)
        if originals is not None and not good.empty:
            good = _mask_free_text(good, originals)
        events.append(("validate+copy", report.read, None))
        yield (_chunk_csv(good, due, now_s) if not good.empty else b""), first, next_line - 1, \
            events.copy()
        events.clear()


def _run(conn: Connection, path: Path, mapping: Mapping, default_crs: str, report: BulkReport,
         rejects_path: str | Path | None, progress: ProgressFn | None, chunk_rows: int,
         backdate: bool, actor: str, deadlines: bool, rebuild_indexes: bool | None) -> None:
    clock = time.perf_counter()
    gen = require_generation(conn)
    settings = get_settings()
    # Large imports run longer than the interactive statement timeout; this transaction only.
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    conn.execute(text(_STAGE_DDL))
    route_params = {"gen": gen, "tol_m": settings.gap_tolerance_m,
                    "margin_m": settings.near_boundary_margin_m}
    route_cells.begin(conn, route_params)
    addresses = AddressLocator(conn)
    catalogue = {r[0] for r in conn.execute(text("SELECT code FROM category WHERE active"))}
    if not catalogue:
        raise ImportFailed("the category catalogue is empty: run `casegrid db migrate`",
                           field="category")
    # Review and reply due times are computed with each chunk (cases.deadlines_vec) and
    # staged with its rows, so each case row is written once, due times included.
    from cases.calendar_store import load_calendar

    due = InitialDue(conn, load_calendar(conn), catalogue, CHANNELS) if deadlines else None
    now_s = None if backdate else conn.execute(
        text("SELECT floor(extract(epoch FROM now()))::bigint")).scalar_one()
    reasons: Counter[str] = Counter()
    rejects = _RejectFile(rejects_path)
    repeats = _Repeats()
    originals: list[dict] | None = [] if settings.privacy_mask_free_text else None
    staged = _staged(path, mapping, catalogue, default_crs, chunk_rows, report, reasons,
                     rejects, due, now_s, repeats, originals)
    try:
        with closing(_ahead(staged)) as chunks:
            for data, first, last, events in chunks:
                if data:
                    # Each chunk is routed as soon as it is staged, while the worker
                    # validates the next: the database and Python work at the same time.
                    _copy_chunk(conn, data)
                    addresses.locate_lines(first, last)
                    route_cells.route_lines(conn, route_params, "cg_stage", first, last)
                for event in events if progress else ():
                    progress(*event)
    finally:
        rejects.close()
    if report.read == 0:
        raise ImportFailed(f"{path.name} has no data rows", field="file")
    report.reject_reasons = dict(reasons.most_common())
    report.seconds["read_validate_copy_route"] = round(time.perf_counter() - clock, 3)

    clock = time.perf_counter()
    # A large import takes the tables before deduplicating (module docstring), so what it
    # finds new is still new when it inserts.
    bulk = rebuild_indexes if rebuild_indexes is not None else report.valid >= BULK_MIN_ROWS
    # rebuild_indexes=True: every table counts as outgrown (limit = a bigint no table reaches).
    locked, recreate = (_drop_secondary(conn, report.valid if rebuild_indexes is None else 2**62)
                        if bulk else (False, []))
    if locked:
        report.seconds["lock_drop"] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()
    conn.execute(text(_ANALYZE_STAGE))
    if progress:
        progress("dedup", 0, None)
    report.duplicates_in_file = sum(repeats.dropped.values())
    if conn.execute(text('SELECT EXISTS (SELECT 1 FROM "case")')).scalar_one():
        report.duplicates_in_file -= repeats.stored_already(conn)
        if conn.execute(text(_DROP_PRESENT_SQL)).scalar_one():
            conn.execute(text(_ANALYZE_STAGE))
    # Renamed, the table keeps its statistics.
    conn.execute(text("ALTER TABLE cg_stage RENAME TO cg_new"))
    addresses.finish("cg_new")
    route_cells.finish(conn)
    report.routed = {
        r.rule: r.n for r in conn.execute(
            text("SELECT rule, count(*) AS n FROM cg_routed GROUP BY rule ORDER BY rule"))
    }
    report.seconds["dedup"] = round(time.perf_counter() - clock, 3)

    clock = time.perf_counter()
    if progress:
        progress("insert", 0, None)
    params = {"gen": gen, "backdate": backdate, "actor": actor, "mapping": mapping.name,
              "source": path.name, "note": f"bulk import of {path.name}"}
    if locked:
        work_mem = conn.execute(text("SELECT current_setting('work_mem')")).scalar_one()
        conn.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": BULK_WORK_MEM})
        restore_trigger = _drop_stats_trigger(conn)
        own_stats = restore_trigger is not None and restore_trigger[0] == "O"
        conn.execute(text(_KINDS_SQL), params)
        conn.execute(text("ANALYZE cg_kinds"))
        report.inserted = conn.execute(text(_insert_locked_sql(own_stats)), params).rowcount
        if restore_trigger is not None:
            for sql in restore_trigger[1]:
                conn.execute(text(sql))
        conn.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": work_mem})
    else:
        report.inserted = len(conn.execute(text(_INSERT_SQL), params).scalars().all())
    # Rows whose ticket was already a case, repeats within the file, and any lost to a
    # concurrent import of the same tickets (ON CONFLICT) alike.
    report.already_present = report.valid - report.inserted
    report.seconds["insert"] = round(time.perf_counter() - clock, 3)
    if recreate:
        clock = time.perf_counter()
        if progress:
            progress("indexes", 0, len(recreate))
        for i, sql in enumerate(recreate):
            conn.execute(text(sql))
            if progress:
                progress("indexes", i + 1, len(recreate))
        report.seconds["indexes"] = round(time.perf_counter() - clock, 3)
    if originals:
        conn.execute(text(_ORIGINALS_SQL), {"rows": json_param(originals)})
    addresses.store_answers("cg_new")
    if progress:
        progress("insert", 1, 1)

