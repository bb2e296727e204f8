"""Time limits per category and step, and the due times of cases.

Steps and what each deadline is measured from (the column it fills on ``"case"``):

* ``review``   – from receipt (``received_at``) to the review decision   → ``review_due_at``
* ``dispatch`` – from the review (or a 退单 return) to the dispatch        → ``dispatch_due_at``
* ``acknowledge`` – from the (last) dispatch to the post's 签收             → ``acknowledge_due_at``
* ``handle``   – from the (last) dispatch to the handling; extensions add  → ``handle_due_at``
                 to it, rework (返工) does not reset it
* ``reply``    – from receipt to the reply to the complainant              → ``reply_due_at``

``current_due_at`` is the deadline of whatever the case is waiting for now (NULL once the
complainant has been answered). Limits live in the ``time_limit`` table keyed by
``(category_code, channel, step)``; ``'*'`` matches any category or channel and the most
specific row wins: category+channel, then category, then channel, then the default. The
defaults (DOMAIN.md) are seeded by migration 0003 and edited by an admin through
``PUT /api/v1/categories/{code}/time-limits`` or ``casegrid case limits-set``.

Working time follows :class:`cases.calendar.WorkCalendar` (holidays and make-up days); a due
time that rests on a year nobody has entered is provisional, never an error. Due times are
computed one way: the calendar's day walk (:meth:`WorkCalendar.add`) for the ledger's
cases (intake, workflow actions), and its vectorised twin :mod:`cases.deadlines_vec` for
the bulk import, tested equal to the walk over random calendars.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from casegrid.db import RawQuery, json_param
from casegrid.errors import InvalidInput, NotFound
from cases.calendar import UNITS, Deadline, WorkCalendar, due_status

STEPS: tuple[str, ...] = ("review", "dispatch", "acknowledge", "handle", "reply")
DUE_COLUMNS = {s: f"{s}_due_at" for s in STEPS}
DONE_COLUMNS = {
    "review": "reviewed_at",
    "dispatch": "dispatched_at",
    "acknowledge": "acknowledged_at",
    "handle": "handled_at",
    "reply": "replied_at",
}
ANY = "*"
MAX_AMOUNT = 1000

@dataclass(frozen=True)
class Limit:
    """One step's allowance: ``amount`` ``unit`` (a :data:`cases.calendar.UNITS` member)."""

    step: str
    amount: float
    unit: str
    category_code: str = ANY
    channel: str = ANY
    note: str | None = None

    def to_dict(self) -> dict:
        return {"step": self.step, "amount": self.amount, "unit": self.unit,
                "category_code": self.category_code, "channel": self.channel, "note": self.note}


def limits_for(conn: Connection, category_code: str, channel: str) -> dict[str, Limit]:
    """The effective limit of every step for a category and channel (most specific wins)."""
    return limits_by_pair(conn, [(category_code, channel)])[(category_code, channel)]


def limits_by_pair(conn: Connection, pairs: Iterable[tuple[str, str]]
                   ) -> dict[tuple[str, str], dict[str, Limit]]:
    """:func:`limits_for` of many ``(category_code, channel)`` pairs in one query."""
    wanted = sorted(set(pairs))
    rows = _EFFECTIVE_MANY.rows(conn, {"pairs": json_param([{"cat": c, "ch": h} for c, h in wanted])})
    return limits_from_rows(rows, wanted)


def limits_from_rows(rows: list[dict], pairs: Iterable[tuple[str, str]]
                     ) -> dict[tuple[str, str], dict[str, Limit]]:
    """Each pair's limits from rows of :data:`EFFECTIVE_MANY_SQL` (rows of other pairs are
    ignored)."""
    out: dict[tuple[str, str], dict[str, Limit]] = {p: {} for p in pairs}
    for r in rows:
        found = out.get((r["cat"], r["ch"]))
        if found is not None:
            found[r["step"]] = Limit(r["step"], float(r["amount"]), r["unit"],
                                     r["category_code"], r["channel"], r["note"])
    return out


def due_after(calendar: WorkCalendar, start: datetime, limit: Limit) -> Deadline:
    """When a step that starts at ``start`` is due under ``limit``."""
    return calendar.add(start, limit.amount, limit.unit)  # type: ignore[arg-type]


def share_point(calendar: WorkCalendar, start: datetime, due: datetime, share: float) -> datetime:
    """The moment ``share`` (0-1) of the time from ``start`` to ``due`` has elapsed, counted
    in working time when there is any between them (a step due in 2 working days is 75%
    through at 75% of its working hours, however many nights and holidays lie between),
    otherwise in plain elapsed time. The due-soon reminder (cases.reminders) is set here."""
    working = calendar.working_seconds_between(start, due)
    if working > 0:
        return calendar.add(start, share * working / 3600.0, "working_hours").at
    return start + (due - start) * share


EFFECTIVE_MANY_SQL = """
SELECT DISTINCT ON (k.cat, k.ch, t.step) k.cat, k.ch, t.step, t.amount::float8 AS amount, t.unit,
       t.category_code, t.channel, t.note
FROM jsonb_to_recordset(CAST(:pairs AS jsonb)) AS k(cat text, ch text)
JOIN time_limit t ON t.category_code IN (k.cat, '*') AND t.channel IN (k.ch, '*')
ORDER BY k.cat, k.ch, t.step, (t.category_code = '*'), (t.channel = '*')
"""
# Intake batches read it within cases.intake_lookups' statement. The pairs come as a JSON
# document, not as arrays, so a prepared statement keeps one generic plan (as geo.routing's
# points).
_EFFECTIVE_MANY = RawQuery(EFFECTIVE_MANY_SQL)


