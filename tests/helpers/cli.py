"""The ``casegrid`` CLI run by a test against its own database, as an operator runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from casegrid.db import get_engine
from casegrid.settings import get_settings


@contextmanager
def cli_database(monkeypatch: pytest.MonkeyPatch, database_url: str, **env: str) -> Iterator[None]:
    """Point the CLI's settings and engine at ``database_url`` (and the given environment
    variables) for the block: both are read afresh at its start, and the engine is disposed
    and both forgotten at its end, so that the next test, and the database's drop, see
    none of it."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        yield
    finally:
        if get_engine.cache_info().currsize:
            get_engine().dispose()
        get_engine.cache_clear()
        get_settings.cache_clear()
