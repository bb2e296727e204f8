"""bench/pgstat.py: PostgreSQL's time by statement, from pg_stat_statements of a cluster
started with the library preloaded (as the benchmark harness starts its own)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text

from bench import pgstat
from casegrid.cluster import Cluster, ClusterError, free_port
from casegrid.db import make_engine


@pytest.fixture(scope="module")
def preloaded_engine():
    """An engine on a throwaway cluster started with pgstat.PRELOAD."""
    cluster = Cluster(data_dir=Path(tempfile.mkdtemp(prefix="casegrid-pgstat-")),
                      port=free_port(), db_name="pgstat")
    cluster.start(fast=True, settings=pgstat.PRELOAD)
    try:
        cluster.create_database("pgstat")
        engine = make_engine(cluster.url("pgstat"))
        try:
            yield engine
        finally:
            engine.dispose()
    finally:
        cluster.destroy()


def test_top_ranks_the_statements_run_since_the_reset(preloaded_engine):
    with preloaded_engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM generate_series(1, 10)"))  # before the reset
    assert pgstat.reset(preloaded_engine) is True
    with preloaded_engine.begin() as conn:
        for _ in range(5):
            conn.execute(text("SELECT count(*) FROM generate_series(1, 200000) AS heavy"))
        conn.execute(text("SELECT 1 AS light"))
    found = pgstat.top(preloaded_engine, n=20)
    heavy = [s for s in found if "heavy" in s.query]
    assert len(heavy) == 1 and heavy[0].calls == 5 and heavy[0].rows == 5
    # ranked by time: the heavy statement first, and the shares are fractions of one whole
    assert found[0] is heavy[0]
    assert 0 < heavy[0].share <= 1 and sum(s.share for s in found) == pytest.approx(1, abs=1e-6)
    # the statement run before the reset is gone
    assert not [s for s in found if "generate_series" in s.query and "heavy" not in s.query]

    lines = pgstat.table(found[:2], per=10, unit="case")  # 10 cases, 5 calls
    assert lines[0] == "| statement | calls | ms per call | ms per case | share |"
    assert "heavy" in lines[2] and "| 5 |" in lines[2]
    per_call, per_case = (float(x) for x in lines[2].split("|")[3:5])
    assert per_call == pytest.approx(heavy[0].total_ms / 5, abs=0.01)
    assert per_case == pytest.approx(heavy[0].total_ms / 10, abs=0.001)


def test_without_the_preloaded_library_there_is_no_breakdown(engine):
    """The suite's own cluster does not preload it: no error, no rows, no table."""
    assert pgstat.reset(engine) is False
    assert pgstat.top(engine) == []
    assert pgstat.table([], per=10, unit="case") == []


def test_short_collapses_whitespace_and_cuts_long_statements():
    assert pgstat.short("SELECT  1\n  FROM\tt") == "SELECT 1 FROM t"
    cut = pgstat.short("SELECT " + "x, " * 100, width=20)
    assert len(cut) == 20 and cut.endswith("…")


@pytest.mark.parametrize("settings", [{"shared_preload_libraries": "a b"},
                                      {"work_mem": "1GB'; rm -rf /"},
                                      {"Work Mem": "1"}])
def test_cluster_refuses_settings_a_shell_would_split(settings, tmp_path):
    cluster = Cluster(data_dir=tmp_path / "pg", port=free_port(), db_name="x")
    with pytest.raises(ClusterError, match="not a plain name=value"):
        cluster.start(settings=settings)
    assert not (tmp_path / "pg" / "pgdata").exists()  # refused before initdb
