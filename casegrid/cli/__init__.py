"""The ``casegrid`` command: one CLI for everything an operator does.

The commands and their Typer app are in ``casegrid.cli._app``, imported on first use, and
this module imports nothing at its top: the ``casegrid`` console script imports it, and
``casegrid serve --workers N`` starts uvicorn's workers with multiprocessing's spawn, which
re-imports the parent's main script in every worker. Whatever this module imported (Typer,
Rich, every command module) would sit on each serving worker's heap, walked by every full
garbage collection while the worker answers nothing (bench/RESULTS.md, issue 20).
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """Console-script entry point."""
    from casegrid.cli._app import app

    app()


def __getattr__(name: str) -> Any:
    """``from casegrid.cli import app`` (the tests' CliRunner) builds the app on first use."""
    if name == "app":
        from casegrid.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
