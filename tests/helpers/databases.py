"""A fresh database from a template on the session's cluster: the per-test databases of
``tests/conftest.py``'s fixtures, and the tests that make several in one test (hypothesis
examples)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from casegrid.cluster import Cluster
from casegrid.db import make_engine


def fresh_database(cluster: Cluster, template: str) -> Iterator[str]:
    """The URL of a new database copied from ``template``, dropped when the caller is done."""
    name = f"cg_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name, template=template)
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@contextmanager
def engine_on(url: str) -> Iterator[Engine]:
    """casegrid's engine on ``url``, disposed (its connections closed) when the caller is
    done, so that the database can be dropped."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
