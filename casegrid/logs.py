"""Logging set-up: plain text by default, one JSON object per line with
``CASEGRID_LOG_FORMAT=json`` (for the log collectors a city's IT staff already run).

Fields of a JSON line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, and
whichever of ``request_id``, ``method``, ``route``, ``status``, ``duration_ms``, ``case_id``
the record carries (see :mod:`api.observability`), plus ``exc`` for a traceback.

Database errors carry the data of the row at fault (a check violation's "Failing row
contains (...)": the reporter's name, phone, the description as written). Every handler
of :func:`log_config` and every logger made by :func:`get_logger` passes its records
through :class:`RedactDatabaseErrors`, which tells them by :func:`casegrid.db_errors.describe`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from casegrid.db_errors import describe, holds_database_error, redacted_traceback

# Attributes a record may carry beyond the standard ones; only these reach a JSON line.
EXTRA_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "case_id")


class RedactDatabaseErrors(logging.Filter):
    """Rewrites a record so that no database error in it spells the row's data: an
    exception among its arguments (or as its message) becomes its
    :func:`~casegrid.db_errors.describe`, a traceback holding one its
    :func:`~casegrid.db_errors.redacted_traceback`. Lets every record through."""

    @staticmethod
    def _safe(value: object) -> object:
        if isinstance(value, BaseException) and holds_database_error(value):
            return describe(value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._safe(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._safe(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._safe(v) for k, v in record.args.items()}
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and holds_database_error(exc):
            # Formatters print exc_text when exc_info is gone (logging.Formatter.format).
            record.exc_text = redacted_traceback(exc)
            record.exc_info = None
        return True


_REDACT = RedactDatabaseErrors()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`RedactDatabaseErrors` on the logger itself,
    for modules that log database errors: their records are safe before any handler sees
    them, whatever logging set-up the process has (a foreign server's, a test's)."""
    logger = logging.getLogger(name)
    if _REDACT not in logger.filters:
        logger.addFilter(_REDACT)
    return logger


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


def log_config(fmt: str, level: str = "INFO") -> dict:
    """A ``logging.config.dictConfig`` document for casegrid and uvicorn's loggers, in the
    text or JSON format; passed to uvicorn as its ``log_config`` so the server's own lines
    are formatted the same way."""
    formatter = ({"()": "casegrid.logs.JsonFormatter"} if fmt == "json" else
                 {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr",
               "filters": ["database_errors"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"database_errors": {"()": "casegrid.logs.RedactDatabaseErrors"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "casegrid": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            # The request line of api.observability replaces uvicorn's access log, which
            # would print each query string (a phone number searched for, for one).
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def configure(fmt: str, level: str = "INFO") -> None:
    """Apply :func:`log_config` in this process (the CLI and the worker)."""
    import logging.config

    logging.config.dictConfig(log_config(fmt, level))
    logging.captureWarnings(True)
