"""Every route of the app, shared by the access matrix (a row per route) and the pool tests
(every route's dependencies)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from starlette.routing import BaseRoute


def walk_routes(app: FastAPI) -> Iterator[tuple[str, BaseRoute]]:
    """(full path template, route) of every route of the app, walking included routers
    whatever way the installed FastAPI nests them."""

    def walk(routes, prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "routes") and not hasattr(route, "methods"):
                yield from walk(route.routes, prefix + getattr(route, "path", ""))
            else:
                yield prefix + route.path, route

    return walk(app.routes)
