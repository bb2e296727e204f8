"""The SYNTHETIC workflow history of the demo (casegrid/demo/history.py), on real PostGIS
with the sample city and sample complaints: plausible outcomes, every history a legal path
through the workflow rules, the indicators' fast path equal to the reference scan, the
in-memory executor equal to the same plan applied through apply_action, synthetic notes
masked like real ones, determinism and idempotence."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import text

import casegrid.demo.history as sim
from casegrid.demo.complaints import load_sample_complaints
from cases.stats import GROUPS, compute_stats, compute_stats_direct
from cases.workflow import RULES, allowed_roles, apply_action
from tests.helpers.cli import cli_database
from tests.helpers.ledger import UNTIL

# The sample year is 2025-11-01..2026-10-31 (Beijing time).
YEAR = (date(2025, 11, 1), date(2026, 10, 31))
CASE_COLS = ", ".join(sim._COLUMNS)


def _cases(conn) -> dict[int, dict]:
    rows = conn.execute(text(f'SELECT {CASE_COLS} FROM "case" ORDER BY id')).mappings()
    return {r["id"]: dict(r) for r in rows}


def _events(conn) -> dict[int, list[tuple]]:
    """Each case's history in insertion order, without ids."""
    out: dict[int, list[tuple]] = {}
    for r in conn.execute(text(
            "SELECT case_id, at, actor, role, action, from_state, to_state, note, data "
            "FROM case_event ORDER BY id")):
        out.setdefault(r.case_id, []).append(tuple(r)[1:])
    return out


@pytest.fixture
def year500(city_engine):
    """500 sample complaints over the year, simulated up to 1 Nov 2026 12:00."""
    load_sample_complaints(city_engine, n=500)
    with city_engine.begin() as conn:
        report = sim.simulate_ledger(conn, until=UNTIL)
    return city_engine, report


def test_outcomes_are_plausible(year500):
    engine, report = year500
    assert report.eligible == 500
    with engine.connect() as conn:
        rows = conn.execute(text(
            'SELECT status, received_at, current_due_at, closed_at, rework_count, '
            'extension_count, merged_into FROM "case"')).all()
        actions = Counter(dict(conn.execute(text(
            "SELECT action, count(*) FROM case_event GROUP BY action")).all()))
    old = [r for r in rows if r.received_at < UNTIL - timedelta(days=35)]
    recent = [r for r in rows if r.received_at >= UNTIL - timedelta(days=21)]
    closed_old = sum(r.status == "closed" for r in old) / len(old)
    assert 0.9 <= closed_old < 1.0, closed_old          # most, never all: some stalled
    open_recent = [r for r in recent if r.status != "closed"]
    assert len(open_recent) >= 0.3 * len(recent)
    assert len({r.status for r in open_recent}) >= 3, Counter(r.status for r in open_recent)
    overdue = [r for r in rows if r.closed_at is None and r.current_due_at is not None
               and r.current_due_at < UNTIL]
    assert overdue, "a ledger always has some overdue cases"
    assert len(overdue) < 0.2 * len(rows)
    # the loop's side roads are all taken, none dominates
    for action in ("verify_fail", "approve_extension", "return", "reject", "reroute"):
        assert 0 < actions[action] < 0.1 * len(rows), (action, actions)
    assert actions["handle"] >= 0.9 * len(rows)
    assert report.actions == sum(actions.values()) - actions["register"]


def test_every_history_is_a_legal_path(year500):
    engine, _ = year500
    with engine.connect() as conn:
        cases = _cases(conn)
        events = _events(conn)
    for case_id, case in cases.items():
        evs = events[case_id]
        assert evs[0][3] == "register" and evs[0][5] == "registered"
        state, handlers = "registered", set()
        for prev, ev in zip(evs, evs[1:], strict=False):
            at, actor, role, action, from_state, to_state, _note, data = ev
            assert at >= prev[0], (case_id, action)              # monotonic in time
            rule = RULES[action]
            assert from_state == state and from_state in rule.from_states, (case_id, action)
            assert to_state == (rule.to_state or from_state)
            assert role in allowed_roles(action)
            assert actor.startswith("simulated ")
            if rule.not_by_handler:
                assert (data["token_id"], actor) not in handlers, (case_id, action)
            if action == "handle":
                handlers.add((data["token_id"], actor))
            if role == "community_officer":
                assert action in ("handle", "return", "request_extension")
            state = to_state
        assert case["status"] == state
        assert case["version"] == len(evs)   # version 1 at registration, +1 per action
        assert case["updated_at"] == (evs[-1][0] if len(evs) > 1 else case["updated_at"])


