"""The hand-built ledger of the 考核 tests, shared by the evaluation and overview tests (the
``evaluation_ledger`` fixture of ``tests.helpers.fixtures``): six cases in three communities
worked through the whole loop on and off time, so that every score is worked out by hand."""

from __future__ import annotations

from datetime import date

from cases.evaluation import LABELS_ZH, set_weights
from cases.tokens import Principal
from cases.workflow import apply_action
from tests.helpers.ledger import COMM_A, COMM_B, DISP, OFF_A, OFF_B, SUP, SUP2, make_case, sh

COMM_C = "370481003001"
AS_OF = sh(2026, 10, 20, 12, 0)
SEPT = (date(2026, 9, 1), date(2026, 9, 30))
# Only the three indicators this ledger exercises carry weight, whatever the defaults.
WEIGHTS = {name: {"weight": 0} for name in LABELS_ZH} | {
    "on_time_close_rate": {"weight": 2}, "rework_rate": {"weight": 1, "direction": "lower"},
    "reply_rate": {"weight": 1}}


def a(conn, cid, action, actor, at, **payload):
    return apply_action(conn, cid, action, payload, actor, at=at)


def loop(conn, cid, officer, *, handled, replied, rework=False):
    """Review, dispatch, handle (once more after a rework), verify, reply, close."""
    a(conn, cid, "accept", SUP, sh(2026, 9, 14, 10, 0))
    a(conn, cid, "dispatch", DISP, sh(2026, 9, 14, 11, 0))
    if rework:
        a(conn, cid, "handle", officer, sh(2026, 9, 15, 9, 0), note="first")
        a(conn, cid, "verify_fail", SUP, sh(2026, 9, 15, 10, 0), note="again")
    a(conn, cid, "handle", officer, handled, note="done")
    a(conn, cid, "verify_pass", SUP2, handled.replace(hour=handled.hour + 1))
    a(conn, cid, "reply", DISP, replied, channel="phone", text="ok")
    a(conn, cid, "close", SUP, replied.replace(hour=replied.hour + 1))


ON_TIME = sh(2026, 9, 15, 9, 30)      # handling due Tue 15 Sep 17:30
LATE = sh(2026, 9, 16, 14, 0)
REPLY_OK = sh(2026, 9, 15, 14, 0)     # 12345 reply due Thu 8 Oct 17:30
REPLY_LATE = sh(2026, 10, 9, 10, 0)


def build_evaluation_ledger(city_engine):
    """A: 3 cases (2 closed on time, 1 late after a rework; 2 answered on time).
    B: 2 cases (both closed on time, no rework, both answered late). C: 1 perfect case."""
    r = sh(2026, 9, 14, 9, 0)
    off_c = Principal(10, "officer-c", "community_officer", (COMM_C,))
    with city_engine.begin() as c:
        a1, a2, a3 = (make_case(c, COMM_A, received_at=r) for _ in range(3))
        b1, b2 = (make_case(c, COMM_B, received_at=r) for _ in range(2))
        c1 = make_case(c, COMM_C, received_at=r)
        loop(c, a1, OFF_A, handled=ON_TIME, replied=REPLY_OK)
        loop(c, a2, OFF_A, handled=LATE, replied=REPLY_LATE, rework=True)
        loop(c, a3, OFF_A, handled=ON_TIME, replied=REPLY_OK)
        for b in (b1, b2):
            loop(c, b, OFF_B, handled=ON_TIME, replied=REPLY_LATE)
        loop(c, c1, off_c, handled=ON_TIME, replied=REPLY_OK)
        set_weights(c, WEIGHTS, "test", min_cases=2, scale=100)
    return city_engine


