"""/metrics (who may scrape, what it counts, the ledger's gauges beside a direct count) and
the request log (one JSON line per request, never a phone number or a password)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.app import create_app
from casegrid.cluster import free_port
from casegrid.logs import JsonFormatter
from casegrid.metrics import WORKERS_SUBDIR
from casegrid.settings import Settings
from cases.tokens import create_token
from tests.helpers.ledger import COMM_A, make_case

LOOPBACK = ("127.0.0.1", 40000)
PHONE = "13912345678"


def samples(body: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition text, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def tokens(city_engine):
    with city_engine.begin() as conn:
        out = {r: create_token(conn, r, f"t-{r}")[1] for r in ("supervisor", "intake", "admin")}
        out["case"] = make_case(conn, COMM_A)
    return out


def client_for(city_db_url, client=LOOPBACK, **settings) -> TestClient:
    return TestClient(create_app(Settings(**settings), database_url=city_db_url), client=client)


def test_metrics_count_requests_by_route_and_actions_by_type(city_db_url, city_engine, tokens):
    supervisor = {"Authorization": f"Bearer {tokens['supervisor']}"}
    with client_for(city_db_url) as client:
        before = samples(client.get("/metrics").text)
        for _ in range(3):
            assert client.get("/health").status_code == 200
        r = client.post(f"/api/v1/cases/{tokens['case']}/actions",
                        json={"action": "accept", "version": 1}, headers=supervisor)
        assert r.status_code == 200, r.text
        r = client.post(f"/api/v1/cases/{tokens['case']}/actions",
                        json={"action": "accept"}, headers=supervisor)
        assert r.status_code == 409
        r = client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        after = samples(r.text)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("casegrid_http_requests_total", method="GET", route="/health", status="200") == 3
    assert grew("casegrid_http_requests_total", method="POST",
                route="/api/v1/cases/{case_id}/actions", status="409") == 1
    assert grew("casegrid_http_request_duration_seconds_count", method="GET",
                route="/health") == 3
    assert grew("casegrid_workflow_actions_total", action="accept", outcome="done") == 1
    assert grew("casegrid_workflow_actions_total", action="accept", outcome="conflict") == 1
    assert value(after, "casegrid_db_pool_size") > 0


def test_open_and_overdue_gauges_agree_with_a_direct_count(city_db_url, city_engine, tokens):
    with city_engine.begin() as conn:
        for _ in range(4):
            make_case(conn, COMM_A)
        conn.execute(text('UPDATE "case" SET current_due_at = now() + CASE WHEN id IN '
                          '(SELECT id FROM "case" ORDER BY id LIMIT 2) THEN interval \'-1 hour\' '
                          'ELSE interval \'1 day\' END'))
        direct = {r.sd: (r.open, r.overdue) for r in conn.execute(text(
            "SELECT c.subdistrict_code AS sd, count(*) AS open, "
            "count(*) FILTER (WHERE c.current_due_at < now()) AS overdue FROM \"case\" c "
            "WHERE c.closed_at IS NULL GROUP BY 1"))}
    with client_for(city_db_url) as client:
        found = samples(client.get("/metrics").text)
    assert direct and sum(o for o, _ in direct.values()) == 5
    for sd, (n_open, n_overdue) in direct.items():
        assert value(found, "casegrid_cases_open", subdistrict=sd) == n_open
        assert value(found, "casegrid_cases_overdue", subdistrict=sd) == n_overdue
    assert sum(n for (name, _), n in found.items() if name == "casegrid_cases_overdue") == 2


def test_who_may_scrape(city_db_url):
    with client_for(city_db_url, client=("10.1.2.3", 5000)) as client:
        assert client.get("/metrics").status_code == 404  # not from this machine
    with client_for(city_db_url, metrics="off") as client:
        assert client.get("/metrics").status_code == 404
    with client_for(city_db_url, client=("10.1.2.3", 5000), metrics="token",
                    metrics_token="s3cret-scrape") as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
        r = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert r.status_code == 200 and "casegrid_http_requests_total" in r.text
    with client_for(city_db_url, metrics="token") as client:  # no token configured: nobody
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.fixture
def json_log():
    """The request logger's lines, formatted as CASEGRID_LOG_FORMAT=json formats them."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("casegrid.request")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield buf
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_one_json_line_per_request_without_personal_data(city_db_url, tokens, json_log):
    intake = {"Authorization": f"Bearer {tokens['intake']}"}
    supervisor = {"Authorization": f"Bearer {tokens['supervisor']}"}
    with client_for(city_db_url) as client:
        r = client.post("/api/v1/cases", headers=intake, json={
            "category": "0599", "channel": "hotline_12345", "reporter_phone": PHONE,
            "reporter_name": "王先生", "description": f"噪音, 电话{PHONE}",
            "reported_at": "2026-06-01T21:30:00+08:00", "lon": 117.1652, "lat": 35.0871})
        assert r.status_code == 201, r.text
        client.get(f"/api/v1/cases?phone={PHONE}&password=hunter2", headers=supervisor)
        r = client.post(f"/api/v1/cases/{tokens['case']}/actions",
                        json={"action": "accept", "version": 1},
                        headers={**supervisor, "X-Request-ID": "gateway-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "gateway-42"
    text_out = json_log.getvalue()
    lines = [json.loads(line) for line in text_out.splitlines()]
    assert len(lines) == 3
    assert [ln["route"] for ln in lines] == [
        "/api/v1/cases", "/api/v1/cases", "/api/v1/cases/{case_id}/actions"]
    assert [ln["status"] for ln in lines][::2] == [201, 200]
    action = lines[2]
    assert action["request_id"] == "gateway-42" and action["case_id"] == tokens["case"]
    assert all(ln["duration_ms"] >= 0 and len(ln["request_id"]) >= 8 for ln in lines)
    assert PHONE not in text_out and "hunter2" not in text_out and "王先生" not in text_out


@contextmanager
def serving_workers(url: str, tmp_path: Path, workers: int = 2):
    """`casegrid serve --workers N` in its own process group; yields the base URL, the
    supervisor process and the multiprocess directory it made (under ``tmp_path``)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CASEGRID_PORT": str(port),
           "TMPDIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "casegrid.cli", "serve", "--workers",
                             str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.2)
        (metrics_dir,) = tmp_path.glob("casegrid-metrics-*")
        yield base, proc, metrics_dir
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def worker_pids(metrics_dir: Path, count: int, not_in: set[int] = frozenset()) -> set[int]:
    """The pids the serving workers recorded, once ``count`` workers not in ``not_in``
    have started."""
    deadline = time.monotonic() + 120  # a worker's start takes seconds on a busy machine
    while True:
        pids = {int(p.name) for p in (metrics_dir / WORKERS_SUBDIR).iterdir()}
        if len(pids - set(not_in)) >= count:
            return pids
        assert time.monotonic() < deadline, f"workers recorded: {pids}"
        time.sleep(0.2)


def test_several_workers_report_one_sum(city_db_url, tmp_path):
    """`casegrid serve --workers 2`: whichever worker answers the scrape, the request
    counts are the sum over both (prometheus-client's multiprocess mode)."""
    with serving_workers(city_db_url, tmp_path) as (base, _proc, _dir):
        for _ in range(30):  # new connections: the kernel spreads them over the workers
            assert httpx.get(f"{base}/health").status_code == 200
        seen = set()
        for _ in range(6):
            found = samples(httpx.get(f"{base}/metrics").text)
            seen.add(value(found, "casegrid_http_requests_total", method="GET",
                           route="/health", status="200"))
        assert seen == {31.0}  # 30 and the first probe that found the server up
    assert not list(tmp_path.glob("casegrid-metrics-*"))  # the server cleans up after itself


def test_dead_workers_leave_the_live_gauges(city_db_url, tmp_path):
    """A worker killed outright (the supervisor starts another) and a worker stopped are
    marked dead (prometheus-client's mark_process_dead): the pool gauges add up the live
    workers only, while the dead one's counted requests stay."""
    pool = Settings().pool_size
    with serving_workers(city_db_url, tmp_path) as (base, proc, metrics_dir):
        first = worker_pids(metrics_dir, 2)

        def scrape() -> dict:
            return samples(httpx.get(f"{base}/metrics").text)

        for _ in range(10):
            httpx.get(f"{base}/health")
        assert value(scrape(), "casegrid_db_pool_size") == 2 * pool
        before = value(scrape(), "casegrid_http_requests_total", method="GET",
                       route="/health", status="200")
        victim = min(first)
        os.kill(victim, signal.SIGKILL)  # no shutdown runs: only the files can tell
        now = worker_pids(metrics_dir, 1, not_in=first)
        assert victim not in now, "the new worker marks the dead one at its start"
        assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
        for _ in range(5):  # whichever worker answers
            found = scrape()
            assert value(found, "casegrid_db_pool_size") == 2 * pool, found
            assert value(found, "casegrid_http_requests_total", method="GET", route="/health",
                         status="200") >= before
        # A worker told to stop (SIGTERM) shuts down and marks itself dead on the way out,
        # before the supervisor's replacement has started.
        leaving = min(now)
        os.kill(leaving, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while (metrics_dir / WORKERS_SUBDIR / str(leaving)).exists():
            assert time.monotonic() < deadline, "the stopping worker did not mark itself dead"
            time.sleep(0.05)
        assert not list(metrics_dir.glob(f"gauge_live*_{leaving}.db"))
        worker_pids(metrics_dir, 1, not_in=now)
        assert value(scrape(), "casegrid_db_pool_size") == 2 * pool
    log = (tmp_path / "serve.log").read_text()
    assert f"worker(s) {leaving} ended without shutting down" not in log
    assert f"worker(s) {victim} ended without shutting down" in log


def test_intake_counts_cases_rules_and_batches(city_db_url, tokens):
    intake = {"Authorization": f"Bearer {tokens['intake']}"}
    body = {"category": "0599", "channel": "hotline_12345", "description": "噪音",
            "reported_at": "2026-06-01T21:30:00+08:00", "lon": 117.1652, "lat": 35.0871,
            "external_id": "metrics-1"}
    with client_for(city_db_url) as client:
        before = samples(client.get("/metrics").text)
        r = client.post("/api/v1/cases", headers=intake, json=body)
        assert r.status_code == 201, r.text
        rule = r.json()["routing"]["rule"]
        assert client.post("/api/v1/cases", headers=intake, json=body).status_code == 200
        after = samples(client.get("/metrics").text)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("casegrid_intake_cases_total", channel="hotline_12345", outcome="created") == 1
    assert grew("casegrid_intake_cases_total", channel="hotline_12345", outcome="known") == 1
    assert grew("casegrid_routing_rules_total", rule=rule) == 1
    assert grew("casegrid_intake_batch_size_count") == 2
