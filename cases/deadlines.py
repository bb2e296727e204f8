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
time that rests on a year nobody has entered is provisional, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

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

# "Overdue": still open and past the deadline of the step it waits for. Reused by the case
# list (``GET /api/v1/cases?overdue=true``); the partial index case_open_due serves it.
OVERDUE_SQL = "closed_at IS NULL AND current_due_at < now()"


def overdue_sql(alias: str = "") -> str:
    """:data:`OVERDUE_SQL` with columns qualified by ``alias`` (e.g. ``"c"``)."""
    p = f"{alias}." if alias else ""
    return f"{p}closed_at IS NULL AND {p}current_due_at < now()"


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


_EFFECTIVE_SQL = """
SELECT DISTINCT ON (step) step, amount::float8 AS amount, unit, category_code, channel, note
FROM time_limit
WHERE category_code IN (:cat, '*') AND channel IN (:ch, '*')
ORDER BY step, (category_code = '*'), (channel = '*')
"""


def limits_for(conn: Connection, category_code: str, channel: str) -> dict[str, Limit]:
    """The effective limit of every step for a category and channel (most specific wins)."""
    rows = conn.execute(text(_EFFECTIVE_SQL), {"cat": category_code, "ch": channel}).mappings()
    return {r["step"]: Limit(**r) for r in rows}


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
    limits: dict[tuple[str, str], dict[str, Limit]] = {p: {} for p in set(keys)}
    for r in limit_rows:
        pair = limits.get((r["cat"], r["ch"]))
        if pair is not None:
            pair[r["step"]] = Limit(r["step"], float(r["amount"]), r["unit"],
                                    r["category_code"], r["channel"], r["note"])
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


# -- set-based due times ---------------------------------------------------------------------
#
# For many cases at once (intake batches, bulk import of a million rows) a Python call per
# case is too slow, so the calendar is laid out as two small temporary tables covering the
# span of the start moments, and one query computes every due time exactly as
# WorkCalendar.add does:
#   _cg_wday(day, cum, work, covered, close): cum = working days up to and including day;
#     the n-th working day after day d is the working day whose cum is cum(d) + n.
#   _cg_wperiod(ps, pe, cum_before): the work periods of working days with the working
#     seconds elapsed before each; a start's offset is located in it, the allowance added,
#     and the period holding the target gives the due moment.

DUE_SQL = """
SELECT l.key, l.step,
       CASE l.unit
           WHEN 'calendar_hours' THEN l.start + l.amount * interval '1 hour'
           WHEN 'calendar_days'  THEN l.start + l.amount * interval '1 day'
           WHEN 'working_days'   THEN wd.due_at
           WHEN 'working_hours'  THEN CASE WHEN l.amount = 0 THEN l.start ELSE wh.due_at END
       END AS due_at,
       CASE l.unit
           WHEN 'working_days'  THEN wd.prov
           WHEN 'working_hours' THEN CASE WHEN l.amount = 0
               THEN NOT (SELECT u.covered FROM _cg_wday u
                         WHERE u.day = (l.start AT TIME ZONE :tz)::date)
               ELSE wh.prov END
           ELSE false
       END AS provisional
FROM ({lim}) l
LEFT JOIN LATERAL (
    SELECT t.close AS due_at,
           EXISTS (SELECT 1 FROM _cg_wday u
                   WHERE u.day BETWEEN d0.day + CASE WHEN l.amount = 0 THEN 0 ELSE 1 END
                                   AND t.day
                     AND NOT u.covered) AS prov
    FROM _cg_wday d0
    CROSS JOIN LATERAL (
        SELECT d.day, d.close FROM _cg_wday d
        WHERE d.work AND d.cum = d0.cum + l.amount::int
              + CASE WHEN l.amount = 0 AND NOT (d0.work AND l.start <= d0.close) THEN 1 ELSE 0 END
        ORDER BY d.day LIMIT 1
    ) t
    WHERE l.unit = 'working_days' AND d0.day = (l.start AT TIME ZONE :tz)::date
) wd ON true
LEFT JOIN LATERAL (
    SELECT q.ps + (tg.t - q.cum_before) * interval '1 second' AS due_at,
           EXISTS (SELECT 1 FROM _cg_wday u
                   WHERE u.day BETWEEN (l.start AT TIME ZONE :tz)::date
                                   AND ((q.ps + (tg.t - q.cum_before) * interval '1 second')
                                        AT TIME ZONE :tz)::date
                     AND NOT u.covered) AS prov
    FROM (SELECT p.cum_before + greatest(0, extract(epoch FROM l.start - p.ps)) + l.amount * 3600 AS t
          FROM _cg_wperiod p WHERE p.pe > l.start ORDER BY p.pe LIMIT 1) tg
    CROSS JOIN LATERAL (
        SELECT w.ps, w.cum_before FROM _cg_wperiod w
        WHERE w.cum_before < tg.t AND w.cum_before + extract(epoch FROM w.pe - w.ps) >= tg.t
        ORDER BY w.cum_before DESC LIMIT 1
    ) q
    WHERE l.unit = 'working_hours'
) wh ON true
"""


