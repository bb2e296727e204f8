"""Where the project and the shared real data are, for the tests that read files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
REALDATA = SHARED / "realdata"


def require_realdata(*parts: str) -> Path:
    """Path to a file in ../shared/realdata; skip locally when absent, fail in CI."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI; the real-data tests must run there")
        pytest.skip(f"{path} not present (../shared is absent on this checkout)")
    return path
