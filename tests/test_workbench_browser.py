"""The workbench in a real browser (Playwright driving Debian's Chromium) against the app
served by uvicorn: three people signed in at once walk a case through the whole loop, plus
a 409 race, an officer kept out of another community, a form without its token, a wrong
password and a sign-in that returns to the page asked for. Screenshots of each page, at the
dispatcher's desk (1920 px) and on the officer's phone (390 px), go to docs/workbench/.
"""

from __future__ import annotations

import pytest

from tests.helpers.workbench_browser import (
    DESK,
    PHONE,
    Person,
    no_sideways_scroll,
    on_first_screen,
    shot,
    small_taps,
    submit,
)
from tests.helpers.workbench_helpers import COMM_A, COMM_B, PASSWORD, status_of

pytestmark = pytest.mark.browser


def test_the_whole_loop_by_three_people(browser, site):
    engine, names = site["engine"], site["names"]
    case_id = submit(site, COMM_A, 1)
    sup = Person(browser, site["base"], "sup", DESK)
    disp = Person(browser, site["base"], "disp", DESK)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        # The supervisor's home: the review list counts the new case.
        disp.open("/work")  # the dispatcher's desk before the day starts
        assert disp.page.locator("#queue-nav").count() == 0
        shot(disp.page, "desk_home.png")
        sup.open("/work")
        assert "待审核" in sup.page.inner_text("main")
        # One presentation of the queues on the home page: the tiles, with their counts
        # (no list of the same queues beside them), reached and opened with the keyboard.
        assert sup.page.locator("#queue-nav").count() == 0
        assert sup.page.locator('.tiles a[href^="/work/queue/review"] .n').inner_text() == "1"
        assert all(on_first_screen(sup.page, ".tiles a"))
        sup.page.locator(".search input[name=q]").focus()
        for _ in range(12):
            sup.page.keyboard.press("Tab")
            if sup.page.evaluate("document.activeElement.matches('.tiles a')"):
                break
        assert "/work/queue/review" in sup.page.evaluate("document.activeElement.href")
        with sup.page.expect_navigation():
            sup.page.keyboard.press("Enter")
        assert "/work/queue/review" in sup.page.url
        # The list pages keep the queues beside them, counted once shown (GET /work/nav).
        sup.page.wait_for_selector("#queue-nav a.current b")
        assert sup.page.locator("#queue-nav a.current b").inner_text() == "1"
        shot(sup.page, "desk_queue_review.png")
        sup.page.click("td.no a")
        assert f"/work/cases/{case_id}" in sup.page.url
        sup.page.wait_for_selector("#case-map .leaflet-marker-icon")
        shot(sup.page, "desk_case_review.png")
        sup.act("accept", note="情况属实, 立案")
        assert status_of(engine, case_id) == "reviewed"

        # The dispatcher dispatches from the dispatch list.
        disp.open("/work/queue/dispatch")
        shot(disp.page, "desk_queue_dispatch.png")
        disp.page.click("td.no a")
        disp.act("dispatch", note="请尽快处置")
        assert status_of(engine, case_id) == "dispatched"

        # The officer, on a phone, handles it.
        off.open("/work")
        no_sideways_scroll(off.page)
        shot(off.page, "phone_home.png")
        off.open("/work/queue/handling")
        no_sideways_scroll(off.page)
        assert not small_taps(off.page), small_taps(off.page)
        shot(off.page, "phone_queue_handling.png")
        off.page.click("td.no a")
        no_sideways_scroll(off.page)
        assert not small_taps(off.page), small_taps(off.page)
        shot(off.page, "phone_case.png", full=True)
        off.act("handle", note="已到现场劝导, 噪音已停止")
        assert status_of(engine, case_id) == "handled"

        # The supervisor sends it back for rework; the officer handles it again.
        sup.open(f"/work/cases/{case_id}")
        assert "actions/verify_fail" in sup.page.content()
        sup.act("verify_fail", note="复查仍有噪音, 请返工")
        assert status_of(engine, case_id) == "dispatched"
        off.open(f"/work/cases/{case_id}")
        off.act("handle", note="已联系店主, 安装隔音设施")
        assert status_of(engine, case_id) == "handled"

        # Verified, replied, closed.
        sup.open("/work/queue/verify")
        sup.page.click("td.no a")
        sup.act("verify_pass", note="复查通过")
        assert status_of(engine, case_id) == "verified", (sup.page.url, sup.page.content()[:1500])
        disp.open("/work/queue/reply")
        disp.page.click("td.no a")
        disp.act("reply", channel="phone", text="您反映的噪音问题已处理, 感谢监督")
        assert status_of(engine, case_id) == "replied", (disp.page.url, disp.page.content()[:1500])
        sup.open("/work/queue/close")
        sup.page.click("td.no a")
        sup.act("close")
        assert status_of(engine, case_id) == "closed"

        # The timeline names each person at each step.
        sup.open(f"/work/cases/{case_id}")
        shot(sup.page, "desk_case_closed.png", full=True)
        timeline = sup.page.inner_text(".timeline")
        for person in (names["sup"], names["disp"], names["off"]):
            assert person in timeline, person
        steps = sup.page.locator(".timeline li").all_inner_texts()
        expected = [("受理登记", None), ("审核通过", names["sup"]), ("派遣", names["disp"]),
                    ("处置", names["off"]), ("核查不通过", names["sup"]), ("处置", names["off"]),
                    ("核查通过", names["sup"]), ("反馈", names["disp"]), ("结案", names["sup"])]
        assert len(steps) == len(expected), steps
        for step, (label, who) in zip(steps, expected, strict=True):
            assert label in step and (who is None or who in step), (step, label, who)
        for p in (sup, disp, off):
            p.check()
    finally:
        for p in (sup, disp, off):
            p.close()


