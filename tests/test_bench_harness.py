"""The benchmark harness must not rot: a tiny real run writes RESULTS rows, a missing entry
point becomes a "skipped" row instead of a crash, and the helpers compute what they say."""

from __future__ import annotations

import subprocess
import sys
import time

import geopandas as gpd
import numpy as np
import pytest
import shapely

from bench import harness
from bench.harness import Outcome, Row, Skip, percentile, render_results
from bench.points import SHARE_GAP_OUTSIDE, generate_points
from casegrid.demo.city import SAMPLE_DIR
from casegrid.settings import PROJECT_ROOT


def test_percentile_interpolates_and_handles_edges():
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_ratio_needs_a_nonzero_baseline():
    assert Row("b", "f", 6.0, "s", "base", 2.0).ratio == pytest.approx(3.0)
    assert Row("b", "f", 6.0, "s", "base", 0.0).ratio is None
    assert Row("b", "f", 6.0, "s").ratio is None


def test_results_table_marks_misses_and_skips():
    rows = [
        Row("routing", "route-file", 30.0, "s", "bare join", 10.0, "≤ 2× baseline", False),
        Row("stats", "stats", 120.0, "ms", "count", 40.0, "< 500 ms", True),
        Row.skipped("maps", "maps.hotspots is missing"),
    ]
    md = render_results(rows, ["## Extra\n\ntext"], {"CPU": "test cpu"}, ["--quick"], 90.0)
    lines = md.splitlines()
    route = next(line for line in lines if line.startswith("| routing"))
    assert "3.00×" in route and "**no**" in route
    assert "| yes |" in next(line for line in lines if line.startswith("| stats"))
    assert "skipped: maps.hotspots is missing" in next(line for line in lines if line.startswith("| maps"))
    assert "## Extra" in md and "**CPU**: test cpu" in md
    assert "python -m bench --quick" in md


def test_missing_entry_point_is_a_skipped_row(monkeypatch):
    monkeypatch.setitem(harness.BENCHES, "ghost", "bench.no_such_benchmark_module")
    outcome = harness._run_one("ghost", ctx=None)  # type: ignore[arg-type]
    assert [r.figure for r in outcome.rows] == ["skipped"]
    assert "entry point missing" in outcome.rows[0].note


