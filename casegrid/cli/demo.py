"""The demo's commands (``casegrid sample load``, ``demo-accounts``, ``demo-token``) live
with the demo data in :mod:`casegrid.demo.cli`; this module adds them to the CLI."""

from __future__ import annotations

from casegrid.demo.cli import register

__all__ = ["register"]
