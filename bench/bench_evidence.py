"""Evidence uploads (issue 22): 50 clients uploading 3 MB phone photos to a served casegrid.

Figures, all from one run on one disk:

* photos stored per second and the p99 of an upload request, beside writing the same
  bytes to the same disk (temporary name, fsync, rename: what the file store does) with as
  many threads: the ratio says what checking, decoding, re-encoding and thumbnailing cost;
* the time to prepare one photo (decode, re-encode without metadata, thumbnail) and to
  make its thumbnail, measured in-process, one at a time;
* ``GET /health`` p99 while the uploads run, beside the same probe on the idle server: the
  upload path decodes off the event loop, so other requests must not wait behind it.

The probe runs in its own process (a Python client sharing the uploaders' interpreter
would measure its own GIL waits). Each photo is distinct (the store keeps one copy of the
same bytes, which would make the upload path look cheaper than it is).
"""

from __future__ import annotations

import asyncio
import functools
import io
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.harness import Context, Outcome, Row, log, median, percentile
from bench.server import serve

CLIENTS = 50
TARGET_BYTES = 3_000_000
SIZE = (4000, 3000)  # 12 MP, a phone's photo


@functools.lru_cache(maxsize=1)
def _base_photo():  # noqa: ANN202 - a numpy array (made once per process)
    import numpy as np

    from tests.helpers.evidence_files import picture

    rng = np.random.default_rng(22)
    base = np.asarray(picture(SIZE, 1), dtype=np.int16)
    base = np.clip(base + rng.integers(-24, 25, size=base.shape, dtype=np.int16), 0, 255)
    return base.astype("uint8")


def _one_photo(args: tuple[int, int]) -> bytes:
    from PIL import Image

    i, quality = args
    arr = _base_photo().copy()
    y, x = (i * 97) % (SIZE[1] - 64), (i * 131) % (SIZE[0] - 64)
    arr[y:y + 64, x:x + 64] = (i * 53) % 256
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _photos(n: int) -> list[bytes]:
    """``n`` distinct JPEGs of about 3 MB: one noisy picture, a different patch each, made
    in a process per core."""
    from PIL import Image

    quality = _quality_for(Image.fromarray(_base_photo()))
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        return pool.map(_one_photo, [(i, quality) for i in range(n)])


def _quality_for(img) -> int:  # noqa: ANN001 - a PIL image
    lo, hi, best = 30, 95, 30
    while lo <= hi:
        q = (lo + hi) // 2
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        if buf.tell() <= TARGET_BYTES:
            best, lo = q, q + 1
        else:
            hi = q - 1
    return best


def _probe(base: str, stop, interval: float, out) -> None:  # noqa: ANN001 - mp objects
    """GET /health until ``stop`` is set; the latencies (s) go to ``out``."""
    times = []
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            client.get(f"{base}/health").raise_for_status()
            times.append(time.perf_counter() - t0)
            time.sleep(interval)
    out.put(times)


class Probe:
    """The /health probe in a child process, from entering to :meth:`stop`."""

    def __init__(self, base: str):
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.stop_event = ctx.Event()
        self.proc = ctx.Process(target=_probe, args=(base, self.stop_event, 0.02, self.queue))

    def __enter__(self) -> Probe:
        self.proc.start()
        time.sleep(1.0)  # the child's interpreter is up and probing
        return self

    def stop(self) -> list[float]:
        self.stop_event.set()
        times = self.queue.get(timeout=120)
        self.proc.join(timeout=30)
        return times

    def __exit__(self, *exc: object) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()


async def _upload_all(base: str, token: str, cases: list[int], photos: list[bytes]) -> list[float]:
    """Each client uploads its share of ``photos`` to its own case, one after another."""
    per_client = [photos[i::len(cases)] for i in range(len(cases))]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=len(cases))
    async with httpx.AsyncClient(timeout=300, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async def one(case_id: int, mine: list[bytes]) -> None:
            for k, data in enumerate(mine):
                t0 = time.perf_counter()
                r = await client.post(f"{base}/api/v1/cases/{case_id}/attachments",
                                      files=[("photo", (f"IMG_{k}.jpg", data, "image/jpeg"))])
                if r.status_code != 201:
                    raise RuntimeError(f"upload answered {r.status_code}: {r.text[:300]}")
                latencies.append(time.perf_counter() - t0)
        await asyncio.gather(*(one(c, m) for c, m in zip(cases, per_client, strict=True)))
    return latencies


def _write_same_bytes(directory: Path, photos: list[bytes], threads: int) -> tuple[float, list[float]]:
    """Wall seconds and per-file latencies of writing ``photos`` as the store does
    (temporary file, fsync, rename, directory fsync), ``threads`` at once."""
    directory.mkdir(parents=True, exist_ok=True)
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [photos[i::threads] for i in range(threads)]

    def work(mine: list[bytes]) -> None:
        for data in mine:
            t0 = time.perf_counter()
            fd, tmp = tempfile.mkstemp(dir=directory)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, f"{tmp}.jpg")
            dfd = os.open(directory, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(s,)) for s in shares]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - t0, latencies


