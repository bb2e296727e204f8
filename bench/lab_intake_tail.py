"""Lab: intake's tail under stock serving, variants side by side in alternating rounds.

``python -m bench.lab_intake_tail [--base /tmp/base-tree]`` builds a throwaway cluster with the
sample city and a ledger of ``--cases`` (``bench.ledger``), starts one server per variant as
``casegrid serve --workers N`` does, and runs rounds of ``wrk -t1 -c32`` with ``bench/wrk_intake.lua``
against each in turn:

* ``base``: the tree at ``--base`` (a ``git worktree add`` of the commit to compare with),
  imported first through ``PYTHONPATH``;
* ``this``: this tree;
* ``this-wN``: this tree with N workers (``--workers 2 3 4``: one server per count);
* ``this-gc-off`` / ``this-gc-freeze`` (``--gc-modes``): this tree with the collector
  disabled, or with what the app's imports left frozen (``gc.freeze()``) once it is built,
  by the lab's ``sitecustomize`` only: how much of the tail is the collector's;
* ``this+maps``: this tree after each worker served the hotspot page and a ledger export,
  so it carries the analysis, mapping and export stacks those routes import on first use.

Per round: cases stored per second, wrk's p50/p99, the server's own p99 (from its request
log), the split of the 32 connections between the workers (``ss``), the load average, and
each worker's full garbage collections (count, durations, objects left). ``--no-maps``
leaves the ``this+maps`` server out; ``--pause S`` idles S seconds before each round, so that
every worker is back in its event loop when wrk opens its connections. The collections are
timed by a ``sitecustomize`` module that this script writes to its own temporary directory
and puts on the servers' ``PYTHONPATH``: ``gc.callbacks`` (and ``--gc-modes``) in the lab
only, never in the product. The machine may be shared: compare within a run, not across
runs (see bench/RESULTS.md, issue 20).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import text

from bench.bench_intake import _wrk
from bench.harness import bench_settings, log, median, throwaway_database
from bench.ledger import ensure_cases, fill_workflow
from bench.points import generate_points
from bench.server import connections_per_process, serve
from casegrid.db import make_engine

# Lab-only: logs each full (generation 2) collection of every process that imports it:
# pid, time, wall ms, CPU ms of the collecting thread (what the collection itself cost, apart
# from waiting for a core on a shared machine), modules loaded, whether scikit-learn is, and
# the objects the collection left (counted after the timing, so not part of it).
SITECUSTOMIZE = '''
import gc, os, sys, time
_path = os.environ.get("CG_LAB_GC_LOG")
if _path:
    _start = [0.0, 0.0]
    def _full_collections(phase, info):
        if info["generation"] != 2:
            return
        if phase == "start":
            _start[:] = [time.perf_counter(), time.thread_time()]
            return
        ms = (time.perf_counter() - _start[0]) * 1000
        cpu = (time.thread_time() - _start[1]) * 1000
        with open(_path, "a") as f:
            f.write(f"{os.getpid()} {time.time():.3f} {ms:.2f} {cpu:.2f} {len(sys.modules)} "
                    f"{int('sklearn' in sys.modules)} {len(gc.get_objects(2))}\\n")
    gc.callbacks.append(_full_collections)
# CG_LAB_GC_MODE: "off" disables the collector, "freeze" freezes what the app's imports left
# once it is built; both only to measure how much of the tail is the collector's.
_mode = os.environ.get("CG_LAB_GC_MODE")
if _mode == "off":
    gc.disable()
elif _mode == "freeze":
    import threading
    def _freeze_when_built():
        while getattr(sys.modules.get("api.main"), "app", None) is None:
            time.sleep(0.2)
        time.sleep(2)
        gc.collect()
        gc.freeze()
    threading.Thread(target=_freeze_when_built, daemon=True).start()
'''


def keep_round(rounds: list[dict], row: dict) -> None:
    """Keep a lab round's figures and log them as one JSON line (the lab's raw record)."""
    rounds.append(row)
    log(f"lab: {json.dumps(row)}")


def _collections(path: Path, t0: float, t1: float) -> list[dict]:
    """The full collections logged between t0 and t1."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        pid, at, ms, cpu, mods, sklearn, objects = line.split()
        if t0 <= float(at) <= t1:
            out.append({"pid": int(pid), "ms": float(ms), "cpu_ms": float(cpu), "modules": int(mods),
                        "sklearn": sklearn == "1", "objects": int(objects)})
    return out