@pytest.mark.parametrize("as_of", [UNTIL, None])
def test_indicators_match_the_reference_scan(year500, as_of):
    engine, _ = year500
    with engine.connect() as conn:
        for group in GROUPS:
            fast = compute_stats(conn, group, *YEAR, as_of=as_of or UNTIL + timedelta(days=30))
            ref = compute_stats_direct(conn, group, *YEAR,
                                       as_of=as_of or UNTIL + timedelta(days=30))
            # p90: histogram vs exact (checked in test_stats). The average: case_stat sums
            # float hours incrementally (+new -old), so its last digit may round the other
            # way from the direct avg() (seen: 30.95 vs 30.96).
            for a, b in zip([*fast["groups"], fast["total"]], [*ref["groups"], ref["total"]],
                            strict=True):
                for g in (a, b):
                    g.pop("p90_handle_hours")
                avg_a, avg_b = a.pop("avg_handle_hours"), b.pop("avg_handle_hours")
                assert (avg_a is None) == (avg_b is None)
                assert avg_a is None or abs(avg_a - avg_b) <= 0.0100001, (group, a["key"])
            assert fast == ref, group
        total = compute_stats_direct(conn, "channel", *YEAR, as_of=UNTIL)["total"]
    # a working city: high but imperfect rates
    assert 0.9 < total["close_rate"] < 1.0
    assert 0.75 < total["on_time_close_rate"] < total["close_rate"]
    assert 0 < total["rework_rate"] < 0.1
    assert 0 < total["extension_rate"] < 0.1
    assert 0.8 < total["reply_rate"] <= 1.0


def test_second_run_acts_on_nothing_already_simulated(year500):
    engine, first = year500
    with engine.connect() as conn:
        before_cases, before_events = _cases(conn), _events(conn)
    with engine.begin() as conn:
        again = sim.simulate_ledger(conn, until=UNTIL)
    # only cases whose whole plan lay after UNTIL were eligible again, and they still do
    assert again.eligible == 500 - first.simulated
    assert again.actions == 0 and again.simulated == 0
    with engine.connect() as conn:
        assert _cases(conn) == before_cases
        assert _events(conn) == before_events
        tokens = conn.execute(text(
            "SELECT count(*), count(revoked_at) FROM api_token WHERE name LIKE 'simulated %'"
        )).one()
    assert tokens[0] == tokens[1] == 3 + 55  # made once, never usable


def test_later_clock_moves_only_the_untouched_cases(year500):
    engine, first = year500
    with engine.connect() as conn:
        touched = set(conn.execute(text(
            "SELECT DISTINCT case_id FROM case_event WHERE action <> 'register'")).scalars())
        before = {k: v for k, v in _events(conn).items() if k in touched}
    with engine.begin() as conn:
        later = sim.simulate_ledger(conn, until=UNTIL + timedelta(days=60))
    assert later.eligible == 500 - first.simulated and later.simulated == later.eligible
    with engine.connect() as conn:
        after = _events(conn)
    assert {k: after[k] for k in touched} == before


def _boost(monkeypatch) -> None:
    """Make every side road common, so a few hundred cases take all of them."""
    monkeypatch.setattr(sim, "P_DUPLICATE", {})
    monkeypatch.setattr(sim, "P_DUPLICATE_OTHER", 0.9)
    monkeypatch.setattr(sim, "P_REROUTE", 0.1)
    monkeypatch.setattr(sim, "P_RETURN", 0.15)
    monkeypatch.setattr(sim, "P_EXTENSION", {})
    monkeypatch.setattr(sim, "P_EXTENSION_OTHER", 0.25)
    monkeypatch.setattr(sim, "P_REWORK", 0.2)
    monkeypatch.setattr(sim, "P_STALL", 0.05)
    monkeypatch.setattr(sim, "DUPLICATE_WINDOW", timedelta(days=6))