def _in_process_times(photos: list[bytes]) -> tuple[float, float]:
    """Median seconds to prepare one photo and to thumbnail one decoded photo."""
    from PIL import Image

    from casegrid.settings import Settings
    from cases import attachments
    from cases.images import Upload, _thumbnail, prepare

    limits = attachments.limits(Settings())
    prep, thumbs = [], []
    for i, data in enumerate(photos):
        t0 = time.perf_counter()
        prepare(Upload("photo", i, "p.jpg", data), limits)
        prep.append(time.perf_counter() - t0)
        img = Image.open(io.BytesIO(data))
        img.load()
        t0 = time.perf_counter()
        _thumbnail(img, limits.thumb_px)
        thumbs.append(time.perf_counter() - t0)
    return median(prep), median(thumbs)


def run(ctx: Context) -> Outcome:
    from sqlalchemy import text

    from cases.tokens import create_token

    clients = min(CLIENTS, ctx.n(CLIENTS, 10))
    n = ctx.n(100, 30)
    log(f"evidence: making {n} distinct ~3 MB photos")
    photos = _photos(n)
    mean_mb = sum(map(len, photos)) / len(photos) / 1e6
    with ctx.engine.begin() as conn:
        token = create_token(conn, "admin", "bench-evidence")[1]
        cases = [conn.execute(text(
            "INSERT INTO \"case\" (channel, category_code, description, reported_at, received_at) "
            "VALUES ('patrol', '0102', 'bench evidence', now(), now()) RETURNING id")).scalar_one()
            for _ in range(clients)]

    t_prep, t_thumb = _in_process_times(photos[:5])
    store = ctx.workdir / "evidence-store"
    env = {"CASEGRID_ATTACHMENT_DIR": str(store), "CASEGRID_ATTACHMENT_MAX_PER_CASE": "500"}
    with serve(ctx.url, extra_env=env) as base:
        log("evidence: /health on the idle server")
        with Probe(base) as probe:
            time.sleep(8.0)
            idle = probe.stop()
        log(f"evidence: {clients} clients uploading {n} photos, /health probed meanwhile")
        with Probe(base) as probe:
            t0 = time.perf_counter()
            latencies = asyncio.run(_upload_all(base, token, cases, photos))
            upload_s = time.perf_counter() - t0
            busy = probe.stop()
    log("evidence: writing the same bytes to the same disk")
    write_s, write_lat = _write_same_bytes(ctx.workdir / "same-bytes", photos, clients)

    rate, write_rate = n / upload_s, n / write_s
    rows = [
        Row("evidence", f"photos stored/s ({clients} clients, {mean_mb:.1f} MB photos)", rate,
            "photos/s", baseline="same bytes written (fsync, rename), same threads",
            baseline_value=write_rate, note=f"{n} photos in {upload_s:.1f} s"),
        Row("evidence", "upload p99", percentile(latencies, 99) * 1000, "ms",
            baseline="same bytes written, p99", baseline_value=percentile(write_lat, 99) * 1000),
        Row("evidence", "prepare one photo (decode, re-encode, thumbnail)", t_prep * 1000, "ms",
            note="median of 5, in-process"),
        Row("evidence", "thumbnail one decoded photo", t_thumb * 1000, "ms",
            note="median of 5, in-process"),
        Row("evidence", "GET /health p99 during uploads", percentile(busy, 99) * 1000, "ms",
            baseline="idle server", baseline_value=percentile(idle, 99) * 1000,
            note=f"{len(busy)} probes during, {len(idle)} idle"),
    ]
    return Outcome(rows=rows)
