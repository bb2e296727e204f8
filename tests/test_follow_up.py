"""The citizen's side of the loop: follow-up (回访), reopening (发回重办), the indicators 回访率,
满意率 and 重办率 against a direct count of a hand-built ledger, response templates, and what
Open311 shows of it. Real PostGIS with the sample city."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from casegrid.errors import Conflict, Forbidden, InvalidInput
from cases import replies
from cases.report import build_tables
from cases.stats import GROUPS, compute_stats, compute_stats_direct
from cases.tokens import create_token
from tests.helpers.cli import cli_database
from tests.helpers.ledger import (
    COMM_A,
    COMM_B,
    DISP,
    OFF_A,
    SUP,
    SUP2,
    act,
    drive,
    make_case,
    sh,
)


def _case(conn, cid):
    return conn.execute(text('SELECT * FROM "case" WHERE id = :i'), {"i": cid}).mappings().one()


def test_follow_up_attempts_the_last_counts(conn):
    cid = make_case(conn)
    drive(conn, cid, "replied")
    with pytest.raises(InvalidInput, match="result must be one of"):
        act(conn, cid, "follow_up", DISP, result="happy", method="phone")
    with pytest.raises(InvalidInput, match="method must be one of"):
        act(conn, cid, "follow_up", DISP, result="satisfied", method="pigeon")
    with pytest.raises(Forbidden):
        act(conn, cid, "follow_up", OFF_A, result="satisfied", method="phone")
    t = sh(2026, 9, 16, 9)
    act(conn, cid, "follow_up", DISP, at=t, result="unreachable", method="phone")
    v = act(conn, cid, "follow_up", DISP, at=t + timedelta(hours=2), result="basically_satisfied",
            method="sms", note="回访短信已确认")
    assert v["status"] == "replied"                      # a follow-up changes no state
    case = _case(conn, cid)
    assert case["follow_up_result"] == "basically_satisfied"
    assert case["follow_up_at"] == t + timedelta(hours=2)
    evs = conn.execute(text("SELECT data FROM case_event WHERE case_id = :i AND "
                            "action = 'follow_up' ORDER BY at"), {"i": cid}).scalars().all()
    assert [(e["result"], e["method"]) for e in evs] == [("unreachable", "phone"),
                                                          ("basically_satisfied", "sms")]
    # closed cases can still be followed up
    act(conn, cid, "close", SUP2)
    assert act(conn, cid, "follow_up", SUP, result="satisfied", method="app")["status"] == "closed"


def test_reopen_goes_back_to_dispatched_with_new_deadlines(conn):
    cid = make_case(conn)
    drive(conn, cid, "closed")
    before = _case(conn, cid)
    # reopening because the citizen is dissatisfied needs a follow-up that says so
    with pytest.raises(InvalidInput, match="last follow-up result is none"):
        act(conn, cid, "reopen", SUP, reason="dissatisfied", note="x")
    with pytest.raises(Forbidden):
        act(conn, cid, "reopen", DISP, reason="centre_order", note="x")
    act(conn, cid, "follow_up", DISP, at=sh(2026, 9, 18, 9), result="dissatisfied",
        method="phone", note="噪音仍在")
    with pytest.raises(InvalidInput, match="note is required"):
        act(conn, cid, "reopen", SUP, reason="dissatisfied")
    at = sh(2026, 9, 18, 10)          # a Friday
    v = act(conn, cid, "reopen", SUP, at=at, reason="dissatisfied", note="群众不满意,重办")
    assert v["status"] == "dispatched"
    case = _case(conn, cid)
    assert case["reopen_count"] == 1 and case["dispatched_at"] == at
    assert case["handled_at"] is None and case["replied_at"] is None and case["closed_at"] is None
    # the new deadline comes from the same machinery as a dispatch's: the handle limit on the
    # working calendar, counted from the reopening
    from cases.calendar_store import load_calendar
    from cases.deadlines import due_after, limits_for

    limits = limits_for(conn, "0102", "hotline_12345")
    assert case["handle_due_at"] == due_after(load_calendar(conn), at, limits["handle"]).at
    assert case["reply_due_at"] == due_after(load_calendar(conn), at, limits["reply"]).at
    assert case["current_due_at"] == case["handle_due_at"]
    assert case["handle_due_at"] != before["handle_due_at"]
    # the history keeps the first round, and the loop runs again
    actions = [e["action"] for e in conn.execute(text(
        "SELECT action FROM case_event WHERE case_id = :i ORDER BY at, id"), {"i": cid}).mappings()]
    assert actions == ["register", "accept", "dispatch", "handle", "verify_pass", "reply",
                       "close", "follow_up", "reopen"]
    act(conn, cid, "handle", OFF_A, at=at + timedelta(hours=3), note="再次处理")
    act(conn, cid, "verify_pass", SUP, at=at + timedelta(hours=4))
    act(conn, cid, "reply", DISP, at=at + timedelta(hours=5), channel="phone", text="已再次处理")
    act(conn, cid, "follow_up", DISP, at=at + timedelta(hours=6), result="satisfied",
        method="phone")
    assert _case(conn, cid)["follow_up_result"] == "satisfied"


def test_reopen_refusals(conn):
    main = make_case(conn)
    dup = make_case(conn)
    act(conn, dup, "reject", SUP, reason="duplicate", main_case_id=main)
    drive(conn, main, "replied")
    assert _case(conn, dup)["status"] == "replied"
    with pytest.raises(InvalidInput, match="reopen the main case"):
        act(conn, dup, "reopen", SUP, reason="centre_order", note="x")
    rejected = make_case(conn)
    act(conn, rejected, "reject", SUP, reason="out_of_scope", note="供暖")
    act(conn, rejected, "reply", DISP, channel="phone", text="不属于城管")
    with pytest.raises(InvalidInput, match="never dispatched"):
        act(conn, rejected, "reopen", SUP, reason="centre_order", note="x")
    fresh = make_case(conn)
    with pytest.raises(Conflict):
        act(conn, fresh, "reopen", SUP, reason="centre_order", note="x")


def _direct_counts(conn, lo, hi) -> dict:
    """回访/满意/重办 counted from the history alone: the last follow-up event of each case,
    reopen events, reply events; patrol cases have no complainant."""
    rows = conn.execute(text("""
        SELECT c.id, c.channel, c.replied_at,
               (SELECT e.data->>'result' FROM case_event e WHERE e.case_id = c.id
                AND e.action = 'follow_up' ORDER BY e.at DESC, e.id DESC LIMIT 1) AS last,
               (SELECT count(*) FROM case_event e WHERE e.case_id = c.id
                AND e.action = 'reopen') AS reopens,
               (SELECT count(*) FROM case_event e WHERE e.case_id = c.id
                AND e.action = 'reply') AS replies
        FROM "case" c WHERE c.received_at >= :lo AND c.received_at < :hi"""),
        {"lo": lo, "hi": hi}).mappings().all()
    rows = [r for r in rows if r["channel"] != "patrol"]
    followed = [r for r in rows if r["last"] in ("satisfied", "basically_satisfied",
                                                  "dissatisfied")]
    return {
        "due_follow_up": sum(1 for r in rows if r["replies"] > 0),
        "followed_up": len(followed),
        "satisfied": sum(1 for r in followed if r["last"] != "dissatisfied"),
        "reopened": sum(1 for r in rows if r["reopens"] > 0),
    }


def test_indicators_against_a_direct_count(conn):
    t0 = sh(2026, 9, 14, 9)
    results = ["satisfied", "satisfied", "basically_satisfied", "dissatisfied", "unreachable",
               None, "dissatisfied"]
    ids = []
    for i, result in enumerate(results):
        cid = make_case(conn, COMM_A, received_at=t0 + timedelta(hours=i))
        ids.append(cid)
        drive(conn, cid, "closed" if i % 3 else "replied", at=t0 + timedelta(hours=i))
        if result:
            act(conn, cid, "follow_up", DISP, at=sh(2026, 9, 20, 9, i), result=result,
                method="phone")
    # the last dissatisfied case is reopened and not yet answered again
    act(conn, ids[-1], "reopen", SUP, at=sh(2026, 9, 21, 9), reason="dissatisfied", note="重办")
    # the other dissatisfied one: reopened, redone, answered, now satisfied
    act(conn, ids[3], "reopen", SUP, at=sh(2026, 9, 21, 9), reason="centre_order", note="重办")
    assert _case(conn, ids[3])["community_code"] == COMM_A
    act(conn, ids[3], "handle", OFF_A, at=sh(2026, 9, 21, 11), note="redone")
    act(conn, ids[3], "verify_pass", SUP, at=sh(2026, 9, 21, 12))
    act(conn, ids[3], "reply", DISP, at=sh(2026, 9, 21, 13), channel="phone", text="again")
    act(conn, ids[3], "follow_up", DISP, at=sh(2026, 9, 21, 14), result="satisfied",
        method="phone")
    # a patrol case followed up does not count (nobody complained)
    patrol = make_case(conn, COMM_A, channel="patrol", received_at=t0)
    drive(conn, patrol, "replied", at=t0)
    act(conn, patrol, "follow_up", DISP, at=sh(2026, 9, 20, 9), result="satisfied",
        method="phone")
    # a case received outside the period does not count
    late = make_case(conn, COMM_A, received_at=sh(2026, 10, 5, 9))
    drive(conn, late, "replied", at=sh(2026, 10, 5, 9))
    act(conn, late, "follow_up", DISP, at=sh(2026, 10, 6, 9), result="dissatisfied",
        method="phone")

    d1, d2 = date(2026, 9, 1), date(2026, 9, 30)
    from cases.stats import period_bounds

    expect = _direct_counts(conn, *period_bounds(d1, d2))
    assert expect == {"due_follow_up": 7, "followed_up": 5, "satisfied": 4, "reopened": 2}
    total = compute_stats(conn, "community", d1, d2)["total"]
    assert {k: total[k] for k in expect} == expect
    assert total["satisfaction_rate"] == round(4 / 5, 4)
    assert total["follow_up_rate"] == round(5 / 7, 4)
    assert total["reopen_rate"] == round(2 / 7, 4)
    # the stored counts (triggers) agree with one scan of the ledger, for every grouping
    for group in GROUPS:
        fast = compute_stats(conn, group, d1, d2)
        slow = compute_stats_direct(conn, group, d1, d2)
        for a, b in zip(fast["groups"], slow["groups"], strict=True):
            assert {k: a[k] for k in expect} == {k: b[k] for k in expect}, group
        assert {k: fast["total"][k] for k in expect} == {k: slow["total"][k] for k in expect}
    # a followed-up case moved to another community (and subdistrict) takes its counts along
    conn.execute(text(
        'UPDATE "case" SET community_code = :b, subdistrict_code = :sd WHERE id = ANY(:ids)'),
        {"b": COMM_B, "sd": COMM_B[:9], "ids": [ids[1], ids[3]]})
    by_comm = {g["key"]: g for g in compute_stats(conn, "community", d1, d2)["groups"]}
    direct = {g["key"]: g for g in compute_stats_direct(conn, "community", d1, d2)["groups"]}
    assert by_comm[COMM_B]["satisfied"] == 2 and by_comm[COMM_A]["satisfied"] == 2
    for k in by_comm:
        assert {c: by_comm[k][c] for c in expect} == {c: direct[k][c] for c in expect}
    # the Excel report carries the three rates
    tables = build_tables(conn, d1, d2)
    header, values = tables["total"]
    got = dict(zip(header, values, strict=True))
    assert got["满意率"] == total["satisfaction_rate"] and got["回访率"] == total["follow_up_rate"]
    assert got["重办率"] == total["reopen_rate"]


def test_response_templates_fill_the_case_facts(conn):
    with pytest.raises(InvalidInput, match="not a field"):
        replies.save_template(conn, "0102", "t", "您好{reporter_phone}", "admin")
    with pytest.raises(InvalidInput, match="stray brace"):
        replies.save_template(conn, "0102", "t", "您好{case_no", "admin")
    with pytest.raises(InvalidInput, match="no category"):
        replies.save_template(conn, "9988", "t", "x", "admin")
    replies.save_template(conn, "0102", "已清理", "您反映的{category}问题({case_no}),{post}已于"
                          "{handled}处理:{handle_note}。咨询电话{post_phone}。", "admin")
    replies.save_template(conn, "*", "通用", "案件{case_no}已办结。", "admin")
    replies.save_template(conn, "0301", "噪音", "施工噪音{case_no}", "admin")
    cid = make_case(conn)
    drive(conn, cid, "verified")
    drafts = replies.drafts(conn, cid, DISP)
    assert [d["title"] for d in drafts] == ["已清理", "通用"]
    case = _case(conn, cid)
    post = conn.execute(text("SELECT name, phone FROM community_post WHERE id = :p"),
                        {"p": case["post_id"]}).one()
    assert drafts[0]["text"] == (f"您反映的暴露垃圾问题({case['case_no']}),{post.name}已于"
                                 f"{case['handled_at'].astimezone(sh(2026,1,1).tzinfo):%Y年%m月%d日}"
                                 f"处理:cleared。咨询电话{post.phone}。")
    # a reply giving the post's public phone keeps it callable; a citizen's number in the
    # same text is masked as always
    text_ = drafts[0]["text"] + "另:邻居电话13912345678。"
    act(conn, cid, "reply", DISP, channel="phone", text=text_)
    stored = conn.execute(text("SELECT data->>'text' FROM case_event WHERE case_id = :i AND "
                               "action = 'reply'"), {"i": cid}).scalar_one()
    assert f"咨询电话{post.phone}。" in stored and "139****5678" in stored
    assert stored == text_.replace("13912345678", "139****5678")
    # replacing by title keeps one template
    replies.save_template(conn, "*", "通用", "案件{case_no}已办结,谢谢。", "admin")
    assert len(replies.list_templates(conn, "0102")) == 2


def test_templates_api_and_cli(city_db_url, city_engine, monkeypatch):
    app = create_app(database_url=city_db_url)
    with city_engine.begin() as c:
        tokens = {r: create_token(c, r, f"t-{r}")[1] for r in ("admin", "dispatcher", "planner")}
        cid = make_case(c, COMM_A)
    h = {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}
    with TestClient(app) as client:
        body = {"category_code": "0102", "title": "清理", "body": "{case_no} 已清理"}
        assert client.put("/api/v1/response-templates", json=body,
                          headers=h["dispatcher"]).status_code == 403
        r = client.put("/api/v1/response-templates", json=body, headers=h["admin"])
        assert r.status_code == 200, r.text
        tid = r.json()["id"]
        bad = client.put("/api/v1/response-templates", json={**body, "body": "{phone}"},
                         headers=h["admin"])
        assert bad.status_code == 422 and bad.json()["field"] == "body"
        r = client.get(f"/api/v1/cases/{cid}/reply-drafts", headers=h["dispatcher"])
        case_no = r.json()["drafts"][0]["text"].split()[0]
        assert r.status_code == 200 and case_no.startswith("CG")
        assert client.get(f"/api/v1/cases/{cid}/reply-drafts",
                          headers=h["planner"]).status_code == 403
        assert client.get("/api/v1/response-templates?category=0102",
                          headers=h["dispatcher"]).json()["templates"][0]["id"] == tid
        # follow-up through the API
        with city_engine.begin() as c:
            drive(c, cid, "replied")
        r = client.post(f"/api/v1/cases/{cid}/actions", headers=h["dispatcher"],
                        json={"action": "follow_up", "result": "dissatisfied", "method": "phone"})
        assert r.status_code == 200 and r.json()["follow_up_result"] == "dissatisfied"
        r = client.post(f"/api/v1/cases/{cid}/actions", headers=h["admin"],
                        json={"action": "reopen", "reason": "dissatisfied", "note": "重办"})
        assert r.status_code == 200 and r.json()["status"] == "dispatched"
        assert client.delete(f"/api/v1/response-templates/{tid}",
                             headers=h["admin"]).status_code == 204
        assert client.delete(f"/api/v1/response-templates/{tid}",
                             headers=h["admin"]).status_code == 404
    from casegrid.cli import app as cli

    with cli_database(monkeypatch, city_db_url):
        runner = CliRunner()
        r = runner.invoke(cli, ["replies", "set", "--category", "*", "--title", "通用",
                                "--body", "{case_no}已办结"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(cli, ["replies", "set", "--category", "*", "--title", "坏",
                                "--body", "{nope}"])
        assert r.exit_code == 2 and "not a field" in r.output
        r = runner.invoke(cli, ["replies", "list"])
        assert r.exit_code == 0 and "通用" in r.output


def test_open311_shows_the_reply_and_moves_with_public_steps(conn):
    from cases.open311 import get_request

    cid = make_case(conn)
    no = _case(conn, cid)["case_no"]
    drive(conn, cid, "dispatched")
    first = get_request(conn, no)[0]
    assert first["updated_datetime"] == sh(2026, 9, 14, 11)        # the dispatch
    # an internal step (an extension request) does not move it
    act(conn, cid, "request_extension", OFF_A, at=sh(2026, 9, 14, 12), reason="r", amount=1)
    assert get_request(conn, no)[0]["updated_datetime"] == sh(2026, 9, 14, 11)
    act(conn, cid, "deny_extension", SUP, at=sh(2026, 9, 14, 12, 30), note="no")
    act(conn, cid, "handle", OFF_A, at=sh(2026, 9, 14, 13), note="done")
    assert get_request(conn, no)[0]["updated_datetime"] == sh(2026, 9, 14, 13)
    assert "待核实" in get_request(conn, no)[0]["status_notes"]
    act(conn, cid, "verify_pass", SUP, at=sh(2026, 9, 14, 14))
    act(conn, cid, "reply", DISP, at=sh(2026, 9, 14, 15), channel="phone",
        text="已清理完毕,如有问题请致电13812345678")
    item = get_request(conn, no)[0]
    stored = conn.execute(text("SELECT data->>'text' FROM case_event WHERE case_id = :i AND "
                               "action = 'reply'"), {"i": cid}).scalar_one()
    assert item["status_notes"] == stored and stored.startswith("已清理完毕")
    assert "13812345678" not in stored          # stored masked (cases.privacy)
    assert item["updated_datetime"] == sh(2026, 9, 14, 15)
    act(conn, cid, "follow_up", DISP, at=sh(2026, 9, 15, 9), result="dissatisfied",
        method="phone")
    act(conn, cid, "reopen", SUP, at=sh(2026, 9, 15, 10), reason="dissatisfied", note="重办")
    item = get_request(conn, no)[0]
    assert item["updated_datetime"] == sh(2026, 9, 15, 10)
    assert item["status"] == "open" and "已派遣" in item["status_notes"]
    assert COMM_B  # (imported for symmetry with the other tests)
