"""签收, 督办 and failed notifications on the workbench, in Chromium (Playwright, the
fixtures of tests/conftest.py and tests/helpers/fixtures.py) against the served app:

* an officer on a phone finds 待签收 first on the home page with the dispatched cases,
  acknowledges one on its page, sees the list's count drop and 签收 with their name in the
  timeline, and is not offered a second 签收;
* a supervisor (and a dispatcher) find the case the worker escalated in the 督办 list, with
  who escalated it, when and why;
* an admin sees how many notifications failed (a real receiver on loopback answering 500),
  reads the error on the list and sends one again, which the worker then delivers.

Screenshots go to docs/workbench/.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from casegrid.settings import Settings
from casegrid.worker import Worker
from cases import reminders
from cases.calendar import CITY_TZ
from cases.users import create_user
from cases.workflow import apply_action
from notify import outbox
from tests.helpers.ledger import DISP, SUP, make_case
from tests.helpers.notify_peers import Receiver
from tests.helpers.workbench_browser import (
    DESK,
    PHONE,
    Person,
    compact_phone_header,
    no_sideways_scroll,
    on_first_screen,
    shot,
    small_taps,
    submit,
)
from tests.helpers.workbench_helpers import COMM_A, PASSWORD

pytestmark = pytest.mark.browser


def dispatch(engine, case_id: int, days_ago: int = 0) -> None:
    """Accept and dispatch a case now, or ``days_ago`` (the supervisor's and dispatcher's
    part, not under test)."""
    at = datetime.now(CITY_TZ) - timedelta(days=days_ago)
    with engine.begin() as conn:
        apply_action(conn, case_id, "accept", {}, SUP, at=at + timedelta(minutes=1) if days_ago else None)
        apply_action(conn, case_id, "dispatch", {}, DISP, at=at + timedelta(minutes=2) if days_ago else None)


def received_long_ago(engine, days: int) -> int:
    """A case received ``days`` ago (history is append-only: it is written then)."""
    with engine.begin() as conn:
        case_id = make_case(conn, COMM_A, category="0508",
                            received_at=datetime.now(CITY_TZ) - timedelta(days=days))
        conn.execute(text(
            'UPDATE "case" SET address = \'北辛路31号\', description = \'夜间噪音扰民\', '
            "generation_id = (SELECT id FROM boundary_generation WHERE level = 'community' "
            "AND active) WHERE id = :i"), {"i": case_id})
    return case_id


def counts_shown(page) -> None:  # noqa: ANN001
    """Wait for the queue list's counts (fetched once the page is shown)."""
    page.wait_for_selector("#queue-nav a b")


def tile(page, queue: str) -> tuple[str, int]:  # noqa: ANN001
    """The label and count of a queue's tile on the home page."""
    a = page.locator(f'.tiles a[href^="/work/queue/{queue}"]')
    return a.locator(".name").inner_text(), int(a.locator(".n").inner_text())


def test_an_officer_acknowledges_on_a_phone(browser, site):
    engine, names = site["engine"], site["names"]
    first, second = submit(site, COMM_A, 21), submit(site, COMM_A, 22)
    dispatch(engine, first)  # dispatched first: falls due first (or with the lower id)
    dispatch(engine, second)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        off.open("/work")
        no_sideways_scroll(off.page)
        assert off.page.locator(".tiles a").first.get_attribute("href").startswith("/work/queue/acknowledge")
        assert tile(off.page, "acknowledge") == ("待签收", 2)
        compact_phone_header(off.page)
        assert all(on_first_screen(off.page, ".tiles a"))
        shot(off.page, "phone_home_acknowledge.png")
        off.page.locator(".tiles a").first.click()
        assert "/work/queue/acknowledge" in off.page.url
        no_sideways_scroll(off.page)
        # The list and both its rows show on the first screen of a 390 x 844 phone.
        compact_phone_header(off.page)
        assert on_first_screen(off.page, "table.rows tbody tr") == [True, True]
        listed = off.page.locator("td.no a").all_inner_texts()
        with engine.connect() as conn:
            numbers = dict(conn.execute(text('SELECT id, case_no FROM "case" WHERE id IN (:a, :b)'),
                                        {"a": first, "b": second}).all())
        assert listed == [numbers[first], numbers[second]]
        assert "签收时限" in off.page.locator("table.rows tbody tr").first.inner_text()
        counts_shown(off.page)
        shot(off.page, "phone_queue_acknowledge.png")
        off.page.locator("td.no a").first.click()
        assert f"/work/cases/{first}" in off.page.url
        # 签收 is the first action offered, one tap, nothing to fill in.
        assert off.page.locator("#actions form").first.get_attribute("id") == "form-acknowledge"
        no_sideways_scroll(off.page)
        assert not small_taps(off.page), small_taps(off.page)
        counts_shown(off.page)
        shot(off.page, "phone_case_acknowledge.png", full=True)
        off.act("acknowledge")
        # On to the list's next case, saying what was done.
        assert f"/work/cases/{second}" in off.page.url and "queue=acknowledge" in off.page.url
        assert "签收" in off.page.inner_text(".flash")
        with engine.connect() as conn:
            acked = conn.execute(text('SELECT acknowledged_at IS NOT NULL FROM "case" WHERE id = :i'),
                                 {"i": first}).scalar_one()
        assert acked
        off.open("/work")
        assert tile(off.page, "acknowledge") == ("待签收", 1)
        off.open(f"/work/cases/{first}")
        step = off.page.locator(".timeline li.ev-acknowledge")
        assert step.count() == 1 and "签收" in step.inner_text() and names["off"] in step.inner_text()
        assert off.page.locator("#form-acknowledge").count() == 0  # once per dispatch
        assert off.page.locator("#form-handle").count() == 1
        counts_shown(off.page)
        shot(off.page, "phone_case_acknowledged.png", full=True)
        off.open("/work?lang=en")
        assert off.page.locator(".tiles a").first.locator(".name").inner_text() == "To acknowledge"
        off.check()
    finally:
        off.close()