def _layout_calendar(conn: Connection, calendar: WorkCalendar, first: date, last: date) -> None:
    """(Re)create the temporary calendar tables for days ``first``..``last``."""
    days, periods = [], []
    cum, elapsed = 0, 0.0
    d = first
    while d <= last:
        work = calendar.is_workday(d)
        cum += int(work)
        close = datetime.combine(d, calendar.work_periods[-1][1], tzinfo=calendar.tz)
        days.append((d, cum, work, calendar.is_covered(d), close))
        if work:
            for b, e in calendar.work_periods:
                ps = datetime.combine(d, b, tzinfo=calendar.tz)
                pe = datetime.combine(d, e, tzinfo=calendar.tz)
                periods.append((ps, pe, elapsed))
                elapsed += (pe - ps).total_seconds()
        d += timedelta(days=1)
    conn.execute(text("DROP TABLE IF EXISTS _cg_wday, _cg_wperiod"))
    conn.execute(text(
        "CREATE TEMP TABLE _cg_wday (day date PRIMARY KEY, cum int, work boolean, "
        "covered boolean, close timestamptz) ON COMMIT DROP"))
    conn.execute(text(
        "CREATE TEMP TABLE _cg_wperiod (ps timestamptz, pe timestamptz PRIMARY KEY, "
        "cum_before float8) ON COMMIT DROP"))
    conn.execute(text("CREATE INDEX ON _cg_wday (cum) WHERE work"))
    conn.execute(text("CREATE INDEX ON _cg_wperiod (cum_before)"))
    conn.execute(
        text("INSERT INTO _cg_wday SELECT * FROM unnest(CAST(:d AS date[]), CAST(:c AS int[]), "
             "CAST(:w AS boolean[]), CAST(:v AS boolean[]), CAST(:x AS timestamptz[]))"),
        {"d": [r[0] for r in days], "c": [r[1] for r in days], "w": [r[2] for r in days],
         "v": [r[3] for r in days], "x": [r[4] for r in days]},
    )
    if periods:
        conn.execute(
            text("INSERT INTO _cg_wperiod SELECT * FROM unnest(CAST(:a AS timestamptz[]), "
                 "CAST(:b AS timestamptz[]), CAST(:c AS float8[]))"),
            {"a": [p[0] for p in periods], "b": [p[1] for p in periods],
             "c": [p[2] for p in periods]},
        )
    conn.execute(text("ANALYZE _cg_wday"))
    conn.execute(text("ANALYZE _cg_wperiod"))


def _horizon(max_days: float, max_hours: float) -> int:
    # Generous: 1.6 calendar days per working day covers Golden Week plus weekends, and a
    # working day has at least ~3 working hours in any sane work-period setting.
    return int(math.ceil(max_days * 1.6 + max_hours / 3.0 * 1.6)) + 30


