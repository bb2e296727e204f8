"""The dispatcher map's popup shows the case's first photo, in real Chromium: the thumbnail
is fetched by the page (its cookie, no header) and decodes."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases import attachments
from cases.images import Upload, prepare
from cases.tokens import Principal
from cases.users import create_user
from tests.helpers import evidence_files as files
from tests.helpers.map_browser import open_page, screenshot, wait_loaded
from tests.helpers.map_pages import seed_cases
from tests.helpers.server import running_server

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def test_popup_shows_the_first_thumbnail(browser, city_engine, city_db_url, tmp_path):
    seed_cases(city_engine, 20)
    settings = Settings(tiles="none", database_url=city_db_url, attachment_dir=tmp_path / "files")
    photo = prepare(Upload("photo", 0, "site.jpg", files.jpeg(size=(800, 600), seed=3)),
                    attachments.limits(settings))
    attachments.write_files(attachments.store_for(settings), [photo])
    admin = Principal(1, "admin", "admin")
    with city_engine.begin() as conn:
        ids = conn.execute(text('SELECT id FROM "case"')).scalars().all()
        for case_id in ids:
            attachments.attach(conn, case_id, [photo], stage="handle", actor=admin,
                               max_per_case=20)
    with city_engine.begin() as conn:
        create_user(conn, "disp1", "dispatcher", PASSWORD, display_name="调度员")
    with running_server(create_app(settings, database_url=city_db_url)) as base:
        # A person signs in; the page's <img> then sends the session cookie, no header.
        ctx, page, watch = open_page(browser, f"{base}/login?next=/maps/dispatch")
        try:
            page.fill("input[name=username]", "disp1")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/maps/dispatch")
            wait_loaded(page, watch)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(600)
            page.evaluate("cgDispatch.layers.clusters.getLayers()[0].fire('click')")
            page.wait_for_selector(".leaflet-popup-content img.cg-thumb", timeout=10000)
            page.wait_for_function(
                "document.querySelector('.leaflet-popup-content img.cg-thumb').naturalWidth > 0",
                timeout=10000)
            width = page.evaluate(
                "document.querySelector('.leaflet-popup-content img.cg-thumb').naturalWidth")
            assert width == 320  # the thumbnail, not the photo
            screenshot(page, "dispatch_popup_photo.png")
            assert not watch.errors, watch.errors
        finally:
            ctx.close()
