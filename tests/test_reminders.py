"""签收, reminders (催办) and escalation (督办) on the working calendar: the bundled 2026
calendar around 国庆 (1-7 October off, Saturday 10 October a make-up working day)."""

from __future__ import annotations

import threading
from datetime import date, timedelta

from sqlalchemy import text

from casegrid.errors import Conflict
from casegrid.settings import Settings
from casegrid.worker import Worker
from cases import stats
from cases.deadlines import set_time_limits
from cases.reminders import escalated_cases, send_reminders
from cases.workflow import apply_action, history
from tests.helpers.ledger import DISP, OFF_A, SUP, make_case, sh
from tests.helpers.notify_peers import Receiver


def _kinds(conn, cid) -> list[str]:
    return [e["data"]["reminder"] for e in history(conn, cid, SUP) if e["action"] == "remind"]


def test_reminders_fall_on_working_days_around_national_day(city_engine):
    # Wednesday 30 September 2026, 15:00: the last working afternoon before 国庆.
    with city_engine.begin() as conn:
        set_time_limits(conn, "0102", [{"step": "handle", "amount": 2, "unit": "working_days"},
                                       {"step": "acknowledge", "amount": 2,
                                        "unit": "working_hours"}], "test")
        cid = make_case(conn, received_at=sh(2026, 9, 30, 9))
        apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 30, 14))
        case = apply_action(conn, cid, "dispatch", {}, DISP, at=sh(2026, 9, 30, 15))
    assert case["acknowledge_due_at"] == sh(2026, 9, 30, 17)
    assert case["handle_due_at"] == sh(2026, 10, 9, 17, 30)   # 8 and 9 October
    # 75% of the 17.5 working hours: 13.125 h -> Friday 9 October 11:37:30
    assert case["handle_soon_at"] == sh(2026, 10, 9, 11, 37) + timedelta(seconds=30)

    s = Settings(escalate_after_working_days=2)
    with Receiver() as rx:
        w = Worker(city_engine, s.model_copy(update={
            "webhook_url": rx.url + "/all", "webhook_role_urls": {"dispatcher": rx.url + "/disp"}}))
        timeline = [
            (sh(2026, 9, 30, 16, 59), []),
            (sh(2026, 9, 30, 17, 1), ["ack_late"]),
            (sh(2026, 10, 5, 12), ["ack_late"]),                  # holiday: nothing new
            (sh(2026, 10, 9, 11, 30), ["ack_late"]),
            (sh(2026, 10, 9, 11, 38), ["ack_late", "due_soon"]),
            (sh(2026, 10, 9, 17, 31), ["ack_late", "due_soon", "overdue"]),
            (sh(2026, 10, 11, 12), ["ack_late", "due_soon", "overdue"]),  # Sunday
            # 2 working days after 9 October: Saturday 10 (make-up day) and Monday 12
            (sh(2026, 10, 12, 17, 29), ["ack_late", "due_soon", "overdue"]),
            (sh(2026, 10, 12, 17, 31), ["ack_late", "due_soon", "overdue", "escalated"]),
            (sh(2026, 10, 13, 9), ["ack_late", "due_soon", "overdue", "escalated"]),
        ]
        for now, expected in timeline:
            w.run_pass(now=now)
            with city_engine.connect() as conn:
                assert _kinds(conn, cid) == expected, now
        sent = [r.headers["X-Casegrid-Event"] for r in rx.requests]
        paths = {r.path for r in rx.requests if r.headers["X-Casegrid-Event"] == "case.ack_late"}
    assert sent.count("case.ack_late") == 2 and paths == {"/all", "/disp"}  # post, dispatchers
    assert sent.count("case.overdue") == 1 and sent.count("case.escalated") == 1
    with city_engine.connect() as conn:
        queue = escalated_cases(conn, SUP)
        assert [c["id"] for c in queue] == [cid]
        assert queue[0]["escalated_at"] == sh(2026, 10, 12, 17, 31)
        # the officer of the community sees it, another community's does not
        assert escalated_cases(conn, OFF_A) == queue
    # 改派 to another post starts a new round: off the 督办 list until it earns its own
    with city_engine.begin() as conn:
        apply_action(conn, cid, "redispatch", {"community_code": "370481002001",
                                               "reason": "属于龙泉街道"}, DISP, at=sh(2026, 10, 13, 10))
        assert escalated_cases(conn, SUP) == []
        assert "escalated" in _kinds(conn, cid)  # the history keeps the first round's


