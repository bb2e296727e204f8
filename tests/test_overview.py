"""The leadership overview: its figures are the indicators' and the evaluation's own (checked
against them on a hand-built ledger), only supervisors and admins see it, and in Chromium it
loads with no console error and prints on one A4 page."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from casegrid.settings import Settings
from cases.overview import overview
from cases.stats import compute_stats
from tests.helpers.evaluation_ledger import SEPT
from tests.helpers.ledger import COMM_A, COMM_B
from tests.helpers.server import running_server
from tests.helpers.workbench_browser import DESK, PHONE, Person, no_sideways_scroll
from tests.helpers.workbench_helpers import PASSWORD, csrf_of, make_users, signed_in

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_figures_are_the_indicators_and_the_evaluation(evaluation_ledger):
    with evaluation_ledger.connect() as conn:
        data = overview(conn, date(2026, 9, 15))
        sept = compute_stats(conn, "category", *SEPT)["total"]
    kpis = {k["key"]: k for k in data["kpis"]}
    assert data["month"] == "2026-09" and data["months"]["last"] == "2026-08"
    assert data["months"]["year_ago"] == "2025-09"
    assert kpis["accepted"]["this"] == sept["accepted"] == 6
    assert kpis["accepted"]["last"] == 0 and kpis["accepted"]["year_ago"] == 0
    assert kpis["on_time_close_rate"]["this"] == sept["on_time_close_rate"]
    assert kpis["reply_rate"]["this"] == sept["reply_rate"]
    # The evaluation of the hand-built ledger ranks B (75) before A (66.67); C is too small.
    assert [e["key"] for e in data["best"]] == [COMM_B, COMM_A]
    assert data["weakest"] == [] and data["not_ranked"] == 1
    assert data["categories"][0]["cases"] == 6
    assert sum(p["cases"] for p in data["places"]) == 6


def _client(engine, url):
    make_users(engine)
    with engine.begin() as conn:
        from cases.users import create_user

        create_user(conn, "admin1", "admin", PASSWORD, display_name="局长")
    return TestClient(_app(url))


def _app(url):
    """The app on ``url``, with no map tiles (the pages are checked offline)."""
    return create_app(settings=Settings(tiles="none", database_url=url), database_url=url)


def test_who_may_see_it(evaluation_ledger, city_db_url):
    with _client(evaluation_ledger, city_db_url) as client:
        signed_in(client, "plan")
        assert client.get("/work/overview?month=2026-09").status_code == 403
    with TestClient(_app(city_db_url)) as client:
        signed_in(client, "sup")
        r = client.get("/work/overview?month=2026-09")
        assert r.status_code == 200
        assert "月度概览" in r.text and "2026-09" in r.text
        assert re.search(r'class="ov-big">6<', r.text)  # received this month
        r = client.get("/work/overview?month=2026-9x")
        assert r.status_code == 422 and "YYYY-MM" in r.text
        r = client.get("/work/overview?month=2026-09&lang=en")
        assert "Monthly overview" in r.text and "Five best posts" in r.text


@pytest.mark.browser
def test_in_chromium_no_console_error_and_one_a4_page(browser, evaluation_ledger, city_db_url):
    make_users(evaluation_ledger)
    with running_server(_app(city_db_url)) as base:
        sup = Person(browser, base, "sup", DESK, landing="/work/overview?month=2026-09")
        page = sup.page
        assert page.locator(".ov-kpi").count() >= 4
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "workbench-overview.png"), full_page=True)
        pdf = page.pdf(format="A4", print_background=True)
        sup.check()
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        assert pages == 1, f"the printed overview takes {pages} A4 pages"
        sup.close()


def test_activities_page_records_and_lists(evaluation_ledger, city_db_url):
    with _client(evaluation_ledger, city_db_url) as client:
        signed_in(client, "off")  # the officer of COMM_A
        page = client.get("/work/activities?month=2026-05")
        assert page.status_code == 200 and "登记活动" in page.text
        assert COMM_B not in page.text  # only their own community is offered
        form = {"csrf_token": csrf_of(page.text), "started_at": "2026-05-20T09:00",
                "kind": "school", "title": "垃圾分类进校园", "communities": COMM_A,
                "place": "实验小学", "staff": "3", "volunteers": "10", "reached": "450"}
        r = client.post("/work/activities", data={**form, "reached": "-5"})
        assert r.status_code == 422 and "reached" in r.text and "垃圾分类进校园" in r.text
        r = client.post("/work/activities", data={**form, "communities": COMM_B})
        assert r.status_code == 403 and "own communities" in r.text
        r = client.post("/work/activities", data={k: v for k, v in form.items() if k != "csrf_token"})
        assert r.status_code == 403
        r = client.post("/work/activities", data=form, follow_redirects=False)
        assert r.status_code == 303 and "month=2026-05" in r.headers["location"]
        page = client.get(r.headers["location"])
        assert "已保存" in page.text and "实验小学" in page.text and ">450<" in page.text


@pytest.mark.browser
def test_activities_page_on_an_officers_phone(browser, evaluation_ledger, city_db_url):
    """390 px: no sideways scrolling, the form's inputs at least 40 px tall."""
    make_users(evaluation_ledger)
    with running_server(_app(city_db_url)) as base:
        off = Person(browser, base, "off", PHONE, landing="/work/activities")
        page = off.page
        no_sideways_scroll(page)
        heights = page.evaluate(
            "[...document.querySelectorAll('form input:not([type=hidden]), form select, "
            "form button')].filter(e => e.offsetParent).map(e => e.getBoundingClientRect().height)")
        assert heights and min(heights) >= 40, heights
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "workbench-activities-phone.png"), full_page=True)
        off.check()
        off.close()
