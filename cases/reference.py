"""Reference data the workbench pages show beside cases, cached per process and keyed by
version stamps read with the request's session.

Every list page shows the filter choices (categories, subdistricts, communities), every
case page the outlines of the case's communities, its category's duplicate rule and the
working calendar. Read from the database on each request they were a round trip each
(and, for the outlines, a GeoJSON rendering of the polygons), for data that changes a few
times a year. They are kept here per process and per database instead, each under the
stamps of what it was read from; a page reads the current stamps in the statement that
reads its session (:data:`STAMPS_SQL`, passed to :func:`cases.users.session_for`), so a
boundary import's activation, a catalogue change or a calendar import is seen on the next
request in every worker, and nothing is served from a stale copy.

The stamps: the active community and subdistrict generations, each with its activation
time (a generation's rows are written before it is activated, and a database made again
reuses generation ids but not times); an MD5 of the category rows (a few dozen: any
change of any column shows); the calendar's own stamp (:data:`cases.calendar_store.STAMP_SQL`).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import URL, Connection

from casegrid.db import RawQuery
from cases.calendar import WorkCalendar
from cases.calendar_store import STAMP_SQL, load_calendar
from geo import map_data

# One row; its columns are read beside a session (cases.users.session_for) or alone.
STAMPS_SQL = f"""
SELECT (SELECT g.id || '@' || coalesce(g.activated_at::text, '') FROM boundary_generation g
        WHERE g.level = 'community' AND g.active) AS ref_communities,
       (SELECT g.id || '@' || coalesce(g.activated_at::text, '') FROM boundary_generation g
        WHERE g.level = 'subdistrict' AND g.active) AS ref_subdistricts,
       (SELECT md5(coalesce(string_agg(k::text, ',' ORDER BY k.code), '')) FROM category k)
           AS ref_categories,
       cal.years AS ref_calendar_years, cal.imported_at AS ref_calendar_imported_at
FROM ({STAMP_SQL}) cal
"""
_STAMPS = RawQuery(STAMPS_SQL)
# How many entries the cache keeps (filter choices per officer's scope, one outline each
# community): the least recently used go first.
MAX_ENTRIES = 2048


@dataclass(frozen=True)
class Stamps:
    """The versions of the reference data as one transaction sees them."""

    communities: str | None
    subdistricts: str | None
    categories: str
    calendar: tuple

    @classmethod
    def from_row(cls, row: dict) -> Stamps:
        """The stamps of a row holding :data:`STAMPS_SQL`'s columns."""
        return cls(row["ref_communities"], row["ref_subdistricts"], row["ref_categories"],
                   (row["ref_calendar_years"], row["ref_calendar_imported_at"]))


def read_stamps(conn: Connection) -> Stamps:
    """The stamps now, in one statement (for a caller that has no session row to read
    them with)."""
    return Stamps.from_row(_STAMPS.rows(conn, {})[0])


_cache: OrderedDict[tuple, object] = OrderedDict()
_lock = threading.Lock()
_MISS = object()


@functools.lru_cache(maxsize=32)
def _database(url: URL) -> str:
    """The database's URL without password: the first part of every key."""
    return url.render_as_string(hide_password=True)


def _peek(conn: Connection, key: tuple) -> object:
    """The value kept under ``key`` for this database, or ``_MISS``."""
    full = (_database(conn.engine.url), *key)
    with _lock:
        value = _cache.get(full, _MISS)
        if value is not _MISS:
            _cache.move_to_end(full)
        return value


def _keep(conn: Connection, key: tuple, value: object) -> object:
    with _lock:
        _cache[(_database(conn.engine.url), *key)] = value
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return value


def _cached(conn: Connection, key: tuple, load: Callable[[], object]) -> object:
    value = _peek(conn, key)
    return _keep(conn, key, load()) if value is _MISS else value


def clear() -> None:
    """Forget everything kept (tests)."""
    with _lock:
        _cache.clear()


# What is kept is shared by the requests of the process: callers read it, never change it.


def filter_options(conn: Connection, stamps: Stamps,
                   scope: tuple[str, ...] | None = None) -> dict:
    """:func:`geo.map_data.filter_options` (the list pages' filter choices), read once per
    version of the categories and boundaries and per ``scope``."""
    scope = tuple(scope) if scope is not None else None
    return _cached(conn, ("filter_options", stamps.categories, stamps.communities,
                          stamps.subdistricts, scope),
                   lambda: map_data.filter_options(conn, scope))


def community_choices(conn: Connection, stamps: Stamps) -> list[dict]:
    """:func:`geo.map_data.community_choices` (every active community, for a form's
    choice), read once per generation."""
    return _cached(conn, ("community_choices", stamps.communities),
                   lambda: map_data.community_choices(conn))


def community_geometries(conn: Connection, stamps: Stamps, codes: list[str]) -> list[dict]:
    """:func:`geo.map_data.community_geometries` (the outlines on a case's map): each
    community's read once per generation (the ones not kept yet in one statement)."""
    codes = list(dict.fromkeys(codes))
    found = {code: _peek(conn, ("community_geometry", stamps.communities, code)) for code in codes}
    missing = [code for code, g in found.items() if g is _MISS]
    if missing:
        read = {g["code"]: g for g in map_data.community_geometries(conn, missing)}
        for code in missing:
            # None too: a code outside the active generation is not asked for again.
            found[code] = _keep(conn, ("community_geometry", stamps.communities, code),
                                read.get(code))
    return [g for code in codes if (g := found[code]) is not None]


def duplicate_rule(conn: Connection, stamps: Stamps, category_code: str, default_m: float,
                   default_days: int) -> tuple[float, int]:
    """:func:`geo.map_data.duplicate_rule` (a category's duplicate radius and window), the
    rules of every category read once per version of the catalogue."""
    rules = _cached(conn, ("duplicate_rules", stamps.categories),
                    lambda: map_data.duplicate_rules(conn))
    return map_data.rule_or_default(rules.get(category_code), default_m, default_days)


def calendar(conn: Connection, stamps: Stamps) -> WorkCalendar:
    """The working calendar (:func:`cases.calendar_store.load_calendar`, which keeps its
    own cache under the same stamp, without reading the stamp again)."""
    return load_calendar(conn, stamps.calendar)
