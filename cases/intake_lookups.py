"""What an intake batch reads before it routes and inserts, in one round trip.

A batch needs the presented tokens, the submitted categories, the active community
generation, the calendar's cache stamp and the time limits of its (category, channel)
pairs. Read one statement each, they were five round trips per batch, each costing the
worker and the database more than the lookup itself. :func:`fetch_intake_lookups` reads
them all in one statement built from each module's own SQL (the token and category
columns, the limits query, the calendar stamp), and the modules turn the rows into what
their one-query functions return: :func:`cases.tokens.principals_from_rows`,
:func:`cases.catalogue.categories_from_rows`, :func:`cases.deadlines.initial_deadlines_from`,
:func:`cases.calendar_store.load_calendar` with the stamp, and
:func:`geo.routing.route_in_generation`.

The lists are passed as JSON documents, so the prepared statement keeps one generic plan
whatever the batch (see :data:`geo.routing._ROUTE_MANY_POINTS`), and the token and
category rows come back as JSON: every one of their columns is text, a number, a boolean
or an array (a token's ``revoked_at`` is only tested for NULL).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from casegrid.db import RawQuery, json_param
from cases.calendar_store import STAMP_SQL
from cases.catalogue import CATEGORY_COLUMNS
from cases.deadlines import EFFECTIVE_MANY_SQL
from cases.tokens import TOKEN_COLUMNS


@dataclass(frozen=True)
class IntakeLookups:
    """The rows an intake batch reads up front (see the module docstring)."""

    tokens: dict[str, dict]       # api_token rows by token_hash
    categories: dict[str, dict]   # category rows by code
    limits: list[dict]            # rows of cases.deadlines.EFFECTIVE_MANY_SQL
    generation_id: int | None     # the active community generation, None before any import
    calendar_stamp: tuple         # cases.calendar_store.STAMP_SQL's (years, imported_at)


_LOOKUPS = RawQuery(f"""
SELECT
  (SELECT coalesce(json_agg(t), '[]') FROM (
     SELECT {TOKEN_COLUMNS} FROM api_token
     WHERE token_hash IN (SELECT jsonb_array_elements_text(CAST(:hashes AS jsonb)))) t) AS tokens,
  (SELECT coalesce(json_agg(c), '[]') FROM (
     SELECT {CATEGORY_COLUMNS} FROM category
     WHERE code IN (SELECT jsonb_array_elements_text(CAST(:codes AS jsonb)))) c) AS categories,
  (SELECT coalesce(json_agg(l), '[]') FROM ({EFFECTIVE_MANY_SQL}) l) AS limits,
  (SELECT id FROM boundary_generation WHERE level = 'community' AND active) AS generation_id,
  s.years, s.imported_at
FROM ({STAMP_SQL}) s
""")


def fetch_intake_lookups(conn: Connection, *, token_hashes: Iterable[str] = (),
                         codes: Iterable[str] = (),
                         pairs: Iterable[tuple[str, str]] = ()) -> IntakeLookups:
    """Read, in one statement in the caller's transaction, the tokens of ``token_hashes``,
    the categories of ``codes``, the time limits of the ``(category, channel)`` ``pairs``,
    the active community generation and the calendar stamp."""
    (row,) = _LOOKUPS.rows(conn, {
        "hashes": json_param(sorted(set(token_hashes))),
        "codes": json_param(sorted(set(codes))),
        "pairs": json_param([{"cat": c, "ch": h} for c, h in sorted(set(pairs))]),
    })
    return IntakeLookups(
        tokens={r["token_hash"]: r for r in row["tokens"]},
        categories={r["code"]: r for r in row["categories"]},
        limits=row["limits"],
        generation_id=row["generation_id"],
        calendar_stamp=(row["years"], row["imported_at"]),
    )
