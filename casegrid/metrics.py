"""Prometheus metrics: what each server process counts, and what is read from the ledger
when ``/metrics`` is scraped.

Counters and histograms are updated by the process that serves the request. When several
uvicorn workers serve one port, ``casegrid serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before they start, and prometheus-client's multiprocess mode adds the
workers' files up at scrape time (its documented set-up). The ledger's own figures (open
and overdue cases by subdistrict, the notification outbox) are read from the database at
scrape time by :class:`LedgerCollector`, so they are the same whichever worker answers.

**Dead workers.** The pool gauges are ``livesum``: a scrape adds up the live workers' values
only, once each dead worker has been given to prometheus-client's
``multiprocess.mark_process_dead(pid)`` (its documented bookkeeping for a process that
ended; under gunicorn it is called from the ``child_exit`` hook). uvicorn's supervisor has
no such hook, so casegrid calls it from both ends: a worker that shuts down (a stop, a
restart on SIGHUP) marks itself dead in the app's lifespan (:func:`worker_stopping`), and a
worker that died without shutting down (killed, out of memory; the supervisor starts a new
one) is found at the next scrape or worker start (:func:`reap_dead_workers`): every worker
records its pid in a directory of casegrid's own beside the metric files, and a recorded
pid that is no longer a running process is marked dead and forgotten. Its counters stay:
requests it served were served.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, text

from cases.vocabulary import open_sql, overdue_sql

# TODO(issue 20): the ledger's vocabulary module's open condition once it lands.

REQUESTS = Counter("casegrid_http_requests_total", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("casegrid_http_request_duration_seconds",
                    "Time from request to the end of the response", ["method", "route"],
                    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
INTAKE_CASES = Counter("casegrid_intake_cases_total",
                       "Cases submitted through the API: created, or a ticket already known",
                       ["channel", "outcome"])
ROUTING_RULES = Counter("casegrid_routing_rules_total",
                        "Routing rules applied to the cases registered through the API", ["rule"])
INTAKE_BATCH = Histogram("casegrid_intake_batch_size",
                         "Submissions registered together in one intake transaction",
                         buckets=(1, 2, 4, 8, 16, 32, 64, 128))
WORKFLOW_ACTIONS = Counter("casegrid_workflow_actions_total", "Workflow actions taken",
                           ["action", "outcome"])
POOL_IN_USE = Gauge("casegrid_db_pool_connections_in_use",
                    "Database connections checked out of the pool", multiprocess_mode="livesum")
POOL_SIZE = Gauge("casegrid_db_pool_size", "Database pool size per process",
                  multiprocess_mode="livesum")


log = logging.getLogger(__name__)
WORKERS_SUBDIR = "casegrid-workers"  # pids of the serving workers (not a metric file)


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if the server set one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _workers_dir(path: str) -> Path:
    return Path(path) / WORKERS_SUBDIR


def worker_started() -> None:
    """A serving process starts (the app's lifespan): in multiprocess mode, record its pid
    and mark dead any worker that ended without shutting down."""
    path = multiprocess_dir()
    if path is None:
        return
    workers = _workers_dir(path)
    workers.mkdir(exist_ok=True)
    (workers / str(os.getpid())).touch()
    reap_dead_workers()


def worker_stopping() -> None:
    """A serving process shuts down (the app's lifespan): in multiprocess mode, its live
    gauges leave the sums now (``mark_process_dead``) and its pid is forgotten."""
    path = multiprocess_dir()
    if path is None:
        return
    pid = os.getpid()
    multiprocess.mark_process_dead(pid, path)
    (_workers_dir(path) / str(pid)).unlink(missing_ok=True)


def reap_dead_workers() -> list[int]:
    """Mark dead (``mark_process_dead``) every recorded worker whose process has ended;
    returns their pids."""
    path = multiprocess_dir()
    if path is None:
        return []
    workers = _workers_dir(path)
    dead = []
    for entry in (workers.iterdir() if workers.is_dir() else ()):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid != os.getpid() and not _running(pid):
            multiprocess.mark_process_dead(pid, path)
            entry.unlink(missing_ok=True)
            dead.append(pid)
    if dead:
        log.warning("metrics: worker(s) %s ended without shutting down; their gauges left "
                    "the sums", ", ".join(map(str, dead)))
    return dead


def _running(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, ended but not yet collected by its
    parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the pid was reused, ours is gone
    try:
        # Linux: the state is the field after the parenthesised command name.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def watch_pool(engine: Engine) -> None:
    """Keep the pool gauges of this process current as connections are checked out and
    in (SQLAlchemy's pool events), so a scrape answered by another worker adds up every
    worker's present use, not each one's use at its own last scrape."""
    POOL_SIZE.set(engine.pool.size())  # type: ignore[attr-defined]

    @event.listens_for(engine, "checkout")
    def _out(*_args) -> None:  # noqa: ANN002
        POOL_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _in(*_args) -> None:  # noqa: ANN002
        POOL_IN_USE.dec()


class LedgerCollector(Collector):
    """Gauges read from the ledger at scrape time: open and overdue cases by subdistrict,
    and, where the notification outbox exists, its pending lag and failed deliveries."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_ = GaugeMetricFamily("casegrid_cases_open", "Open cases", labels=["subdistrict"])
        overdue = GaugeMetricFamily("casegrid_cases_overdue", "Overdue open cases",
                                    labels=["subdistrict"])
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                f"SELECT coalesce(c.subdistrict_code, 'none') AS sd, "
                f"count(*) AS open, count(*) FILTER (WHERE {overdue_sql('c')}) AS overdue "
                f"FROM \"case\" c "
                f"WHERE {open_sql('c')} GROUP BY 1 ORDER BY 1")).all()
            for sd, n_open, n_overdue in rows:
                open_.add_metric([sd], n_open)
                overdue.add_metric([sd], n_overdue)
            yield open_
            yield overdue
            yield from self._outbox(conn)

    def _outbox(self, conn) -> Iterator[GaugeMetricFamily]:  # noqa: ANN001
        if not conn.execute(text("SELECT to_regclass('outbox') IS NOT NULL")).scalar_one():
            return
        lag, failed = conn.execute(text(
            "SELECT coalesce(extract(epoch FROM now() - min(created_at)) "
            "FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL), 0), "
            "count(*) FILTER (WHERE failed_at IS NOT NULL) FROM outbox")).one()
        yield GaugeMetricFamily("casegrid_outbox_lag_seconds",
                                "Age of the oldest undelivered event", value=float(lag))
        yield GaugeMetricFamily("casegrid_outbox_failed", "Events whose delivery failed",
                                value=failed)


def render(engine: Engine) -> tuple[bytes, str]:
    """The exposition text of every metric (this process's, or all workers' in
    multiprocess mode) and the ledger's, with its content type."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        reap_dead_workers()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY  # this process's metrics, with the ledger's added below
    collector = LedgerCollector(engine)
    registry.register(collector)
    try:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    finally:
        registry.unregister(collector)
