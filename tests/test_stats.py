"""Indicators on a hand-built ledger: every count and rate below is worked out by hand from
the events this test writes (timestamps explicit), not from running the code."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from cases.stats import compute_stats, compute_stats_direct, histogram_quantile
from cases.workflow import apply_action
from tests.helpers.ledger import ADMIN, COMM_A, COMM_B, DISP, OFF_A, OFF_B, SUP, SUP2, make_case, sh

AS_OF = sh(2026, 10, 20, 12, 0)
SEPT = (date(2026, 9, 1), date(2026, 9, 30))


def a(conn, cid, action, actor, at, **payload):
    return apply_action(conn, cid, action, payload, actor, at=at)


@pytest.fixture
def ledger(city_engine):
    """Six cases received Mon 14 Sep 2026 09:00 (category 0102: handle within 1 working day;
    12345 reply 13 working days -> Thu 8 Oct 17:30; platform reply 5 working days -> the
    make-up Sunday 20 Sep 17:30), plus one received in August (outside the period)."""
    r = sh(2026, 9, 14, 9, 0)
    with city_engine.begin() as c:
        c1 = make_case(c, COMM_A, received_at=r)
        c2 = make_case(c, COMM_A, received_at=r)
        c3 = make_case(c, COMM_B, channel="platform", received_at=r)
        c4 = make_case(c, COMM_A, received_at=r)
        c5 = make_case(c, COMM_A, channel="patrol", received_at=r)
        c6 = make_case(c, COMM_B, received_at=r)
        c8 = make_case(c, COMM_A, received_at=sh(2026, 8, 31, 23, 0))
        for cid in (c1, c2, c3, c5, c6):
            a(c, cid, "accept", SUP, sh(2026, 9, 14, 10, 0))
        for cid in (c1, c2, c3, c5):  # handling due Tue 15 Sep 17:30
            a(c, cid, "dispatch", DISP, sh(2026, 9, 14, 11, 0))
        # C1: handled on time (6 working hours), verified, answered on time, closed
        a(c, c1, "handle", OFF_A, sh(2026, 9, 15, 9, 30), note="done")
        a(c, c1, "verify_pass", SUP, sh(2026, 9, 15, 10, 0))
        a(c, c1, "reply", DISP, sh(2026, 9, 15, 11, 0), channel="phone", text="ok")
        a(c, c1, "close", SUP, sh(2026, 9, 15, 12, 0))
        # C2: late, reworked, finally handled Wed 16 Sep 14:00 (16.5 working hours after
        # dispatch), answered Fri 9 Oct (late), closed
        a(c, c2, "handle", OFF_A, sh(2026, 9, 16, 10, 0), note="first try")
        a(c, c2, "verify_fail", SUP, sh(2026, 9, 16, 11, 0), note="still dirty")
        a(c, c2, "handle", OFF_A, sh(2026, 9, 16, 14, 0), note="second try")
        a(c, c2, "verify_pass", SUP2, sh(2026, 9, 16, 15, 0))
        a(c, c2, "reply", DISP, sh(2026, 10, 9, 10, 0), channel="sms", text="ok")
        a(c, c2, "close", SUP, sh(2026, 10, 9, 11, 0))
        # C3: extension of 2 working days (due Thu 17 Sep 17:30), handled Thu 17 Sep 09:00
        # (20.5 working hours), never verified nor answered
        a(c, c3, "request_extension", OFF_B, sh(2026, 9, 15, 9, 0), reason="r", amount=2)
        a(c, c3, "approve_extension", SUP, sh(2026, 9, 15, 10, 0))
        a(c, c3, "handle", OFF_B, sh(2026, 9, 17, 9, 0), note="done")
        # C4: rejected as invalid, answered on time, closed (never registered)
        a(c, c4, "reject", SUP, sh(2026, 9, 14, 10, 0), reason="invalid", note="not a matter")
        a(c, c4, "reply", DISP, sh(2026, 9, 15, 10, 0), channel="phone", text="no")
        a(c, c4, "close", SUP, sh(2026, 9, 15, 10, 30))
        # C5 (patrol): dispatched, never handled. C6: reviewed, never dispatched.
        # C8 (August): closed quickly; must not appear in September's figures.
        a(c, c8, "accept", SUP, sh(2026, 9, 1, 9, 0))
        a(c, c8, "dispatch", DISP, sh(2026, 9, 1, 9, 30))
        a(c, c8, "handle", OFF_A, sh(2026, 9, 1, 10, 0), note="x")
        a(c, c8, "verify_pass", SUP, sh(2026, 9, 1, 11, 0))
        a(c, c8, "reply", DISP, sh(2026, 9, 1, 11, 30), channel="phone", text="x")
        a(c, c8, "close", SUP, sh(2026, 9, 1, 12, 0))
    return city_engine


EXPECTED_TOTAL = {
    "accepted": 6,          # C1-C6
    "registered": 5,        # all but C4
    "dispatched": 4,        # C1, C2, C3, C5
    "due_to_close": 4,      # closed C1, C2 + past handling due C3 (17 Sep), C5 (15 Sep)
    "closed": 2,            # C1, C2 (C4 closed but was never dispatched)
    "closed_on_time": 1,    # C1 (C2's final handling 16 Sep > 15 Sep 17:30)
    "due_to_handle": 4,     # handled C1, C2, C3 + overdue C5
    "handled_on_time": 2,   # C1, C3 (after its extension)
    "reworked": 1,          # C2
    "extended": 1,          # C3
    "due_reply": 5,         # C1, C2, C4 answered; C3 (due 20 Sep), C6 (due 8 Oct) past due
    "replied": 3,           # C1, C2, C4
    "replied_on_time": 2,   # C1, C4 (C2 answered 9 Oct > 8 Oct 17:30)
}
EXPECTED_RATES = {
    "registration_rate": round(5 / 6, 4), "dispatch_rate": 0.8, "close_rate": 0.5,
    "on_time_close_rate": 0.25, "on_time_handle_rate": 0.5, "rework_rate": 0.25,
    "extension_rate": 0.25, "reply_rate": 0.4,
}


@pytest.mark.parametrize("fn", [compute_stats, compute_stats_direct])
def test_totals_and_rates_by_hand(ledger, fn):
    with ledger.connect() as c:
        s = fn(c, "subdistrict", *SEPT, as_of=AS_OF)
    total = s["total"]
    assert {k: total[k] for k in EXPECTED_TOTAL} == EXPECTED_TOTAL
    assert {k: total[k] for k in EXPECTED_RATES} == EXPECTED_RATES
    # handling hours 6, 16.5, 20.5
    assert total["avg_handle_hours"] == pytest.approx(43 / 3, abs=0.01)


def test_p90_exact_and_histogram(ledger):
    with ledger.connect() as c:
        direct = compute_stats_direct(c, "channel", *SEPT, as_of=AS_OF)["total"]
        fast = compute_stats(c, "channel", *SEPT, as_of=AS_OF)["total"]
    # percentile_cont over [6, 16.5, 20.5]: position 0.9 * 2 = 1.8 -> 16.5 + 0.8 * 4 = 19.7
    assert direct["p90_handle_hours"] == pytest.approx(19.7)
    # the histogram answer lies within the bucket holding it ([18, 21) working hours)
    assert 18 <= fast["p90_handle_hours"] <= 21


def test_by_community_and_ranking(ledger):
    with ledger.connect() as c:
        s = compute_stats(c, "community", *SEPT, as_of=AS_OF)
    g = {x["key"]: x for x in s["groups"]}
    assert set(g) == {COMM_A, COMM_B}
    a_, b_ = g[COMM_A], g[COMM_B]
    # A: C1, C2, C4, C5
    assert (a_["accepted"], a_["registered"], a_["due_to_close"], a_["closed"],
            a_["closed_on_time"]) == (4, 3, 3, 2, 1)
    assert a_["on_time_close_rate"] == round(1 / 3, 4) and a_["reply_rate"] == round(2 / 3, 4)
    # B: C3, C6
    assert (b_["accepted"], b_["due_to_close"], b_["closed"], b_["extended"]) == (2, 1, 0, 1)
    assert b_["close_rate"] == 0.0 and b_["reply_rate"] == 0.0
    assert a_["name"] and b_["name"]
    assert [(r["rank"], r["community_code"]) for r in s["ranking"]] == [(1, COMM_A), (2, COMM_B)]
    assert s["ranking"][0]["post_name"].endswith("城市管理岗")


def test_by_channel_patrol_owes_no_reply(ledger):
    with ledger.connect() as c:
        s = compute_stats(c, "channel", *SEPT, as_of=AS_OF)
    g = {x["key"]: x for x in s["groups"]}
    assert g["patrol"]["accepted"] == 1 and g["patrol"]["due_reply"] == 0
    assert g["patrol"]["reply_rate"] is None
    assert g["hotline_12345"]["accepted"] == 4 and g["hotline_12345"]["reply_rate"] == round(2 / 4, 4)
    assert g["platform"]["due_reply"] == 1 and g["platform"]["replied_on_time"] == 0


def test_as_of_decides_what_is_due(ledger):
    # On Tue 15 Sep 12:00 nothing dispatched was past its handling due (17:30): only the
    # closed C1... but C1 closed at 12:00 exactly, so due_to_close = 1 (closed cases are
    # always due), and nothing is due a reply except the answered C1 and C4.
    with ledger.connect() as c:
        s = compute_stats_direct(c, "month", *SEPT, as_of=sh(2026, 9, 15, 12, 0))
        f = compute_stats(c, "month", *SEPT, as_of=sh(2026, 9, 15, 12, 0))
    # (the ledger as it stands now: C2 is closed, so it counts as due to close too)
    assert s["total"]["due_to_close"] == f["total"]["due_to_close"] == 2
    assert s["groups"][0]["key"] == "2026-09"


def test_august_case_only_in_august(ledger):
    with ledger.connect() as c:
        s = compute_stats(c, "category", date(2026, 8, 1), date(2026, 8, 31), as_of=AS_OF)
    assert s["total"]["accepted"] == 1 and s["total"]["closed_on_time"] == 1
    assert [g["key"] for g in s["groups"]] == ["0102"]
    assert s["groups"][0]["name"] == "暴露垃圾"


@pytest.mark.parametrize("group_by", ["community", "subdistrict", "category", "channel", "month"])
def test_aggregate_table_agrees_with_a_direct_scan(ledger, group_by):
    with ledger.connect() as c:
        fast = compute_stats(c, group_by, date(2026, 8, 1), date(2026, 10, 31), as_of=AS_OF)
        slow = compute_stats_direct(c, group_by, date(2026, 8, 1), date(2026, 10, 31),
                                    as_of=AS_OF)
    strip = [{k: v for k, v in g.items() if k != "p90_handle_hours"} for g in fast["groups"]]
    assert strip == [{k: v for k, v in g.items() if k != "p90_handle_hours"}
                     for g in slow["groups"]]
    assert fast["ranking"] == slow["ranking"]


def test_aggregate_follows_bulk_updates(ledger):
    with ledger.begin() as c:
        c.execute(text('UPDATE "case" SET channel = \'app\' WHERE channel = \'platform\''))
        s = compute_stats(c, "channel", *SEPT, as_of=AS_OF)
        assert "platform" not in {g["key"] for g in s["groups"]}
        assert {g["key"]: g["accepted"] for g in s["groups"]}["app"] == 1
        rows = c.execute(text("SELECT sum(accepted) FROM case_stat WHERE dim = 'community'")).scalar()
        assert rows == c.execute(text('SELECT count(*) FROM "case"')).scalar()


def test_histogram_quantile():
    assert histogram_quantile([0] * 32, 0.9) is None
    hist = [0] * 32
    hist[2] = 10  # ten values in [1, 1.5)
    assert 1 <= histogram_quantile(hist, 0.9) <= 1.5
    assert ADMIN.role == "admin"


def test_statistics_triggers_run_case_stat_merge_sql_as_static_sql(engine):
    """The triggers hold case_stat_merge_sql's statement inlined (migration 0011), so
    PL/pgSQL plans it once per session instead of at every statement as EXECUTE did. The
    inlined text must be exactly what case_stat_merge_sql makes today: a change to it
    without regenerating the triggers would leave them counting the old way. The insert
    trigger also holds the accepted-only upsert of new registrations (migration 0013)."""
    import importlib

    static = importlib.import_module("migrations.versions.0011_static_stat_triggers")
    fast = importlib.import_module("migrations.versions.0013_stat_insert_fast_path")
    with engine.connect() as conn:
        for name, source in static.SOURCES.items():
            body, full = conn.execute(text(
                "SELECT p.prosrc, case_stat_merge_sql(:src) FROM pg_proc p WHERE p.proname = :name"),
                {"name": name, "src": source}).one()
            assert "EXECUTE" not in body
            if name == "case_stat_ins":
                assert body == (f"BEGIN IF {fast.ACCEPTED_ONLY_TEST} THEN {fast.ACCEPTED_ONLY_SQL}; "
                                f"ELSE {full}; END IF; RETURN NULL; END")
            else:
                assert body == f"BEGIN {full}; RETURN NULL; END", f"{name} differs from case_stat_merge_sql"


@pytest.mark.parametrize("group_by", ["community", "subdistrict", "category", "channel", "month"])
def test_inserted_cases_in_any_state_are_counted_as_a_direct_scan_counts_them(ledger, group_by):
    """The insert trigger's two paths: registrations only (accepted alone) and rows that
    already carry workflow times (a history import, the full aggregate). Copies of the
    ledger's cases go in both ways; the aggregate table must still agree with a scan."""
    columns = ("channel, category_code, description, reported_at, received_at, community_code, "
               "subdistrict_code, post_id, route_rule, status, reviewed_at, dispatched_at, "
               "handled_at, closed_at, replied_at, handle_due_at, reply_due_at, review_due_at, "
               "handle_hours, rework_count, extension_count")
    with ledger.begin() as c:
        c.execute(text("CREATE TEMP TABLE src ON COMMIT DROP AS "
                       f'SELECT {columns} FROM "case"'))
        mixed = c.execute(text(f'INSERT INTO "case" ({columns}) SELECT {columns} FROM src')).rowcount
        registered = columns.split(", status")[0]  # the same cases, as just registered
        fresh = c.execute(text(f'INSERT INTO "case" ({registered}, review_due_at, reply_due_at) '
                               f"SELECT {registered}, review_due_at, reply_due_at FROM src")).rowcount
        assert mixed == fresh > 0
        period = (date(2026, 8, 1), date(2026, 10, 31))
        fast = compute_stats(c, group_by, *period, as_of=AS_OF)
        slow = compute_stats_direct(c, group_by, *period, as_of=AS_OF)
        c.rollback()
    strip = [{k: v for k, v in g.items() if k != "p90_handle_hours"} for g in fast["groups"]]
    assert strip == [{k: v for k, v in g.items() if k != "p90_handle_hours"} for g in slow["groups"]]
    assert sum(g["accepted"] for g in fast["groups"]) > 0
