"""The leadership overview (/work/overview): one month of the programme beside the month
before and the same month a year earlier, the posts' evaluation, the top complaint types and
places, and the activities, all from the functions the rest of the product uses
(:mod:`cases.stats`, :mod:`cases.evaluation`, :mod:`cases.activities`), so the page, the API
and the Excel report never disagree.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from cases.activities import activity_counts
from cases.evaluation import evaluate
from cases.stats import compute_stats
from cases.vocabulary import overdue_sql

# The figures compared month by month: (key in the stats, Chinese, English, is a rate).
KPIS: tuple[tuple[str, str, str, bool], ...] = (
    ("accepted", "受理", "received", False),
    ("on_time_close_rate", "按期结案率", "closed on time", True),
    ("reply_rate", "回复率", "reply rate", True),
    ("satisfaction_rate", "满意率", "satisfaction", True),
    ("follow_up_rate", "回访率", "followed up", True),
    ("reopen_rate", "重办率", "sent back to be redone", True),
)
TOP = 5
# The citizen's side of the loop, on the supervisors' home page: (rate, count behind it).
CITIZEN_LOOP = (("satisfaction_rate", "satisfied", "followed_up"),
                ("follow_up_rate", "followed_up", "due_follow_up"),
                ("reopen_rate", "reopened", "due_follow_up"))


def month_span(month: date) -> tuple[date, date]:
    """First and last day of ``month``'s month."""
    first = month.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def previous_month(month: date) -> date:
    first = month.replace(day=1)
    return (first.replace(year=first.year - 1, month=12) if first.month == 1
            else first.replace(month=first.month - 1))


def _year_before(month: date) -> date:
    return month.replace(day=1, year=month.year - 1)


def overview(conn: Connection, month: date) -> dict[str, Any]:
    """Everything the overview page shows for ``month`` (any day of it)."""
    months = {"this": month.replace(day=1), "last": previous_month(month),
              "year_ago": _year_before(month)}
    # The month's stats by category give its totals and its categories; by community, its
    # places and the evaluation's indicators: each computed once.
    by_cat = {k: compute_stats(conn, "category", *month_span(m)) for k, m in months.items()}
    totals = {k: r["total"] for k, r in by_cat.items()}
    kpis = []
    for key, zh, en, is_rate in KPIS:
        values = {k: totals[k].get(key) for k in months}
        if all(v is None for v in values.values()) and key not in totals["this"]:
            continue  # an indicator this ledger does not measure
        kpis.append({"key": key, "label_zh": zh, "label_en": en, "rate": is_rate, **values})
    this_span = month_span(months["this"])
    by_category = by_cat["this"]["groups"]
    categories = sorted((g for g in by_category if g["accepted"]), key=lambda g: -g["accepted"])
    community_stats = compute_stats(conn, "community", *this_span)
    places = sorted((g for g in community_stats["groups"] if g["accepted"] and g["key"]),
                    key=lambda g: -g["accepted"])
    scored = evaluate(conn, "post", *this_span, stats=community_stats)
    ranked = [e for e in scored["ranked"] if e["score"] is not None]
    acts = {k: activity_counts(conn, *month_span(m))["total"] for k, m in months.items()
            if k != "year_ago"}
    overdue_now = conn.execute(text(
        f'SELECT count(*) FROM "case" c WHERE {overdue_sql("c")}')).scalar_one()
    return {
        "month": months["this"].strftime("%Y-%m"), "months": {k: m.strftime("%Y-%m")
                                                              for k, m in months.items()},
        "kpis": kpis, "overdue_now": overdue_now,
        "best": ranked[:TOP],
        "weakest": [e for e in reversed(ranked[-TOP:]) if e not in ranked[:TOP]],
        "not_ranked": len(scored["too_few"]), "min_cases": scored["weights"]["min_cases"],
        "categories": [{"key": g["key"], "name": g["name"], "cases": g["accepted"]}
                       for g in categories[:TOP]],
        "places": [{"key": g["key"], "name": g["name"], "cases": g["accepted"]}
                   for g in places[:TOP]],
        "activities": acts,
    }


def citizen_loop(conn: Connection, month: date) -> list[dict[str, Any]]:
    """满意率, 回访率 and 重办率 of the cases received in ``month``'s month, each with the
    counts it is made of (:func:`cases.stats.compute_stats`, as the overview and the API)."""
    total = compute_stats(conn, "category", *month_span(month))["total"]
    labels = {key: (zh, en) for key, zh, en, _ in KPIS}
    return [{"key": rate, "label_zh": labels[rate][0], "label_en": labels[rate][1],
             "value": total.get(rate), "count": total.get(num, 0), "of": total.get(den, 0)}
            for rate, num, den in CITIZEN_LOOP]
