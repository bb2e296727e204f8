"""Reading a hotline export for the bulk import, without the database: the file in chunks
(CSV or XLSX, every cell as text), each chunk validated and converted
(:mod:`cases.mappings.apply`), repeats of a ticket dropped, free text masked, due times
computed (:mod:`cases.deadlines_vec`) and written as the CSV that COPY reads. It runs in a
worker thread (:func:`read_ahead`) a chunk or two ahead of the database."""

from __future__ import annotations

import codecs
import csv
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from casegrid.csv_text import TEXT, copy_csv
from casegrid.errors import ImportFailed
from cases.bulk_import.report import DEFAULT_CHUNK_ROWS, BulkReport, ProgressFn
from cases.bulk_import.stage import COPY_COLUMNS, Repeats
from cases.deadlines_vec import InitialDue
from cases.mappings import REQUIRED, Mapping
from cases.mappings.apply import validate_chunk
from cases.privacy import MAY_HOLD_CONTACTS, masked_and_original


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


def check_columns(columns: list[str], mapping: Mapping, report: BulkReport) -> None:
    """``ImportFailed`` naming a required column the file lacks (and the columns it has);
    a warning in ``report`` for an optional one (read as blank)."""
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


def chunk_csv(good: pd.DataFrame, due: InitialDue | None, now_s: int | None
              ) -> tuple[bytes, pd.DataFrame | None]:
    """A validated chunk with its due times (from the reported time when ``now_s`` is None,
    else from ``now_s``), split in two: the rows with a point as the CSV COPY reads (an
    unquoted empty field = NULL), and the rows without one (address only), still a frame
    (None when there are none): their points come from the address matcher, which needs the
    database, and their CSV is written once it has put them in
    (``cases.bulk_import._located``). The staged rows are then final: nothing rewrites
    them."""
    good = good.reset_index(drop=True)
    if due is None:
        good["review_s"] = good["reply_s"] = good["due_prov"] = None
    else:
        start = (good["reported_us"].to_numpy() // 1_000_000 if now_s is None
                 else np.full(len(good), now_s, dtype=np.int64))
        good["review_s"], good["reply_s"], good["due_prov"] = due.compute(
            start, good["category_code"].to_numpy(), good["channel"].to_numpy())
    good["address_rule"] = None
    unplaced = good["lon"].isna().to_numpy()
    if not unplaced.any():
        return copy_csv(good, COPY_COLUMNS), None
    if unplaced.all():  # a file of phone calls: no copy of the frame
        return b"", good
    return copy_csv(good[~unplaced], COPY_COLUMNS), good[unplaced]


_T = TypeVar("_T")


def read_ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
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


class RejectFile:
    """The reject CSV, opened on the first rejected row (no rejects, no file)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._fh = None
        self._writer = None

    def write(self, rejects: pd.DataFrame, columns: list[str]) -> None:
        """Append rejected rows with their line and reason (the file's own columns after)."""
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
        """Close the file, if one was opened."""
        if self._fh is not None:
            self._fh.close()


def mask_free_text(good: pd.DataFrame, originals: list[dict]) -> pd.DataFrame:
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


def prepared_chunks(path: Path, mapping: Mapping, catalogue: set[str], default_crs: str,
            chunk_rows: int, report: BulkReport, reasons: Counter[str], rejects: RejectFile,
            due: InitialDue | None, now_s: int | None, repeats: Repeats,
            originals: list[dict] | None = None
            ) -> Iterator[tuple[bytes, pd.DataFrame | None, int, int, list[tuple]]]:
    """Read, validate and date the file chunk by chunk (no database): per chunk the CSV
    of its good rows with a point for COPY (b'' when none), its good rows without one
    (:func:`chunk_csv`), its first and last line, and the progress events it caused.
    Counts into ``report`` and ``reasons``, rejected rows into ``rejects``, later lines of
    a ticket into ``repeats`` (they are not staged). With ``originals``, free text is masked
    and the texts as written collected there (:func:`mask_free_text`)."""
    events: list[tuple] = []
    next_line = 2  # the header is line 1
    columns: list[str] | None = None
    for chunk in read_chunks(path, mapping, chunk_rows, lambda *e: events.append(e)):
        if columns is None:
            columns = list(chunk.columns)
            check_columns(columns, mapping, report)
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
            good = mask_free_text(good, originals)
        events.append(("validate+copy", report.read, None))
        placed, unplaced = chunk_csv(good, due, now_s) if not good.empty else (b"", None)
        yield placed, unplaced, first, next_line - 1, events.copy()
        events.clear()
