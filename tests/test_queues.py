"""The work lists' order and counts (cases.queues over cases.queries): a queue of several
statuses is read one status at a time and merged; the merged pages must be the one order
of the list, soonest due first, cases without a due time last, then by id, page after page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from cases import queries, queues
from cases.filters import CaseFilters
from tests.helpers.ledger import ADMIN, COMM_A, COMM_B, DISP, OFF_A, OFF_B, SUP, make_case, sh


def _cases(conn) -> list[tuple[int, object, str]]:  # noqa: ANN001
    """Ten cases of the dispatch queue (reviewed or returned, due times interleaved, some
    without one) and two of other queues; (id, due, community) of the dispatch ones."""
    base = sh(2026, 9, 20, 9, 0)
    plan = [("reviewed", 5, COMM_A), ("returned", 1, COMM_A), ("reviewed", None, COMM_B),
            ("returned", 3, COMM_B), ("reviewed", 1, COMM_A), ("returned", None, COMM_A),
            ("reviewed", 2, COMM_B), ("returned", 2, COMM_A), ("reviewed", 4, COMM_A),
            ("returned", 4, COMM_B), ("dispatched", 0, COMM_A), ("registered", 0, COMM_A)]
    out = []
    for status, hours, community in plan:
        case_id = make_case(conn, community)
        due = None if hours is None else base + timedelta(hours=hours)
        conn.execute(text('UPDATE "case" SET status = :s, current_due_at = :d WHERE id = :i'),
                     {"s": status, "d": due, "i": case_id})
        if status in ("reviewed", "returned"):
            out.append((case_id, due, community))
    return out


def _expected(rows) -> list[int]:  # noqa: ANN001
    return [r[0] for r in sorted(rows, key=lambda r: (r[1] is None, r[1] or 0, r[0]))]


def _walk(conn, queue, who, size: int, narrow=None) -> list[int]:  # noqa: ANN001
    ids, after = [], None
    while True:
        page = queues.queue_page(conn, queue, who, narrow=narrow, limit=size, after=after)
        ids += [r["id"] for r in page.items]
        if page.next_cursor is None:
            return ids
        after = page.next_cursor


def test_a_queue_of_two_statuses_is_one_order_page_after_page(city_engine):
    with city_engine.begin() as conn:
        rows = _cases(conn)
        queue = queues.get_queue("dispatch")
        assert len(queue.filters.status) == 2
        for size in (1, 3, 50):
            assert _walk(conn, queue, DISP, size) == _expected(rows), size
        narrow = CaseFilters(community=(COMM_B,))
        assert _walk(conn, queue, DISP, 2, narrow) == _expected([r for r in rows if r[2] == COMM_B])
        first = _expected(rows)[0]
        page = queues.queue_page(conn, queue, DISP, limit=1, exclude=first)
        assert [r["id"] for r in page.items] == _expected(rows)[1:2]


def test_counts_match_the_lists(city_engine):
    with city_engine.begin() as conn:
        rows = _cases(conn)
        counts = queues.queue_counts(conn, DISP)
        assert counts["dispatch"] == len(rows) == queues.queue_count(conn, queues.get_queue("dispatch"), DISP)
        assert counts["handling"] == 1
        # an officer counts and lists only its own community's cases
        own = [r for r in rows if r[2] == COMM_A]
        queue = queues.get_queue("handling")
        assert queues.queue_count(conn, queue, OFF_A) == 1
        assert queues.queue_count(conn, queues.get_queue("dispatch"), OFF_A) == len(own)


def test_counts_by_status_ranges_equal_each_queue_counted_alone(city_engine):
    """queue_counts reads one status at a time and tests each queue only in its own
    statuses: every queue's count must equal a direct count of its whole filter, for every
    role, over cases in every status with every flag a queue reads, and a case whose status
    says closed but whose closed_at is empty (still counted where its filter says so)."""
    past, future = sh(2026, 9, 1, 9, 0), sh(2099, 1, 1, 9, 0)
    shapes = [
        ("registered", {"route_rule": "nearest"}), ("registered", {"route_rule": "unlocated"}),
        ("reviewed", {"near_boundary": True}), ("returned", {}),
        ("dispatched", {"pending_extension": '{"amount": 1}'}),
        ("dispatched", {"acknowledged_at": past}), ("dispatched", {"escalated_at": past}),
        ("handled", {}), ("verified", {}), ("rejected", {"replied_at": past}),
        ("replied", {"replied_at": past, "follow_up_at": past - timedelta(days=1)}),
        ("replied", {"replied_at": past, "follow_up_at": future, "follow_up_result": "satisfied"}),
        ("closed", {"closed_at": past}),
        ("closed", {}),  # overdue, closed_at left empty: open to the counts' filters
    ]
    with city_engine.begin() as conn:
        for i, (status, more) in enumerate(shapes):
            for community in (COMM_A, COMM_B, None):
                case_id = make_case(conn, community, channel="patrol" if i % 5 == 4 else "app")
                due = past if i % 2 else future
                sets = ", ".join(f"{k} = :{k}" for k in more)
                conn.execute(text(f'UPDATE "case" SET status = :s, current_due_at = :d'
                                  f'{", " + sets if sets else ""} WHERE id = :i'),
                             {"s": status, "d": due, "i": case_id, **more})
        for who in (DISP, SUP, OFF_A, OFF_B, ADMIN):
            counts = queues.queue_counts(conn, who)
            direct = {q.name: queries.count_cases(conn, queues.queue_filters(q), who)
                      for q in queues.queues_for(who)}
            assert counts == direct, who.role
            assert any(counts.values())
