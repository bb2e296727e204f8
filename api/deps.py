"""FastAPI dependencies: the database connection (one per request, from the app's pool),
and parameter types shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy import Connection, Engine

from casegrid.validators import not_a_timestamp


def get_engine(request: Request) -> Engine:
    """The engine made once in the app's lifespan."""
    return request.app.state.engine


def get_conn(request: Request) -> Iterator[Connection]:
    """A connection in a transaction: committed when the handler returns, rolled back if it
    raises, so no request ever leaves the database half-written."""
    with request.app.state.engine.begin() as conn:
        yield conn


# scope="function": the COMMIT runs before the response is sent. With FastAPI's default
# ("request") it runs after, so a 201 could go out for a case whose COMMIT then fails (the
# database going away at that moment): an acknowledged case that was never stored. Now a
# failed COMMIT reaches the error handlers and the client gets a 503 it can retry.
# Authentication (api.auth.current_principal) reads the token on this same connection
# (FastAPI solves a dependency once per request), so a request holds one connection at most
# (tests/test_pool_waits.py checks every route).
ConnDep = Annotated[Connection, Depends(get_conn, scope="function")]


def get_read_conn(request: Request, response: Response, primary: ConnDep) -> Iterator[Connection]:
    """A connection for read-heavy work (statistics, hotspots, map data, exports): the read
    replica's when one is configured, usable and fresh enough, else the primary's
    (:class:`casegrid.replica.ReadSource`). Where it came from is in
    ``request.state.freshness`` and the ``X-Casegrid-Read-Source`` header. Never for a read
    that must see the caller's own latest write. Without the replica it is the request's own
    connection (the one authentication read the token on)."""
    with request.app.state.reads.connect(on_primary=primary) as (conn, freshness):
        request.state.freshness = freshness
        response.headers["X-Casegrid-Read-Source"] = freshness.header()
        yield conn


ReadConnDep = Annotated[Connection, Depends(get_read_conn, scope="function")]
EngineDep = Annotated[Engine, Depends(get_engine)]


# An optional date query parameter (YYYY-MM-DD).
DateQ = Annotated[date | None, BeforeValidator(not_a_timestamp)]
# The period of a report or an export, both required: the cases received from ``from`` to
# ``to``, both days included.
PeriodFrom = Annotated[date, Query(alias="from", description="First day of receipt (YYYY-MM-DD).")]
PeriodTo = Annotated[date, Query(alias="to", description="Last day of receipt, included.")]


def calendar_today(request: Request) -> date:
    """The working calendar's today: ``app.state.today()`` when set (a test's clock), else
    today in Beijing time (:func:`cases.calendar_horizon.today_in_calendar_zone`)."""
    from cases.calendar_horizon import today_in_calendar_zone

    clock = getattr(request.app.state, "today", None)
    return clock() if clock is not None else today_in_calendar_zone()