def initial_deadlines_many(
    conn: Connection, keys: list[tuple[str, str]], received_at: datetime
) -> dict[tuple[str, str], dict]:
    """Due columns of cases about to be registered (review and reply, counted from
    ``received_at``), per ``(category_code, channel)`` pair, so intake writes them with the
    INSERT instead of updating the rows. The calendar and all limits in two queries."""
    from cases.calendar_store import load_calendar

    pairs = sorted(set(keys))
    rows = _EFFECTIVE_MANY.rows(conn, {"pairs": json_param([{"cat": c, "ch": h} for c, h in pairs])})
    return initial_deadlines_from(load_calendar(conn), rows, keys, received_at)


def initial_deadlines_from(calendar: WorkCalendar, limit_rows: list[dict],
                           keys: list[tuple[str, str]], received_at: datetime
                           ) -> dict[tuple[str, str], dict]:
    """:func:`initial_deadlines_many` from the rows of :data:`EFFECTIVE_MANY_SQL` already read
    (for these pairs and maybe others, which are ignored) and the working calendar."""
    limits = limits_from_rows(limit_rows, set(keys))
    out = {}
    for pair, lims in limits.items():
        review = due_after(calendar, received_at, lims["review"]) if "review" in lims else None
        reply = due_after(calendar, received_at, lims["reply"]) if "reply" in lims else None
        out[pair] = {
            "review_due_at": review.at if review else None,
            "reply_due_at": reply.at if reply else None,
            "current_due_at": review.at if review else None,
            "due_provisional": bool(review and review.provisional),
        }
    return out


# -- the editable table ----------------------------------------------------------------------


def get_time_limits(conn: Connection, category_code: str) -> dict:
    """A category's own rows and the effective limit per step and channel (for display)."""
    _require_category(conn, category_code)
    own = conn.execute(
        text("SELECT step, channel, amount::float8 AS amount, unit, note, updated_at, updated_by "
             "FROM time_limit WHERE category_code = :c ORDER BY step, channel"),
        {"c": category_code},
    ).mappings()
    channels = [ANY] + list(conn.execute(text(
        "SELECT DISTINCT channel FROM time_limit WHERE channel <> '*' ORDER BY channel")).scalars())
    effective = {
        ch: {s: lim.to_dict() for s, lim in limits_for(conn, category_code, ch).items()}
        for ch in channels
    }
    return {"category_code": category_code, "own": [dict(r) for r in own], "effective": effective}


def set_time_limits(conn: Connection, category_code: str, limits: Iterable[dict], actor: str) -> dict:
    """Insert or replace a category's limits; each item ``{step, amount, unit, channel?, note?}``.

    ``category_code`` may be ``'*'`` (the defaults). ``amount`` is at most 1000; working and
    calendar days must be whole numbers. Returns :func:`get_time_limits` of the category.
    """
    _require_category(conn, category_code)
    rows = [_check_limit(item, i) for i, item in enumerate(limits)]
    if not rows:
        raise InvalidInput("give at least one limit {step, amount, unit}", field="limits")
    for r in rows:
        conn.execute(
            text(
                "INSERT INTO time_limit (category_code, channel, step, amount, unit, note, "
                "updated_at, updated_by) VALUES (:cat, :channel, :step, :amount, :unit, :note, "
                "now(), :actor) ON CONFLICT (category_code, channel, step) DO UPDATE SET "
                "amount = EXCLUDED.amount, unit = EXCLUDED.unit, note = EXCLUDED.note, "
                "updated_at = now(), updated_by = EXCLUDED.updated_by"
            ),
            {**r, "cat": category_code, "actor": actor},
        )
    return get_time_limits(conn, category_code)


def _require_category(conn: Connection, code: str) -> None:
    if code == ANY:
        return
    if not conn.execute(text("SELECT 1 FROM category WHERE code = :c"), {"c": code}).first():
        raise NotFound(f"no category {code!r}; see GET /api/v1/categories", field="code")


def _check_limit(item: dict, i: int) -> dict:
    where = f"limits[{i}]"
    step, unit = item.get("step"), item.get("unit")
    if step not in STEPS:
        raise InvalidInput(f"{where}.step must be one of {', '.join(STEPS)}, not {step!r}",
                           field=f"{where}.step")
    if unit not in UNITS:
        raise InvalidInput(f"{where}.unit must be one of {', '.join(UNITS)}, not {unit!r}",
                           field=f"{where}.unit")
    amount = item.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) \
            or not 0 <= amount <= MAX_AMOUNT:
        raise InvalidInput(f"{where}.amount must be a number from 0 to {MAX_AMOUNT}, got {amount!r}",
                           field=f"{where}.amount")
    if unit.endswith("_days") and float(amount) != int(amount):
        raise InvalidInput(f"{where}.amount: {unit} must be a whole number, got {amount}",
                           field=f"{where}.amount")
    channel = item.get("channel") or ANY
    return {"step": step, "unit": unit, "amount": amount, "channel": channel,
            "note": item.get("note")}


# -- due status for display ------------------------------------------------------------------


def due_summary(case: dict, now: datetime) -> dict:
    """Each step's due time, completion and status (``on_time``/``due_soon``/``overdue``/
    ``done_on_time``/``done_late``), plus ``current`` for the step the case waits on."""
    steps = {}
    for step in STEPS:
        due = case.get(DUE_COLUMNS[step])
        done = case.get(DONE_COLUMNS[step])
        steps[step] = {
            "due_at": due,
            "done_at": done,
            "status": due_status(due, now, done) if due is not None else None,
        }
    current = case.get("current_due_at")
    closed = case.get("closed_at") is not None
    steps["current"] = {
        "due_at": current,
        "provisional": bool(case.get("due_provisional")),
        "status": None if current is None or closed else due_status(current, now),
    }
    return steps
