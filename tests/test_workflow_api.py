"""The ledger over HTTP and the CLI: actions with version checks, history, stats access,
time-limit editing, the report workbook."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from cases.tokens import create_token
from tests.helpers.cli import cli_database
from tests.helpers.ledger import COMM_A, make_case, role_tokens, sh
from tests.helpers.ledger import bearer as h


@pytest.fixture
def api(city_db_url, city_engine):
    app = create_app(database_url=city_db_url)
    with city_engine.begin() as conn:
        tokens = role_tokens(conn)
        case_id = make_case(conn, COMM_A)
    with TestClient(app) as client:
        yield client, tokens, case_id


def test_actions_history_and_409(api):
    client, tokens, cid = api
    url = f"/api/v1/cases/{cid}/actions"
    r = client.post(url, json={"action": "accept", "version": 1}, headers=h(tokens, "supervisor"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reviewed" and r.json()["version"] == 2
    assert "reporter_phone" in r.json()
    # stale version: 409 with the current state
    r = client.post(url, json={"action": "dispatch", "version": 1}, headers=h(tokens, "dispatcher"))
    assert r.status_code == 409 and r.json()["current"] == {"status": "reviewed", "version": 2}
    # wrong role: 403; other community: 404; unknown action: 422
    r = client.post(url, json={"action": "dispatch", "version": 2}, headers=h(tokens, "supervisor"))
    assert r.status_code == 403
    r = client.post(url, json={"action": "dispatch"}, headers=h(tokens, "planner"))
    assert r.status_code == 403
    r = client.post(url, json={"action": "handle", "note": "x"}, headers=h(tokens, "officer_b"))
    assert r.status_code == 404
    r = client.post(url, json={"action": "fly"}, headers=h(tokens, "admin"))
    assert r.status_code == 422
    r = client.post(url, json={"action": "dispatch", "version": 2}, headers=h(tokens, "dispatcher"))
    assert r.status_code == 200 and r.json()["dues"]["current"]["status"] in ("on_time", "due_soon",
                                                                               "overdue")
    # payload errors name the field
    r = client.post(url, json={"action": "handle"}, headers=h(tokens, "officer_a"))
    assert r.status_code == 422 and r.json()["field"] == "note"
    r = client.post(url, json={"action": "handle", "note": "done",
                               "photo_urls": ["https://x.test/1.jpg"]},
                    headers=h(tokens, "officer_a"))
    assert r.status_code == 200 and r.json()["status"] == "handled"
    r = client.get(f"/api/v1/cases/{cid}/history", headers=h(tokens, "officer_a"))
    assert [e["action"] for e in r.json()["events"]] == ["register", "accept", "dispatch", "handle"]
    assert r.json()["events"][-1]["data"]["photo_urls"] == ["https://x.test/1.jpg"]
    assert client.get(f"/api/v1/cases/{cid}/history", headers=h(tokens, "officer_b")).status_code == 404
    assert client.get(f"/api/v1/cases/{cid}/history").status_code == 401


def test_planner_action_response_hides_reporter(api):
    client, tokens, cid = api
    r = client.get(f"/api/v1/cases/{cid}/history", headers=h(tokens, "planner"))
    assert r.status_code == 200


def test_stats_access_and_shape(api):
    client, tokens, _ = api
    q = "/api/v1/stats?group_by=community&from=2026-09-01&to=2026-09-30"
    assert client.get(q, headers=h(tokens, "officer_a")).status_code == 403
    assert client.get(q, headers=h(tokens, "intake")).status_code == 403
    r = client.get(q, headers=h(tokens, "planner"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"]["accepted"] == 1
    assert [g["key"] for g in body["groups"]] == [COMM_A]
    r = client.get("/api/v1/stats?group_by=street&from=2026-09-01&to=2026-09-30",
                   headers=h(tokens, "planner"))
    assert r.status_code == 422
    r = client.get("/api/v1/stats?group_by=month&from=2026-09-30&to=2026-09-01",
                   headers=h(tokens, "planner"))
    assert r.status_code == 422 and r.json()["field"] == "to"


def test_time_limits_get_put(api):
    client, tokens, _ = api
    r = client.get("/api/v1/categories/0101/time-limits", headers=h(tokens, "dispatcher"))
    assert r.status_code == 200
    eff = r.json()["effective"]
    assert eff["*"]["handle"]["amount"] == 15 and eff["*"]["handle"]["unit"] == "working_days"
    assert eff["hotline_12345"]["reply"]["amount"] == 13
    body = {"limits": [{"step": "handle", "amount": 20, "unit": "working_days"}]}
    assert client.put("/api/v1/categories/0101/time-limits", json=body,
                      headers=h(tokens, "supervisor")).status_code == 403
    r = client.put("/api/v1/categories/0101/time-limits", json=body, headers=h(tokens, "admin"))
    assert r.status_code == 200 and r.json()["effective"]["*"]["handle"]["amount"] == 20
    bad = {"limits": [{"step": "handle", "amount": 1.5, "unit": "working_days"}]}
    r = client.put("/api/v1/categories/0101/time-limits", json=bad, headers=h(tokens, "admin"))
    assert r.status_code == 422 and "whole number" in r.json()["detail"]
    # Found by schemathesis: false was taken as 0 (a limit that makes every case overdue).
    limits = client.get("/api/v1/categories/0101/time-limits", headers=h(tokens, "dispatcher")).json()
    for flag in (False, True):
        bad = {"limits": [{"step": "review", "amount": flag, "unit": "working_hours"}]}
        r = client.put("/api/v1/categories/0101/time-limits", json=bad, headers=h(tokens, "admin"))
        assert r.status_code == 422 and r.json()["field"] == "limits.0.amount", r.text
        assert "not " + str(flag).lower() in r.json()["detail"]
    r = client.get("/api/v1/categories/0101/time-limits", headers=h(tokens, "dispatcher"))
    assert r.json() == limits  # the refused PUTs changed nothing
    assert client.get("/api/v1/categories/9998/time-limits",
                      headers=h(tokens, "admin")).status_code == 404


def test_cli_case_commands_and_report(city_db_url, city_engine, tmp_path, monkeypatch):
    from casegrid.cli import app

    with cli_database(monkeypatch, city_db_url):
        with city_engine.begin() as conn:
            cid = make_case(conn, COMM_A, received_at=sh(2026, 9, 14, 9))
            officer = create_token(conn, "community_officer", "oa", [COMM_A])[1]
        runner = CliRunner()
        r = runner.invoke(app, ["case", "act", str(cid), "accept", "--role", "supervisor"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["case", "act", str(cid), "dispatch", "--role", "supervisor"])
        assert r.exit_code == 2 and "may not dispatch" in r.output
        r = runner.invoke(app, ["case", "act", str(cid), "dispatch", "--role", "dispatcher",
                                "--version", "2"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["case", "act", str(cid), "request_extension", "--as-token",
                                officer, "--reason", "owner away", "--data", '{"amount": 2}'])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["case", "history", str(cid), "--json"])
        assert r.exit_code == 0, r.output
        assert [e["action"] for e in json.loads(r.output)] == [
            "register", "accept", "dispatch", "request_extension"]
        assert json.loads(r.output)[1]["actor"] == "cli:operator"
        r = runner.invoke(app, ["case", "show", str(cid), "--role", "planner"])
        assert r.exit_code == 0 and "reporter_phone" not in r.output
        r = runner.invoke(app, ["case", "limits-set", "0102", "--step", "handle", "--amount",
                                "2", "--unit", "working_days"])
        assert r.exit_code == 0, r.output
        out = tmp_path / "r" / "report.xlsx"
        r = runner.invoke(app, ["report", "--from", "2026-09-01", "--to", "2026-09-30",
                                "--out", str(out)])
        assert r.exit_code == 0, r.output
        wb = load_workbook(out)
        assert {"按社区", "按街道", "按类别", "按渠道", "按月份", "社区排名", "合计"} <= set(wb.sheetnames)
        ws = wb["按社区"]
        headers = [c.value for c in ws[1]]
        assert headers[:3] == ["分组", "名称", "受理数"] and "回复率" in headers
        assert ws.cell(2, 1).value == COMM_A and ws.cell(2, 3).value == 1
        csv_text = (tmp_path / "r" / "report_category.csv").read_text(encoding="utf-8-sig")
        assert csv_text.startswith("分组,名称,受理数")
        everything = "".join(p.read_text(encoding="utf-8-sig")
                             for p in (tmp_path / "r").glob("*.csv"))
        assert "13800000000" not in everything and "张三" not in everything
        r = runner.invoke(app, ["report", "--from", "2026-9-1", "--to", "2026-09-30"])
        assert r.exit_code == 2 and "YYYY-MM-DD" in r.output
    with city_engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert date(2026, 9, 1)
