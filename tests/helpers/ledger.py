"""The ledger's test helpers shared by several test files: two sample-city communities, a
principal per role, local times, a registered case inserted as intake would, a case
dispatched just now, and the end of the demo's simulated history."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text

from cases.calendar import CITY_TZ
from cases.deadlines import initial_deadlines_many
from cases.tokens import Principal, create_token
from cases.workflow import apply_action

# Two sample-city communities in different subdistricts (荆河 001 and 龙泉 002).
COMM_A = "370481001001"
COMM_B = "370481002001"

ADMIN = Principal(1, "admin-1", "admin")
ADMIN2 = Principal(2, "admin-2", "admin")
SUP = Principal(3, "sup", "supervisor")
SUP2 = Principal(4, "sup-2", "supervisor")
DISP = Principal(5, "disp", "dispatcher")
OFF_A = Principal(6, "officer-a", "community_officer", (COMM_A,))
OFF_B = Principal(7, "officer-b", "community_officer", (COMM_B,))
PLANNER = Principal(8, "planner", "planner")
INTAKE = Principal(9, "intake", "intake")
# The demo's sample year is 2025-11-01..2026-10-31 (Beijing time); its simulated workflow
# history (casegrid.demo.history.simulate_ledger) is run up to this time.
UNTIL = datetime(2026, 11, 1, 12, 0, tzinfo=CITY_TZ)
BY_ROLE = {"admin": ADMIN, "supervisor": SUP, "dispatcher": DISP, "community_officer": OFF_A,
           "planner": PLANNER, "intake": INTAKE}


def sh(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=CITY_TZ)


def make_case(conn, community: str | None = COMM_A, *, category: str = "0102",
              channel: str = "hotline_12345", received_at: datetime | None = None) -> int:
    """Insert a registered case routed to ``community`` (as intake would) with its
    ``register`` event and initial deadlines; return its id."""
    received_at = received_at or sh(2026, 9, 14, 9, 0)
    case_id = conn.execute(text(
        """INSERT INTO "case" (channel, category_code, description, reported_at, received_at,
               reporter_name, reporter_phone, community_code, subdistrict_code, post_id,
               route_rule)
           SELECT :ch, :cat, 'test', :at, :at, '张三', '13800000000', c.code, c.subdistrict_code,
                  p.id, 'inside'
           FROM (SELECT CAST(:comm AS text) AS code) q
           LEFT JOIN community c ON c.code = q.code
                AND c.generation_id = (SELECT id FROM boundary_generation
                                       WHERE level = 'community' AND active)
           LEFT JOIN community_post p ON p.community_code = c.code
           RETURNING id"""),
        {"ch": channel, "cat": category, "at": received_at, "comm": community}).scalar_one()
    conn.execute(text("INSERT INTO case_event (case_id, at, actor, role, action, to_state) "
                      "VALUES (:c, :at, 'intake', 'intake', 'register', 'registered')"),
                 {"c": case_id, "at": received_at})
    # The first due times as intake computes them (cases.deadlines, the calendar's walk).
    due = initial_deadlines_many(conn, [(category, channel)], received_at)[(category, channel)]
    conn.execute(text('UPDATE "case" SET review_due_at = :review_due_at, '
                      "reply_due_at = :reply_due_at, current_due_at = :current_due_at, "
                      "due_provisional = :due_provisional WHERE id = :id"), {**due, "id": case_id})
    return case_id


def act(conn, case_id, action, actor=ADMIN, at=None, **payload):
    return apply_action(conn, case_id, action, payload, actor, at=at)


def drive(conn, case_id, target: str, at: datetime | None = None) -> None:
    """Move a registered case to ``target`` along the main path (admin/supervisor/officer)."""
    t = at or sh(2026, 9, 14, 10, 0)
    path = [("accept", SUP, {}), ("dispatch", DISP, {}),
            ("handle", OFF_A, {"note": "cleared"}), ("verify_pass", SUP, {}),
            ("reply", DISP, {"channel": "phone", "text": "done"}), ("close", SUP2, {})]
    state = conn.execute(text('SELECT status FROM "case" WHERE id = :i'), {"i": case_id}).scalar()
    for action, actor, payload in path:
        if state == target:
            return
        t += timedelta(minutes=30)
        state = apply_action(conn, case_id, action, payload, actor, at=t)["status"]
    assert state == target


def dispatched_case(engine, at=None, category="0102") -> int:
    """A case dispatched just now (so no reminder is due while the test runs)."""
    at = at or datetime.now(CITY_TZ) - timedelta(minutes=30)
    with engine.begin() as conn:
        cid = make_case(conn, category=category, received_at=at)
        apply_action(conn, cid, "accept", {}, SUP, at=at + timedelta(minutes=10))
        apply_action(conn, cid, "dispatch", {}, DISP, at=at + timedelta(minutes=20))
    return cid


def role_tokens(conn, roles=("admin", "dispatcher", "supervisor", "planner", "intake")) -> dict[str, str]:
    """A bearer token per role of ``roles`` (named ``t-ROLE``), and one per community
    officer: ``officer_a`` of COMM_A, ``officer_b`` of COMM_B."""
    tokens = {role: create_token(conn, role, f"t-{role}")[1] for role in roles}
    tokens["officer_a"] = create_token(conn, "community_officer", "oa", [COMM_A])[1]
    tokens["officer_b"] = create_token(conn, "community_officer", "ob", [COMM_B])[1]
    return tokens


def bearer(tokens: dict[str, str], who: str) -> dict[str, str]:
    """The Authorization header of ``who``'s token."""
    return {"Authorization": f"Bearer {tokens[who]}"}
