"""The case page's photo forms over HTTP (no browser; the browser walk is
tests/test_evidence_workbench.py): photos go with the action or not at all, a refusal names
the file and keeps what was typed, the form token and the roles are checked first.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from tests.helpers import evidence_files as files
from tests.helpers.ledger import drive, make_case
from tests.helpers.workbench_helpers import COMM_A, csrf_of, login, make_users

VERSION = re.compile(r'name="version" value="(\d+)"')


@pytest.fixture
def wb(city_engine, city_db_url, tmp_path):
    """The app with its own file store, the accounts and a dispatched case in COMM_A."""
    make_users(city_engine)
    with city_engine.begin() as conn:
        case_id = make_case(conn, COMM_A, category="0101")
        drive(conn, case_id, "dispatched")
    store = tmp_path / "files"
    settings = Settings(tiles="none", database_url=city_db_url, attachment_dir=store)
    with TestClient(create_app(settings=settings, database_url=city_db_url)) as client:
        client.case_id, client.store = case_id, store  # type: ignore[attr-defined]
        yield client


def page(client, case_id: int, lang: str = "") -> tuple[str, str, str]:
    r = client.get(f"/work/cases/{case_id}" + (f"?lang={lang}" if lang else ""))
    assert r.status_code == 200, r.text[:300]
    version = VERSION.search(r.text)
    return r.text, csrf_of(r.text), version.group(1) if version else ""


def stored(client) -> tuple[list[tuple], list]:
    with client.app.state.engine.connect() as conn:
        rows = conn.execute(text("SELECT stage, uploaded_by, caption, event_id FROM attachment "
                                 "WHERE case_id = :id ORDER BY id"), {"id": client.case_id}).all()
    on_disk = [p for p in client.store.rglob("*") if p.is_file()] if client.store.exists() else []
    return [tuple(r) for r in rows], on_disk


def status_of(client) -> str:
    with client.app.state.engine.connect() as conn:
        return conn.execute(text('SELECT status FROM "case" WHERE id = :id'),
                            {"id": client.case_id}).scalar_one()


def photo(name: str, seed: int = 0) -> tuple[str, tuple[str, bytes, str]]:
    return ("photo", (name, files.png(size=(64, 48), seed=seed), "image/png"))


def test_photos_go_with_the_action_or_not_at_all(wb):
    assert login(wb, "off").status_code == 303
    html, csrf, version = page(wb, wb.case_id)
    assert 'enctype="multipart/form-data"' in html and 'capture="environment"' in html
    form = {"csrf_token": csrf, "version": version, "note": "已清理"}
    url = f"/work/cases/{wb.case_id}/actions/handle"

    # More files than a case holds: the count, what was typed kept, nothing stored.
    r = wb.post(url, data=form, files=[photo(f"p{i}.png", i) for i in range(21)])
    assert r.status_code == 422 and "每个案件最多 20 个文件" in r.text and "已清理" in r.text
    assert stored(wb) == ([], []) and status_of(wb) == "dispatched"
    # Without the form token: 403, no file read.
    r = wb.post(url, data={**form, "csrf_token": "wrong"}, files=[photo("a.png")])
    assert r.status_code == 403 and stored(wb) == ([], [])
    # A truncated JPEG: named, with what to do; nothing stored.
    r = wb.post(url, data=form, files=[("photo", ("cut.jpg", files.jpeg()[:2000], "image/jpeg"))])
    assert r.status_code == 422 and "「cut.jpg」无法读取" in r.text and "重新选择照片" in r.text
    assert stored(wb) == ([], []) and status_of(wb) == "dispatched"
    # Photos on an action that takes none: refused before any file is read.
    r = wb.post(f"/work/cases/{wb.case_id}/actions/request_extension",
                data={**form, "amount": "2", "unit": "working_days", "reason": "需要协调"},
                files=[photo("x.png")])
    assert r.status_code == 422 and "此操作不带照片" in r.text
    assert stored(wb) == ([], []) and status_of(wb) == "dispatched"
    # A form of the action without a file still works (an empty file input is no file).
    # With two photos: the action and both rows, on the handle event.
    r = wb.post(url, data=form, files=[photo("a.png", 1), photo("b.png", 2)],
                follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    rows, on_disk = stored(wb)
    assert status_of(wb) == "handled"
    assert [(s, by) for s, by, _c, _e in rows] == [("handle", "岗员赵强")] * 2
    with wb.app.state.engine.connect() as conn:
        handle_event = conn.execute(text("SELECT max(id) FROM case_event WHERE case_id = :id "
                                         "AND action = 'handle'"), {"id": wb.case_id}).scalar()
    assert {e for *_x, e in rows} == {handle_event}
    assert len(on_disk) == 4  # two photos and their thumbnails


def test_an_empty_file_input_is_no_file(wb):
    login(wb, "off")
    _html, csrf, version = page(wb, wb.case_id)
    r = wb.post(f"/work/cases/{wb.case_id}/actions/handle",
                data={"csrf_token": csrf, "version": version, "note": "无需拍照"},
                files=[("photo", ("", b"", "application/octet-stream"))], follow_redirects=False)
    assert r.status_code == 303 and status_of(wb) == "handled" and stored(wb) == ([], [])


def test_adding_photos_with_a_caption(wb):
    login(wb, "plan")
    html, csrf, _v = page(wb, wb.case_id)
    assert 'id="form-add-photo"' not in html  # planners only read
    r = wb.post(f"/work/cases/{wb.case_id}/photos", data={"csrf_token": csrf}, files=[photo("a.png")])
    assert r.status_code == 403 and stored(wb)[0] == []
    wb.post("/logout", data={"csrf_token": csrf})

    login(wb, "sup")
    html, csrf, _v = page(wb, wb.case_id, lang="en")
    assert 'id="form-add-photo"' in html
    url = f"/work/cases/{wb.case_id}/photos"
    r = wb.post(url, data={"csrf_token": csrf, "caption": "notice", "lang": "en"},
                files=[("photo", ("", b"", "application/octet-stream"))])
    assert r.status_code == 422 and "Choose a photo or document first" in r.text
    assert 'value="notice"' in r.text  # the caption is kept
    r = wb.post(url, data={"csrf_token": csrf, "lang": "en"},
                files=[("photo", ("notes.jpg", b"plain text, not a photo\n" * 20, "image/jpeg"))])
    assert r.status_code == 415 and "notes.jpg is not a file casegrid accepts" in r.text
    r = wb.post(url, data={"csrf_token": csrf, "caption": "x" * 501}, files=[photo("a.png")])
    assert r.status_code == 422 and "caption has 501 characters" in r.text
    assert stored(wb)[0] == []
    r = wb.post(url, data={"csrf_token": csrf, "caption": "整改通知书"},
                files=[photo("a.png"), ("photo", ("notice.pdf", files.pdf(), "application/pdf"))],
                follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/work/cases/{wb.case_id}?photos_added=2#evidence"
    assert [(s, by, c) for s, by, c, _e in stored(wb)[0]] == [("added", "监督员李华", "整改通知书")] * 2
    html = wb.get(r.headers["location"]).text
    assert "已添加 2 个文件" in html and "整改通知书" in html and "PDF 文件" in html
