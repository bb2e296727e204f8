"""The one case filter set (cases/filters.py): its validation names the field, it keeps a
canonical form (so equal filters key one cache entry), scope narrows to the reader's
communities, and whole local days round-trip."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from casegrid.errors import InvalidInput
from cases.calendar import CITY_TZ
from cases.filters import (
    OPEN_GROUPS,
    CaseFilters,
    day_window,
    filter_sql,
    parse_bbox,
    split_list,
    window_days,
)
from cases.tokens import Principal


@pytest.mark.parametrize(("given", "field", "words"), [
    ({"status": ["registered", "lost"]}, "status", "closed"),
    ({"state": ["new", "late"]}, "state", "overdue"),
    ({"channel": ["fax"]}, "channel", "hotline_12345"),
    ({"bbox": (118.0, 35.0, 117.0, 36.0)}, "bbox", "minimum"),
    ({"bbox": (35.0, 117.0, 36.0, 118.0)}, "bbox", "longitude comes first"),
    ({"hour_from": 24, "hour_to": 3}, "hour_from", "0-23"),
    ({"hour_to": 3}, "hour_from", "both"),
    ({"reported_from": datetime(2025, 6, 2, tzinfo=CITY_TZ),
      "reported_to": datetime(2025, 6, 1, tzinfo=CITY_TZ)}, "from", "before"),
    ({"received_from": datetime(2025, 6, 1, tzinfo=CITY_TZ),
      "received_to": datetime(2025, 6, 1, tzinfo=CITY_TZ)}, "from", "before"),
])
def test_a_bad_filter_names_its_field(given, field, words):
    with pytest.raises(InvalidInput) as e:
        CaseFilters(**given)
    assert e.value.field == field and words in e.value.message


def test_lists_are_kept_as_tuples_and_empty_ones_as_none():
    a = CaseFilters(category=["0101", "0102"], community=[], state=(), channel="app")
    assert a.category == ("0101", "0102") and a.community is None and a.state is None
    assert a.channel == ("app",)  # one value, not its letters
    assert a == CaseFilters(category=("0101", "0102"), channel=["app"])
    assert hash(a) == hash(CaseFilters(category=("0101", "0102"), channel=["app"]))
    assert filter_sql(CaseFilters()) == ("true", {})


def test_seen_by_limits_to_the_readers_communities():
    officer = Principal(token_id=1, name="o", role="community_officer", communities=("C1", "C2"))
    dispatcher = Principal(token_id=2, name="d", role="dispatcher", communities=())
    f = CaseFilters(category=["0101"])
    assert f.seen_by(dispatcher) is f
    assert f.seen_by(officer).scope == ("C1", "C2")
    # A scope already given is narrowed, never widened.
    assert CaseFilters(scope=("C2", "C9")).seen_by(officer).scope == ("C2",)
    sql, params = filter_sql(f.seen_by(officer))
    assert "f_scope" in sql and params["f_scope"] == ["C1", "C2"]


def test_whole_days_round_trip():
    start, end = day_window(date(2025, 6, 1), date(2025, 6, 30))
    assert start == datetime(2025, 6, 1, tzinfo=CITY_TZ)
    assert end == datetime(2025, 7, 1, tzinfo=CITY_TZ)
    f = CaseFilters(reported_from=start, reported_to=end)
    assert window_days(f) == (date(2025, 6, 1), date(2025, 6, 30))
    # One day is a valid window (the maps' date_from == date_to).
    assert window_days(CaseFilters(reported_from=day_window(date(2025, 6, 1), None)[0],
                                   reported_to=day_window(None, date(2025, 6, 1))[1])) == \
        (date(2025, 6, 1), date(2025, 6, 1))


def test_the_maps_open_default_is_the_index_predicate():
    sql, _ = filter_sql(CaseFilters(state=OPEN_GROUPS))
    assert "closed_at IS NULL AND c.status NOT IN" in sql
    assert filter_sql(CaseFilters(state=("new", "dispatched", "handled", "closed")))[0] == "true"


def test_parsing_helpers():
    assert split_list(["a", "b, c", ""]) == ["a", "b", "c"] and split_list(" ") is None
    assert parse_bbox("117.1, 35.0,117.2,35.1") == (117.1, 35.0, 117.2, 35.1)
    with pytest.raises(InvalidInput) as e:
        parse_bbox("1,2,3")
    assert e.value.field == "bbox" and "not 4" in e.value.message
