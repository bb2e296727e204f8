"""Review and reply due times of a bulk import's rows, computed while the file is read.

The time limits of every (category, channel) pair the import can meet are looked up once,
with the ledger's own rule (``cases.deadlines``: the most specific ``time_limit`` row wins);
each validated chunk then gets its due times from :func:`cases.deadlines_vec.due_many_epoch`
(numpy, equal to the calendar's walk) before it is staged, so the due times travel into the
staging table with the rows and the INSERT reads them from there. The results are those of
``cases.deadlines.stage_initial_deadlines`` on the same rows (tests compare the two).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from cases.calendar import WorkCalendar
from cases.deadlines import _LIMITS_FOR
from cases.deadlines_vec import due_many_epoch

# Every pair once; key = its position in the arrays (WITH ORDINALITY counts from 1).
_PAIRS_REL = (
    "SELECT k.key, now() AS start, k.category_code, k.channel"
    " FROM unnest(CAST(:cats AS text[]), CAST(:chs AS text[]))"
    " WITH ORDINALITY AS k(category_code, channel, key)"
)


class InitialDue:
    """The review and reply limits of every (category, channel) pair, and the calendar."""

    def __init__(self, conn: Connection, calendar: WorkCalendar, categories: Iterable[str],
                 channels: Iterable[str]):
        pairs = [(c, h) for c in sorted(categories) for h in channels]
        self.calendar = calendar
        self.pairs = pd.MultiIndex.from_tuples(pairs, names=["category_code", "channel"])
        n = len(pairs)
        self.amount = {s: np.full(n, np.nan) for s in ("review", "reply")}
        self.unit = {s: np.full(n, None, dtype=object) for s in ("review", "reply")}
        rows = conn.execute(text(_LIMITS_FOR.replace("{rel}", _PAIRS_REL)),
                            {"cats": [p[0] for p in pairs], "chs": [p[1] for p in pairs]})
        for r in rows:
            i = int(r.key) - 1
            self.amount[r.step][i], self.unit[r.step][i] = float(r.amount), r.unit

    def compute(self, start_s: np.ndarray, category: np.ndarray, channel: np.ndarray
                ) -> tuple[pd.Series, pd.Series, pd.Series]:
        """(review due, reply due) as Unix seconds and the provisional flag, per row; all
        three missing where the pair has no review limit (as ``stage_initial_deadlines``
        stores no row for it), the reply alone where it has no reply limit."""
        n = len(start_s)
        pair = self.pairs.get_indexer(pd.MultiIndex.from_arrays([category, channel]))
        if (pair < 0).any():
            raise ValueError("a (category, channel) pair outside the catalogue")
        start_s = np.asarray(start_s, dtype=np.int64)
        review = pd.Series(pd.NA, index=range(n), dtype="Int64")
        reply = pd.Series(pd.NA, index=range(n), dtype="Int64")
        prov = pd.Series(pd.NA, index=range(n), dtype="boolean")
        has_review = self.unit["review"][pair] != None  # noqa: E711 - elementwise
        if has_review.any():
            rows = np.flatnonzero(has_review)
            p = pair[rows]
            due, flag = due_many_epoch(self.calendar, start_s[rows], self.amount["review"][p],
                                       self.unit["review"][p])
            review.iloc[rows] = due
            prov.iloc[rows] = flag
            with_reply = self.unit["reply"][p] != None  # noqa: E711
            if with_reply.any():
                rows, p = rows[with_reply], p[with_reply]
                due, _ = due_many_epoch(self.calendar, start_s[rows], self.amount["reply"][p],
                                        self.unit["reply"][p])
                reply.iloc[rows] = due
        return review, reply, prov