def bulk_due(
    conn: Connection, calendar: WorkCalendar, items: Sequence[tuple[object, datetime, float, str]]
) -> dict[object, Deadline]:
    """Due times of many ``(key, start, amount, unit)`` items in one query (same results as
    :meth:`WorkCalendar.add`). Needs an open transaction on ``conn`` (temporary tables)."""
    if not items:
        return {}
    keys = [str(k) for k, *_ in items]
    starts = [s for _, s, _, _ in items]
    amounts = [float(a) for _, _, a, _ in items]
    units = [u for *_, u in items]
    _prepare(conn, calendar, starts, amounts, units)
    lim = ("SELECT k AS key, 'x'::text AS step, s AS start, a AS amount, u AS unit FROM "
           "unnest(CAST(:k AS text[]), CAST(:s AS timestamptz[]), CAST(:a AS float8[]), "
           "CAST(:u AS text[])) AS t(k, s, a, u)")
    rows = conn.execute(text(DUE_SQL.replace("{lim}", lim)),
                        {"k": keys, "s": starts, "a": amounts, "u": units,
                         "tz": str(calendar.tz)}).all()
    by_key = {str(k): k for k, *_ in items}
    out: dict[object, Deadline] = {}
    for r in rows:
        key = by_key[r.key]
        if r.due_at is None:  # beyond the laid-out span: fall back to the exact walk
            start, amount, unit = next((s, a, u) for k, s, a, u in items if str(k) == r.key)
            out[key] = calendar.add(start, amount, unit)  # type: ignore[arg-type]
        else:
            out[key] = Deadline(r.due_at.astimezone(calendar.tz), bool(r.provisional))
    return out


def _prepare(conn: Connection, calendar: WorkCalendar, starts: Sequence[datetime],
             amounts: Sequence[float], units: Sequence[str]) -> None:
    max_days = max([a for a, u in zip(amounts, units, strict=True) if u.endswith("days")] or [0])
    max_hours = max([a for a, u in zip(amounts, units, strict=True) if u.endswith("hours")] or [0])
    first = min(s.astimezone(calendar.tz).date() for s in starts) - timedelta(days=1)
    last = max(s.astimezone(calendar.tz).date() for s in starts)
    _layout_calendar(conn, calendar, first, last + timedelta(days=_horizon(max_days, max_hours)))


# Review and reply allowances of a relation of new cases ``(key, start, category_code,
# channel)``: the most specific time_limit row wins ('*' matches any category or channel).
_LIMITS_FOR = """
SELECT r.key::text AS key, l.step, r.start, l.amount, l.unit
FROM ({rel}) r
JOIN (
    SELECT DISTINCT ON (k.category_code, k.channel, t.step)
           k.category_code, k.channel, t.step, t.amount::float8 AS amount, t.unit
    FROM (SELECT DISTINCT q.category_code, q.channel FROM ({rel}) q) k
    JOIN time_limit t ON t.category_code IN (k.category_code, '*') AND t.channel IN (k.channel, '*')
    WHERE t.step IN ('review', 'reply')
    ORDER BY k.category_code, k.channel, t.step, (t.category_code = '*'), (t.channel = '*')
) l ON l.category_code = r.category_code AND l.channel = r.channel
"""
_CASES_REL = (
    'SELECT c.id AS key, c.received_at AS start, c.category_code, c.channel '
    'FROM unnest(CAST(:ids AS bigint[])) AS i(id) JOIN "case" c ON c.id = i.id'
)
_INITIAL_LIM = _LIMITS_FOR.replace("{rel}", _CASES_REL)


# Up to this many cases (an API intake is one) the due times are computed in Python with the
# cached calendar: laying the calendar out as temporary tables costs ~20 ms per call.
SMALL_BATCH = 50


