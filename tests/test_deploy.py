"""The deployment samples in deploy/: the systemd units parse and name real commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from casegrid.cli.serve import proxy_options
from casegrid.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
UNITS = ("casegrid.service", "casegrid-worker.service")


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_verifies(unit, tmp_path):
    """systemd-analyze accepts the unit once its ExecStart points at this checkout's casegrid."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    text = (ROOT / "deploy" / "systemd" / unit).read_text(encoding="utf-8")
    assert "User=casegrid" in text and "Restart=on-failure" in text
    assert "EnvironmentFile=/etc/casegrid/casegrid.env" in text
    command = text.split("ExecStart=/opt/casegrid/.venv/bin/casegrid ", 1)[1].split()[0]
    assert command == {"casegrid.service": "serve", "casegrid-worker.service": "worker"}[unit]
    exe = Path(sys.executable).parent / "casegrid"
    local = tmp_path / unit
    local.write_text(text.replace("/opt/casegrid/.venv/bin/casegrid", str(exe))
                     .replace("/opt/casegrid", str(ROOT)), encoding="utf-8")
    out = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True,
                         text=True, timeout=60)
    problems = [ln for ln in (out.stdout + out.stderr).splitlines()
                if unit in ln and "EnvironmentFile" not in ln]
    assert out.returncode == 0 and problems == [], out.stdout + out.stderr


def test_forwarded_headers_are_believed_only_from_trusted_proxies():
    """No trusted proxy (the default): uvicorn's proxy headers are off altogether."""
    assert proxy_options(Settings()) == {"proxy_headers": False, "forwarded_allow_ips": [],
                                         "root_path": ""}
    s = Settings(trusted_proxies="127.0.0.1, 10.0.0.0/24", root_path="/casegrid")
    assert proxy_options(s) == {"proxy_headers": True,
                                "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/24"],
                                "root_path": "/casegrid"}


def test_root_path_refuses_a_malformed_prefix():
    from pydantic import ValidationError

    for bad in ("casegrid", "/casegrid/", "/a b"):
        with pytest.raises(ValidationError, match="root_path"):
            Settings(root_path=bad)
