"""Helpers shared by the CLI modules: error printing and the database engine."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from casegrid.errors import CasegridError

console = Console()
err_console = Console(stderr=True)


def cli_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into a clear message and exit status 2 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CasegridError as exc:
            where = f" ({exc.field})" if exc.field else ""
            err_console.print(f"[bold red]error{where}:[/] {exc.message}")
            sys.exit(2)

    return wrapper


def engine():
    """The configured database engine (embedded cluster unless DATABASE_URL is set)."""
    from casegrid.db import get_engine

    return get_engine()
