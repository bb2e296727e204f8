"""``casegrid.csv_text.text_to_float``: Arrow's number parser where it is safe, pandas'
``to_numeric(errors="coerce")`` everywhere else, the same numbers either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casegrid import csv_text
from casegrid.csv_text import TEXT, text_to_float

ODD_CELLS = ["117.1", " 117.1", "117.1 ", "117.1\t", "+117.1", "-0", "1e5", "1E5", "inf", "-Infinity",
             "nan", "NaN", "", "  ", "1.", ".5", "1_000", "0x10", "1,5", "１１７.１", "117.1e", "e5",
             "--1", "1e400", "1e-400", "4.9e-324", "1d5", "abc", "12345678901234567890"]


def _pandas(values) -> np.ndarray:  # noqa: ANN001
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64)


@pytest.mark.parametrize("cell", ODD_CELLS)
def test_each_cell_reads_as_pandas_reads_it(cell):
    got = text_to_float(pd.Series(["35.09", cell], dtype=TEXT))
    np.testing.assert_array_equal(got, _pandas(["35.09", cell]))


def test_a_column_of_plain_numbers_is_read_by_arrow_with_the_same_doubles(monkeypatch):
    rng = np.random.default_rng(7)
    texts = [repr(float(v)) for v in rng.uniform(-180, 180, 5000)] + ["117", "-0.0", "1e-7", "+35.5"]
    expected = _pandas(texts)

    def refuse(*_a, **_k):
        raise AssertionError("pandas was asked although every cell is a plain number")

    monkeypatch.setattr(csv_text.pd, "to_numeric", refuse)
    got = text_to_float(pd.Series(texts, dtype=TEXT))
    np.testing.assert_array_equal(got, expected)
    got[0] = 1.0  # callers may fill in place
    assert got.dtype == np.float64


def test_missing_cells_floats_and_mixed_objects():
    np.testing.assert_array_equal(text_to_float(pd.Series(["1.5", None, "2"], dtype=TEXT)),
                                  [1.5, np.nan, 2.0])
    floats = np.array([117.123456789012, -0.5])
    np.testing.assert_array_equal(text_to_float(floats), floats)
    np.testing.assert_array_equal(text_to_float(np.array(["1", 2.5, None], dtype=object)),
                                  [1.0, 2.5, np.nan])
    assert text_to_float(np.array([], dtype=object)).shape == (0,)


def test_the_answer_is_a_new_array_even_for_a_numeric_column():
    column = pd.Series([117.1, 35.0])
    got = text_to_float(column)
    got[0] = 0.0
    assert column[0] == 117.1