def _one_by_one(conn, ids) -> tuple[int, int]:
    """The reference executor: the same plan applied through cases.workflow.apply_action,
    action by action (the ledger's own path); (actions written, cases acted on)."""
    plan = sim.plan_history(conn, sim.DEFAULT_SEED, UNTIL, ids, None)
    for case_id, step in plan.steps:
        apply_action(conn, case_id, step.action, step.payload, plan.actor(step), at=step.at)
    actions = conn.execute(text("SELECT count(*) FROM case_event WHERE case_id = ANY(:ids) "
                                "AND action <> 'register'"), {"ids": list(plan.cases)}).scalar_one()
    return actions, len({case_id for case_id, _ in plan.steps})


def _run_and_capture(engine, ids, reference: bool = False, **kw) -> tuple[dict, dict, tuple]:
    """Simulate in a transaction (``reference``: through apply_action), read everything
    back, roll back."""
    with engine.connect() as conn:
        trans = conn.begin()
        if reference:
            done = _one_by_one(conn, ids)
        else:
            report = sim.simulate_ledger(conn, until=UNTIL, case_ids=ids, **kw)
            done = report.actions, report.simulated
        cases, events = _cases(conn), _events(conn)
        # Incremental sums: float additions in another order, rows netted to zero kept.
        stat = [(*r[:14], round(r[14], 6), *r[15:]) for r in conn.execute(text(
            "SELECT * FROM case_stat WHERE accepted <> 0 OR hours_n <> 0 "
            "ORDER BY dim, day, key"))]
        trans.rollback()
    return {"cases": cases, "stat": stat}, events, done


def test_the_executor_writes_what_apply_action_writes(city_engine, monkeypatch):
    _boost(monkeypatch)
    load_sample_complaints(city_engine, n=3000)
    with city_engine.begin() as conn:
        sim.ensure_actors(conn)  # committed: both runs use the same token ids
        ids = list(conn.execute(text(
            'SELECT id FROM "case" WHERE received_at >= :lo ORDER BY id'),
            {"lo": UNTIL - timedelta(days=42)}).scalars())
    assert 250 <= len(ids) <= 450
    fast_rows, fast_events, fast = _run_and_capture(city_engine, ids)
    slow_rows, slow_events, slow = _run_and_capture(city_engine, ids, reference=True)
    # every side road was taken, duplicates merged before and after the main case replied
    actions = Counter(ev[3] for evs in fast_events.values() for ev in evs)
    for action in ("reject", "reroute", "return", "approve_extension", "deny_extension",
                   "verify_fail", "reply", "close"):
        assert actions[action] > 0, actions
    copied = [ev for evs in fast_events.values() for ev in evs if "via_main_case" in ev[7]]
    assert {ev[3] for ev in copied} == {"reply", "close"}
    late_merge = [ev for ev in copied if ev[3] == "reply" and "on_time" not in ev[7]]
    assert late_merge, "a duplicate merged after its main case's reply gets that reply"
    assert fast == slow  # actions written, cases acted on
    assert fast_rows["cases"] == slow_rows["cases"]
    assert fast_rows["stat"] == slow_rows["stat"]
    assert fast_events == slow_events


class _PhoneInEveryNote(dict):
    def get(self, key, default=None):  # noqa: ARG002 - every category's handling note
        return ["已电话联系 13912345678 处置完毕"]


def test_synthetic_notes_are_stored_masked(city_engine, monkeypatch):
    """The demo's notes pass the same privacy masking as a person's (cases.privacy): a
    contact number in a simulated handling note is stored masked, its original kept in
    personal_text for those who may reveal it."""
    monkeypatch.setattr(sim, "_HANDLE_NOTES", _PhoneInEveryNote())
    load_sample_complaints(city_engine, n=120)
    with city_engine.begin() as conn:
        report = sim.simulate_ledger(conn, until=UNTIL)
    assert report.actions > 0
    with city_engine.connect() as conn:
        notes = conn.execute(text(
            "SELECT note FROM case_event WHERE action = 'handle'")).scalars().all()
        originals = conn.execute(text(
            "SELECT original FROM personal_text WHERE field = 'note'")).scalars().all()
    assert notes and all("139****5678" in n and "13912345678" not in n for n in notes)
    assert len(originals) == len(notes) and all("13912345678" in o for o in originals)