def test_two_workers_send_each_reminder_once(city_engine):
    with city_engine.begin() as conn:
        ids = []
        for _ in range(20):
            cid = make_case(conn, received_at=sh(2026, 9, 14, 9))
            apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 14, 10))
            apply_action(conn, cid, "dispatch", {}, DISP, at=sh(2026, 9, 14, 11))
            ids.append(cid)
    now = sh(2026, 11, 2, 12)
    barrier = threading.Barrier(2)
    counts = []

    def run() -> None:
        barrier.wait()
        with city_engine.begin() as conn:
            counts.append(send_reminders(conn, now))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with city_engine.connect() as conn:
        per_case = conn.execute(text(
            "SELECT type, count(*), count(DISTINCT case_id) FROM outbox_event "
            "WHERE type IN ('case.ack_late', 'case.overdue', 'case.escalated') GROUP BY type")).all()
        remind_events = conn.execute(text(
            "SELECT count(*) FROM case_event WHERE action = 'remind'")).scalar_one()
    assert sorted((t, n, d) for t, n, d in per_case) == [
        ("case.ack_late", 20, 20), ("case.escalated", 20, 20), ("case.overdue", 20, 20)]
    assert remind_events == 60
    assert sum(c["overdue"] for c in counts) == 20


def test_acknowledge_and_on_time_rate(city_engine):
    with city_engine.begin() as conn:
        cids = [make_case(conn, received_at=sh(2026, 9, 14, 9)) for _ in range(3)]
        for cid in cids:
            apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 14, 10))
            apply_action(conn, cid, "dispatch", {}, DISP, at=sh(2026, 9, 14, 11))
        # due 14:30 (2 working hours, lunch break excluded)
        on_time = apply_action(conn, cids[0], "acknowledge", {}, OFF_A, at=sh(2026, 9, 14, 14, 30))
        late = apply_action(conn, cids[1], "acknowledge", {}, OFF_A, at=sh(2026, 9, 14, 15))
    assert on_time["acknowledged_at"] == sh(2026, 9, 14, 14, 30)
    assert on_time["dues"]["acknowledge"]["status"] == "done_on_time"
    assert late["dues"]["acknowledge"]["status"] == "done_late"
    with city_engine.begin() as conn:
        try:
            apply_action(conn, cids[0], "acknowledge", {}, OFF_A, at=sh(2026, 9, 14, 16))
            raise AssertionError("a second acknowledgement must be refused")
        except Conflict as exc:
            assert "acknowledged" in exc.message
    with city_engine.connect() as conn:
        fast = stats.compute_stats(conn, "community", date(2026, 9, 14), date(2026, 9, 14),
                                   as_of=sh(2026, 9, 20))
        direct = stats.compute_stats_direct(conn, "community", date(2026, 9, 14),
                                            date(2026, 9, 14), as_of=sh(2026, 9, 20))
    for result in (fast, direct):
        assert result["total"]["dispatched"] == 3
        assert result["total"]["acknowledged_on_time"] == 1
        assert result["total"]["on_time_ack_rate"] == round(1 / 3, 4)
    assert fast["groups"] == direct["groups"]


def test_acknowledged_count_moves_with_a_redispatch(city_engine):
    with city_engine.begin() as conn:
        cid = make_case(conn, received_at=sh(2026, 9, 14, 9))
        apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 14, 10))
        apply_action(conn, cid, "dispatch", {}, DISP, at=sh(2026, 9, 14, 11))
        apply_action(conn, cid, "acknowledge", {}, OFF_A, at=sh(2026, 9, 14, 11, 30))
        case = apply_action(conn, cid, "redispatch", {"community_code": "370481002001",
                                                      "reason": "wrong community"}, DISP,
                            at=sh(2026, 9, 14, 12))
        assert case["acknowledged_at"] is None and case["acknowledge_due_at"] is not None
    with city_engine.connect() as conn:
        fast = stats.compute_stats(conn, "community", date(2026, 9, 14), date(2026, 9, 14))
        direct = stats.compute_stats_direct(conn, "community", date(2026, 9, 14), date(2026, 9, 14))
    assert fast["groups"] == direct["groups"]
    assert [g["key"] for g in fast["groups"] if g["acknowledged_on_time"]] == ["370481002001"]
