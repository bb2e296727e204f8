"""A content-addressed file store: bytes in, their SHA-256 out.

The one interface the evidence code (``cases.attachments``) uses to keep files, so a city
can point it at a mounted volume (``CASEGRID_ATTACHMENT_DIR``) without the rest knowing.

* :meth:`FileStore.put` writes to a temporary name in the same directory, flushes and
  fsyncs it, renames it to its hash (atomic on one file system) and fsyncs the directory,
  so a file under its final name is always complete. The same bytes sent twice are stored
  once.
* Files are written *before* the database row that names them is committed. A crash in
  between leaves a file no row names, never a row without its file; :meth:`FileStore.sweep`
  removes such files once they are older than a grace period (a request still on its way
  to its commit is younger than that).
* Names are always the hash this module computed, checked against a strict pattern:
  nothing a client sends ever becomes part of a path.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^[0-9a-f]{64}$")
_TMP_PREFIX = ".tmp-"


class MissingFile(LookupError):
    """A name the store does not hold."""


@dataclass
class SweepResult:
    """What a sweep found: files kept (named by a row, or too young), files removed."""

    kept: int
    removed: list[str]


class FileStore:
    """Files named by their SHA-256 under ``root`` (two-character fan-out directories)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path_of(self, name: str) -> Path:
        """Where the file of ``name`` lives (ValueError unless ``name`` is a SHA-256 hex)."""
        if not _NAME.match(name):
            raise ValueError(f"not a stored file name: {name!r}")
        return self.root / name[:2] / name

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its SHA-256 (hex), its name in the store."""
        name = hashlib.sha256(data).hexdigest()
        final = self.path_of(name)
        if final.exists():
            try:
                # Already stored (the same photo again): mark it as just used, so a sweep
                # running now leaves it alone for the grace period (its row is on its way).
                os.utime(final)
                return name
            except FileNotFoundError:
                pass  # swept between the two calls: write it again
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return name

    def exists(self, name: str) -> bool:
        """Whether the store holds ``name``."""
        return self.path_of(name).is_file()

    def read(self, name: str) -> bytes:
        """The bytes of ``name`` (:class:`MissingFile` if the store does not hold it)."""
        try:
            return self.path_of(name).read_bytes()
        except FileNotFoundError:
            raise MissingFile(name) from None

    def names(self) -> Iterable[str]:
        """Every stored name (temporary files excluded)."""
        if not self.root.is_dir():
            return
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for f in sub.iterdir():
                    if _NAME.match(f.name):
                        yield f.name

    def sweep(self, referenced: Callable[[], set[str]], grace_s: float,
              now: float | None = None) -> SweepResult:
        """Remove files older than ``grace_s`` seconds that ``referenced()`` does not name,
        and temporary files left by a crash mid-write. ``referenced`` is called after the
        listing, so a row committed meanwhile still protects its file."""
        now = time.time() if now is None else now
        cutoff = now - grace_s
        old = []
        kept = 0
        for name in list(self.names()):
            try:
                if self.path_of(name).stat().st_mtime < cutoff:
                    old.append(name)
                else:
                    kept += 1
            except FileNotFoundError:
                continue
        keep = referenced()
        removed = []
        for name in old:
            if name in keep:
                kept += 1
                continue
            path = self.path_of(name)
            try:
                # Checked again: put() of the same bytes since the listing touched it.
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(name)
                else:
                    kept += 1
            except FileNotFoundError:
                continue
        if self.root.is_dir():
            for tmp in self.root.glob(f"??/{_TMP_PREFIX}*"):
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()
                except FileNotFoundError:
                    continue
        return SweepResult(kept=kept, removed=removed)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