def test_a_race_between_two_browsers_shows_what_changed(browser, site):
    case_id = submit(site, COMM_A, 2)
    a = Person(browser, site["base"], "sup", DESK)
    b = Person(browser, site["base"], "disp", DESK)
    with site["engine"].begin() as conn:
        from cases.users import create_user

        create_user(conn, "sup2", "supervisor", PASSWORD, display_name="监督员周")
    c = Person(browser, site["base"], "sup2", DESK)
    try:
        a.open(f"/work/cases/{case_id}")
        c.open(f"/work/cases/{case_id}")
        a.act("accept", note="先到先得")
        c.act("reject", reason="invalid", note="无效信息")
        assert "此案件在您打开后已被修改" in c.page.inner_text("#conflict")
        assert "监督员李华" in c.page.inner_text("#conflict")
        shot(c.page, "desk_conflict.png")
        assert status_of(site["engine"], case_id) == "reviewed"  # nothing overwritten
        a.check()
        c.errors = [e for e in c.errors if "status of 409" not in e]  # the answer itself
        c.check()
    finally:
        for p in (a, b, c):
            p.close()


def test_refusals_in_the_browser(browser, site):
    own = submit(site, COMM_A, 3)
    other = submit(site, COMM_B, 4)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        # another community's case: the same 404 as a case that does not exist
        assert off.open(f"/work/cases/{other}").status == 404
        assert off.open("/work/cases/987654").status == 404
        # a form posted without its token: 403, nothing changed
        sup = Person(browser, site["base"], "sup", DESK)
        r = sup.page.request.post(f"{site['base']}/work/cases/{own}/actions/accept",
                                  form={"version": "1", "note": "x"})
        assert r.status == 403
        assert status_of(site["engine"], own) == "registered"
        sup.close()
    finally:
        off.close()
    # a wrong password: the form again, with the error, and no session
    ctx = browser.new_context(**DESK)
    page = ctx.new_page()
    try:
        page.goto(f"{site['base']}/work/cases/{own}")  # logged out: to /login, and back after
        assert "/login?next=" in page.url
        page.fill("#username", "sup")
        page.fill("#password", "wrong password here")
        page.click("button[type=submit]")
        assert "用户名或密码错误" in page.inner_text("#login-error")
        assert not [c for c in ctx.cookies() if c["name"] == "casegrid_session"]
        shot(page, "desk_login_error.png")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        assert page.url.endswith(f"/work/cases/{own}")
        assert "北辛路3号" in page.inner_text("main")
    finally:
        ctx.close()
