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


def _postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cluster_pids(pgdata: Path) -> set[int]:
    """The postmaster of ``pgdata`` and its children (backends, WAL writer, autovacuum)."""
    postmaster = _postmaster(pgdata)
    return set() if postmaster is None else {postmaster} | children(postmaster)


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process of ``pids``."""
    out = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # fields 14, 15
    return out


# The key of :func:`cluster_cpu`'s reaped total (no process has pid 0).
REAPED = 0


def cluster_cpu(pgdata: Path) -> dict[int, float]:
    """:func:`cpu_seconds` of a cluster's processes, and under :data:`REAPED` the CPU of the
    postmaster's children that have ended: the kernel adds an ended child's time to its
    parent's cutime and cstime. Parallel workers (of an index build, say) and autovacuum
    workers often live less than a second, between two readings."""
    postmaster = _postmaster(pgdata)
    if postmaster is None:
        return {}
    out = cpu_seconds({postmaster} | children(postmaster))
    fields = _stat(postmaster)
    if fields:
        out[REAPED] = (int(fields[13]) + int(fields[14])) / _TICK  # fields 16, 17
    return out


def used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings (:func:`cpu_seconds` or :func:`cluster_cpu`).
    A process that started in between counts from zero. One that ended is lost, which only
    undercounts, except in :func:`cluster_cpu` readings: there its whole time is in the
    reaped total, so what it had used before the first reading comes off."""
    used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    if REAPED in after:
        used -= sum(t for pid, t in before.items() if pid not in after)
    return used


def run_seconds(pid: int) -> float | None:
    """CPU seconds ``pid`` has run, to the nanosecond (``/proc/<pid>/schedstat``; the
    ``stat`` fields count 10 ms ticks, too coarse for a round of a few hundred ms), or
    None when the process is gone or the kernel keeps no schedstat."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None
