"""考核 on a hand-built ledger: every score below is worked out by hand from the events this
test writes; weights changed, and the ranking follows; a post below the minimum is listed
apart; the API, the CLI and the report's sheet."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from casegrid.errors import InvalidInput
from cases.evaluation import LABELS_ZH, evaluate, load_weights, set_weights
from cases.report import write_report
from cases.tokens import create_token
from tests.helpers.cli import cli_database
from tests.helpers.evaluation_ledger import AS_OF, COMM_C, SEPT
from tests.helpers.ledger import COMM_A, COMM_B


def by_key(entries):
    return {e["key"]: e for e in entries}


def test_scores_by_hand_and_small_numbers_apart(evaluation_ledger):
    with evaluation_ledger.connect() as conn:
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


def test_weights_change_and_the_ranking_follows(evaluation_ledger):
    with evaluation_ledger.begin() as conn:
        set_weights(conn, {"reply_rate": {"weight": 10}}, "test")
        result = evaluate(conn, "post", *SEPT, as_of=AS_OF)
    ranked = by_key(result["ranked"])
    assert list(ranked) == [COMM_A, COMM_B]
    # A: (2 * .6667 + .6667 + 10 * .6667) / 13 = 66.67; B: (2 + 1 + 0) / 13 = 23.08
    assert ranked[COMM_A]["score"] == pytest.approx(66.67, abs=0.01)
    assert ranked[COMM_B]["score"] == pytest.approx(23.08, abs=0.01)


def test_case_load_per_1000_residents_where_population_is_known(evaluation_ledger):
    with evaluation_ledger.begin() as conn:
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


def test_bad_weights_are_refused_and_nothing_changes(evaluation_ledger):
    with evaluation_ledger.connect() as conn:
        before = load_weights(conn)
    for changes, field in (({"speed": {"weight": 1}}, "indicator"),
                           ({"reply_rate": {"weight": -1}}, "weight"),
                           ({"reply_rate": {"direction": "up"}}, "direction"),
                           ({n: {"weight": 0} for n in LABELS_ZH}, "weight")):
        with pytest.raises(InvalidInput) as err, evaluation_ledger.begin() as conn:
            set_weights(conn, changes, "test")
        assert err.value.field == field
    with evaluation_ledger.connect() as conn:
        assert load_weights(conn) == before


def test_subdistricts_are_ranked_from_the_same_figures(evaluation_ledger):
    with evaluation_ledger.connect() as conn:
        result = evaluate(conn, "subdistrict", *SEPT, as_of=AS_OF)
    units = by_key(result["ranked"] + result["too_few"])
    assert sum(e["cases"] for e in units.values()) == 6
    assert all(e["score"] is not None for e in result["ranked"])


def test_api_cli_and_report_sheet(evaluation_ledger, city_db_url, tmp_path, monkeypatch):
    with evaluation_ledger.begin() as conn:
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
    from casegrid.cli import app

    with cli_database(monkeypatch, city_db_url):
        runner = CliRunner()
        out = runner.invoke(app, ["evaluation", "weights", "set", "rework_rate", "--weight", "3"])
        assert out.exit_code == 0, out.output
        out = runner.invoke(app, ["evaluation", "weights", "show"])
        assert "rework_rate" in out.output and "weight      3" in out.output
        out = runner.invoke(app, ["evaluation", "weights", "set", "nonsense", "--weight", "1"])
        assert out.exit_code == 2 and "indicator" in out.output
    with evaluation_ledger.connect() as conn:
        write_report(conn, *SEPT, tmp_path / "r.xlsx")
    sheet = load_workbook(tmp_path / "r.xlsx")["考核"]
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["排名", "编码", "名称", "城市管理岗", "受理数", "得分"]
    keys = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert set(keys) == {COMM_A, COMM_B, COMM_C}
