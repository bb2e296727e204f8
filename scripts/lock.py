"""Write and check the hash-pinned lock files of casegrid's Python dependencies.

    python scripts/lock.py           # regenerate requirements/*.lock (what `make lock` runs)
    python scripts/lock.py --check   # exit 1 when pyproject.toml changed without the locks

Each lock is resolved by uv (`uv pip compile --universal --generate-hashes`) from PyPI for
every Python that pyproject.toml's requires-python admits, with environment markers where a
package needs a different release on a newer Python. Its first line records the SHA-256 of
the dependency tables it was made from (`# input-hash: sha256:...`), so a test can tell a
stale lock without a network. The test set is resolved first and the run set under it as a
constraint, so the versions `make run` installs are the ones `make test` tested. Both include
the build backend from [build-system].requires, so the project's own editable install needs
nothing unpinned either.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_DIR = ROOT / "requirements"
RUN_LOCK = LOCK_DIR / "run.lock"
TEST_LOCK = LOCK_DIR / "test.lock"
HASH_PREFIX = "# input-hash: sha256:"
# Where locks are resolved from: PyPI, whatever a machine's pip or uv configuration says
# (a local mirror or find-links directory may hold other builds than PyPI's).
INDEX_URL = os.environ.get("CASEGRID_LOCK_INDEX_URL", "https://pypi.org/simple")


def input_hash(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """SHA-256 of the tables a lock depends on: requires-python, dependencies, extras, build.

    Other edits of pyproject.toml (ruff, pytest settings, the description) leave it alone.
    """
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    tables = {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            k: sorted(v) for k, v in sorted(project.get("optional-dependencies", {}).items())
        },
        "build-requires": sorted(data.get("build-system", {}).get("requires", [])),
    }
    blob = json.dumps(tables, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def recorded_hash(lock: Path) -> str | None:
    """The input hash written on a lock's first line, or None if it has none."""
    if not lock.exists():
        return None
    first = lock.read_text(encoding="utf-8").split("\n", 1)[0]
    return first[len(HASH_PREFIX):].strip() if first.startswith(HASH_PREFIX) else None


def stale_locks(pyproject: Path = ROOT / "pyproject.toml") -> list[Path]:
    """The lock files whose recorded input hash differs from pyproject.toml's current one."""
    want = input_hash(pyproject)
    return [lock for lock in (RUN_LOCK, TEST_LOCK) if recorded_hash(lock) != want]


def _uv() -> list[str]:
    """The uv command: the one beside this Python (make lock installs it into .venv)."""
    here = Path(sys.executable).parent / "uv"
    return [str(here)] if here.exists() else ["uv"]


def _lowest_python(pyproject: Path) -> str:
    """The lowest X.Y that requires-python admits (the lower bound of the universal resolve)."""
    spec = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["requires-python"]
    return spec.split(">=", 1)[1].split(",", 1)[0].strip()


def _compile(pyproject: Path, out: Path, extras: list[str], constraint: Path | None,
             build_in: Path) -> None:
    cmd = [
        *_uv(), "pip", "compile", os.path.relpath(pyproject, ROOT), str(build_in),
        "--universal", "--generate-hashes", "--python-version", _lowest_python(pyproject),
        "--no-config", "--index-url", INDEX_URL, "--quiet",
        "--custom-compile-command", "make lock", "-o", os.path.relpath(out, ROOT),
    ]
    for extra in extras:
        cmd += ["--extra", extra]
    if constraint is not None:
        cmd += ["--constraint", str(constraint)]
    # uv keeps pins already in the output file; start from nothing so a lock is the
    # resolution of today's pyproject.toml, not of the previous lock's choices.
    out.unlink(missing_ok=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def write_locks(pyproject: Path = ROOT / "pyproject.toml") -> None:
    """Resolve the test set, then the run set within it, and stamp both with the input hash."""
    LOCK_DIR.mkdir(exist_ok=True)
    build = tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]["requires"]
    with tempfile.TemporaryDirectory() as tmp:
        build_in = Path(tmp) / "build-requires.in"
        build_in.write_text("\n".join(build) + "\n", encoding="utf-8")
        _compile(pyproject, TEST_LOCK, ["test"], None, build_in)
        _compile(pyproject, RUN_LOCK, [], TEST_LOCK, build_in)
    # Paths in uv's header name the temporary file; name the table instead.
    stamp = HASH_PREFIX + input_hash(pyproject) + "\n"
    for lock in (TEST_LOCK, RUN_LOCK):
        text = lock.read_text(encoding="utf-8").replace(str(build_in), "[build-system].requires")
        lock.write_text(stamp + text.replace(str(Path(tmp)), ""), encoding="utf-8")


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        stale = stale_locks()
        for lock in stale:
            print(f"{lock.relative_to(ROOT)} does not match pyproject.toml: run `make lock`"
                  " and commit requirements/", file=sys.stderr)
        return 1 if stale else 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    write_locks()
    print(f"wrote {RUN_LOCK.relative_to(ROOT)} and {TEST_LOCK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
