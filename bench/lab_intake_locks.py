"""Lab: what intake's backends wait on over HTTP, masking on beside off.

``python -m bench.lab_intake_locks --cases 150000`` builds a throwaway cluster with the sample
city and a ledger of ``--cases`` (``bench.ledger``), starts two servers as ``casegrid serve
--workers 2`` does, one with ``CASEGRID_PRIVACY_MASK_FREE_TEXT=false``, and drives them with
``wrk -c32`` (``bench/wrk_intake.lua``, every description holding a phone) in rounds of
runs, each round in the order opposite to the last's. During each run a thread samples
``pg_stat_activity`` every ``--interval-ms``: per sample, each client backend of the
database other than the sampler's is counted under its state and wait event. The shares say where the backends' time goes: running, waiting for a
lock another transaction holds (``Lock``: ``transactionid``, ``tuple``), flushing WAL at
COMMIT (``IO:WALSync``, ``LWLock:WALWrite``), waiting for the server's Python while a
transaction is open (``idle in transaction``), or idle.

Per run also: cases stored per second, wrk's p99, and how the kernel shared the 32
connections between the two workers (``ss``; with all of them on one worker there is no
second batch to wait for, so such runs show no lock waits whatever the schema).

``--base TREE --base-revision REV`` adds two more servers, masking off and on, running the
code of ``TREE`` (a ``git worktree add`` of the commit to compare with, through
``PYTHONPATH``) on a copy of the database downgraded to ``REV``: before/after and masking
on/off in one sitting, in rotating order.

``--window`` adds lab-only triggers that time, per batch, the span from the statistics
trigger (``case_stat_ins``, which locks today's ``case_stat`` rows) to the start of COMMIT (a
deferred constraint trigger runs at COMMIT, before the WAL flush), kept in an unlogged table:
how long a batch holds those rows before it even commits. The machine may be shared: compare
variants within a run only (bench/RESULTS.md, issue 28).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import psycopg
from sqlalchemy import make_url, text

from bench.bench_intake import _wrk
from bench.bench_privacy_masking import DESCRIPTION
from bench.harness import bench_settings, log, throwaway_database
from bench.lab_intake_tail import keep_round
from bench.ledger import ensure_cases
from bench.points import generate_points
from bench.server import connections_per_process, serve
from casegrid.db import make_engine

SAMPLE_SQL = """
SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''),
       backend_xid IS NOT NULL
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = current_database()
  AND pid <> pg_backend_pid() AND application_name NOT LIKE 'lab%'"""

# Lab only: when a batch's statistics trigger ran, and when its COMMIT began (a deferred
# constraint trigger fires at COMMIT, before the WAL flush). One row per transaction.
WINDOW_SQL = """
CREATE UNLOGGED TABLE lab_window (xid bigint PRIMARY KEY, locked_at timestamptz,
                                  commit_at timestamptz, cases int);
CREATE FUNCTION lab_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lab.locked_at', clock_timestamp()::text, true);
    RETURN NULL;
END $$;
-- Named to fire right after case_stat_ins (same event: triggers fire in name order).
CREATE TRIGGER case_stat_ins_zz AFTER INSERT ON "case"
    REFERENCING NEW TABLE AS lab_new FOR EACH STATEMENT EXECUTE FUNCTION lab_locked();
CREATE FUNCTION lab_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The first of the batch's deferred events marks the COMMIT; the rest return at once.
    IF current_setting('lab.done', true) = '1' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lab.done', '1', true);
    INSERT INTO lab_window VALUES (txid_current(),
        nullif(current_setting('lab.locked_at', true), '')::timestamptz, clock_timestamp(),
        (SELECT count(*) FROM "case" WHERE xmin::text = txid_current()::text
           AND id >= NEW.id AND id < NEW.id + 64));
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER lab_commit AFTER INSERT ON "case"
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lab_commit();
"""


def _kind(state: str, wtype: str, event: str, wrote: bool) -> str:
    """A backend's state in one sample; ``wrote`` (an xid assigned: the batch's INSERT has
    begun, so past it the statistics rows are locked) splits the open transaction's time."""
    if state == "idle":
        return "idle"
    when = "after INSERT" if wrote else "before INSERT"
    if state.startswith("idle in transaction"):
        return f"app, {when}"
    if wtype == "Lock":
        return f"Lock:{event}"
    if wtype in ("IO", "LWLock") and event.startswith("WAL"):
        return "WAL flush"
    if wtype:
        return f"{wtype}:{event}"
    return f"running, {when}"


