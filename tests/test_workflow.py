"""The ledger's closed loop: every path, every forbidden action per role, the version race,
re-routing across a boundary, merged duplicates. Real PostGIS with the sample city."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from casegrid.errors import Conflict, Forbidden, InvalidInput, NotFound
from cases.tokens import ROLES
from cases.workflow import ACTIONS, RULES, allowed_roles, apply_action, history, view
from tests.helpers.ledger import (
    ADMIN,
    ADMIN2,
    BY_ROLE,
    COMM_A,
    COMM_B,
    DISP,
    OFF_A,
    OFF_B,
    PLANNER,
    SUP,
    SUP2,
    act,
    drive,
    make_case,
    sh,
)


def events(conn, case_id):
    return [(e["action"], e["from_state"], e["to_state"]) for e in history(conn, case_id, ADMIN)]


# -- paths through the loop ------------------------------------------------------------------


def test_main_path_sets_milestones_dues_and_history(conn):
    cid = make_case(conn, received_at=sh(2026, 9, 14, 9, 0))  # Monday
    c = view(conn, cid, ADMIN, now=sh(2026, 9, 14, 9, 0))
    # review: 4 working hours from 09:00 -> 09:00-12:00 (3 h) + 13:30-14:30
    assert c["review_due_at"] == sh(2026, 9, 14, 14, 30)
    # 12345 reply: 13 working days after Mon 14 Sep: 15-18 (4), Sun 20 make-up day (5),
    # 21-24 (9), Fri 25 Mid-Autumn off, 28-30 (12), 1-7 Oct off, Thu 8 Oct is the 13th.
    assert c["reply_due_at"] == sh(2026, 10, 8, 17, 30)
    assert c["dues"]["current"]["status"] == "on_time"
    c = act(conn, cid, "accept", SUP, at=sh(2026, 9, 14, 10, 0))
    assert c["status"] == "reviewed" and c["version"] == 2
    assert c["dispatch_due_at"] == sh(2026, 9, 14, 12, 0)  # 2 working hours
    c = act(conn, cid, "dispatch", DISP, at=sh(2026, 9, 14, 11, 0))
    assert c["handle_due_at"] == sh(2026, 9, 15, 17, 30)  # 0102: 1 working day
    assert c["current_due_at"] == c["handle_due_at"]
    c = act(conn, cid, "handle", OFF_A, at=sh(2026, 9, 15, 9, 30),
            note="garbage removed", photo_urls=["https://x.test/a.jpg"])
    # 11:00-12:00, 13:30-17:30, 08:30-09:30 = 6 working hours
    assert c["handle_hours"] == pytest.approx(6.0)
    c = act(conn, cid, "verify_pass", SUP, at=sh(2026, 9, 15, 10, 0))
    c = act(conn, cid, "reply", DISP, at=sh(2026, 9, 15, 11, 0), channel="phone",
            text="已清理", satisfaction="satisfied")
    assert c["current_due_at"] is None and c["dues"]["reply"]["status"] == "done_on_time"
    c = act(conn, cid, "close", SUP, at=sh(2026, 9, 15, 12, 0))
    assert c["status"] == "closed" and c["version"] == 7
    assert c["closed_at"] == sh(2026, 9, 15, 12, 0)
    assert events(conn, cid) == [
        ("register", None, "registered"), ("accept", "registered", "reviewed"),
        ("dispatch", "reviewed", "dispatched"), ("handle", "dispatched", "handled"),
        ("verify_pass", "handled", "verified"), ("reply", "verified", "replied"),
        ("close", "replied", "closed")]
    actors = [e["actor"] for e in history(conn, cid, ADMIN)]
    assert actors[1:] == ["sup", "disp", "officer-a", "sup", "disp", "sup"]


def test_reject_invalid_then_reply_and_close(conn):
    cid = make_case(conn)
    with pytest.raises(InvalidInput, match="note"):
        act(conn, cid, "reject", SUP, reason="invalid")
    with pytest.raises(InvalidInput, match="reason"):
        act(conn, cid, "reject", SUP, reason="spam", note="x")
    c = act(conn, cid, "reject", SUP, reason="out_of_scope", note="private property")
    assert c["status"] == "rejected" and c["reject_reason"] == "out_of_scope"
    assert c["reviewed_at"] is None  # not 立案
    assert c["current_due_at"] == c["reply_due_at"]  # the complainant is still owed a reply
    act(conn, cid, "reply", DISP, channel="sms", text="not ours: call the property manager")
    assert act(conn, cid, "close", SUP)["status"] == "closed"


def test_a_rejected_case_is_not_worked_but_stays_unclosed_until_its_reply(conn):
    """Two meanings of "open", each written once (cases.vocabulary): the maps' open groups
    (still worked) drop a rejected case at once; the ``open`` filter (the loop not closed)
    keeps it until the complainant has had the reply and the case is closed."""
    from cases.filters import OPEN_GROUPS, CaseFilters, filter_sql

    def matches(filters, cid):
        where, params = filter_sql(filters)
        return conn.execute(text(f'SELECT id FROM "case" c WHERE id = :cid AND {where}'),
                            {**params, "cid": cid}).first() is not None

    worked, unclosed = CaseFilters(state=OPEN_GROUPS), CaseFilters(open=True)
    cid = make_case(conn)
    assert matches(worked, cid) and matches(unclosed, cid)
    act(conn, cid, "reject", SUP, reason="out_of_scope", note="private property")
    assert not matches(worked, cid) and matches(unclosed, cid)
    act(conn, cid, "reply", DISP, channel="sms", text="not ours: call the property manager")
    assert matches(unclosed, cid)
    act(conn, cid, "close", SUP)
    assert not matches(unclosed, cid) and matches(CaseFilters(open=False), cid)


def test_duplicate_merges_and_main_reply_reaches_every_complainant(conn):
    main = make_case(conn)
    dup1, dup2 = make_case(conn), make_case(conn)
    with pytest.raises(InvalidInput, match="main_case_id"):
        act(conn, dup1, "reject", SUP, reason="duplicate")
    with pytest.raises(InvalidInput, match="itself"):
        act(conn, dup1, "reject", SUP, reason="duplicate", main_case_id=dup1)
    for d in (dup1, dup2):
        c = act(conn, d, "reject", SUP, at=sh(2026, 9, 14, 9, 30), reason="duplicate",
                main_case_id=main)
        assert c["merged_into"] == main
    with pytest.raises(InvalidInput, match="merge into an open main case"):
        act(conn, make_case(conn), "reject", SUP, reason="duplicate", main_case_id=dup1)
    drive(conn, main, "replied")
    for d in (dup1, dup2):
        c = view(conn, d, ADMIN)
        assert c["status"] == "replied" and c["replied_at"] is not None
        last = history(conn, d, ADMIN)[-1]
        assert last["action"] == "reply" and last["data"]["via_main_case"] == main
        assert last["data"]["text"] == "done"
    # a repeat complaint merged after the reply gets the same answer at once
    late = make_case(conn)
    c = act(conn, late, "reject", SUP, reason="duplicate", main_case_id=main)
    assert c["status"] == "replied"
    act(conn, main, "close", SUP2)
    assert {view(conn, d, ADMIN)["status"] for d in (dup1, dup2, late)} == {"closed"}


def test_return_then_redispatch_elsewhere(conn):
    cid = make_case(conn)
    drive(conn, cid, "dispatched")
    with pytest.raises(InvalidInput, match="reason"):
        act(conn, cid, "return", OFF_A)
    c = act(conn, cid, "return", OFF_A, reason="wrongly routed: across the road")
    assert c["status"] == "returned" and c["dispatch_due_at"] is not None
    assert c["current_due_at"] == c["dispatch_due_at"]
    c = act(conn, cid, "dispatch", DISP, community_code=COMM_B, reason="B's side of the road")
    assert c["status"] == "dispatched" and c["community_code"] == COMM_B
    with pytest.raises(NotFound):
        act(conn, cid, "handle", OFF_A, note="x")
    assert act(conn, cid, "handle", OFF_B, note="done")["status"] == "handled"


def test_rework_goes_back_to_the_post_and_keeps_the_deadline(conn):
    cid = make_case(conn)
    drive(conn, cid, "handled")
    due = view(conn, cid, ADMIN)["handle_due_at"]
    with pytest.raises(InvalidInput, match="note"):
        act(conn, cid, "verify_fail", SUP)
    c = act(conn, cid, "verify_fail", SUP, note="garbage still there")
    assert c["status"] == "dispatched" and c["rework_count"] == 1
    assert c["handle_due_at"] == due and c["current_due_at"] == due
    act(conn, cid, "handle", OFF_A, note="really cleared")
    c = act(conn, cid, "verify_pass", SUP2)
    assert c["status"] == "verified" and c["rework_count"] == 1


def test_extension_request_approve_and_deny(conn):
    cid = make_case(conn, category="0101")  # illegal construction: 15 working days
    act(conn, cid, "accept", SUP, at=sh(2026, 9, 14, 9, 0))
    c = act(conn, cid, "dispatch", DISP, at=sh(2026, 9, 14, 10, 0))
    # 15 working days after Mon 14 Sep: 15-18, Sun 20 (make-up), 21-24 = 9, Fri 25 off
    # (Mid-Autumn), 28-30 = 12, National Day week off, Thu 8 = 13, Fri 9 = 14, and Sat 10 Oct
    # is a make-up working day = 15.
    assert c["handle_due_at"] == sh(2026, 10, 10, 17, 30)
    with pytest.raises(Conflict, match="no extension request"):
        act(conn, cid, "approve_extension", SUP)
    with pytest.raises(InvalidInput, match="amount"):
        act(conn, cid, "request_extension", OFF_A, reason="owner away", amount=0)
    act(conn, cid, "request_extension", OFF_A, reason="owner away", amount=2)
    with pytest.raises(Conflict, match="already waiting"):
        act(conn, cid, "request_extension", OFF_A, reason="again", amount=2)
    c = act(conn, cid, "approve_extension", DISP)
    # + 2 working days after Sat 10 Oct: Sun 11 off, Mon 12, Tue 13
    assert c["handle_due_at"] == sh(2026, 10, 13, 17, 30)
    assert c["extension_count"] == 1 and c["pending_extension"] is None
    act(conn, cid, "request_extension", OFF_A, reason="more", amount=5)
    with pytest.raises(InvalidInput, match="note"):
        act(conn, cid, "deny_extension", SUP)
    c = act(conn, cid, "deny_extension", SUP, note="no")
    assert c["extension_count"] == 1 and c["handle_due_at"] == sh(2026, 10, 13, 17, 30)


def test_wrong_state_and_stale_version_are_conflicts(conn):
    cid = make_case(conn)
    with pytest.raises(Conflict) as exc:
        act(conn, cid, "handle", OFF_A, note="x")
    assert exc.value.current == {"status": "registered", "version": 1}
    with pytest.raises(Conflict) as exc:
        apply_action(conn, cid, "accept", {}, SUP, expected_version=5)
    assert exc.value.current == {"status": "registered", "version": 1}
    assert apply_action(conn, cid, "accept", {}, SUP, expected_version=1)["version"] == 2
    with pytest.raises(InvalidInput, match="action must be one of"):
        act(conn, cid, "teleport")


def test_closed_is_terminal(conn):
    cid = make_case(conn)
    drive(conn, cid, "closed")
    # Approving a description for the public is no step of the loop: it applies in every
    # state, a closed case's included (tests/test_publication.py); so do the citizen's side's
    # follow-up call and 发回重办 (tests/test_follow_up.py).
    for action in (a for a in ACTIONS if "closed" not in RULES[a].from_states):
        with pytest.raises(Conflict):
            act(conn, cid, action, ADMIN2, note="x", reason="x")


# -- who may do what -------------------------------------------------------------------------

FORBIDDEN = [(a, r) for a in ACTIONS for r in ROLES if r not in allowed_roles(a)]


def _prepare_for(conn, action: str) -> int:
    cid = make_case(conn)
    state = RULES[action].from_states[0]
    if state == "rejected":
        act(conn, cid, "reject", SUP, reason="invalid", note="x")
        return cid
    drive(conn, cid, state)
    if action in ("approve_extension", "deny_extension"):
        act(conn, cid, "request_extension", OFF_A, reason="r", amount=1)
    return cid


@pytest.mark.parametrize(("action", "role"), FORBIDDEN)
def test_each_forbidden_action_per_role(conn, action, role):
    cid = _prepare_for(conn, action)
    before = conn.execute(text('SELECT status, version FROM "case" WHERE id = :i'),
                          {"i": cid}).one()
    with pytest.raises(Forbidden, match=f"may not {action}"):
        act(conn, cid, action, BY_ROLE[role], note="n", reason="r", amount=1,
            community_code=COMM_B, channel="phone", text="t")
    after = conn.execute(text('SELECT status, version FROM "case" WHERE id = :i'),
                         {"i": cid}).one()
    assert after == before


def test_rule_table_matches_domain(conn):
    # The handling unit never reviews, verifies, replies or closes; planners and intake act
    # on nothing; the command side dispatches and the supervision side verifies.
    officer = {a for a in ACTIONS if "community_officer" in allowed_roles(a)}
    assert officer == {"return", "acknowledge", "handle", "request_extension"}
    assert not [a for a in ACTIONS if {"planner", "intake"} & allowed_roles(a)]
    assert "dispatcher" not in allowed_roles("verify_pass") | allowed_roles("close")
    assert "supervisor" not in allowed_roles("dispatch")


@pytest.mark.parametrize("action", ["verify_pass", "verify_fail", "close"])
def test_whoever_handled_never_verifies_or_closes(conn, action):
    cid = make_case(conn)
    drive(conn, cid, "dispatched")
    act(conn, cid, "handle", ADMIN, note="admin handled it")
    if action == "close":
        act(conn, cid, "verify_pass", SUP)
        act(conn, cid, "reply", DISP, channel="phone", text="t")
    with pytest.raises(Forbidden, match="handled case"):
        act(conn, cid, action, ADMIN, note="n")
    assert act(conn, cid, action, ADMIN2, note="n")["version"] > 1


def test_officer_sees_only_own_communities(conn):
    cid = make_case(conn, COMM_A)
    drive(conn, cid, "dispatched")
    for fn in (lambda: act(conn, cid, "handle", OFF_B, note="x"),
               lambda: history(conn, cid, OFF_B), lambda: view(conn, cid, OFF_B)):
        with pytest.raises(NotFound):
            fn()
    assert "handle" in view(conn, cid, OFF_A)["actions"]


def test_planner_never_sees_reporter(conn):
    cid = make_case(conn)
    assert "reporter_phone" not in view(conn, cid, PLANNER)
    assert view(conn, cid, DISP)["reporter_phone"] == "13800000000"


# -- re-routing across a boundary ------------------------------------------------------------


def test_reroute_across_boundary_keeps_history(conn):
    cid = make_case(conn, COMM_A)
    act(conn, cid, "accept", SUP)
    before = history(conn, cid, ADMIN)
    with pytest.raises(InvalidInput, match="reason"):
        act(conn, cid, "reroute", DISP, community_code=COMM_B)
    with pytest.raises(InvalidInput, match="already"):
        act(conn, cid, "reroute", DISP, community_code=COMM_A, reason="x")
    with pytest.raises(InvalidInput, match="no community"):
        act(conn, cid, "reroute", DISP, community_code="370481009999", reason="x")
    c = act(conn, cid, "reroute", DISP, community_code=COMM_B, reason="the stall is on B's side")
    assert c["status"] == "reviewed"
    assert c["community_code"] == COMM_B and c["subdistrict_code"] == "370481002"
    post_b = conn.execute(text("SELECT id FROM community_post WHERE community_code = :c"),
                          {"c": COMM_B}).scalar_one()
    assert c["post_id"] == post_b and c["route_rule"] == "manual"
    after = history(conn, cid, OFF_B)  # the new community's officer sees the whole history
    assert after[: len(before)] == before
    ev = after[-1]
    assert ev["action"] == "reroute" and ev["note"] == "the stall is on B's side"
    assert ev["data"]["from"]["community_code"] == COMM_A
    assert ev["data"]["from"]["subdistrict_code"] == "370481001"
    assert ev["data"]["from"]["route_rule"] == "inside"
    assert ev["data"]["to"]["community_code"] == COMM_B
    with pytest.raises(NotFound):
        history(conn, cid, OFF_A)


def test_reroute_by_point_routes_it(conn):
    cid = make_case(conn, None)  # unrouted
    act(conn, cid, "accept", SUP)
    with pytest.raises(InvalidInput, match="no community"):
        act(conn, cid, "dispatch", DISP)
    lon, lat = conn.execute(text(
        "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM community c "
        "JOIN boundary_generation g ON g.id = c.generation_id AND g.active WHERE c.code = :c"),
        {"c": COMM_B}).one()
    c = act(conn, cid, "reroute", DISP, lon=lon, lat=lat, reason="located by phone call")
    assert c["community_code"] == COMM_B
    assert conn.execute(text('SELECT ST_X(geom) FROM "case" WHERE id = :i'),
                        {"i": cid}).scalar() == pytest.approx(lon)


def test_redispatch_moves_the_case_and_restarts_the_clock(conn):
    cid = make_case(conn, COMM_A)
    drive(conn, cid, "dispatched")
    with pytest.raises(InvalidInput, match="community_code"):
        act(conn, cid, "redispatch", DISP, reason="x")
    t = sh(2026, 9, 16, 9, 0)
    c = act(conn, cid, "redispatch", DISP, at=t, community_code=COMM_B, reason="B's patrol")
    assert c["status"] == "dispatched" and c["community_code"] == COMM_B
    assert c["dispatched_at"] == t and c["handle_due_at"] == sh(2026, 9, 17, 17, 30)
    assert history(conn, cid, ADMIN)[-1]["data"]["from"]["community_code"] == COMM_A


# -- concurrency -----------------------------------------------------------------------------


def test_race_exactly_one_wins_real_transactions(city_engine):
    with city_engine.begin() as c:
        cid = make_case(c)
    first_done = threading.Event()
    results: dict[str, object] = {}

    def first():
        with city_engine.begin() as c:
            results["a"] = apply_action(c, cid, "accept", {}, SUP)["version"]
            first_done.set()
            time.sleep(0.5)  # hold the row until the second action is blocked on it

    def second():
        first_done.wait(5)
        try:
            with city_engine.begin() as c:
                apply_action(c, cid, "reject", {"reason": "invalid", "note": "x"}, SUP2)
            results["b"] = "won"
        except Conflict as exc:
            results["b"] = exc.current

    ts = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert results["a"] == 2
    assert results["b"] == {"status": "reviewed", "version": 2}
    with city_engine.connect() as c:
        assert events(c, cid)[1:] == [("accept", "registered", "reviewed")]


def test_race_many_threads_same_version(city_engine):
    with city_engine.begin() as c:
        cid = make_case(c)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(i: int):
        barrier.wait(5)
        try:
            with city_engine.begin() as c:
                apply_action(c, cid, "accept", {"note": str(i)}, SUP, expected_version=1)
            r = "ok"
        except Conflict:
            r = "409"
        with lock:
            outcomes.append(r)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert sorted(outcomes) == ["409"] * 5 + ["ok"]
    with city_engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM case_event WHERE case_id = :i AND action = "
                              "'accept'"), {"i": cid}).scalar() == 1
        assert c.execute(text('SELECT version FROM "case" WHERE id = :i'), {"i": cid}).scalar() == 2
