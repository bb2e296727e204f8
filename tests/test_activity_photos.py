"""Photos of activities, through the evidence machinery: recorded with the activity (API
multipart and the workbench form) or added later, metadata stripped, thumbnails, served to
whoever sees the activity and to nobody else, refused whole (no activity without its
photos), the per-record limit, and the sweep keeps them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases import attachments
from tests.helpers import evidence_files as files
from tests.helpers.ledger import bearer as h
from tests.helpers.ledger import role_tokens
from tests.helpers.server import running_server
from tests.helpers.workbench_browser import PHONE, Person, no_sideways_scroll
from tests.helpers.workbench_helpers import COMM_A, COMM_B, csrf_of, make_users, signed_in

DOCS = Path(__file__).resolve().parent.parent / "docs"
ACTIVITY = {"started_at": "2026-05-20T09:00:00+08:00", "kind": "进校园", "title": "垃圾分类进校园",
            "communities": [COMM_A], "place": "实验小学", "reached": 450}


def _settings(store: Path, url: str, **kw) -> Settings:
    return Settings(attachment_dir=store, tiles="none", database_url=url, **kw)


@pytest.fixture
def api(city_db_url, city_engine, tmp_path):
    store = tmp_path / "files"
    with city_engine.begin() as conn:
        tokens = role_tokens(conn, ("dispatcher", "planner"))
    app = create_app(_settings(store, city_db_url, attachment_max_per_case=3),
                     database_url=city_db_url)
    with TestClient(app) as client:
        yield client, tokens, store, city_engine


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM attachment)")).one()


def test_recorded_with_photos_stripped_and_served_to_who_sees_the_activity(api):
    client, tokens, store, engine = api
    gps = files.gps_exif(117.165, 35.087)
    r = client.post("/api/v1/activities", headers=h(tokens, "officer_a"),
                    data={"activity": json.dumps(ACTIVITY, ensure_ascii=False)},
                    files=[("photo", ("IMG_1.jpg", files.jpeg(exif=gps), "image/jpeg")),
                           ("photo", ("sign-in.pdf", files.pdf(), "application/pdf"))])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["title"] == "垃圾分类进校园" and body["kind"] == "school"
    photo, sheet = body["photos"]
    assert photo["media_type"] == "image/jpeg" and photo["thumb_url"].endswith("/thumb")
    assert sheet["kind"] == "pdf" and sheet["thumb_url"] is None
    with engine.connect() as conn:
        row = conn.execute(text("SELECT case_id, activity_id, stage FROM attachment "
                                "WHERE id = :i"), {"i": photo["id"]}).one()
    assert row == (None, body["id"], "activity")
    # Served without the phone's GPS position; the thumbnail is a small JPEG.
    full = client.get(photo["url"], headers=h(tokens, "officer_a"))
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert not Image.open(io.BytesIO(full.content)).getexif().get_ifd(0x8825)
    thumb = client.get(photo["thumb_url"], headers=h(tokens, "planner"))
    assert thumb.status_code == 200
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= Settings().attachment_thumb_px
    # Another community's officer: as if it did not exist; nobody without a token.
    assert client.get(photo["url"], headers=h(tokens, "officer_b")).status_code == 404
    assert client.get(photo["thumb_url"], headers=h(tokens, "officer_b")).status_code == 404
    assert client.get(photo["url"]).status_code == 401
    # The list carries the photos; an officer sees its own activities only.
    listed = client.get("/api/v1/activities?from=2026-05-01&to=2026-05-31",
                        headers=h(tokens, "dispatcher")).json()
    assert [p["id"] for p in listed[0]["photos"]] == [photo["id"], sheet["id"]]
    assert client.get("/api/v1/activities", headers=h(tokens, "officer_b")).json() == []
    # JSON without photos keeps working, with an empty list.
    r = client.post("/api/v1/activities", headers=h(tokens, "dispatcher"), json=ACTIVITY)
    assert r.status_code == 201 and r.json()["photos"] == []


def test_refused_whole_nothing_half_written(api):
    client, tokens, store, engine = api
    before = counts(engine)
    # A bad photo beside a good one: 4xx naming the file, no activity, no row, no file.
    r = client.post("/api/v1/activities", headers=h(tokens, "officer_a"),
                    data={"activity": json.dumps(ACTIVITY, ensure_ascii=False)},
                    files=[("photo", ("ok.png", files.png(), "image/png")),
                           ("photo", ("fake.jpg", b"not a photo\n" * 50, "image/jpeg"))])
    assert r.status_code == 415 and "fake.jpg" in r.json()["detail"], r.text
    assert r.json()["field"] == "photo[1]"
    assert counts(engine) == before and not list(store.glob("*/*"))
    # A bad activity with a good photo: the field is named, no rows.
    bad = {**ACTIVITY, "communities": [COMM_B]}
    r = client.post("/api/v1/activities", headers=h(tokens, "officer_a"),
                    data={"activity": json.dumps(bad, ensure_ascii=False)},
                    files=[("photo", ("ok.png", files.png(), "image/png"))])
    assert r.status_code == 403 and "own communities" in r.json()["detail"], r.text
    r = client.post("/api/v1/activities", headers=h(tokens, "officer_a"),
                    data={"activity": "{not json"},
                    files=[("photo", ("ok.png", files.png(), "image/png"))])
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = client.post("/api/v1/activities", headers=h(tokens, "officer_a"),
                    files=[("photo", ("ok.png", files.png(), "image/png"))])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "activity", r.text
    assert counts(engine) == before
    # The written but unnamed file is the sweep's, once it is old enough.
    fs = attachments.store_for(Settings(attachment_dir=store))
    assert len(attachments.sweep(engine, fs, grace_s=0).removed) == 2  # copy and thumbnail


def test_added_later_with_caption_limit_roles_and_sweep(api):
    client, tokens, store, engine = api
    r = client.post("/api/v1/activities", headers=h(tokens, "officer_a"), json=ACTIVITY)
    aid = r.json()["id"]
    url = f"/api/v1/activities/{aid}/attachments"
    r = client.post(url, headers=h(tokens, "dispatcher"), data={"caption": "活动现场"},
                    files=[("photo", ("a.jpg", files.jpeg(seed=1), "image/jpeg")),
                           ("photo", ("b.jpg", files.jpeg(seed=2), "image/jpeg"))])
    assert r.status_code == 201, r.text
    assert [p["caption"] for p in r.json()["photos"]] == ["活动现场", "活动现场"]
    one = [("photo", ("c.png", files.png(seed=3), "image/png"))]
    assert client.post(url, headers=h(tokens, "planner"), files=one).status_code == 403
    assert client.post(url, headers=h(tokens, "officer_b"), files=one).status_code == 404
    assert client.post("/api/v1/activities/999999/attachments", headers=h(tokens, "dispatcher"),
                       files=one).status_code == 404
    r = client.post(url, headers=h(tokens, "officer_a"), json={"caption": "x"})
    assert r.status_code == 422 and "multipart" in r.json()["detail"]
    assert client.post(url, headers=h(tokens, "officer_a"), files=one).status_code == 201
    # The limit is per record (attachment_max_per_case = 3 here): the fourth is refused.
    r = client.post(url, headers=h(tokens, "officer_a"),
                    files=[("photo", ("d.png", files.png(seed=4), "image/png"))])
    assert r.status_code == 422, r.text
    assert "3 files per activity" in r.json()["detail"] and "d.png" in r.json()["detail"]
    # The sweep keeps every file an activity's row names.
    fs = attachments.store_for(Settings(attachment_dir=store))
    kept = set(fs.names())
    attachments.sweep(engine, fs, grace_s=0)
    assert {n for n in fs.names()} >= attachments.referenced_names(engine)
    assert attachments.missing_files(engine, fs) == []
    assert len(kept) - len(set(fs.names())) == 2  # only d.png's copy and thumbnail went


def test_workbench_form_takes_photos_and_the_list_shows_thumbnails(city_db_url, city_engine,
                                                                   tmp_path):
    make_users(city_engine)
    app = create_app(_settings(tmp_path / "files", city_db_url), database_url=city_db_url)
    with TestClient(app) as client:
        signed_in(client, "off")
        page = client.get("/work/activities?month=2026-05")
        assert 'enctype="multipart/form-data"' in page.text and 'name="photo"' in page.text
        form = {"csrf_token": csrf_of(page.text), "started_at": "2026-05-20T09:00",
                "kind": "volunteer", "title": "志愿清扫", "communities": COMM_A,
                "reached": "80"}
        # A photo that is no photo: the form comes back with the file named, nothing stored.
        r = client.post("/work/activities", data=form,
                        files=[("photo", ("fake.jpg", b"text\n" * 40, "image/jpeg"))])
        assert r.status_code == 415 and "fake.jpg" in r.text and "志愿清扫" in r.text
        assert counts(city_engine) == (0, 0)
        # An empty file input (the browser sends a nameless empty part) is no photo.
        r = client.post("/work/activities", data=form, files=[("photo", ("", b"", "application/octet-stream"))],
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        assert counts(city_engine) == (1, 0)
        r = client.post("/work/activities", data={**form, "title": "志愿清扫 二"},
                        files=[("photo", ("IMG_7.jpg", files.jpeg(seed=7), "image/jpeg")),
                               ("photo", ("IMG_8.png", files.png(seed=8), "image/png"))],
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        page = client.get(r.headers["location"])
        thumbs = re.findall(r'<img src="(/api/v1/attachments/\d+/thumb)"', page.text)
        assert len(thumbs) == 2, page.text
        # The thumbnails load with the page's session cookie, and not without it.
        assert all(client.get(t).status_code == 200 for t in thumbs)
        with city_engine.connect() as conn:
            assert conn.execute(text("SELECT source FROM activity WHERE title = '志愿清扫 二'")
                                ).scalar_one() == "workbench"
        client.cookies.clear()
        assert client.get(thumbs[0]).status_code == 401


@pytest.mark.browser
def test_phone_records_with_a_photo_and_sees_its_thumbnail(browser, city_db_url,
                                                            city_engine, tmp_path):
    """An officer at 390 px picks a photo in the form; the list shows its thumbnail, loaded
    (not a broken image), with no sideways scrolling and no console error."""
    make_users(city_engine)
    photo = tmp_path / "IMG_0042.jpg"
    photo.write_bytes(files.jpeg(size=(1200, 900), seed=5))
    app = create_app(_settings(tmp_path / "files", city_db_url), database_url=city_db_url)
    with running_server(app) as base:
        off = Person(browser, base, "off", PHONE, landing="/work/activities")
        page = off.page
        page.fill("#started_at", "2026-05-20T09:00")
        page.select_option("#kind", "school")
        page.fill("#title", "垃圾分类进校园")
        page.fill("#reached", "450")
        page.set_input_files("#photo", str(photo))
        assert page.locator("#photo").bounding_box()["height"] >= 40
        page.click("form[enctype] button[type=submit]")
        page.wait_for_url(re.compile(r".*saved=1"))
        img = page.locator(".act-photos img").first
        img.wait_for()
        page.wait_for_function(
            "[...document.querySelectorAll('.act-photos img')].every(i => i.complete)")
        assert page.evaluate("document.querySelector('.act-photos img').naturalWidth") > 0
        no_sideways_scroll(page)
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "workbench-activities-photos-phone.png"), full_page=True)
        off.check()
        off.close()
