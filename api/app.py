"""The FastAPI application: lifespan (engine made once), error mapping, routers.

Routers live in ``api/routes/``; each module there that defines ``router`` is included, so
adding an endpoint group never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from api import routes as routes_pkg
from api.db_gate import DatabaseGate, gate_slots
from api.errors import (
    ERROR_RESPONSES,
    error_responses_for,
    install_error_handlers,
    json_error_bodies,
)
from api.middleware import install_middleware
from api.observability import RequestObservability
from api.root_path import RootPathResponses
from api.web_session import install_sign_in_redirect
from casegrid import __version__, metrics
from casegrid.db import make_engine, resolve_database_url, single_read
from casegrid.replica import ReadSource
from casegrid.settings import Settings, get_settings
from cases.intake_batch import IntakeBatcher


def create_app(settings: Settings | None = None, database_url: str | None = None) -> FastAPI:
    """Build the app. ``database_url`` overrides the settings (tests, benchmarks)."""
    settings = settings or get_settings()
    url = database_url or resolve_database_url(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = make_engine(url, settings)
        metrics.worker_started()
        metrics.watch_pool(app.state.engine)
        app.state.reads = ReadSource(
            app.state.engine,
            make_engine(settings.read_database_url, settings, application_name="casegrid-read")
            if settings.read_database_url else None,
            settings.replica_max_lag_s)
        app.state.intake = IntakeBatcher(app.state.engine, settings,
                                          max_batch=settings.intake_batch_max,
                                          in_flight=settings.intake_batches_in_flight)
        await app.state.intake.start()
        try:
            yield
        finally:
            await app.state.intake.stop()
            metrics.worker_stopping()
            app.state.engine.dispose()
            if app.state.reads.replica is not None:
                app.state.reads.replica.dispose()

    app = FastAPI(
        title="casegrid",
        version=__version__,
        description=(
            "Spatial case management for city management: complaints routed to community "
            "posts by PostGIS boundaries, a case ledger with deadlines, maps for dispatchers "
            "and planners, and an Open311 GeoReport v2 endpoint."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_sign_in_redirect(app)  # workbench pages: no session -> /login
    # Middleware added last runs first: the request guards, then the queue for the pool
    # (which the intake, served by its batcher, never joins).
    app.add_middleware(DatabaseGate, slots=gate_slots(settings.pool_size, settings.intake_batches_in_flight),
                       wait_s=settings.db_queue_wait_s)
    install_middleware(app)
    app.add_middleware(RootPathResponses)  # outermost: every redirect and cookie, any route
    app.add_middleware(RequestObservability)  # outermost: times and logs everything

    # HEAD too: uptime monitors often probe with HEAD, and a 405 reads as "down".
    @app.head("/health", include_in_schema=False)
    @app.get("/health", tags=["meta"], responses={503: ERROR_RESPONSES[503]})
    def health() -> dict:
        """Liveness and database reachability (no token needed; GET or HEAD)."""
        with single_read(app.state.engine) as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    for info in sorted(pkgutil.iter_modules(routes_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes_pkg.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router, responses=error_responses_for(module, list(router.tags)))
    _document_json_errors(app)
    return app


def _document_json_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe error bodies as the JSON they are (see
    :func:`api.errors.json_error_bodies`); the document is built once and cached."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = json_error_bodies(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
