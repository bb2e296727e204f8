"""Where PostgreSQL's time goes during a benchmark: ``pg_stat_statements`` of the run.

The throwaway cluster preloads the extension (:data:`PRELOAD`); a benchmark resets the
counters right before its measured part and reads the statements that took the most time
right after. Only top-level statements are tracked (the module's default), so a trigger's
work counts in the statement that fired it and the shares add up. The times are wall time
inside the server: on a busy machine they include waiting for a CPU.

Without the extension (a database the harness did not start, a server without the
library loaded) :func:`reset` says so and :func:`top` finds nothing; the benchmark goes on
without the breakdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

# Server settings for Cluster.start(settings=...).
PRELOAD = {"shared_preload_libraries": "pg_stat_statements"}

_TOP_SQL = """
SELECT calls, total_exec_time AS total_ms, rows, query,
       total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
"""


@dataclass
class StatementTime:
    """One normalised statement's calls and server time since the last reset."""

    calls: int
    total_ms: float
    rows: int
    share: float  # of the time of every statement tracked in this database
    query: str


def reset(engine: Engine) -> bool:
    """Create the extension if needed and zero its counters; False when it is unavailable."""
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            conn.execute(text("SELECT pg_stat_statements_reset()"))
    except DBAPIError:  # not installed, or not in shared_preload_libraries
        return False
    return True


def top(engine: Engine, n: int = 6) -> list[StatementTime]:
    """The ``n`` statements of this database that took the most time since :func:`reset`
    (empty when the extension is unavailable)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(_TOP_SQL)).all()
    except DBAPIError:
        return []
    return [StatementTime(r.calls, r.total_ms, r.rows, r.share or 0.0, r.query)
            for r in rows[:n]]


def short(query: str, width: int = 70) -> str:
    """A statement on one line, whitespace collapsed, cut to ``width`` characters."""
    flat = re.sub(r"\s+", " ", query).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def table(statements: list[StatementTime], per: int, unit: str) -> list[str]:
    """Markdown lines: each statement's calls, ms per call, ms per ``unit`` (``per`` of
    them in the measured part) and share of the tracked time."""
    if not statements:
        return []
    lines = [f"| statement | calls | ms per call | ms per {unit} | share |",
             "|---|---|---|---|---|"]
    for s in statements:
        query = short(s.query).replace("|", "\\|").replace("`", "'")
        lines.append(f"| `{query}` | {s.calls:,} | {s.total_ms / max(1, s.calls):.2f} | "
                     f"{s.total_ms / max(1, per):.3f} | {s.share:.0%} |")
    return lines
