"""Helpers shared by the CLI modules: error printing and the database engine."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError, OperationalError

from casegrid.cluster import ClusterError
from casegrid.db_errors import describe
from casegrid.errors import CasegridError, InvalidInput

console = Console()
err_console = Console(stderr=True)


def cli_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into a clear message and exit status 2 instead of a traceback
    (3 when the database is unavailable or cannot be started; 1 when it refused a
    statement, told without the row's data: :func:`casegrid.db_errors.describe`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CasegridError as exc:
            where = f" ({exc.field})" if exc.field else ""
            err_console.print(f"[bold red]error{where}:[/] {exc.message}")
            sys.exit(2)
        except ClusterError as exc:
            # The embedded database could not be set up or started; its message says why.
            err_console.print(f"[bold red]error:[/] {exc}")
            sys.exit(3)
        except OperationalError as exc:
            # The database went away (or never came): every command works in one
            # transaction, so nothing half-written is left behind; saying so is the fix.
            err_console.print(
                "[bold red]error:[/] the database is unavailable "
                f"({str(exc.orig).strip().splitlines()[0] if exc.orig else exc}). Nothing "
                "was stored by this command; start it (`casegrid db start`) and re-run."
            )
            sys.exit(3)
        except DBAPIError as exc:
            # A bug or a constraint the command did not check first. Its traceback would
            # print the failing row (a reporter's name and phone) on the terminal.
            err_console.print(f"[bold red]error:[/] the database refused the command: "
                              f"{escape(describe(exc))}; its transaction was rolled back.",
                              highlight=False)
            sys.exit(1)

    return wrapper


def option_day(value: str, name: str) -> date:
    """A ``--from``/``--to`` option as a date (YYYY-MM-DD exactly), or a clear error naming it."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--{name} must be a date YYYY-MM-DD, got {value!r}",
                           field=name) from None


def engine():
    """The configured database engine (embedded cluster unless DATABASE_URL is set)."""
    from casegrid.db import get_engine

    return get_engine()