def _set_initial_deadlines_small(conn: Connection, calendar: WorkCalendar, case_ids: list[int]) -> int:
    """The same as the set-based path, for a handful of cases (same results)."""
    rows = conn.execute(text(_INITIAL_LIM), {"ids": list(case_ids)}).all()
    due: dict[tuple[int, str], Deadline] = {
        (int(r.key), r.step): calendar.add(r.start, float(r.amount), r.unit) for r in rows
    }
    ids = sorted({k for k, step in due if step == "review"})
    if not ids:
        return 0
    review = [due[(i, "review")] for i in ids]
    reply = [due.get((i, "reply")) for i in ids]
    return conn.execute(
        text(
            """
            UPDATE "case" k
            SET review_due_at = u.review_at,
                reply_due_at = u.reply_at,
                current_due_at = CASE WHEN k.status = 'registered' THEN u.review_at
                                      ELSE k.current_due_at END,
                due_provisional = CASE WHEN k.status = 'registered' THEN u.prov
                                       ELSE k.due_provisional END
            FROM unnest(CAST(:ids AS bigint[]), CAST(:rv AS timestamptz[]),
                        CAST(:rp AS timestamptz[]), CAST(:pv AS boolean[]))
                 AS u(id, review_at, reply_at, prov)
            WHERE k.id = u.id
            """
        ),
        {
            "ids": ids,
            "rv": [d.at for d in review],
            "rp": [d.at if d else None for d in reply],
            "pv": [d.provisional for d in review],
        },
    ).rowcount


def set_initial_deadlines(conn: Connection, case_ids: list[int]) -> int:
    """Set review and reply due times of newly registered cases, set-based; return the count.

    ``review_due_at`` and ``reply_due_at`` are counted from ``received_at``;
    ``current_due_at`` becomes the review due time (a new case waits for review) and
    ``due_provisional`` says whether it rests on a year without an entered calendar. Cases
    whose status is no longer ``registered`` keep their current due time. Runs in the
    caller's transaction: one layout of the calendar and one UPDATE for the whole batch.
    """
    if not case_ids:
        return 0
    from cases.calendar_store import load_calendar

    calendar = load_calendar(conn)
    if len(case_ids) <= SMALL_BATCH:
        return _set_initial_deadlines_small(conn, calendar, case_ids)
    return _set_initial_deadlines_vectorised(conn, calendar, case_ids)


def stage_initial_deadlines(
    conn: Connection, calendar: WorkCalendar, relation: str, params: dict, table: str
) -> int:
    """Compute review/reply due times for a relation of new cases ``(key, start,
    category_code, channel)`` with numpy (``cases/deadlines_vec.py``, equal to the
    calendar's own walk) and COPY them into temporary table ``table(key bigint, review_at,
    reply_at, prov)``; return its row count. Bulk imports join it into their INSERT, so no
    row is written twice."""
    import io

    import numpy as np
    import pandas as pd

    from cases.deadlines_vec import due_many_epoch

    conn.execute(text(
        f"CREATE TEMP TABLE {table} (key bigint PRIMARY KEY, review_at timestamptz, "
        "reply_at timestamptz, prov boolean) ON COMMIT DROP"))
    # Numbers travel through COPY both ways (epoch seconds): building Python datetimes for a
    # million rows would cost more than the arithmetic itself.
    limits_sql = _LIMITS_FOR.replace("{rel}", relation)
    conn.execute(text(
        "CREATE TEMP TABLE _cg_lim ON COMMIT DROP AS SELECT key::bigint AS key, step, "
        f"floor(extract(epoch FROM start))::bigint AS s, amount, unit FROM ({limits_sql}) x"),
        params)
    buf = io.BytesIO()
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy("COPY _cg_lim TO STDOUT (FORMAT csv)") as copy:
        for block in copy:
            buf.write(block)
    conn.execute(text("DROP TABLE _cg_lim"))
    buf.seek(0)
    frame = pd.read_csv(buf, header=None, names=["key", "step", "s", "amount", "unit"],
                        dtype={"key": np.int64, "step": str, "s": np.int64, "amount": float,
                               "unit": str})
    if frame.empty:
        return 0
    due_s, prov = due_many_epoch(
        calendar, frame["s"].to_numpy(), frame["amount"].to_numpy(float), frame["unit"].to_numpy(object)
    )
    frame["due"], frame["prov"] = due_s, prov
    review = frame[frame["step"] == "review"].set_index("key")
    reply = frame[frame["step"] == "reply"].set_index("key")["due"]
    out = pd.DataFrame({
        "key": review.index.to_numpy(np.int64),
        "review": review["due"].to_numpy(np.int64),
        # a Series, not its numpy array: the missing replies of pairs without a reply limit
        # would turn every reply into a float, which COPY refuses as a bigint
        "reply": reply.reindex(review.index).astype("Int64").reset_index(drop=True),
        "prov": review["prov"].astype(bool).to_numpy(),
    })
    conn.execute(text("CREATE TEMP TABLE _cg_due_raw (key bigint, review bigint, reply bigint,"
                      " prov boolean) ON COMMIT DROP"))
    with raw.cursor() as cur, cur.copy(
        "COPY _cg_due_raw (key, review, reply, prov) FROM STDIN (FORMAT csv)"
    ) as copy:
        copy.write(out.to_csv(index=False, header=False))
    conn.execute(text(
        f"INSERT INTO {table} SELECT key, to_timestamp(review), to_timestamp(reply), prov "
        "FROM _cg_due_raw"))
    conn.execute(text("DROP TABLE _cg_due_raw"))
    conn.execute(text(f"ANALYZE {table}"))
    return len(out)


