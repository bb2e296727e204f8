"""The map pages in a real browser: Playwright driving Debian's headless Chromium against the
app served by uvicorn on a loopback port.

Each page must load with no console error and no request to any host but the loopback
server, show its layers, react to a filter, and leave a screenshot in test-artifacts/.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from tests.helpers.map_browser import open_page, screenshot, wait_loaded
from tests.helpers.map_pages import make_token, seed_cases
from tests.helpers.server import running_server

pytestmark = pytest.mark.browser


@pytest.fixture
def server(city_engine, city_db_url):
    """The app on a free loopback port in a background thread, with the sample city and cases."""
    seed_cases(city_engine, 20)
    app = create_app(settings=Settings(tiles="none", database_url=city_db_url), database_url=city_db_url)
    with running_server(app) as base:
        yield base


def _loads(page) -> int:
    return int(page.get_attribute("body", "data-cg-loads") or 0)


def _settle(page) -> None:
    """Wait until the map has stopped moving and its debounced viewport reload (200 ms after
    ``moveend``) has been answered."""
    page.wait_for_load_state("networkidle")
    for _ in range(20):
        n = _loads(page)
        page.wait_for_timeout(500)
        page.wait_for_load_state("networkidle")
        if _loads(page) == n:
            return
    raise AssertionError("the dispatcher map kept reloading for 10 s")


def test_dispatch_page(browser, server, city_engine):
    token = make_token(city_engine, "dispatcher")
    ctx, page, watch = open_page(browser, f"{server}/maps/dispatch", token)
    try:
        wait_loaded(page, watch)
        control = page.inner_text(".leaflet-control-layers")
        for name in ("街道", "社区", "城市管理岗", "案件", "需核实位置"):
            assert name in control, name
        assert page.locator(".cg-label-sub").count() == 5
        assert page.locator(".cg-post").count() >= 50
        assert page.locator(".cg-legend").is_visible()
        before = int(page.get_attribute("body", "data-cg-total"))
        assert before > 0 and page.get_attribute("body", "data-cg-mode") == "points"
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(600)  # cluster animations
        assert page.locator(".marker-cluster, path.leaflet-interactive").count() > 0
        screenshot(page, "dispatch.png")

        # A popup: fetched on click, number and state shown, no reporter.
        page.evaluate("cgDispatch.layers.clusters.getLayers()[0].fire('click')")
        page.wait_for_selector(".leaflet-popup-content .cg-popup", timeout=10000)
        popup = page.inner_text(".leaflet-popup-content")
        assert "CG" in popup and "张三" not in popup and "13800000000" not in popup

        # Opening the popup may auto-pan the map (Leaflet keeps popups in view), which
        # reloads the viewport with a different bbox: compare counts only after it settles.
        _settle(page)
        before = int(page.get_attribute("body", "data-cg-total"))

        # Filter: overdue only → fewer cases, the URL says so.
        n = _loads(page)
        page.check('#cg-filters input[name="state"][value="overdue"]')
        page.wait_for_function(f"Number(document.body.dataset.cgLoads) > {n}", timeout=10000)
        after = int(page.get_attribute("body", "data-cg-total"))
        with city_engine.connect() as conn:
            overdue = conn.execute(text('SELECT count(*) FROM "case" WHERE closed_at IS NULL AND current_due_at < now()')).scalar_one()
        assert 0 < after <= overdue < before, (after, overdue, before, _loads(page))
        assert "state=overdue" in page.url
        page.wait_for_timeout(600)
        screenshot(page, "dispatch_overdue.png")

        # Reset and a subdistrict: the community list narrows to it.
        n = _loads(page)
        page.click('#cg-filters button[data-act="reset"]')
        page.wait_for_function(f"Number(document.body.dataset.cgLoads) > {n}", timeout=10000)
        assert int(page.get_attribute("body", "data-cg-total")) == before
        watch.check()
    finally:
        ctx.close()


def test_dispatch_page_in_english_with_tiles_none(browser, server, city_engine):
    token = make_token(city_engine, "supervisor")
    ctx, page, watch = open_page(browser, f"{server}/maps/dispatch?lang=en&tiles=none&state=new", token)
    try:
        wait_loaded(page, watch)
        assert "Dispatch map" in page.inner_text(".cg-title")
        assert "Subdistricts" in page.inner_text(".leaflet-control-layers")
        assert page.is_checked('#cg-filters input[name="state"][value="new"]')
        assert page.locator(".leaflet-tile").count() == 0
        screenshot(page, "dispatch_en.png")
        watch.check()
    finally:
        ctx.close()


def test_hotspot_page(browser, server, city_engine):
    token = make_token(city_engine, "planner")
    ctx, page, watch = open_page(browser, f"{server}/maps/hotspots?cell_m=300", token)
    try:
        page.wait_for_selector(".leaflet-control-layers", timeout=15000)
        page.wait_for_load_state("networkidle")
        control = page.inner_text(".leaflet-control-layers")
        for name in ("投诉热力图", "显著热点", "学校", "医院", "集贸市场", "公园广场", "距离圈", "各社区案件数", "按小时动画"):
            assert name in control, name
        assert page.locator("#cg-ranking tbody tr").count() > 0
        assert page.locator("canvas.leaflet-heatmap-layer, canvas.leaflet-layer").count() >= 1
        assert page.locator(".timecontrol-play, .leaflet-control-timecontrol").count() >= 1
        screenshot(page, "hotspots.png")
        # Turning the choropleth on draws community fills.
        paths = page.locator("path.leaflet-interactive").count()
        page.locator(".leaflet-control-layers label", has_text="各社区案件数").click()
        page.wait_for_timeout(300)
        assert page.locator("path.leaflet-interactive").count() > paths
        screenshot(page, "hotspots_choropleth.png")
        watch.check()
    finally:
        ctx.close()


def test_case_page(browser, server, city_engine):
    token = make_token(city_engine, "dispatcher")
    with city_engine.connect() as conn:
        case_id = conn.execute(text('SELECT min(id) FROM "case"')).scalar_one()
    ctx, page, watch = open_page(browser, f"{server}/maps/cases/{case_id}?lang=en", token)
    try:
        page.wait_for_selector(".leaflet-popup-content", timeout=15000)
        assert "CG" in page.inner_text(".leaflet-popup-content")
        assert "Nearby possible duplicates" in page.inner_text(".leaflet-control-layers")
        screenshot(page, "case.png")
        watch.check()
    finally:
        ctx.close()
