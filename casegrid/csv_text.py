"""CSV of a DataFrame, fast. :func:`csv_text` writes, column by column, the text
``DataFrame.to_csv`` writes (a test compares them) in a fraction of its time: for files people
read (``route-file``'s output, ``geo.route_file``). :func:`copy_csv` writes CSV that only
COPY reads (``cases.bulk_import``'s staging), with Arrow, faster still."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

# The dtype casegrid reads CSV cells as: text in Python strings, which is what ``dtype=str``
# gives when pyarrow is not installed. With pyarrow installed (copy_csv needs it) pandas 3
# keeps ``dtype=str`` text in Arrow memory, on which the bulk import's reading and validation
# ran slower (bench/RESULTS.md, issue 20's section, has the figures).
TEXT = pd.StringDtype("python", na_value=np.nan)

# A field CSV must quote (COPY's CSV format, as the csv module's QUOTE_MINIMAL decides).
_CSV_SPECIAL = re.compile(r'[,"\r\n]')


def _csv_fields(col: pd.Series) -> list[str]:
    """One column's CSV fields: '' for a missing value (NULL to COPY), floats as repr()
    (the shortest text that reads back as the same double), text quoted where needed."""
    # By the column's own dtype: a nullable Int64 column's to_numpy() is float64 (NaN for
    # NA), whose repr() would write 1.0 for 1.
    if col.dtype == np.float64:
        values = col.to_numpy()
        out = [repr(v) for v in values.tolist()]
        for i in np.flatnonzero(np.isnan(values)).tolist():
            out[i] = ""
        return out
    if col.dtype in (np.int64, pd.Int64Dtype()):
        out = list(map(str, col.to_numpy(dtype=np.int64, na_value=0).tolist()))
    elif col.dtype in (np.bool_, pd.BooleanDtype()):
        out = np.where(col.to_numpy(dtype=bool, na_value=False), "True", "False").tolist()
    else:
        return _csv_text_fields(col)
    for i in np.flatnonzero(col.isna().to_numpy()).tolist():
        out[i] = ""
    return out


def _csv_text_fields(col: pd.Series) -> list[str]:
    """A text (or other object) column's CSV fields; see :func:`_csv_fields`."""
    values = col.to_numpy(dtype=object, na_value=None).tolist()
    texts = ["" if v is None else v for v in values]
    try:
        joined = "".join(texts)
    except TypeError:  # a value that is not text: field by field below
        joined = None
    # Most columns (ids, codes, names, phones) hold no character CSV quotes: one search of
    # the whole column, instead of one per field, finds that out.
    if joined is not None and not _CSV_SPECIAL.search(joined):
        return texts
    out = []
    special = _CSV_SPECIAL.search
    for v in values:
        if v is None:
            out.append("")
            continue
        v = v if isinstance(v, str) else str(v)
        out.append('"' + v.replace('"', '""') + '"' if special(v) else v)
    return out


def csv_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """``frame[columns].to_csv(header=False, index=False)``, the same text (a test compares
    them) in a fraction of the time: pandas' writer formats every float through Python and
    hands each row to the csv module; here each column is formatted at once and the rows
    joined."""
    if frame.empty:
        return ""
    fields = [_csv_fields(frame[c]) for c in columns]
    return "\n".join(map(",".join, zip(*fields, strict=True))) + "\n"


def copy_csv(frame: pd.DataFrame, columns: tuple[str, ...]) -> bytes:
    """``frame[columns]`` as UTF-8 CSV for ``COPY ... (FORMAT csv)``, written by Arrow's C++
    writer: several times faster than :func:`csv_text` (bench/RESULTS.md), for text nobody
    reads but COPY. COPY reads the same
    values from it as from :func:`csv_text`: a missing value and an empty text are both an
    unquoted empty field (NULL), every other text is quoted, floats are written with the
    shortest digits that read back as the same double."""
    if frame.empty:
        return b""
    arrays = [_arrow_column(frame[c]) for c in columns]
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_arrays(arrays, names=list(columns)), sink,
                     write_options=pa_csv.WriteOptions(include_header=False,
                                                       quoting_style="needed"))
    return sink.getvalue().to_pybytes()


def _arrow_column(col: pd.Series) -> pa.Array | pa.ChunkedArray:
    """One column for :func:`copy_csv`: NaN and None as null, '' as null too (csv_text's
    NULL), values of mixed types as their text."""
    try:
        arr = pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all of one type: as text
        arr = pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                        else str(v) for v in col.tolist()], type=pa.string())
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    return arr


def text_to_float(values: pd.Series | np.ndarray) -> np.ndarray:
    """A column of number texts as float64, NaN where a cell is missing or not a number:
    ``pandas.to_numeric(values, errors="coerce")``. When every cell is a plain number (no
    blank, no spaces, no words) Arrow's parser reads them, many times faster (bench/RESULTS.md;
    the same doubles, -0 kept);
    a column with any other cell goes through pandas, whose verdicts on odd text stand.
    Either way a new array, which the caller may change in place."""
    try:
        arr = pa.array(values, type=pa.string(), from_pandas=True)
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64, copy=True)
