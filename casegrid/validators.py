"""Input checks shared by the API's models and parameters."""

from __future__ import annotations


def not_a_timestamp(value: object) -> object:
    """A pydantic before-validator for a date or date-time: refuse a number, or text that
    reads as one, which pydantic would take for Unix time (0, or "20261101", a day in 1970;
    found when a complaint sent with ``reported_at: 0`` was stored as reported in 1970)."""
    number = isinstance(value, int | float)  # bool is an int too
    if isinstance(value, str):
        try:
            float(value)
            number = True
        except ValueError:
            pass
    if number:
        raise ValueError(
            f"{value!r} is a number, not a date or time: write it out, as YYYY-MM-DD or "
            "ISO 8601 with a UTC offset, e.g. 2026-11-01 or 2026-11-01T21:30:00+08:00")
    return value
