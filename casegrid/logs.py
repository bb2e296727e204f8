"""Logging set-up: plain text by default, one JSON object per line with
``CASEGRID_LOG_FORMAT=json`` (for the log collectors a city's IT staff already run).

Fields of a JSON line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, and
whichever of ``request_id``, ``method``, ``route``, ``status``, ``duration_ms``, ``case_id``
the record carries (see :mod:`api.observability`), plus ``exc`` for a traceback.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Attributes a record may carry beyond the standard ones; only these reach a JSON line.
EXTRA_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "case_id")


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
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def log_config(fmt: str, level: str = "INFO") -> dict:
    """A ``logging.config.dictConfig`` document for casegrid and uvicorn's loggers, in the
    text or JSON format; passed to uvicorn as its ``log_config`` so the server's own lines
    are formatted the same way."""
    formatter = ({"()": "casegrid.logs.JsonFormatter"} if fmt == "json" else
                 {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
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