_REQUEST_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO casegrid\.request: "
                           r"POST /api/v1/cases 201 ([\d.]+)ms$")


def _server_p99(path: Path, t0: float, t1: float) -> float | None:
    """p99 of the server's own ``duration_ms`` for the intake requests its (text) log
    stamped between t0 and t1: the time inside the worker, without the client's side."""
    ms = []
    for line in path.read_text(errors="replace").splitlines():
        found = _REQUEST_LINE.match(line)
        if found:
            at = time.mktime(time.strptime(found.group(1)[:19], "%Y-%m-%d %H:%M:%S"))
            if t0 <= at + int(found.group(1)[20:]) / 1000 <= t1:
                ms.append(float(found.group(2)))
    ms.sort()
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else None


def _worker_of(port: int, client_port: int) -> int | None:
    """The pid of the worker holding the server side of one loopback connection (ss)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established",
                          f"( sport = :{port} and dport = :{client_port} )"],
                         capture_output=True, text=True, timeout=10, check=False).stdout
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None


def _load_heavy(base: str, secret: str, workers: int = 2) -> None:
    """Each worker serves the hotspot page and a ledger export once: new connections until
    every worker has held one (the kernel picks the worker; ``ss`` tells which)."""
    port = int(base.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {secret}"}
    done: set[int] = set()
    for _ in range(60):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.connect()
        pid = _worker_of(port, conn.sock.getsockname()[1])
        if pid is not None and pid not in done:
            for path in ("/maps/hotspots?lang=en&tiles=none",
                         "/api/v1/export/ledger.xlsx?from=2026-01-01&to=2026-01-31"):
                conn.request("GET", path, headers=headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{path}: HTTP {answer.status}")
            done.add(pid)
            log(f"lab: worker {pid} served the hotspot page and an export")
        conn.close()
        if len(done) == workers:
            return
    raise RuntimeError(f"only {len(done)} of {workers} workers got a heavy request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None,
                        help="the tree to compare with (left out when not given)")
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the rounds as JSON")
    parser.add_argument("--no-maps", action="store_true", help="leave the this+maps server out")
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="serve this tree with each of these worker counts (one server each)")
    parser.add_argument("--gc-modes", nargs="*", default=[], choices=["off", "freeze"],
                        help="also serve this tree (2 workers) with the collector off or frozen "
                             "after the imports (lab only: what the collector costs the tail)")
    parser.add_argument("--venv", type=Path, action="append", default=[],
                        help="also serve this tree (2 workers) from another virtualenv, another "
                             "Python (it must have casegrid installed from this tree)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of idle before each round, so that every worker is back in "
                             "its event loop when wrk opens its connections")
    args = parser.parse_args()

    lab = Path(tempfile.mkdtemp(prefix="casegrid-lab-"))
    (lab / "site").mkdir()
    (lab / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    with throwaway_database(lab) as (_cluster, url):
        engine = make_engine(url, bench_settings())
        from casegrid.demo.city import load_sample_city
        from cases.tokens import create_token

        with engine.begin() as conn:
            gen = load_sample_city(conn)["community_generation"]
        ensure_cases(engine, args.cases, gen, log=log)
        fill_workflow(engine, log=log)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
            _, secret = create_token(conn, "intake", "lab load generator")
            _, planner = create_token(conn, "planner", "lab heavy routes")
        lon, lat = generate_points(200_000, seed=23)
        points = lab / "points.txt"
        points.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in zip(lon, lat, strict=True)))

        site = str(lab / "site")
        # name -> (PYTHONPATH, workers, casegrid script or None for this interpreter's,
        # CG_LAB_GC_MODE)
        variants: dict[str, tuple[str, int, Path | None, str]] = {}
        if args.base is not None:
            variants["base"] = (f"{args.base.resolve()}:{site}", 2, None, "")
        for n in args.workers:
            variants["this" if n == 2 else f"this-w{n}"] = (site, n, None, "")
        for mode in args.gc_modes:
            variants[f"this-gc-{mode}"] = (site, 2, None, mode)
        for venv in args.venv:
            variants[f"this-{venv.name}"] = (site, 2, venv.resolve() / "bin" / "casegrid", "")
        if not args.no_maps:
            variants["this+maps"] = (site, 2, None, "")
        rounds: list[dict] = []
        with ExitStack() as stack:
            bases = {}
            for name, (path, workers, script, gc_mode) in variants.items():
                env = {"PYTHONPATH": path, "CG_LAB_GC_LOG": str(lab / f"{name}.gc"),
                       "CG_LAB_GC_MODE": gc_mode}
                bases[name] = stack.enter_context(serve(url, workers=workers, extra_env=env, start_s=300,
                                                        log_path=lab / f"{name}.log", script=script))
                log(f"lab: {name} at {bases[name]}")
            if "this+maps" in bases:
                log("lab: this+maps serves the hotspot page and an export on fresh connections")
                _load_heavy(bases["this+maps"], planner)
            for name, base in bases.items():  # warm-up: connections, prepared statements
                _wrk(base, 3, {"CG_TOKEN": secret, "CG_POINTS": str(points), "CG_PREFIX": f"warm-{name}"})
            for k in range(args.rounds):
                order = list(bases) if k % 2 == 0 else list(reversed(bases))
                for name in order:
                    base = bases[name]
                    prefix = f"lab-{name}-{k}"
                    time.sleep(args.pause)
                    split: list[int] = []
                    # Late enough that wrk has read its points and opened its connections.
                    look = threading.Timer(args.seconds / 2, lambda b=base, s=split: s.extend(
                        connections_per_process(int(b.rsplit(":", 1)[1]))))
                    t0 = time.time()
                    look.start()
                    r = _wrk(base, args.seconds, {"CG_TOKEN": secret, "CG_POINTS": str(points),
                                                  "CG_PREFIX": prefix})
                    look.join()
                    t1 = time.time()
                    with engine.connect() as conn:
                        stored = conn.execute(text(
                            "SELECT count(*) FROM \"case\" WHERE external_id LIKE :p"),
                            {"p": f"{prefix}-%"}).scalar_one()
                    gcs = _collections(lab / f"{name}.gc", t0, t1)
                    row = {"variant": name, "round": k, "load1": round(os.getloadavg()[0], 1),
                           "cases_s": round(stored / r["seconds"], 1), "p50_ms": r["p50_ms"],
                           "p99_ms": r["p99_ms"], "server_p99_ms": _server_p99(lab / f"{name}.log", t0, t1),
                           "errors": int(r["non2xx"] + r["timeouts"]),
                           "split": split, "full_gc": gcs}
                    keep_round(rounds, row)
        engine.dispose()
    shutil.rmtree(lab, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(rounds, indent=1))
    print("| variant | cases/s (rounds) | p99 ms (rounds) | server p99 ms (rounds) | connections "
          "per worker | full collections: n, wall ms, CPU ms, objects left | load |")
    print("|---|---|---|---|---|---|---|")
    for name in variants:
        rs = [r for r in rounds if r["variant"] == name]
        gcs = [g["ms"] for r in rs for g in r["full_gc"]]
        cpu = [g["cpu_ms"] for r in rs for g in r["full_gc"]]
        objects = [g["objects"] for r in rs for g in r["full_gc"]]
        server = [r["server_p99_ms"] for r in rs if r["server_p99_ms"] is not None]
        print(f"| {name} | {median([r['cases_s'] for r in rs]):.0f} "
              f"({', '.join(format(r['cases_s'], '.0f') for r in rs)}) | "
              f"{median([r['p99_ms'] for r in rs]):.0f} "
              f"({', '.join(format(r['p99_ms'], '.0f') for r in rs)}) | "
              f"{median(server):.0f} ({', '.join(format(v, '.0f') for v in server)}) | "
              f"{', '.join('/'.join(map(str, r['split'])) for r in rs)} | "
              f"{len(gcs)}, {min(gcs, default=0):.0f}-{max(gcs, default=0):.0f}, "
              f"{min(cpu, default=0):.0f}-{max(cpu, default=0):.0f}, "
              f"{min(objects, default=0):,}-{max(objects, default=0):,} | "
              f"{min(r['load1'] for r in rs)}-{max(r['load1'] for r in rs)} |")


if __name__ == "__main__":
    main()
