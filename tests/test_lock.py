"""The lock files: current with pyproject.toml, honouring its floors, and what setup installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _load_lock_module():
    spec = importlib.util.spec_from_file_location("casegrid_lock", ROOT / "scripts" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _load_lock_module()
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    """name -> [(version, marker or None)] of every pinned line of a lock file."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = PIN.match(line)
        if m:
            found.setdefault(canonicalize_name(m[1]), []).append((m[2], m[3]))
    return found


def test_locks_record_the_current_pyproject():
    assert lock.stale_locks() == [], "pyproject.toml changed without `make lock`"
    result = subprocess.run([sys.executable, "scripts/lock.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_an_edit_of_the_dependencies_alone_fails_the_check(tmp_path):
    copy = tmp_path / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", copy)
    assert lock.stale_locks(copy) == []
    text = copy.read_text(encoding="utf-8")

    copy.write_text(text.replace('"openpyxl>=3.1",', '"openpyxl>=3.1",\n    "requests>=2",'),
                    encoding="utf-8")
    assert set(lock.stale_locks(copy)) == {lock.RUN_LOCK, lock.TEST_LOCK}

    copy.write_text(text.replace('"pytest>=8"', '"pytest>=9"'), encoding="utf-8")
    assert lock.stale_locks(copy), "a changed floor in the test extra must fail the check"

    # Tables that do not feed the resolution leave the locks current.
    copy.write_text(text.replace("line-length = 100", "line-length = 99"), encoding="utf-8")
    assert lock.stale_locks(copy) == []


@pytest.mark.parametrize("lock_file, extras", [(lock.RUN_LOCK, []), (lock.TEST_LOCK, ["test"])])
def test_every_dependency_is_pinned_above_its_floor_with_hashes(lock_file, extras):
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    pinned = pins(lock_file)
    for line in wanted:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in {lock_file.name}"
        for version, _marker in pinned[name]:
            assert req.specifier.contains(version), f"{name}=={version} is below {req}"
    # Every requirement line is an exact pin, followed by its hashes (pip --require-hashes
    # refuses anything else, and without hashes a changed upload would go unnoticed).
    lines = lock_file.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", " ")):
            assert PIN.match(line), f"{lock_file.name}: not an exact pin: {line}"
            assert re.fullmatch(r"\s+--hash=sha256:[0-9a-f]{64}( \\)?", lines[i + 1]), line


def test_this_environment_holds_the_locked_versions():
    """scripts/setup.sh --test installed exactly the test lock's versions for this Python."""
    mismatched = []
    for name, choices in pins(lock.TEST_LOCK).items():
        for version, marker in choices:
            if marker is not None and not Marker(marker).evaluate():
                continue
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                mismatched.append(f"{name}: not installed, locked {version}")
                continue
            if installed != version:
                mismatched.append(f"{name}: installed {installed}, locked {version}")
    assert mismatched == []


def test_the_run_set_is_the_test_set_minus_test_tools():
    """make run installs the very versions make test tested."""
    run, test = pins(lock.RUN_LOCK), pins(lock.TEST_LOCK)
    for name, choices in run.items():
        assert name in test, name
        assert sorted(choices, key=str) == sorted(test[name], key=str), name
