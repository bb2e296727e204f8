"""Prometheus metrics: what each server process counts, and what is read from the ledger
when ``/metrics`` is scraped.

Counters and histograms are updated by the process that serves the request. When several
uvicorn workers serve one port, ``casegrid serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before they start, and prometheus-client's multiprocess mode adds the
workers' files up at scrape time (its documented set-up). The ledger's own figures (open
and overdue cases by subdistrict, the notification outbox) are read from the database at
scrape time by :class:`LedgerCollector`, so they are the same whichever worker answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
from sqlalchemy import Engine, text

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


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if the server set one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


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
    pool = engine.pool
    POOL_IN_USE.set(pool.checkedout())  # type: ignore[attr-defined]
    POOL_SIZE.set(pool.size())  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    if multiprocess_dir():
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
