"""What a database error may say in a log line or on a terminal: never the values it carries.

PostgreSQL's error text holds the data of the row at fault. A check or not-null
violation's DETAIL is ``Failing row contains (...)``, every column of the row: the
reporter's name and phone, the description as written. A unique or foreign-key
violation's DETAIL is ``Key (column)=(value)``; some primary messages quote the value
refused (``invalid input syntax for type integer: "..."``); CONTEXT lines quote COPY data.
psycopg puts all of it in the exception's text, and SQLAlchemy adds the statement.

:func:`describe` keeps what the person fixing the fault needs and nothing of the row: the
error's class and SQLSTATE, the names of the constraint, table, column and type, and the
primary message with every quoted value that is not one of those names elided.
:func:`redacted_traceback` is a traceback whose database errors are described so. The log
filter of :mod:`casegrid.logs` applies both to every log record; the CLI prints
:func:`describe`. (HTTP bodies never carry database text at all: ``api/errors.py``.)
"""

from __future__ import annotations

import re
import traceback

import psycopg
from sqlalchemy.exc import DBAPIError, StatementError

ELIDED = "…"
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def driver_error(exc: BaseException | None) -> psycopg.Error | None:
    """The psycopg error ``exc`` is or wraps (SQLAlchemy's ``orig``), if any."""
    if isinstance(exc, psycopg.Error):
        return exc
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, psycopg.Error):
        return exc.orig
    return None


def is_database_error(exc: BaseException | None) -> bool:
    """True for a database error whose text may carry row data (driver or SQLAlchemy)."""
    return driver_error(exc) is not None or isinstance(exc, StatementError)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return out


def holds_database_error(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception in its chain is a database error."""
    return exc is not None and any(is_database_error(e) for e in _chain(exc))


def _primary(error: psycopg.Error) -> str:
    """The primary message, each quoted value elided unless it is a name the error itself
    reports (relation, constraint, column, type, schema)."""
    diag = error.diag
    primary = diag.message_primary
    if primary is None:
        # A client-side error (no server answer): its first line says what failed, and a
        # row's values are only ever on the lines after it.
        lines = str(error).strip().splitlines()
        return lines[0] if lines else type(error).__name__
    names = {n for n in (diag.table_name, diag.constraint_name, diag.column_name,
                         diag.datatype_name, diag.schema_name) if n}
    return _QUOTED.sub(lambda m: m[0] if m[1].replace('""', '"') in names else f'"{ELIDED}"',
                       primary)


def describe(exc: BaseException) -> str:
    """A one-line account of a database error without the data it carries (any other
    exception: its own text)."""
    error = driver_error(exc)
    if error is None:
        if isinstance(exc, StatementError):
            # Not from the driver (e.g. a parameter SQLAlchemy could not convert): the
            # type says what went wrong; its text would spell the statement's values.
            return f"{type(exc).__name__} ({type(exc.orig).__name__ if exc.orig else 'no cause'})"
        return str(exc)
    diag = error.diag
    head = type(exc).__name__
    if error is not exc:
        head += f" ({type(error).__name__})"
    if error.sqlstate:
        head += f" SQLSTATE {error.sqlstate}"
    where = [f"{label} {name}" for label, name in (
        ("table", diag.table_name), ("column", diag.column_name),
        ("constraint", diag.constraint_name), ("type", diag.datatype_name)) if name]
    return f"{head}: {_primary(error)}" + (f" [{', '.join(where)}]" if where else "")


def redacted_traceback(exc: BaseException) -> str:
    """``traceback.format_exception(exc)`` with every database error in the chain told by
    :func:`describe` (the frames name code and lines only, never values)."""
    parts: list[str] = []
    chain = _chain(exc)
    for i, e in enumerate(reversed(chain)):
        if i:
            parts.append("\nThe above exception was the direct cause of the following exception:\n\n"
                         if e.__cause__ is not None else
                         "\nDuring handling of the above exception, another exception occurred:\n\n")
        if e.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(e.__traceback__))
        name = f"{type(e).__module__}.{type(e).__qualname__}"
        parts.append(f"{name}: {describe(e)}\n" if is_database_error(e) else
                     "".join(traceback.format_exception_only(e)))
    return "".join(parts).rstrip("\n")
