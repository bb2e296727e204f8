"""A streaming XLSX writer for large tables: rows go straight into the zip as they come, so
memory stays flat for a million rows, and a row costs one string join.

Why not openpyxl's write-only workbook or XlsxWriter's constant_memory mode: both build an
object per cell, and on this project's two cores they wrote a 31-column million-row ledger
in tens of minutes (``bench/RESULTS.md``, ledger_export); this writer needs about as long
as the CSV. It writes what a ledger needs and nothing more: text as inline strings,
numbers, blank cells, a bold frozen header row, several sheets. ``openpyxl`` reads the
result in the tests.

Usage::

    with XlsxStream(path) as book:
        sheet = book.sheet("台账", header)
        sheet.rows(block_of_tuples)
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

MAX_ROWS = 1_048_576        # Excel's rows per sheet, the header included
MAX_CELL_TEXT = 32_767      # Excel's characters per cell
# Characters XML 1.0 cannot carry (C0 controls but tab, line feed, carriage return).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_R_NS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f"<styleSheet {_NS}>"
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>")
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f"<worksheet {_NS} {_R_NS}><sheetViews><sheetView workbookViewId=\"0\">"
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    "</sheetView></sheetViews><sheetData>")
_SHEET_TAIL = "</sheetData></worksheet>"


def _text_cell(value: str, style: str = "") -> str:
    value = _ILLEGAL.sub("", value)[:MAX_CELL_TEXT]
    space = ' xml:space="preserve"' if value[:1].isspace() or value[-1:].isspace() else ""
    return f'<c t="inlineStr"{style}><is><t{space}>{escape(value)}</t></is></c>'


def _cell(value: object) -> str:
    if value is None or value == "":
        return "<c/>"
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f"<c><v>{value!r}</v></c>"
    return _text_cell(str(value))


class Sheet:
    """One worksheet being written; rows are appended in order."""

    def __init__(self, fh: IO[bytes], ncols: int):
        self._fh = fh
        self.ncols = ncols
        self.rows_written = 0        # header included

    def header(self, names: Sequence[str]) -> None:
        cells = "".join(_text_cell(str(n), ' s="1"') for n in names)
        self._write(f'<row r="1">{cells}</row>')
        self.rows_written = 1

    def rows(self, rows: Iterable[Sequence[object]]) -> None:
        """Append rows (sequences of text, numbers or None)."""
        parts = []
        n = self.rows_written
        for row in rows:
            n += 1
            if n > MAX_ROWS:
                raise ValueError(f"a sheet holds at most {MAX_ROWS:,} rows")
            parts.append(f'<row r="{n}">{"".join(_cell(v) for v in row)}</row>')
        self.rows_written = n
        self._write("".join(parts))

    def _write(self, s: str) -> None:
        self._fh.write(s.encode("utf-8"))

    def close(self) -> None:
        self._fh.write(_SHEET_TAIL.encode("utf-8"))
        self._fh.close()


class XlsxStream:
    """A workbook written to ``out`` (a path or a binary file) sheet by sheet."""

    def __init__(self, out: str | Path | IO[bytes]):
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self._names: list[str] = []
        self._current: Sheet | None = None

    def sheet(self, name: str, header: Sequence[str]) -> Sheet:
        """Start a new sheet (the previous one is finished) with a bold, frozen header row."""
        if self._current:
            self._current.close()
        if len(name) > 31 or any(c in name for c in "[]:*?/\\"):
            raise ValueError(f"{name!r} is not a valid sheet name")
        self._names.append(name)
        fh = self._zip.open(f"xl/worksheets/sheet{len(self._names)}.xml", "w",
                            force_zip64=True)
        fh.write(_SHEET_HEAD.encode("utf-8"))
        self._current = Sheet(fh, len(header))
        self._current.header(header)
        return self._current

    def close(self) -> None:
        """Finish the last sheet and write the workbook's parts."""
        if self._current:
            self._current.close()
            self._current = None
        n = len(self._names)
        sheets = "".join(f"<sheet name={quoteattr(name)} sheetId=\"{i}\" r:id=\"rId{i}\"/>"
                         for i, name in enumerate(self._names, start=1))
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/'
            f'2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1))
        rels += (f'<Relationship Id="rId{n + 1}" Type="http://schemas.openxmlformats.org/'
                 'officeDocument/2006/relationships/styles" Target="styles.xml"/>')
        decl = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, n + 1))
        parts = {
            "[Content_Types].xml": (
                decl + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                'content-types"><Default Extension="rels" ContentType="application/'
                'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
                'ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
                'sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="'
                'application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                + overrides + "</Types>"),
            "_rels/.rels": (
                decl + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.'
                'org/officeDocument/2006/relationships/officeDocument" '
                'Target="xl/workbook.xml"/></Relationships>'),
            "xl/workbook.xml": (decl + f"<workbook {_NS} {_R_NS}><sheets>{sheets}</sheets>"
                                "</workbook>"),
            "xl/_rels/workbook.xml.rels": (
                decl + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                f'relationships">{rels}</Relationships>'),
            "xl/styles.xml": _STYLES,
        }
        for name, body in parts.items():
            self._zip.writestr(name, body)
        self._zip.close()

    def __enter__(self) -> XlsxStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