def _set_initial_deadlines_vectorised(conn: Connection, calendar: WorkCalendar, case_ids: list[int]) -> int:
    """Bulk path for existing cases: stage the due times, apply them with one UPDATE."""
    stage_initial_deadlines(conn, calendar, _CASES_REL, {"ids": list(case_ids)}, "_cg_initial_due")
    done = conn.execute(text("""
        UPDATE "case" k
        SET review_due_at = u.review_at,
            reply_due_at = u.reply_at,
            current_due_at = CASE WHEN k.status = 'registered' THEN u.review_at ELSE k.current_due_at END,
            due_provisional = CASE WHEN k.status = 'registered' THEN u.prov ELSE k.due_provisional END
        FROM _cg_initial_due u WHERE k.id = u.key
    """)).rowcount
    conn.execute(text("DROP TABLE _cg_initial_due"))
    return done


def _set_initial_deadlines_sql(conn: Connection, calendar: WorkCalendar, case_ids: list[int]) -> int:
    """The set-based SQL path over a laid-out calendar (kept as a second, independent
    implementation: tests compare it with the other two)."""
    span = conn.execute(
        text("SELECT min(received_at) AS lo, max(received_at) AS hi FROM \"case\" "
             "WHERE id = ANY(:ids)"), {"ids": list(case_ids)}).one()
    if span.lo is None:
        return 0
    limits = conn.execute(text(
        "SELECT max(amount::float8) FILTER (WHERE unit LIKE '%days') AS d, "
        "max(amount::float8) FILTER (WHERE unit LIKE '%hours') AS h FROM time_limit "
        "WHERE step IN ('review', 'reply')")).one()
    first = span.lo.astimezone(calendar.tz).date() - timedelta(days=1)
    last = span.hi.astimezone(calendar.tz).date()
    _layout_calendar(conn, calendar, first,
                     last + timedelta(days=_horizon(limits.d or 0, limits.h or 0)))
    sql = f"""
    WITH due AS MATERIALIZED ({DUE_SQL.replace('{lim}', _INITIAL_LIM)})
    UPDATE "case" k
    SET review_due_at = r.due_at,
        reply_due_at = p.due_at,
        current_due_at = CASE WHEN k.status = 'registered' THEN r.due_at ELSE k.current_due_at END,
        due_provisional = CASE WHEN k.status = 'registered' THEN coalesce(r.provisional, false)
                               ELSE k.due_provisional END
    FROM due r LEFT JOIN due p ON p.key = r.key AND p.step = 'reply'
    WHERE r.step = 'review' AND k.id = r.key::bigint
    """
    return conn.execute(text(sql), {"ids": list(case_ids), "tz": str(calendar.tz)}).rowcount


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
