"""考核 on a hand-built ledger: every score below is worked out by hand from the events this
test writes; weights changed, and the ranking follows; a post below the minimum is listed
apart; the API, the CLI and the report's sheet."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from casegrid.errors import InvalidInput
from cases.evaluation import LABELS_ZH, evaluate, load_weights, set_weights
from cases.report import write_report
from cases.tokens import Principal, create_token
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


@pytest.fixture
def ledger(city_engine):
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


def by_key(entries):
    return {e["key"]: e for e in entries}


def test_scores_by_hand_and_small_numbers_apart(ledger):
    with ledger.connect() as conn:
        result = evaluate(conn, "post", *SEPT, as_of=AS_OF)
    ranked = by_key(result["ranked"])
    assert list(ranked) == [COMM_B, COMM_A]
    # A: on time 2/3, rework 1/3 (lower is better: 1 - 1/3), reply 2/3.
    # 100 * (2 * 0.6667 + 1 * 0.6667 + 1 * 0.6667) / 4 = 66.67
    assert ranked[COMM_A]["score"] == pytest.approx(66.67, abs=0.01)
    # B: on time 1, rework 0, reply 0/2 -> 100 * (2 + 1 + 0) / 4 = 75
    assert ranked[COMM_B]["score"] == pytest.approx(75.0, abs=0.01)
    assert [ranked[k]["rank"] for k in (COMM_B, COMM_A)] == [1, 2]
    # C has a perfect case but only one: listed apart, not first by luck.
    assert [e["key"] for e in result["too_few"]] == [COMM_C]
    assert result["too_few"][0]["cases"] == 1 and "rank" not in result["too_few"][0]
    explained = {i["indicator"]: i for i in ranked[COMM_A]["indicators"]}
    assert explained["rework_rate"] == {
        "indicator": "rework_rate", "label_zh": "返工率", "value": pytest.approx(0.3333),
        "normalised": pytest.approx(0.6667), "weight": 1.0, "direction": "lower",
        "used": True, "why_not": None}
    assert explained["satisfaction_rate"]["used"] is False
    assert explained["cases_per_1000"]["why_not"] in ("weight 0", "no value for this unit in the period")


def test_weights_change_and_the_ranking_follows(ledger):
    with ledger.begin() as conn:
        set_weights(conn, {"reply_rate": {"weight": 10}}, "test")
        result = evaluate(conn, "post", *SEPT, as_of=AS_OF)
    ranked = by_key(result["ranked"])
    assert list(ranked) == [COMM_A, COMM_B]
    # A: (2 * .6667 + .6667 + 10 * .6667) / 13 = 66.67; B: (2 + 1 + 0) / 13 = 23.08
    assert ranked[COMM_A]["score"] == pytest.approx(66.67, abs=0.01)
    assert ranked[COMM_B]["score"] == pytest.approx(23.08, abs=0.01)


def test_case_load_per_1000_residents_where_population_is_known(ledger):
    with ledger.begin() as conn:
        conn.execute(text("UPDATE community SET population = 1500 WHERE code = :a"), {"a": COMM_A})
        conn.execute(text("UPDATE community SET population = 500 WHERE code = :b"), {"b": COMM_B})
        set_weights(conn, {"cases_per_1000": {"weight": 4}}, "test")
        result = evaluate(conn, "post", *SEPT, as_of=AS_OF)
    ranked = by_key(result["ranked"])
    load = {k: {i["indicator"]: i for i in e["indicators"]}["cases_per_1000"]
            for k, e in ranked.items()}
    # A: 3 cases / 1,500 residents = 2 per 1,000 (the lowest: 1); B: 2 / 500 = 4 (highest: 0)
    assert load[COMM_A]["value"] == 2.0 and load[COMM_A]["normalised"] == 1.0
    assert load[COMM_B]["value"] == 4.0 and load[COMM_B]["normalised"] == 0.0
    # A: 100 * (2 * .6667 + .6667 + .6667 + 4 * 1) / 8 = 83.335 (rates come rounded to 4
    # decimals from cases.stats); B: 100 * (2 + 1 + 0 + 0) / 8 = 37.5
    assert ranked[COMM_A]["score"] == pytest.approx(83.335, abs=0.006)
    assert ranked[COMM_B]["score"] == pytest.approx(37.5, abs=0.01)


def test_bad_weights_are_refused_and_nothing_changes(ledger):
    with ledger.connect() as conn:
        before = load_weights(conn)
    for changes, field in (({"speed": {"weight": 1}}, "indicator"),
                           ({"reply_rate": {"weight": -1}}, "weight"),
                           ({"reply_rate": {"direction": "up"}}, "direction"),
                           ({n: {"weight": 0} for n in LABELS_ZH}, "weight")):
        with pytest.raises(InvalidInput) as err, ledger.begin() as conn:
            set_weights(conn, changes, "test")
        assert err.value.field == field
    with ledger.connect() as conn:
        assert load_weights(conn) == before


def test_subdistricts_are_ranked_from_the_same_figures(ledger):
    with ledger.connect() as conn:
        result = evaluate(conn, "subdistrict", *SEPT, as_of=AS_OF)
    units = by_key(result["ranked"] + result["too_few"])
    assert sum(e["cases"] for e in units.values()) == 6
    assert all(e["score"] is not None for e in result["ranked"])


def test_api_cli_and_report_sheet(ledger, city_db_url, tmp_path, monkeypatch):
    with ledger.begin() as conn:
        planner = create_token(conn, "planner", "p")[1]
        admin = create_token(conn, "admin", "a")[1]
    with TestClient(create_app(database_url=city_db_url)) as client:
        r = client.get("/api/v1/evaluation?from=2026-09-01&to=2026-09-30&level=post",
                       headers={"Authorization": f"Bearer {planner}"})
        assert r.status_code == 200, r.text
        assert [e["key"] for e in r.json()["ranked"]] == [COMM_B, COMM_A]
        r = client.put("/api/v1/evaluation/weights", json={"indicators": {"reply_rate": {"weight": 5}}},
                       headers={"Authorization": f"Bearer {planner}"})
        assert r.status_code == 403
        r = client.put("/api/v1/evaluation/weights", json={"indicators": {"reply_rate": {"weight": "x"}}},
                       headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 422 and "weight" in r.text
        r = client.put("/api/v1/evaluation/weights", json={"min_cases": 1},
                       headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200 and r.json()["min_cases"] == 1
    monkeypatch.setenv("DATABASE_URL", city_db_url)
    from casegrid.cli import app
    from casegrid.db import get_engine
    from casegrid.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["evaluation", "weights", "set", "rework_rate", "--weight", "3"])
        assert out.exit_code == 0, out.output
        out = runner.invoke(app, ["evaluation", "weights", "show"])
        assert "rework_rate" in out.output and "weight      3" in out.output
        out = runner.invoke(app, ["evaluation", "weights", "set", "nonsense", "--weight", "1"])
        assert out.exit_code == 2 and "indicator" in out.output
    finally:
        get_engine().dispose()
        get_engine.cache_clear()
        get_settings.cache_clear()
    with ledger.connect() as conn:
        write_report(conn, *SEPT, tmp_path / "r.xlsx")
    sheet = load_workbook(tmp_path / "r.xlsx")["考核"]
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["排名", "编码", "名称", "城市管理岗", "受理数", "得分"]
    keys = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert set(keys) == {COMM_A, COMM_B, COMM_C}