def test_skip_and_failure_never_stop_the_run(monkeypatch, tmp_path):
    mod = tmp_path / "bench_fake_for_test.py"
    mod.write_text(
        "from bench.harness import Skip\n"
        "def run(ctx):\n"
        "    if ctx == 'skip':\n"
        "        raise Skip('not here')\n"
        "    raise ValueError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(harness.BENCHES, "fake", "bench_fake_for_test")
    skipped = harness._run_one("fake", ctx="skip")  # type: ignore[arg-type]
    failed = harness._run_one("fake", ctx="fail")  # type: ignore[arg-type]
    assert skipped.rows[0].note == "skipped: not here"
    assert failed.rows[0].figure == "failed" and "ValueError: boom" in failed.rows[0].note
    assert isinstance(Outcome().rows, list) and issubclass(Skip, Exception)


def test_points_are_deterministic_and_mixed():
    lon, lat = generate_points(4000, seed=5)
    lon2, lat2 = generate_points(4000, seed=5)
    assert np.array_equal(lon, lon2) and np.array_equal(lat, lat2)
    assert not np.array_equal(lon, generate_points(4000, seed=6)[0])
    comms = gpd.read_file(SAMPLE_DIR / "communities.geojson").to_crs(4326)
    union = shapely.union_all(comms.geometry.values)
    inside = shapely.contains_xy(union, lon, lat).mean()
    # ~90% drawn inside, ~5% near edges (half of them inside), ~5% outside by construction
    assert 0.88 <= inside <= 0.96
    assert 1 - inside >= SHARE_GAP_OUTSIDE * 0.9


@pytest.mark.slow
def test_quick_routing_run_writes_results(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scale", "0.4", "--only", "routing",
         "--out", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    md = out.read_text(encoding="utf-8")
    table = [line for line in md.splitlines() if line.startswith("| routing")]
    assert any("route-file, 2,000 points" in line for line in table)
    assert any("single route() p99" in line for line in table)
    assert any("piece-size sweep" in line for line in table)
    assert not any("failed" in line or "skipped" in line for line in table)
    assert "fsync=on" in md  # a normally configured server, not the tests' fast mode
    assert "| 256 |" in md or "| 256 **fastest** |" in md
    assert "destroying the throwaway cluster" in proc.stdout


def test_cpu_accounting_counts_a_session_and_a_cluster(pg_cluster, engine):
    """bench.cpu: the CPU a busy child session uses is counted; the cluster's processes
    include the backend serving this test's connection."""
    from sqlalchemy import text

    from bench.cpu import cluster_pids, cpu_seconds, session_pids, used_between

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        pids = session_pids(child.pid)
        assert pids == {child.pid}
        before = cpu_seconds(pids)
        time.sleep(1.0)
        # one busy thread for 1 s of wall time: some CPU (it shares the cores), never more
        # than the wall time (plus a clock tick)
        assert 0.1 < used_between(before, cpu_seconds(pids)) < 1.2
    finally:
        child.kill()
        child.wait()
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert backend in cluster_pids(pg_cluster.pgdata)


def test_cluster_cpu_counts_parallel_workers_that_ended_between_readings(pg_cluster, engine):
    """bench.cpu.cluster_cpu: a parallel query's workers start and end between two readings;
    their CPU still counts (the postmaster's reaped total), and the leader's own share is
    small when it does not scan itself."""
    from sqlalchemy import text

    from bench.cpu import REAPED, cluster_cpu, cpu_seconds, used_between

    with engine.connect() as conn:
        conn.execute(text("CREATE UNLOGGED TABLE burn AS SELECT i FROM generate_series(1, 3000000) i"))
        conn.execute(text("ANALYZE burn"))
        for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0",
                        "min_parallel_table_scan_size = 0", "max_parallel_workers_per_gather = 2",
                        "parallel_leader_participation = off"):
            conn.execute(text(f"SET {setting}"))
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        plan = "\n".join(conn.execute(text("EXPLAIN SELECT sum(sqrt(i) * ln(i + 1)) FROM burn")).scalars())
        assert "Workers Planned: 2" in plan, plan
        cluster0, leader0 = cluster_cpu(pg_cluster.pgdata), cpu_seconds({backend})
        t0 = time.perf_counter()
        for _ in range(3):
            conn.execute(text("SELECT sum(sqrt(i) * ln(i + 1)) FROM burn")).scalar_one()
        wall = time.perf_counter() - t0
        after = cluster_cpu(pg_cluster.pgdata)
        cluster = used_between(cluster0, after)
        leader = used_between(leader0, cpu_seconds({backend}))
    assert REAPED in after
    # The workers scanned everything and are gone: without the reaped total the cluster
    # would show little more than the leader's own CPU.
    assert cluster > 0.5 * wall, (cluster, wall, leader)
    assert leader < 0.5 * cluster, (cluster, wall, leader)


@pytest.mark.slow
def test_quick_bulk_import_run_shows_where_the_time_goes(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "bulk_import", "--out", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    md = out.read_text(encoding="utf-8")
    assert any(line.startswith("| bulk_import | import's CPU time ÷ ") for line in md.splitlines())
    section = md.split("## Bulk import: where the time goes", 1)[1].split("\n## ", 1)[0]
    rows = {cells[0]: [float(c) for c in cells[1:]]
            for cells in ([c.strip() for c in line.strip().strip("|").split("|")]
                          for line in section.splitlines()
                          if line.startswith("| ") and not line.startswith("| phase"))}
    assert list(rows) == ["read, validate, COPY, route", "dedup", "insert",
                          "bare COPY + join (baseline)"], rows
    for phase, (wall, python, postgres, busy) in rows.items():
        assert python >= 0 and postgres >= 0, phase
        if wall >= 0.1:
            # Cores busy is computed before rounding, the seconds shown are rounded to 0.1 s
            # (+-0.05 each): it must lie where the shown figures allow (a short phase's
            # 0.1 s and 0.0 + 0.0 s still allow 0.79 cores), to its own 0.01.
            low = max(0.0, python + postgres - 0.1) / (wall + 0.05)
            high = (python + postgres + 0.1) / (wall - 0.05)
            assert low - 0.01 <= busy <= high + 0.01, (phase, wall, python, postgres, busy)
    # The database does the routing and the insert: its CPU shows in those phases.
    assert rows["read, validate, COPY, route"][2] > 0 and rows["insert"][2] > 0
