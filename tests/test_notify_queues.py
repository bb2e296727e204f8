"""The 待签收 and 督办 work lists (issue 23) without a browser: who sees them, that their
counts equal their lists, the JSON queue API, and that the home page's counts stay an
index-only scan of the open cases with the two lists' columns (migration 0028)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, text

from casegrid.settings import Settings
from cases import queues
from cases.reminders import send_reminders
from cases.workflow import apply_action
from tests.helpers.ledger import DISP, OFF_A, OFF_B, SUP, make_case, sh


def _dispatched(conn, at) -> int:  # noqa: ANN001
    cid = make_case(conn, received_at=at)
    apply_action(conn, cid, "accept", {}, SUP, at=at + timedelta(minutes=10))
    apply_action(conn, cid, "dispatch", {}, DISP, at=at + timedelta(minutes=20))
    return cid


def test_lists_counts_and_who_sees_them(city_engine):
    with city_engine.begin() as conn:
        old = _dispatched(conn, sh(2026, 9, 1, 9))
        new = _dispatched(conn, sh(2026, 9, 14, 9))
        acked = _dispatched(conn, sh(2026, 9, 14, 9))
        apply_action(conn, acked, "acknowledge", {}, OFF_A, at=sh(2026, 9, 14, 9, 40))
        send_reminders(conn, now=sh(2026, 9, 15, 9), settings=Settings())
    assert [q.name for q in queues.queues_for(OFF_A)][0] == "acknowledge"
    assert "escalated" not in [q.name for q in queues.queues_for(OFF_A)]
    assert "acknowledge" not in [q.name for q in queues.queues_for(SUP)]
    ack, esc = queues.get_queue("acknowledge"), queues.get_queue("escalated")
    with city_engine.connect() as conn:
        rows = queues.queue_page(conn, ack, OFF_A).items
        assert {r["id"] for r in rows} == {old, new}
        assert all(r["acknowledge_due_at"] is not None for r in rows)
        assert queues.queue_counts(conn, OFF_A)["acknowledge"] == 2
        assert queues.queue_page(conn, ack, OFF_B).items == []  # another community's post
        escalated = queues.queue_page(conn, esc, SUP).items
        assert [r["id"] for r in escalated] == [old]
        why = escalated[0]["escalation"]
        assert why["actor"] == "casegrid-worker" and why["note"] == "督办: 超期未处置"
        assert why["at"] == sh(2026, 9, 15, 9) and why["handle_due_at"] < why["at"]
        assert queues.queue_counts(conn, DISP)["escalated"] == 1


def test_home_counts_stay_an_index_only_scan(city_engine):
    """The counts statements of an officer's and a supervisor's home (待签收, 督办 and
    every other list), as the app sends them, can be answered from case_open_work alone
    (seq scans off: the sample city is small)."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if "count(*) FILTER" in statement:
            seen.append((statement, parameters))

    event.listen(city_engine, "before_cursor_execute", capture)
    try:
        with city_engine.connect() as conn:
            queues.queue_counts(conn, OFF_A)  # 待签收, 处置中, 超期
            queues.queue_counts(conn, SUP)    # ... 督办, 待回访
    finally:
        event.remove(city_engine, "before_cursor_execute", capture)
    assert len(seen) == 2
    with city_engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        conn.execute(text("SET enable_bitmapscan = off"))
        for statement, parameters in seen:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert "Index Only Scan using case_open_work" in plan, plan