def test_same_seed_same_history_other_seed_other(city_engine):
    load_sample_complaints(city_engine, n=300)
    with city_engine.begin() as conn:
        sim.ensure_actors(conn)
    a_rows, a_events, _ = _run_and_capture(city_engine, None)
    b_rows, b_events, _ = _run_and_capture(city_engine, None)
    c_rows, c_events, _ = _run_and_capture(city_engine, None, seed=7)
    assert a_rows == b_rows and a_events == b_events
    assert a_events != c_events


def test_only_the_named_registrar_cases_and_the_cli_flag(city_engine):
    load_sample_complaints(city_engine, n=200)
    with city_engine.begin() as conn:
        # a real complaint (another registrar) is never given a made-up history
        real = conn.execute(text('SELECT id FROM "case" ORDER BY id LIMIT 1')).scalar_one()
        other = conn.execute(text(
            """INSERT INTO "case" (channel, category_code, description, reported_at, received_at,
                   community_code, subdistrict_code, route_rule)
               SELECT channel, category_code, 'real', reported_at, received_at, community_code,
                      subdistrict_code, route_rule FROM "case" WHERE id = :i RETURNING id"""),
            {"i": real}).scalar_one()
        conn.execute(text(
            "INSERT INTO case_event (case_id, at, actor, role, action, to_state) "
            "SELECT id, received_at, 'hotline connector', 'intake', 'register', 'registered' "
            'FROM "case" WHERE id = :i'), {"i": other})
        report = sim.simulate_ledger(conn, until=UNTIL, register_actor=sim.SAMPLE_ACTOR)
        assert report.eligible == 200
        status = conn.execute(text('SELECT status FROM "case" WHERE id = :i'),
                              {"i": other}).scalar_one()
    assert status == "registered"


def test_every_action_names_a_real_simulated_token(year500):
    engine, _ = year500
    with engine.connect() as conn:
        bad = conn.execute(text(
            "SELECT count(*) FROM case_event e LEFT JOIN api_token t "
            "ON t.id = (e.data->>'token_id')::int AND t.name = e.actor AND t.role = e.role "
            "WHERE e.action <> 'register' AND t.id IS NULL")).scalar_one()
        officers = conn.execute(text(
            "SELECT count(*) FROM case_event e JOIN \"case\" c ON c.id = e.case_id "
            "WHERE e.action = 'handle' AND e.actor <> 'simulated officer ' || c.community_code"
        )).scalar_one()
    assert bad == 0
    assert officers == 0  # the case's (final) community's own post handled it


def test_cli_sample_load_simulates_unless_told_not_to(city_db_url, city_engine, monkeypatch):
    from typer.testing import CliRunner

    from casegrid.cli import app

    load_sample_complaints(city_engine, n=300)
    with cli_database(monkeypatch, city_db_url):
        runner = CliRunner()
        r = runner.invoke(app, ["sample", "load", "--if-empty", "--no-simulate"])
        assert r.exit_code == 0, r.output
        assert "SYNTHETIC" not in r.output
        with city_engine.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM case_event WHERE action <> 'register'")).scalar_one() == 0
        r = runner.invoke(app, ["sample", "load", "--if-empty"])
        assert r.exit_code == 0, r.output
        assert "already loaded" in r.output and "SYNTHETIC" in r.output
        with city_engine.connect() as conn:
            closed = conn.execute(text(
                "SELECT count(*) FROM \"case\" WHERE status = 'closed'")).scalar_one()
        assert closed > 250
        r = runner.invoke(app, ["sample", "load", "--if-empty"])  # nothing left to do
        assert r.exit_code == 0 and "synthetic workflow history for" not in r.output
