"""Operations (issue 26): backup and restore of a million-case ledger beside PostgreSQL's
bare tools in the same run, and the planners' hotspot page on a read replica beside the
primary while the intake benchmark's load runs against the primary.

* Backup: ``casegrid.backup.backup`` (dump in an exported snapshot, counts, SHA-256 manifest)
  beside a bare ``pg_dump --format=custom`` of the same database. Restore:
  ``casegrid.backup.restore`` (manifest check, one-transaction ``pg_restore``, migrations)
  into an empty database beside a bare ``pg_restore --single-transaction`` into another.
  Target: at most 1.3x each.
* Replica: a streaming standby of the benchmark cluster (``pg_basebackup -R``, as
  ``casegrid db replica start`` makes one) on the same machine. Three runs of wrk's intake
  load: alone; with planners loading ``/maps/hotspots`` from a server reading the primary;
  with the same planners on a server that reads the standby. Reported: intake's rate in
  each, and the hotspot page's time in each.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.harness import Context, Outcome, Row, Skip, log, median, percentile, timed
from bench.ledger import ensure_cases, fill_workflow
from bench.points import generate_points
from bench.server import serve
from casegrid.backup import backup, libpq_args, pg_tool, restore
from casegrid.cluster import Cluster, free_port

PLANNERS = 2
LOAD_S = 20.0
# A server's start (imports, first connections) took over a minute on the shared machine.
START_S = 300.0
HOTSPOTS = "/maps/hotspots?date_from=2026-01-01&date_to=2026-10-31"


def _bare_dump(ctx: Context, out: Path) -> None:
    with ctx.engine.connect() as conn:
        tool = pg_tool(conn, "pg_dump")
    args, env = libpq_args(ctx.url)
    subprocess.run([str(tool), "--format=custom", "--no-owner", f"--file={out}", *args],
                   env=env, check=True, capture_output=True)


def _bare_restore(ctx: Context, dump: Path, url: str) -> None:
    with ctx.engine.connect() as conn:
        tool = pg_tool(conn, "pg_restore")
    args, env = libpq_args(url)
    subprocess.run([str(tool), "--single-transaction", "--exit-on-error", "--no-owner", *args,
                    str(dump)], env=env, check=True, capture_output=True)


def _fresh_db(ctx: Context, name: str) -> str:
    ctx.cluster.drop_database(name)
    ctx.cluster.create_database(name)
    return ctx.cluster.url(name)


def _backup_restore(ctx: Context, cases: int) -> list[Row]:
    repeats = ctx.repeats(2)
    ours_b, bare_b, ours_r, bare_r = [], [], [], []
    for i in range(repeats):  # interleaved: the machine's other users hit both alike
        out = ctx.workdir / f"backup-{i}"
        t, _ = timed(lambda out=out: backup(ctx.url, out, None))
        ours_b.append(t)
        bare = ctx.workdir / f"bare-{i}.dump"
        t, _ = timed(lambda bare=bare: _bare_dump(ctx, bare))
        bare_b.append(t)
        log(f"ops: backup {ours_b[-1]:.1f} s, bare pg_dump {bare_b[-1]:.1f} s")
        url_a = _fresh_db(ctx, "bench_restore_a")
        t, _ = timed(lambda url_a=url_a, out=out: restore(url_a, out, None))
        ours_r.append(t)
        url_b = _fresh_db(ctx, "bench_restore_b")
        t, _ = timed(lambda url_b=url_b, bare=bare: _bare_restore(ctx, bare, url_b))
        bare_r.append(t)
        log(f"ops: restore {ours_r[-1]:.1f} s, bare pg_restore {bare_r[-1]:.1f} s")
        size_mb = (out / "database.dump").stat().st_size / 1e6
        shutil.rmtree(out)
        bare.unlink()
    for name in ("bench_restore_a", "bench_restore_b"):
        ctx.cluster.drop_database(name)
    b, bb, r, rb = median(ours_b), median(bare_b), median(ours_r), median(bare_r)
    note = f"{cases:,} cases, dump {size_mb:,.0f} MB, median of {repeats}"
    return [
        Row("ops", "casegrid backup", b, "s", "bare pg_dump -Fc", bb, "≤ 1.3×", b <= 1.3 * bb,
            note=note),
        Row("ops", "casegrid restore (into an empty database)", r, "s",
            "bare pg_restore --single-transaction", rb, "≤ 1.3×", r <= 1.3 * rb, note=note),
    ]


def _planners(base: str, token: str, stop: threading.Event, times: list[float]) -> None:
    with httpx.Client(base_url=base, timeout=300,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        while not stop.is_set():
            t, r = timed(lambda: client.get(HOTSPOTS))
            if r.status_code != 200:  # type: ignore[union-attr]
                raise RuntimeError(f"hotspot page answered {r.status_code}")  # type: ignore[union-attr]
            times.append(t * 1000)


def _intake_with_planners(ctx: Context, intake_base: str, planner_base: str | None,
                          tokens: dict, points: Path, prefix: str) -> tuple[float, list[float]]:
    from bench.bench_intake import _wrk

    times: list[float] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_planners, args=(planner_base, tokens["planner"], stop,
                                                         times)) for _ in range(PLANNERS)
               ] if planner_base else []
    for th in threads:
        th.start()
    try:
        r = _wrk(intake_base, LOAD_S if not ctx.quick else 5.0,
                 {"CG_TOKEN": tokens["intake"], "CG_POINTS": str(points), "CG_PREFIX": prefix})
    finally:
        stop.set()
        for th in threads:
            th.join()
    with ctx.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM \"case\" WHERE external_id LIKE :p"),
                              {"p": f"{prefix}-%"}).scalar_one()
    return stored / r["seconds"], times


def _replica(ctx: Context) -> tuple[list[Row], str]:
    from cases.tokens import create_token

    if shutil.which("wrk") is None:
        raise Skip("wrk is not installed (apt-get install wrk; `make bench` installs it)")
    with ctx.engine.begin() as conn:
        tokens = {r: create_token(conn, r, f"bench ops {r}")[1] for r in ("intake", "planner")}
    lon, lat = generate_points(ctx.n(100_000, 10_000), seed=41)
    points = ctx.workdir / "ops_points.txt"
    points.write_text("".join(f"{x:.7f} {y:.7f}\n" for x, y in zip(lon, lat, strict=True)))
    standby = Cluster(data_dir=ctx.workdir / "standby", port=free_port(),
                      db_name=ctx.cluster.db_name)
    log("ops: making a streaming standby (pg_basebackup -R)")
    t_clone, _ = timed(lambda: standby.clone_from(ctx.cluster))
    standby.start()
    try:
        replica_env = {"CASEGRID_READ_DATABASE_URL": standby.url()}
        with serve(ctx.url, workers=2, log_path=ctx.workdir / "ops_primary.log",
                   start_s=START_S) as base, \
                serve(ctx.url, workers=1, log_path=ctx.workdir / "ops_planners_primary.log",
                      start_s=START_S) as p_primary, \
                serve(ctx.url, workers=1, log_path=ctx.workdir / "ops_planners_replica.log",
                      extra_env=replica_env, start_s=START_S) as p_replica:
            for b in (p_primary, p_replica):  # warm-up: first page loads compile and cache
                httpx.get(f"{b}{HOTSPOTS}", timeout=300,
                          headers={"Authorization": f"Bearer {tokens['planner']}"})
            src = httpx.get(f"{p_replica}{HOTSPOTS}", timeout=300, headers={
                "Authorization": f"Bearer {tokens['planner']}"}).headers.get(
                "x-casegrid-read-source", "")
            if not src.startswith("replica"):
                raise RuntimeError(f"the replica server read from {src!r}")
            log("ops: intake alone")
            alone, _ = _intake_with_planners(ctx, base, None, tokens, points, "ops-alone")
            log("ops: intake with planners on the primary")
            on_primary, t_primary = _intake_with_planners(ctx, base, p_primary, tokens, points,
                                                          "ops-primary")
            log("ops: intake with planners on the replica")
            on_replica, t_replica = _intake_with_planners(ctx, base, p_replica, tokens, points,
                                                          "ops-replica")
    finally:
        standby.destroy()
    pm, rm = median(t_primary), median(t_replica)
    rows = [
        Row("ops", f"intake with {PLANNERS} planners on the replica", on_replica, "cases/s",
            "intake alone", alone, "report",
            note=f"with the planners on the primary: {on_primary:,.0f} cases/s"),
        Row("ops", "hotspot page on the replica, median (under intake load)", rm, "ms",
            "same page on the primary, under the same load", pm, "report",
            note=f"p95 {percentile(t_replica, 95):,.0f} vs {percentile(t_primary, 95):,.0f} ms; "
                 f"{len(t_replica)} and {len(t_primary)} pages"),
    ]
    section = "\n".join([
        "## Operations: a read replica on the same machine", "",
        f"The standby was made in {t_clone:.0f} s (`pg_basebackup -R`) and streamed from the "
        f"benchmark cluster on the same two cores. wrk's intake load ({LOAD_S:.0f} s, 32 "
        f"clients, 2 workers) ran alone at **{alone:,.0f} cases/s**; with {PLANNERS} planners "
        f"loading the hotspot page from a server reading the primary at **{on_primary:,.0f} "
        f"cases/s** (page median {pm:,.0f} ms); with the same planners reading the standby at "
        f"**{on_replica:,.0f} cases/s** (page median {rm:,.0f} ms). On one machine the "
        "standby competes for the same cores, so what it can show here is that reads move "
        "off the primary's backends and locks; the capacity it adds needs a standby on its own "
        "host (docs/scaling.md).",
    ])
    return rows, section


def run(ctx: Context) -> Outcome:
    """Backup/restore beside the bare tools; intake with planners on primary vs replica."""
    n = ctx.n(1_000_000, 5_000)
    total = ensure_cases(ctx.engine, n, ctx.community_generation, log=log)
    fill_workflow(ctx.engine, log=log)
    rows = _backup_restore(ctx, total)
    try:
        replica_rows, sections = _replica(ctx)
        sections = [sections]
    except Exception as exc:  # noqa: BLE001 - the backup figures stand on their own
        log(f"ops: the replica part failed: {exc}")
        replica_rows = [Row("ops", "intake and hotspot pages, replica beside primary", None,
                            "", note=f"failed: {type(exc).__name__}: {exc}")]
        sections = []
    return Outcome(rows + replica_rows, sections)
