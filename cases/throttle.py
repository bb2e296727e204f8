"""Failed look-ups counted per key in fixed windows, in the database (so every worker
process shares the count): the citizen's ``/track`` page slows down guessing by address and
by case number. A key that has failed ``limit`` times in the current window is refused until
the window ends; a success neither counts nor resets.
"""

from __future__ import annotations

import math

from sqlalchemy import Connection, text


def wait_seconds(conn: Connection, limits: dict[tuple[str, str], int], window_s: int) -> int:
    """Seconds until every ``(scope, key)`` is below its limit again; 0 when none is over."""
    rows = conn.execute(text(
        "SELECT scope, key, failures, EXTRACT(EPOCH FROM window_start "
        "+ make_interval(secs => :w) - now()) AS left_s FROM track_throttle "
        "WHERE (scope, key) IN (SELECT * FROM unnest(CAST(:s AS text[]), CAST(:k AS text[])))"),
        {"w": window_s, "s": [s for s, _ in limits], "k": [k for _, k in limits]}).all()
    wait = 0.0
    for r in rows:
        if r.left_s > 0 and r.failures >= limits[(r.scope, r.key)]:
            wait = max(wait, float(r.left_s))
    return math.ceil(wait)


def record_failure(conn: Connection, keys: list[tuple[str, str]], window_s: int) -> None:
    """Count one failure for each ``(scope, key)``; a window that has ended starts again."""
    conn.execute(text(
        "INSERT INTO track_throttle AS t (scope, key, window_start, failures) "
        "SELECT s, k, now(), 1 FROM unnest(CAST(:s AS text[]), CAST(:k AS text[])) AS u(s, k) "
        "ON CONFLICT (scope, key) DO UPDATE SET "
        "failures = CASE WHEN t.window_start + make_interval(secs => :w) <= now() THEN 1 "
        "ELSE t.failures + 1 END, "
        "window_start = CASE WHEN t.window_start + make_interval(secs => :w) <= now() "
        "THEN now() ELSE t.window_start END"),
        {"s": [s for s, _ in keys], "k": [k for _, k in keys], "w": window_s})
