"""scripts/pick_python.sh: which interpreter `make run`/`make test` build .venv with."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pick_python.sh"
# An interpreter that passes the script's check (3.11 or newer, with venv): the one running
# the tests, whose virtualenv was itself made by this script.
REAL = sys.executable


def _fake(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _link(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(REAL)
    return path


def _pick(tmp_path: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the script with a PATH of ``bin_dir`` and a directory of the tools it uses (grep,
    sort and a python3 that passes), none of the machine's own Pythons, and a home without
    pyenv, unless ``env`` says otherwise."""
    tools = tmp_path / "tools"
    if not tools.exists():
        tools.mkdir()
        for name in ("grep", "sort"):
            (tools / name).symlink_to(shutil.which(name))
        (tools / "python3").symlink_to(REAL)
    base = {"PATH": f"{bin_dir}:{tools}", "HOME": str(tmp_path / "home")}
    return subprocess.run(["/bin/bash", str(SCRIPT)], env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_python3_13_on_the_path_is_chosen(tmp_path):
    bin_dir = tmp_path / "bin"
    chosen = _link(bin_dir / "python3.13")
    run = _pick(tmp_path, bin_dir)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(chosen)


def test_a_failing_shim_is_passed_over_and_3_12_not_preferred(tmp_path):
    bin_dir = tmp_path / "bin"
    # What pyenv's shim does for a version that is installed but not selected.
    _fake(bin_dir / "python3.13", 'echo "pyenv: python3.13: command not found" >&2; exit 127')
    # 3.12's collector starts its young collections as often as 3.11's: nothing gained.
    _link(bin_dir / "python3.12")
    run = _pick(tmp_path, bin_dir)
    assert (run.returncode, run.stdout.strip()) == (0, "python3")


def test_casegrid_python_wins(tmp_path):
    bin_dir = tmp_path / "bin"
    _link(bin_dir / "python3.13")
    mine = _link(tmp_path / "elsewhere" / "python")
    run = _pick(tmp_path, bin_dir, CASEGRID_PYTHON=str(mine))
    assert run.stdout.strip() == str(mine)


def _fake_pyenv(root: Path, versions: list[str]) -> None:
    listed = "\\n".join([*versions, "miniconda3-latest"])
    _fake(root / "bin" / "pyenv", f'''case "$1" in
  versions) printf '{listed}\\n' ;;
  root) echo "{root}" ;;
esac''')
    for version in versions:
        _link(root / "versions" / version / "bin" / "python3")


def test_pyenv_versions_are_found_without_pyenv_on_the_path(tmp_path):
    root = tmp_path / "pyenv"
    _fake_pyenv(root, ["3.11.7", "3.12.1", "3.13.0", "3.13.5"])
    run = _pick(tmp_path, tmp_path / "empty", PYENV_ROOT=str(root))
    assert run.stdout.strip() == str(root / "versions" / "3.13.5" / "bin" / "python3")


def test_pyenv_without_3_13_leaves_python3(tmp_path):
    # 3.12's collector starts its young collections as often as 3.11's: nothing gained.
    root = tmp_path / "pyenv"
    _fake_pyenv(root, ["3.11.7", "3.12.1"])
    run = _pick(tmp_path, tmp_path / "empty", PYENV_ROOT=str(root))
    assert run.stdout.strip() == "python3"


def test_python3_when_nothing_newer_and_a_refusal_when_it_is_too_old(tmp_path):
    run = _pick(tmp_path, tmp_path / "empty")
    assert (run.returncode, run.stdout.strip()) == (0, "python3")
    # Only a python3 that fails the check (too old, or without venv) on the PATH.
    bin_dir = tmp_path / "old"
    _fake(bin_dir / "python3", "exit 1")
    run = subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                         env={"PATH": str(bin_dir), "HOME": str(tmp_path / "home")})
    assert run.returncode == 1
    assert run.stdout == ""
