"""CPU time of the processes behind a benchmark (Linux ``/proc``): the server's session and
a PostgreSQL cluster's backends, so a throughput figure can be set against the CPU it took.

On a machine with ``n`` cores, a server that spends ``c`` CPU-milliseconds per request
(its own processes plus the database's) cannot serve more than ``n * 1000 / c`` requests
per second however it is tuned; the benchmark reports that ceiling beside the rate.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _with_stat(field: int, value: int) -> set[int]:
    """Live processes whose /proc stat ``field`` (counted from the state, 0) is ``value``."""
    out = set()
    for pid in _pids():
        fields = _stat(pid)
        if fields and int(fields[field]) == value:
            out.add(pid)
    return out


def session_pids(session_id: int) -> set[int]:
    """Processes of a session (a server started with ``start_new_session=True`` leads its
    own session, so this is the server and every worker it forked)."""
    return _with_stat(3, session_id)  # stat field 6: session


def children(parent: int) -> set[int]:
    """The live child processes of ``parent``."""
    return _with_stat(1, parent)  # stat field 4: parent


def cluster_pids(pgdata: Path) -> set[int]:
    """The postmaster of ``pgdata`` and its children (backends, WAL writer, autovacuum)."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return set()
    return {postmaster} | children(postmaster)


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process of ``pids``."""
    out = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # fields 14, 15
    return out


def used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_seconds` readings (a process that started
    in between counts from zero; one that ended is lost, which only undercounts)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())
