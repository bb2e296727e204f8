"""Bulk import of hotline exports (CSV or XLSX) into the case ledger, set-based.

Three seams, three modules: :mod:`~cases.bulk_import.read` reads and validates the file
(no database), :mod:`~cases.bulk_import.stage` stages, deduplicates and inserts on the
ordinary path, :mod:`~cases.bulk_import.first_load` is the exclusive path of a first load;
this module runs them in order (:func:`import_cases`). The pipeline, all in ONE transaction:

1. read the file in chunks (CSV) or row blocks (XLSX), every cell as text;
2. validate and convert each chunk with pandas/numpy (:mod:`cases.mappings.apply`): category
   through the mapping's value map, timestamps with the mapping's format and time zone,
   coordinates checked and converted to WGS-84; bad rows go to the reject CSV with their line
   number (header = line 1) and reason; the good rows get their review and reply due times
   (:mod:`cases.deadlines_vec`, vectorised);
3. locate the chunk's address-only rows (``geo.address_bulk``: their point and address
   rule, or none), ``COPY`` the good rows of each chunk into a temporary staging table
   (psycopg 3), points included, and
   route that chunk's rows (by their line range) at once, appending to the routed table:
   points whose surroundings hold one community only, or none within the gap tolerance
   (binned into small cells, each cell probed once per import: ``geo.route_cells``) by a
   hash join, every other point with ONE routing join (``geo.routing.route_sql``); the
   same result as route_sql alone. Steps 1-2 run in a worker thread a chunk or two
   ahead, so Python validates the next chunks while the database stages and routes this
   one (the worker never touches the database). When the import owns its transaction
   (given an ``Engine``), the matching of step 3 runs in a second thread, a chunk ahead,
   on a read-only connection of its own (``geo.address_bulk.matcher_connection``, opened
   on the first chunk with address-only rows), so
   Python matches the next chunk's addresses while the server stages and routes this
   one; the answers are copied into the import's temporary tables by the main thread;
4. drop the rows whose ``(channel, external_id)`` is already a case; their routing goes
   with them (routing a row that is then dropped costs a little, and only for a
   re-import); the report's ``routed`` counts the rows that remain. Repeats within the file
   never get this far: step 2 keeps the first line of each ticket and stages no other;
5. ``INSERT ... SELECT ... ON CONFLICT (channel, external_id) DO NOTHING`` into ``case``,
   deadlines included, and the ``register`` history rows with it, in one statement.

An import much larger than the ledger (the first load of a city's history: at least
``first_load.BULK_MIN_ROWS`` new cases and at least as many as ``"case"`` holds) takes the exclusive
path. It locks ``"case"`` and ``case_event`` (``ACCESS EXCLUSIVE``) before deduplicating,
so no other session can store a case or an event until it commits, and drops every index
of each table it outgrows, its primary key and unique ones included, with the foreign
keys of and to that table. It then writes in ONE statement (``first_load.INSERT_LOCKED_SQL``): the
new rows joined once with their routing, community and post, case ids and numbers drawn
there in file order, the cases, their register events and their statistics (the
statistics trigger dropped for that statement, see ``first_load.STATS_LOCKED_CTE``) all from that one
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

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from casegrid.csv_text import copy_csv
from casegrid.db import commit_only_if, json_param
from casegrid.errors import ImportFailed
from casegrid.settings import get_settings
from cases.bulk_import import first_load, stage
from cases.bulk_import.read import RejectFile, prepared_chunks, read_ahead, read_chunks
from cases.bulk_import.report import DEFAULT_CHUNK_ROWS, BulkReport, ProgressFn
from cases.deadlines_vec import InitialDue
from cases.mappings import CHANNELS, Mapping, load_mapping
from geo import route_cells
from geo.address_bulk import AddressLocator, matcher_connection
from geo.coords import normalise_crs
from geo.routing import require_generation

__all__ = ["BulkReport", "ProgressFn", "import_cases", "read_chunks"]


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
    args = (path, mapping, default_crs, report, rejects_path, progress, chunk_rows, backdate,
            actor, deadlines, rebuild_indexes)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn, commit_only_if(conn.begin(), commit):
            _run(conn, True, *args)
    else:
        with commit_only_if(engine_or_conn.begin_nested(), commit):
            _run(engine_or_conn, False, *args)
    report.committed = commit
    return report


def _located(chunks: Iterator[tuple], addresses: AddressLocator,
             match_conn: Callable[[], Connection]
             ) -> Iterator[tuple[bytes, bytes, bytes, int, int, list[tuple]]]:
    """The reader's chunks (:func:`cases.bulk_import.read.prepared_chunks`) with their
    address-only rows located, the matcher reading on the connection ``match_conn()``
    returns (asked for on the first chunk with such rows only): per chunk the CSV of
    its rows with a point, the CSV of its address-only rows with theirs (b'' when none), the
    CSV of the answers of its new addresses for ``cg_addr`` (b'' when none), its first and
    last line and its progress events. Writes nothing to the database, so it can run in a
    thread of its own; chunk after chunk in file order, whichever thread, so the answers
    do not depend on timing."""
    for placed, unplaced, first, last, events in chunks:
        located, answers = b"", b""
        if unplaced is not None:
            rows, answers = addresses.locate(unplaced, match_conn())
            located = copy_csv(rows, stage.COPY_COLUMNS)
        yield placed, located, answers, first, last, events


class _OpenedOnFirstUse:
    """The matcher's own connection (:func:`geo.address_bulk.matcher_connection`), opened on
    the first call (by the matching thread) and kept open in ``stack``; the same connection
    on every later call. One thread calls it."""

    def __init__(self, stack: ExitStack, engine: Engine) -> None:
        self._stack, self._engine = stack, engine
        self._conn: Connection | None = None

    def __call__(self) -> Connection:
        if self._conn is None:
            self._conn = self._stack.enter_context(matcher_connection(self._engine))
        return self._conn


def _run(conn: Connection, own_transaction: bool, path: Path, mapping: Mapping,
         default_crs: str, report: BulkReport, rejects_path: str | Path | None,
         progress: ProgressFn | None, chunk_rows: int, backdate: bool, actor: str,
         deadlines: bool, rebuild_indexes: bool | None) -> None:
    """The import (module docstring) on ``conn``, inside the transaction or savepoint the
    caller opened; ``own_transaction``: ``import_cases`` opened that transaction itself, so
    nothing in it precedes the import (the matcher may then read on another connection)."""
    clock = time.perf_counter()
    gen = require_generation(conn)
    settings = get_settings()
    # Large imports run longer than the interactive statement timeout; this transaction only.
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    conn.execute(text(stage.STAGE_DDL))
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
    rejects = RejectFile(rejects_path)
    repeats = stage.Repeats()
    originals: list[dict] | None = [] if settings.privacy_mask_free_text else None
    staged = prepared_chunks(path, mapping, catalogue, default_crs, chunk_rows, report, reasons,
                     rejects, due, now_s, repeats, originals)
    try:
        # Unwound in reverse: the threads are joined (matching, then reading) before the
        # matcher's connection goes back, and that before anything below locks a table.
        with ExitStack() as stack:
            # A caller's transaction may hold gazetteer or memory rows of its own: matched
            # on its connection, in this thread. Otherwise on a connection of the matcher's
            # own, opened by the matching thread on the first chunk with address-only rows
            # (a file of coordinates needs none); entered first, so closed last, after the
            # threads below are joined.
            opened = stack.enter_context(ExitStack())
            match_conn = (_OpenedOnFirstUse(opened, conn.engine) if own_transaction
                          else lambda: conn)
            chunks = stack.enter_context(closing(read_ahead(staged)))
            chunks = stack.enter_context(closing(_located(chunks, addresses, match_conn)))
            if own_transaction:
                # One chunk ahead is enough to overlap the matching with the server's work.
                chunks = stack.enter_context(closing(read_ahead(chunks, depth=1)))
            for placed, located, answers, first, last, events in chunks:
                addresses.store(answers)
                if placed or located:
                    # Each chunk is routed as soon as it is staged, while the workers
                    # validate and match the next: the database and Python work at the
                    # same time. Address-only rows are staged with their points: routed
                    # like any other, with their address rule where they lie in a community.
                    stage.copy_chunk(conn, placed, located)
                    route_cells.route_lines(conn, route_params, "cg_stage", first, last,
                                            rule="address_rule")
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
    bulk = rebuild_indexes if rebuild_indexes is not None else report.valid >= first_load.BULK_MIN_ROWS
    # rebuild_indexes=True: every table counts as outgrown (limit = a bigint no table reaches).
    locked, recreate = (first_load.drop_secondary(conn, report.valid if rebuild_indexes is None else 2**62)
                        if bulk else (False, []))
    if locked:
        report.seconds["lock_drop"] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()
    conn.execute(text(stage.ANALYZE_STAGE))
    if progress:
        progress("dedup", 0, None)
    report.duplicates_in_file = sum(repeats.dropped.values())
    if conn.execute(text('SELECT EXISTS (SELECT 1 FROM "case")')).scalar_one():
        report.duplicates_in_file -= repeats.stored_already(conn)
        if conn.execute(text(stage.DROP_PRESENT_SQL)).scalar_one():
            conn.execute(text(stage.ANALYZE_STAGE))
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
        # The matcher's answers (case_locate) are written by the same statement, while
        # the foreign key to "case" is dropped: checked once by the rebuild's join, not
        # row by row after it.
        report.inserted = first_load.insert_locked(conn, params, addresses.answers_cte())
    else:
        report.inserted = len(conn.execute(text(stage.INSERT_SQL), params).scalars().all())
    # Rows whose ticket was already a case, repeats within the file, and any lost to a
    # concurrent import of the same tickets (ON CONFLICT) alike.
    report.already_present = report.valid - report.inserted
    report.seconds["insert"] = round(time.perf_counter() - clock, 3)
    if recreate:
        clock = time.perf_counter()
        first_load.rebuild(conn, recreate, progress)
        report.seconds["indexes"] = round(time.perf_counter() - clock, 3)
    if originals:
        conn.execute(text(stage.ORIGINALS_SQL), {"rows": json_param(originals)})
    if not locked:
        addresses.store_answers("cg_new")
    if progress:
        progress("insert", 1, 1)
