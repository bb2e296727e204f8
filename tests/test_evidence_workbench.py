"""Photos on the workbench's case page, in real Chromium against the served app: an officer
on a phone handles a case with a JPEG made here, taken with the action in one submission;
the case page shows it with the officer's name and time beside the citizen's photo; a
supervisor verifies with an on-site photo and adds one with a caption; a refused file is
named at the form with nothing stored; a case changed meanwhile (409) stores no photo;
another community's officer gets 404 for the photo. Screenshots in docs/workbench/.
"""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from tests.helpers import evidence_files as files
from tests.helpers.server import running_server
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
    case_body,
    csrf_of,
    intake_token,
    make_users,
    point_in,
    status_of,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def site(city_engine, city_db_url, tmp_path):
    """The served app with its own file store, the sample city, accounts, intake token."""
    names = make_users(city_engine)
    store = tmp_path / "files"
    settings = Settings(tiles="none", database_url=city_db_url, attachment_dir=store)
    with running_server(create_app(settings=settings, database_url=city_db_url)) as base:
        yield {"base": base, "names": names, "token": intake_token(city_engine),
               "engine": city_engine, "store": store}


def submit_with_photo(site, n: int) -> tuple[int, tuple[float, float]]:
    """A case through the intake API as multipart, with the citizen's phone photo (EXIF
    GPS about 200 m east of the reported point)."""
    lon, lat = point_in(site["engine"], COMM_A)
    photo = files.jpeg(size=(1200, 900), exif=files.gps_exif(lon + 0.002, lat), seed=1)
    r = httpx.post(f"{site['base']}/api/v1/cases",
                   headers={"Authorization": f"Bearer {site['token']}"},
                   data={"case": json.dumps(case_body(lon, lat, n=n, category="0101"))},
                   files=[("photo", ("citizen.jpg", photo, "image/jpeg"))])
    assert r.status_code == 201, r.text
    return r.json()["id"], (lon, lat)


def rows(engine, case_id: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT id, stage, uploaded_by, caption, created_at, event_id FROM attachment "
            "WHERE case_id = :id ORDER BY id"), {"id": case_id}).mappings()]


def dispatched(site, n: int) -> tuple[int, Person, Person]:
    """A case with the citizen's photo, accepted by the supervisor and dispatched."""
    case_id, _ = submit_with_photo(site, n)
    sup = Person(site["browser"], site["base"], "sup", DESK)
    disp = Person(site["browser"], site["base"], "disp", DESK)
    sup.open(f"/work/cases/{case_id}")
    sup.act("accept", note="属实")
    disp.open(f"/work/cases/{case_id}")
    disp.act("dispatch", note="请处置")
    disp.close()
    assert status_of(site["engine"], case_id) == "dispatched"
    return case_id, sup


def stored_files(site) -> list:
    return [p for p in site["store"].rglob("*") if p.is_file()] if site["store"].exists() else []


def local(moment) -> str:  # noqa: ANN001
    from web.render import local_time

    return local_time(moment, "%m-%d %H:%M")


