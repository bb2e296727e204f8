"""The category catalogue: which complaint types exist, and their duplicate-search settings.

Codes follow the digital city-management event codes (GB/T 30428.2 / CJ/T 315: 2-digit major
class + 2-digit minor class; cities extend with minor class 99). The rows live in the
``category`` table, seeded by migration 0002, whose docstring explains the seed and the
per-category duplicate radius/window overrides. A NULL override means the settings default.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from casegrid.db import RawQuery
from casegrid.errors import InvalidInput
from casegrid.settings import Settings, get_settings

HOW_TO_LIST = "list the valid codes with GET /api/v1/categories (or Open311 GET /open311/v2/services)"

CATEGORY_COLUMNS = (
    "code, name_zh, name_en, major_zh, major_en, description, active,"
    " duplicate_radius_m, duplicate_window_days"
)


def list_categories(conn: Connection, *, include_inactive: bool = False) -> list[dict]:
    """All categories ordered by code (active ones only unless ``include_inactive``)."""
    where = "" if include_inactive else " WHERE active"
    rows = conn.execute(text(f"SELECT {CATEGORY_COLUMNS} FROM category{where} ORDER BY code")).mappings()
    return [dict(r) for r in rows]


def get_category(conn: Connection, code: object) -> dict:
    """The active category ``code``; ``InvalidInput(field='category')`` when it is unknown,
    retired or malformed, with a message saying where the valid codes are listed."""
    found = get_categories(conn, [code])[_clean(code)]
    if isinstance(found, InvalidInput):
        raise found
    return found


_BY_CODES = RawQuery(f"SELECT {CATEGORY_COLUMNS} FROM category WHERE code = ANY(:codes)")


def get_categories(conn: Connection, codes: list[object]) -> dict[str, dict | InvalidInput]:
    """Each of ``codes`` (stripped) -> its active category row, or the ``InvalidInput`` that
    :func:`get_category` would raise for it. One query for all of them (intake batches
    read the rows with their other lookups: :func:`categories_from_rows`)."""
    wanted = sorted({_clean(c) for c in codes} - {""})
    rows = {r["code"]: r for r in _BY_CODES.rows(conn, {"codes": wanted})} if wanted else {}
    return categories_from_rows(codes, rows)


def categories_from_rows(codes: list[object], rows_by_code: dict[str, dict]) -> dict[str, dict | InvalidInput]:
    """:func:`get_categories` from the ``category`` rows (:data:`CATEGORY_COLUMNS`) already
    read for those codes (intake reads them with its other lookups)."""
    return {c: _checked(c, rows_by_code.get(c)) for c in {_clean(c) for c in codes}}


def _clean(code: object) -> str:
    return "" if code is None else str(code).strip()


def _checked(value: str, row: dict | None) -> dict | InvalidInput:
    if not value:
        return InvalidInput(f"category is missing: give a 4-digit category code; {HOW_TO_LIST}",
                            field="category")
    if row is None:
        shape = "" if (len(value) == 4 and value.isdigit()) else " (codes are 4 digits, e.g. 0599)"
        return InvalidInput(f"unknown category {value!r}{shape}; {HOW_TO_LIST}", field="category")
    if not row["active"]:
        return InvalidInput(
            f"category {value!r} ({row['name_en']}) is retired and takes no new cases; {HOW_TO_LIST}",
            field="category",
        )
    return row


def duplicate_params(category: dict, settings: Settings | None = None) -> tuple[float, int]:
    """``(radius_m, window_days)`` for duplicate search in ``category``: its overrides, else
    the settings defaults."""
    s = settings or get_settings()
    radius = category.get("duplicate_radius_m")
    window = category.get("duplicate_window_days")
    return (
        float(s.duplicate_radius_m if radius is None else radius),
        int(s.duplicate_window_days if window is None else window),
    )