def test_supervisors_work_the_escalated_list(browser, site):
    engine = site["engine"]
    late = received_long_ago(engine, 40)
    on_time = submit(site, COMM_A, 32)
    dispatch(engine, late, days_ago=40)
    dispatch(engine, on_time)
    with engine.begin() as conn:  # the worker's reminder pass
        sent = reminders.send_reminders(conn, settings=Settings())
    assert sent["escalated"] == 1
    sup = Person(browser, site["base"], "sup", DESK)
    disp = Person(browser, site["base"], "disp", DESK)
    try:
        sup.open("/work")
        assert tile(sup.page, "escalated") == ("督办", 1)
        sup.page.click('.tiles a[href^="/work/queue/escalated"]')
        rows = sup.page.locator("table.rows tbody tr")
        assert rows.count() == 1
        text_ = rows.first.inner_text()
        assert "casegrid-worker" in text_ and "系统" in text_ and "督办: 超期未处置" in text_
        assert "处置时限" in text_
        counts_shown(sup.page)
        shot(sup.page, "desk_queue_escalated.png")
        rows.first.locator("td.no a").click()
        assert f"/work/cases/{late}" in sup.page.url
        assert "督办: 超期未处置" in sup.page.inner_text(".timeline")
        disp.open("/work/queue/escalated?lang=en")
        assert "Escalated" in disp.page.inner_text("table.rows") and \
            "still unhandled past its deadline" in disp.page.inner_text("table.rows")
        for p in (sup, disp):
            p.check()
    finally:
        sup.close()
        disp.close()


def test_an_admin_sees_failed_notifications_and_sends_one_again(browser, site):
    engine = site["engine"]
    dispatch(engine, submit(site, COMM_A, 41))
    with engine.begin() as conn:
        create_user(conn, "adm", "admin", PASSWORD, display_name="管理员吴")
    with Receiver(statuses=[500] * 1000) as rx:
        w = Worker(engine, Settings(webhook_url=rx.url + "/hook", webhook_secret="s",
                                    notify_retry_base_s=0.05, notify_give_up_s=0.3))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            w.run_pass()
            with engine.connect() as conn:
                failed = outbox.failed_count(conn)
                unrouted = outbox.stats(conn)["unrouted"]
                pending = outbox.stats(conn).get("pending", 0)
            if failed and not unrouted and not pending:
                break
            time.sleep(0.05)
        assert failed >= 2  # registered, reviewed, dispatched: none got through
        adm = Person(browser, site["base"], "adm", DESK)
        try:
            adm.open("/work")
            count = adm.page.locator("#failed-deliveries .n")
            assert int(count.inner_text()) == failed
            shot(adm.page, "desk_home_admin_failed.png")
            adm.page.click("#failed-deliveries")
            assert adm.page.url.endswith("/work/deliveries")
            assert int(adm.page.inner_text("#failed-total")) == failed
            first = adm.page.locator("table.deliveries tbody tr").first
            assert "HTTP 500" in first.locator("td.error").inner_text()
            assert rx.url in first.locator("td.target").inner_text()
            counts_shown(adm.page)
            shot(adm.page, "desk_deliveries_failed.png")
            rx.statuses.clear()  # the receiver recovers
            delivery_id = int(first.locator("td.id").inner_text())
            with adm.page.expect_navigation():
                first.locator("button[type=submit]").click()
            assert f"#{delivery_id}" in adm.page.inner_text(".flash")
            assert adm.page.locator(f"#delivery-{delivery_id}").count() == 0
            assert w.run_pass()["delivered"] == 1
            assert rx.wait_for(lambda got: any(r.headers.get("X-Casegrid-Event") for r in got))
            adm.open("/work")
            assert int(adm.page.locator("#failed-deliveries .n").inner_text()) == failed - 1
            # Without the form token: 403, nothing sent again.
            other = adm.page.request.post(f"{site['base']}/work/deliveries/{delivery_id + 1}/retry")
            assert other.status == 403
            adm.check()
        finally:
            adm.close()
    off = Person(browser, site["base"], "off", PHONE)
    try:  # not for other roles: no count on their home, the list refused
        off.open("/work")
        assert off.page.locator("#failed-deliveries").count() == 0
        assert off.open("/work/deliveries").status == 403
    finally:
        off.close()