def sampler(dsn: str, interval: float, stop: threading.Event, out: Counter) -> None:
    """Count (backend, sample) pairs by kind until ``stop``; ``out['samples']`` the rounds."""
    with psycopg.connect(dsn, autocommit=True, application_name="lab sampler") as conn:
        cur = conn.cursor()
        while not stop.is_set():
            t0 = time.perf_counter()
            for row in cur.execute(SAMPLE_SQL, prepare=True):
                out[_kind(*row)] += 1
            out["samples"] += 1
            rest = interval - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)


def shares(counts: Counter) -> dict[str, float]:
    """Each kind's share of the busy backend-samples (all but idle), and busy per sample."""
    busy = sum(v for k, v in counts.items() if k not in ("idle", "samples"))
    out = {k: v / busy for k, v in counts.items() if k not in ("idle", "samples") and busy}
    out["busy backends per sample"] = busy / max(1, counts["samples"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=150_000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--interval-ms", type=float, default=3.0)
    parser.add_argument("--window", action="store_true", help="time stat trigger to COMMIT")
    parser.add_argument("--base", type=Path, default=None,
                        help="also serve this tree (a worktree of main), masking off and on, "
                             "on a copy of the database downgraded to --base-revision")
    parser.add_argument("--base-revision", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.base and not args.base_revision:
        parser.error("--base needs --base-revision (the base tree's migration head)")

    lab = Path(tempfile.mkdtemp(prefix="casegrid-lablocks-"))
    rounds: list[dict] = []
    with throwaway_database(lab) as (_cluster, url):
        engine = make_engine(url, bench_settings(), application_name="lab")
        from casegrid.demo.city import load_sample_city
        from cases.tokens import create_token

        with engine.begin() as conn:
            gen = load_sample_city(conn)["community_generation"]
        ensure_cases(engine, args.cases, gen, log=log)
        with engine.begin() as conn:
            if args.window:
                conn.execute(text(WINDOW_SQL))
            _, secret = create_token(conn, "intake", "lab load generator")
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        u = make_url(url)
        variants = {"off": ({"CASEGRID_PRIVACY_MASK_FREE_TEXT": "false"}, url),
                    "on": ({"CASEGRID_PRIVACY_MASK_FREE_TEXT": "true"}, url)}
        if args.base:
            engine.dispose()
            _cluster.create_database("casegrid_base", template="casegrid_bench")
            base_url = _cluster.url("casegrid_base")
            subprocess.run([str(Path(sys.executable).parent / "alembic"), "downgrade",
                            args.base_revision], check=True, cwd=Path(__file__).parent.parent,
                           env=dict(os.environ, DATABASE_URL=base_url))
            for mode in ("off", "on"):
                variants[f"base-{mode}"] = (
                    {"CASEGRID_PRIVACY_MASK_FREE_TEXT": "true" if mode == "on" else "false",
                     "PYTHONPATH": str(args.base.resolve())}, base_url)
        per_run = 12_000
        lon, lat = generate_points(per_run * (len(variants) * (2 * args.pairs + 1)), seed=2830)
        files = iter(range(10_000))

        def points() -> str:
            i = next(files)
            path = lab / f"p{i}.txt"
            sl = slice(i * per_run, (i + 1) * per_run)
            path.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in
                                    zip(lon[sl], lat[sl], strict=True)))
            return str(path)

        with ExitStack() as stack:
            bases = {name: stack.enter_context(serve(db, workers=2, extra_env=env, start_s=300,
                                                     log_path=lab / f"{name}.log"))
                     for name, (env, db) in variants.items()}
            dsns = {name: f"host={u.host} port={u.port} user={u.username} "
                          f"dbname={make_url(db).database}" for name, (_, db) in variants.items()}
            engines = {name: make_engine(db, bench_settings(), application_name="lab")
                       for name, (_, db) in variants.items()}
            for name, base in bases.items():
                _wrk(base, 4, {"CG_TOKEN": secret, "CG_POINTS": points(),
                               "CG_PREFIX": f"warm-{name}", "CG_DESCRIPTION": DESCRIPTION})
            names = list(bases)
            for k in range(args.pairs):
                seq = names if k % 2 == 0 else list(reversed(names))
                for name in seq:
                    prefix = f"lab-{name}-{k}"
                    counts: Counter = Counter()
                    stop = threading.Event()
                    th = threading.Thread(target=sampler, args=(dsns[name], args.interval_ms / 1000,
                                                                stop, counts))
                    if args.window:
                        with engines[name].begin() as conn:
                            conn.execute(text("TRUNCATE lab_window"))
                    split: list[int] = []
                    # Late enough that wrk has opened its connections: how the kernel shared
                    # them between the workers (all on one worker: no second batch to wait).
                    look = threading.Timer(args.seconds / 2, lambda b=bases[name], sp=split:
                                           sp.extend(connections_per_process(
                                               int(b.rsplit(":", 1)[1]))))
                    th.start()
                    look.start()
                    r = _wrk(bases[name], args.seconds, {
                        "CG_TOKEN": secret, "CG_POINTS": points(), "CG_PREFIX": prefix,
                        "CG_DESCRIPTION": DESCRIPTION})
                    stop.set()
                    th.join()
                    look.join()
                    with engines[name].connect() as conn:
                        stored = conn.execute(text(
                            "SELECT count(*) FROM \"case\" WHERE external_id LIKE :p"),
                            {"p": f"{prefix}-%"}).scalar_one()
                        window = None
                        if args.window:
                            w = conn.execute(text(
                                "SELECT count(*), avg(cases), "
                                "percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), "
                                "avg(ms), sum(ms) FROM (SELECT cases, extract(epoch FROM "
                                "commit_at - locked_at) * 1000 AS ms FROM lab_window "
                                "WHERE locked_at IS NOT NULL) x")).one()
                            window = {"batches": w[0], "cases_per_batch": float(w[1] or 0),
                                      "median_ms": float(w[2] or 0), "mean_ms": float(w[3] or 0),
                                      "sum_ms": float(w[4] or 0),
                                      "busy_share": float(w[4] or 0) / 1000 / r["seconds"]}
                    row = {"variant": name, "pair": k, "load1": round(os.getloadavg()[0], 1),
                           "cases_s": round(stored / r["seconds"], 1), "p99_ms": r["p99_ms"],
                           "split": split,
                           "samples": counts["samples"],
                           "shares": {k2: round(v, 4) for k2, v in shares(counts).items()},
                           "window": window}
                    keep_round(rounds, row)
        engine.dispose()
    shutil.rmtree(lab, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(rounds, indent=1))
    kinds = sorted({k for r in rounds for k in r["shares"]})
    for name in variants:
        rs = [r for r in rounds if r["variant"] == name]
        print(f"{name}: cases/s median {statistics.median(r['cases_s'] for r in rs):.0f} "
              f"({', '.join(str(r['cases_s']) for r in rs)})")
        for kind in kinds:
            vals = [r["shares"].get(kind, 0.0) for r in rs]
            print(f"  {kind}: median {statistics.median(vals):.3f} "
                  f"({', '.join(f'{v:.3f}' for v in vals)})")
        if args.window:
            ws = [r["window"] for r in rs]
            print(f"  window ms median per batch {statistics.median(w['median_ms'] for w in ws):.2f},"
                  f" cases/batch {statistics.median(w['cases_per_batch'] for w in ws):.1f},"
                  f" held share of wall {statistics.median(w['busy_share'] for w in ws):.3f}")


if __name__ == "__main__":
    main()