def test_handle_with_a_phone_photo_then_verify(browser, site):
    site["browser"] = browser
    engine, names = site["engine"], site["names"]
    case_id, sup = dispatched(site, 11)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        off.open(f"/work/cases/{case_id}")
        # The citizen's photo, with where it was taken (from its EXIF), before any handling.
        citizen = off.page.locator(".panel-photos figure.ph")
        assert citizen.count() == 1
        assert "距上报位置" in citizen.inner_text()
        # The handle form takes the camera's photos, sent with the action.
        photo_input = off.page.locator("#handle-photo")
        assert photo_input.get_attribute("accept") == "image/*"
        assert photo_input.get_attribute("capture") == "environment"
        assert photo_input.get_attribute("multiple") is not None
        assert off.page.locator("#form-handle").get_attribute("enctype") == "multipart/form-data"
        no_sideways_scroll(off.page)
        assert not small_taps(off.page), small_taps(off.page)
        after = files.jpeg(size=(1600, 1200), seed=5)
        off.page.fill("#handle-note", "已拆除违建, 现场已清理")
        photo_input.set_input_files([{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": after}])
        with off.page.expect_navigation():
            off.page.locator("#form-handle button[type=submit]").click()
        assert status_of(engine, case_id) == "handled"
        stored = rows(engine, case_id)
        assert [r["stage"] for r in stored] == ["intake", "handle"]
        handle = stored[1]
        assert handle["uploaded_by"] == names["off"] and handle["event_id"] is not None

        # The case page now shows it, with the officer's name and time, after the citizen's.
        off.open(f"/work/cases/{case_id}")
        pair = off.page.locator(".ph-round").first
        after_fig = pair.locator(".ph-after figure.ph")
        assert after_fig.count() == 1
        caption = after_fig.inner_text()
        assert names["off"] in caption and local(handle["created_at"]) in caption, caption
        assert pair.locator(".ph-before figure.ph").count() == 1  # the citizen's, side by side
        img = after_fig.locator("img")
        img.scroll_into_view_if_needed()
        off.page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=img.element_handle())
        assert img.evaluate("e => e.naturalWidth") == 320  # the thumbnail
        no_sideways_scroll(off.page)
        assert not small_taps(off.page), small_taps(off.page)
        off.page.locator("#evidence").scroll_into_view_if_needed()
        shot(off.page, "phone_case_photos.png", full=True)
        # The thumbnail opens the full image (session cookie, no metadata kept).
        full = off.page.request.get(site["base"] + after_fig.locator("a.ph-open").get_attribute("href"))
        assert full.status == 200 and full.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(full.body())).size == (1600, 1200)
        off.check()

        # The supervisor verifies: before and after side by side, and an on-site photo.
        sup.open(f"/work/cases/{case_id}")
        assert names["off"] in sup.page.locator(".ph-after").inner_text()
        assert sup.page.locator("#verify_pass-photo").get_attribute("capture") == "environment"
        sup.page.fill("#verify_pass-note", "复查通过")
        sup.page.locator("#verify_pass-photo").set_input_files(
            [{"name": "check.jpg", "mimeType": "image/jpeg", "buffer": files.jpeg(seed=9)}])
        with sup.page.expect_navigation():
            sup.page.locator("#form-verify_pass button[type=submit]").click()
        assert status_of(engine, case_id) == "verified"
        # ... and adds a photo with a caption from the case page.
        sup.open(f"/work/cases/{case_id}")
        sup.page.locator("details.ph-add > summary").click()
        sup.page.locator("#add-photo-files").set_input_files(
            [{"name": "notice.png", "mimeType": "image/png", "buffer": files.png(seed=4)}])
        sup.page.fill("#add-photo-caption", "整改通知书已张贴")
        with sup.page.expect_navigation():
            sup.page.locator("#form-add-photo button[type=submit]").click()
        assert "已添加 1 个文件" in sup.page.inner_text("#evidence")
        verify = sup.page.locator(".ph-verify figure.ph")
        assert verify.count() == 1 and names["sup"] in verify.inner_text()
        added = sup.page.locator(".ph-added figure.ph")
        assert "整改通知书已张贴" in added.inner_text() and names["sup"] in added.inner_text()
        assert [r["stage"] for r in rows(engine, case_id)] == ["intake", "handle", "verify_pass", "added"]
        sup.page.locator("#evidence").scroll_into_view_if_needed()
        shot(sup.page, "desk_case_photos.png")
        sup.check()
    finally:
        off.close()
        sup.close()


def test_a_refused_file_is_named_and_nothing_is_stored(browser, site):
    site["browser"] = browser
    engine = site["engine"]
    case_id, sup = dispatched(site, 12)
    sup.close()
    before = stored_files(site)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        off.open(f"/work/cases/{case_id}")
        # Too big: named by the page before anything is sent.
        off.page.fill("#handle-note", "处置完毕")
        off.page.locator("#handle-photo").set_input_files(
            [{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff" + b"0" * 10_500_000}])
        error = off.page.locator("#form-handle .js-file-error")
        assert "huge.jpg" in error.inner_text() and "10 MB" in error.inner_text()
        off.page.locator("#form-handle button[type=submit]").click()
        off.page.wait_for_timeout(300)
        assert status_of(engine, case_id) == "dispatched"
        # Not a photo, whatever its name says: refused by the server, named at the form.
        off.page.locator("#handle-photo").set_input_files(
            [{"name": "site.jpg", "mimeType": "image/jpeg", "buffer": b"meeting notes, not a photo\n" * 40}])
        with off.page.expect_navigation():
            off.page.locator("#form-handle button[type=submit]").click()
        message = off.page.locator("#handle-photo-err").inner_text()
        assert "site.jpg" in message and "JPEG" in message and "重新选择照片" in message, message
        assert off.page.input_value("#handle-note") == "处置完毕"  # what was typed is kept
        assert off.page.locator("#handle-photo").get_attribute("aria-invalid") == "true"
        no_sideways_scroll(off.page)
        shot(off.page, "phone_photo_refused.png")
        assert status_of(engine, case_id) == "dispatched"
        assert [r["stage"] for r in rows(engine, case_id)] == ["intake"]
        assert stored_files(site) == before
        off.errors = [e for e in off.errors if "status of 415" not in e]  # the answer itself
        off.check()
    finally:
        off.close()


def test_a_case_changed_meanwhile_stores_no_photo(browser, site):
    site["browser"] = browser
    engine = site["engine"]
    case_id, sup = dispatched(site, 13)
    sup.close()
    phone = Person(browser, site["base"], "off", PHONE)
    desk = Person(browser, site["base"], "off", DESK)
    try:
        phone.open(f"/work/cases/{case_id}")
        desk.open(f"/work/cases/{case_id}")
        desk.act("handle", note="已处置 (电脑上)")
        phone.page.fill("#handle-note", "已处置 (手机上)")
        phone.page.locator("#handle-photo").set_input_files(
            [{"name": "late.jpg", "mimeType": "image/jpeg", "buffer": files.jpeg(seed=7)}])
        with phone.page.expect_navigation():
            phone.page.locator("#form-handle button[type=submit]").click()
        assert phone.page.locator("#conflict").is_visible()
        assert [r["stage"] for r in rows(engine, case_id)] == ["intake"]
        with engine.connect() as conn:
            handled = conn.execute(text("SELECT count(*) FROM case_event WHERE case_id = :id "
                                        "AND action = 'handle'"), {"id": case_id}).scalar_one()
        assert handled == 1
    finally:
        phone.close()
        desk.close()


def test_another_communitys_officer_gets_404_for_the_photo(browser, site):
    site["browser"] = browser
    case_id, sup = dispatched(site, 14)
    sup.close()
    photo = rows(site["engine"], case_id)[0]["id"]
    own = Person(browser, site["base"], "off", PHONE)
    other = Person(browser, site["base"], "offb", PHONE)
    try:
        for path in (f"/api/v1/attachments/{photo}", f"/api/v1/attachments/{photo}/thumb"):
            assert own.page.request.get(site["base"] + path).status == 200
            assert other.page.request.get(site["base"] + path).status == 404, path
        assert other.open(f"/work/cases/{case_id}").status == 404
        # Nor add a photo to it, with their own form token.
        other.open("/work")
        r = other.page.request.post(f"{site['base']}/work/cases/{case_id}/photos", multipart={
            "csrf_token": csrf_of(other.page.content()),
            "photo": {"name": "a.jpg", "mimeType": "image/jpeg", "buffer": files.jpeg(seed=2)}})
        assert r.status == 404
        assert [r["stage"] for r in rows(site["engine"], case_id)] == ["intake"]
    finally:
        own.close()
        other.close()
