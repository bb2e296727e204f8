"""The citizen's side of the loop on the workbench: the reply with a template (常用回复), the
follow-up call (回访) and the reopening (发回重办) as forms on the case page for the roles
allowed, the 待回访 list, and 满意率 / 回访率 / 重办率 where supervisors look (their home page
and the overview). Over HTTP, then in Debian's Chromium (the fixtures of
tests/test_workbench_browser.py); screenshots go to docs/workbench/.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases import replies
from tests.helpers.ledger import DISP, drive, make_case
from tests.helpers.workbench_browser import (
    DESK,
    PHONE,
    Person,
    no_sideways_scroll,
    shot,
    small_taps,
)
from tests.helpers.workbench_helpers import (
    COMM_A,
    VERSION,
    case_body,
    csrf_of,
    intake_token,
    make_users,
    point_in,
    signed_in,
    status_of,
)

TEMPLATE = "您反映的{category}问题({case_no}),{post}已于{handled}处理:{handle_note}。如有疑问请致电{post_phone}。"


def _templates(engine) -> None:
    with engine.begin() as conn:
        replies.save_template(conn, "0508", "已劝导", TEMPLATE, "admin")
        replies.save_template(conn, "*", "通用", "案件{case_no}已办结,感谢您的监督。", "admin")


def _case(engine, case_id: int) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(text('SELECT * FROM "case" WHERE id = :i'),
                                 {"i": case_id}).mappings().one())


def _events(engine, case_id: int, action: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT actor, role, note, data FROM case_event WHERE case_id = :i AND action = :a "
            "ORDER BY at, id"), {"i": case_id, "a": action}).mappings()]


@pytest.fixture
def wb(city_engine, city_db_url):
    """The app with accounts, two templates and one verified case from the intake API."""
    make_users(city_engine)
    _templates(city_engine)
    app = create_app(settings=Settings(tiles="none", database_url=city_db_url),
                     database_url=city_db_url)
    with TestClient(app) as client:
        r = client.post("/api/v1/cases", json=case_body(*point_in(city_engine, COMM_A), n=7),
                        headers={"Authorization": f"Bearer {intake_token(city_engine)}"})
        assert r.status_code == 201, r.text
        client.case_id = r.json()["id"]  # type: ignore[attr-defined]
        with city_engine.begin() as conn:
            drive(conn, client.case_id, "verified")
        yield client


def _post(client, case_id: int, action: str, **fields: str):
    page = client.get(f"/work/cases/{case_id}")
    return client.post(f"/work/cases/{case_id}/actions/{action}", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "version": VERSION.search(page.text).group(1),
        "opened_at": "", **fields})


def test_forms_by_role_and_the_follow_up_list(wb, city_engine):
    cid = wb.case_id
    # the reply form offers the category's templates and those for every category, filled in
    signed_in(wb, "disp")
    page = wb.get(f"/work/cases/{cid}").text
    assert 'id="reply-template"' in page and 'data-fills="reply-text"' in page
    with city_engine.connect() as conn:
        drafts = replies.drafts(conn, cid, DISP)
    assert [d["title"] for d in drafts] == ["已劝导", "通用"]
    for d in drafts:
        assert f'data-text="{d["text"]}"' in page        # (no character here needs escaping)
    assert "{" not in drafts[0]["text"] and _case(city_engine, cid)["case_no"] in drafts[0]["text"]
    assert _post(wb, cid, "reply", channel="phone", text=drafts[1]["text"]).status_code == 303
    # replied: in the dispatcher's 待回访 list, with the follow-up form and no reopen
    queue = wb.get("/work/queue/follow_up")
    assert queue.status_code == 200 and _case(city_engine, cid)["case_no"] in queue.text
    page = wb.get(f"/work/cases/{cid}").text
    assert "actions/follow_up" in page and "actions/reopen" not in page
    assert 'id="reply-template"' not in page
    # a refused follow-up names the field; an attempt that did not reach the citizen keeps
    # the case in the list
    bad = _post(wb, cid, "follow_up", method="phone")
    assert bad.status_code == 422 and "result" in bad.text
    assert _post(wb, cid, "follow_up", result="unreachable", method="phone").status_code == 303
    assert _case(city_engine, cid)["case_no"] in wb.get("/work/queue/follow_up").text
    assert _post(wb, cid, "follow_up", result="dissatisfied", method="sms",
                 note="噪音仍在").status_code == 303
    assert _case(city_engine, cid)["case_no"] not in wb.get("/work/queue/follow_up").text
    page = wb.get(f"/work/cases/{cid}").text
    assert re.search(r'class="what">回访</span> <span class="detail">不满意 · 短信</span>', page)
    # a community officer sees neither form, nor the list
    wb.cookies.clear()
    signed_in(wb, "off")
    page = wb.get(f"/work/cases/{cid}").text
    assert "actions/follow_up" not in page and "actions/reopen" not in page
    assert wb.get("/work/queue/follow_up").status_code == 404
    # the supervisor reopens: back to dispatched, in the handling list again
    wb.cookies.clear()
    signed_in(wb, "sup")
    page = wb.get(f"/work/cases/{cid}").text
    assert "actions/reopen" in page and "actions/follow_up" in page
    bad = _post(wb, cid, "reopen", reason="dissatisfied")
    assert bad.status_code == 422 and "note" in bad.text
    assert _post(wb, cid, "reopen", reason="dissatisfied", note="请重新处理").status_code == 303
    assert _case(city_engine, cid)["status"] == "dispatched"
    assert _case(city_engine, cid)["case_no"] in wb.get("/work/queue/handling").text
    # the supervisor's home: this month's 满意率, 回访率, 重办率 with their counts
    home = wb.get("/work").text
    loop = home.split('id="citizen-loop"')[1]
    assert "满意率" in loop and "回访率" in loop and "重办率" in loop
    assert re.search(r'id="kpi-satisfaction_rate">\s*<span class="n">0\.0%</span>', loop)
    assert re.search(r'id="kpi-reopen_rate">\s*<span class="n">100\.0%</span>', loop)
    # and the overview page
    over = wb.get("/work/overview").text
    assert "回访率" in over and "重办率" in over and "满意率" in over


@pytest.mark.browser
def test_reply_follow_up_and_reopen_in_the_browser(browser, site):
    engine, names = site["engine"], site["names"]
    _templates(engine)
    lon, lat = point_in(engine, COMM_A)
    with engine.begin() as conn:
        # received three hours ago and worked since, so the history reads in order
        at = conn.execute(text("SELECT now() - interval '3 hours'")).scalar_one()
        case_id = make_case(conn, COMM_A, category="0508", received_at=at)
        conn.execute(text("""UPDATE "case" SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326),
                             description = '商铺门口音响声音太大', address = '北辛路21号'
                             WHERE id = :i"""), {"x": lon, "y": lat, "i": case_id})
        drive(conn, case_id, "verified", at=at)
        expected = next(d["text"] for d in replies.drafts(conn, case_id, DISP)
                        if d["title"] == "已劝导")
    disp = Person(browser, site["base"], "disp", DESK)
    sup = Person(browser, site["base"], "sup", DESK)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        # The dispatcher picks a template: the reply fills with the case's facts and stays
        # editable.
        disp.open("/work/queue/reply")
        disp.page.click("td.no a")
        assert f"/work/cases/{case_id}" in disp.page.url
        disp.page.select_option("#reply-template", label="已劝导")
        assert disp.page.input_value("#reply-text") == expected
        shot(disp.page, "desk_case_reply_template.png")
        disp.page.click("#reply-text")
        disp.page.keyboard.press("Control+End")
        disp.page.keyboard.type("感谢您的监督。")
        disp.page.select_option("#reply-channel", "phone")
        with disp.page.expect_navigation():
            disp.page.locator("#form-reply button[type=submit]").click()
        assert status_of(engine, case_id) == "replied"
        (reply,) = _events(engine, case_id, "reply")
        # as typed: the post's public phone is not masked like a citizen's number
        assert reply["data"]["text"] == expected + "感谢您的监督。"
        assert re.search(r"致电0632-\d{7}。", reply["data"]["text"])
        assert reply["actor"] == names["disp"]

        # The follow-up call from the 待回访 list; the timeline names who called and the
        # verdict.
        disp.open("/work/queue/follow_up")
        shot(disp.page, "desk_queue_follow_up.png")
        disp.page.click("td.no a")
        disp.act("follow_up", result="dissatisfied", method="phone", note="群众反映噪音仍在")
        assert _case(engine, case_id)["follow_up_result"] == "dissatisfied"
        disp.open(f"/work/cases/{case_id}")
        last = disp.page.locator(".timeline li").last.inner_text()
        assert "回访" in last and names["disp"] in last and "不满意 · 电话" in last
        assert "群众反映噪音仍在" in last
        assert disp.page.locator("#form-reopen").count() == 0   # not the dispatcher's step
        # no verdict is preselected: saving without one is refused at the field
        disp.act("follow_up", method="sms")
        assert "result" in disp.page.inner_text("#form-follow_up .field-error")
        assert len(_events(engine, case_id, "follow_up")) == 1
        disp.errors = [e for e in disp.errors if "status of 422" not in e]  # that answer

        # The supervisor sends it back: dispatched again, with a new deadline, in the
        # officer's handling list; the officer handles it on the phone.
        sup.open(f"/work/cases/{case_id}")
        shot(sup.page, "desk_case_reopen.png", full=True)
        sup.act("reopen", reason="dissatisfied", note="请再次到现场处理")
        case = _case(engine, case_id)
        assert case["status"] == "dispatched" and case["reopen_count"] == 1
        assert case["replied_at"] is None and case["handle_due_at"] > case["received_at"]
        timeline = sup.page.inner_text(".timeline")
        assert "发回重办" in timeline and names["sup"] in timeline
        off.open("/work/queue/handling")
        assert case["case_no"] in off.page.inner_text("main")
        off.open(f"/work/cases/{case_id}")
        no_sideways_scroll(off.page)
        assert not small_taps(off.page), small_taps(off.page)
        shot(off.page, "phone_case_reopened.png", full=True)
        off.act("handle", note="再次到场, 已停止营业音响")
        assert status_of(engine, case_id) == "handled"

        # The supervisor's home shows the month's 满意率 / 回访率 / 重办率.
        sup.open("/work")
        loop = sup.page.inner_text("#citizen-loop")
        assert "满意率" in loop and "0.0%" in loop and "重办率" in loop and "100.0%" in loop
        shot(sup.page, "desk_home_supervisor.png")
        for p in (disp, sup, off):
            p.check()
    finally:
        for p in (disp, sup, off):
            p.close()
