"""Evidence through a real server: Open311 multipart ``media``, an upload cut off mid-body,
and a server killed between writing a file and committing its row."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from api.app import create_app
from bench.server import serve
from casegrid.settings import Settings
from cases import attachments
from cases.tokens import create_token
from tests.helpers import evidence_files as files
from tests.helpers.ledger import COMM_A, make_case
from tests.helpers.server import running_server


def _tokens(engine) -> dict[str, str]:
    with engine.begin() as conn:
        return {"intake": create_token(conn, "intake", "open311-app")[1],
                "dispatcher": create_token(conn, "dispatcher", "d")[1],
                "officer": create_token(conn, "community_officer", "o", [COMM_A])[1]}


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM attachment")).scalar_one()


def _open311_post(base: str, key: str, photo: bytes) -> httpx.Response:
    return httpx.post(f"{base}/open311/v2/requests.json", timeout=60, data={
        "api_key": key, "service_code": "0102", "lat": "35.0871", "long": "117.1652",
        "description": "路边垃圾"}, files=[("media", ("photo.jpg", photo, "image/jpeg"))])


@pytest.mark.parametrize("public", [False, True])
def test_open311_media_gets_a_media_url_whose_image_decodes(city_db_url, city_engine, tmp_path,
                                                            public):
    tokens = _tokens(city_engine)
    settings = Settings(attachment_dir=tmp_path / "files", attachment_intake_public=public)
    photo = files.jpeg(exif=files.gps_exif(117.1652, 35.0871))
    with running_server(create_app(settings, database_url=city_db_url)) as base:
        r = _open311_post(base, tokens["intake"], photo)
        assert r.status_code == 201, r.text
        request_id = r.json()[0]["service_request_id"]
        item = httpx.get(f"{base}/open311/v2/requests/{request_id}.json").json()[0]
        staff = {"Authorization": f"Bearer {tokens['dispatcher']}"}
        if not public:
            # The public form of a case carries no photo (cases.publication); staff see it.
            assert item["media_url"] is None
            with city_engine.connect() as conn:
                case_id = conn.execute(text('SELECT id FROM "case" WHERE case_no = :n'),
                                       {"n": request_id}).scalar_one()
            listed = httpx.get(f"{base}/api/v1/cases/{case_id}/attachments", headers=staff)
            media_url = base + listed.json()["attachments"][0]["url"]
            assert httpx.get(media_url).status_code == 401
        else:
            media_url = item["media_url"]
            assert media_url.startswith(base + "/api/v1/attachments/")
            assert httpx.get(media_url).status_code == 200  # no token needed
            listing = httpx.get(f"{base}/open311/v2/requests.json").json()
            assert [i["media_url"] for i in listing] == [media_url]
        served = httpx.get(media_url, headers=staff)
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(served.content))
        img.load()
        assert img.size == (640, 480) and not img.getexif()
        # A refused photo: the spec's error list, naming the file; nothing stored.
        r = _open311_post(base, tokens["intake"], b"GIF89a not accepted")
        assert r.status_code == 400 and "photo.jpg" in r.json()[0]["description"], r.text
        # A bad key: refused before the photo is even decoded.
        r = _open311_post(base, "cg_nope", photo)
        assert r.status_code == 403
    assert _count(city_engine) == 1


def test_upload_cut_off_mid_body_stores_nothing(city_db_url, city_engine, tmp_path):
    tokens = _tokens(city_engine)
    with city_engine.begin() as conn:
        case_id = make_case(conn, COMM_A)
    store = tmp_path / "files"
    settings = Settings(attachment_dir=store)
    boundary = "cutcutcut"
    photo = files.jpeg(size=(1600, 1200))
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
            f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + photo + \
        f"\r\n--{boundary}--\r\n".encode()
    with running_server(create_app(settings, database_url=city_db_url)) as base:
        port = int(base.rsplit(":", 1)[1])
        head = (f"POST /api/v1/cases/{case_id}/attachments HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {tokens['officer']}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + body[: len(body) * 2 // 3])
            time.sleep(0.5)
        time.sleep(1.0)
        # The server still serves, and the whole upload afterwards works.
        ok = httpx.post(f"{base}/api/v1/cases/{case_id}/attachments", timeout=60,
                        headers={"Authorization": f"Bearer {tokens['officer']}"},
                        files=[("photo", ("b.jpg", files.jpeg(seed=1), "image/jpeg"))])
        assert ok.status_code == 201
    assert _count(city_engine) == 1
    assert len([p for p in store.glob("*/*") if not p.name.startswith(".")]) == 2


def test_server_killed_between_file_and_commit_leaves_only_an_orphan(city_db_url, city_engine,
                                                                     tmp_path):
    """The upload's transaction waits for the case row, which this test holds locked:
    the file is written by then; the server is killed there, before its commit."""
    tokens = _tokens(city_engine)
    with city_engine.begin() as conn:
        case_id = make_case(conn, COMM_A)
    store = tmp_path / "files"
    info: dict = {}
    outcome: dict = {}
    env = {"CASEGRID_ATTACHMENT_DIR": str(store), "CASEGRID_ATTACHMENT_SWEEP_GRACE_S": "0"}
    with serve(city_db_url, extra_env=env, info=info) as base, city_engine.connect() as holder:
        lock = holder.begin()
        holder.execute(text('SELECT id FROM "case" WHERE id = :i FOR UPDATE'), {"i": case_id})

        def upload() -> None:
            try:
                outcome["r"] = httpx.post(
                    f"{base}/api/v1/cases/{case_id}/attachments", timeout=60,
                    headers={"Authorization": f"Bearer {tokens['officer']}"},
                    files=[("photo", ("a.jpg", files.jpeg(), "image/jpeg"))])
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=upload)
        thread.start()
        deadline = time.monotonic() + 60
        while len(list(store.glob("*/*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(store.glob("*/*"))) == 2, "the server never wrote the files"
        time.sleep(0.3)  # its transaction is now waiting for the lock
        os.killpg(info["session"], signal.SIGKILL)
        thread.join(timeout=30)
        lock.rollback()
    assert "error" in outcome, outcome  # the client saw the connection die, no answer
    assert _count(city_engine) == 0
    fs = attachments.store_for(Settings(attachment_dir=store))
    orphans = sorted(fs.names())
    assert len(orphans) == 2
    assert attachments.missing_files(city_engine, fs) == []  # no row without its file
    swept = attachments.sweep(city_engine, fs, grace_s=0)
    assert sorted(swept.removed) == orphans and list(fs.names()) == []
    assert not list(Path(store).glob("*/.tmp-*"))


def test_cli_sweep(city_db_url, city_engine, tmp_path):
    from typer.testing import CliRunner

    from casegrid.cli import app as cli
    from casegrid.settings import get_settings

    store = tmp_path / "files"
    fs = attachments.store_for(Settings(attachment_dir=store))
    fs.put(json.dumps({"orphan": True}).encode())
    env = {"DATABASE_URL": city_db_url, "CASEGRID_ATTACHMENT_DIR": str(store)}
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["attachments", "sweep", "--grace", "0"], env=env)
        assert result.exit_code == 0, result.output
        assert "removed 1" in result.output and list(fs.names()) == []
        result = CliRunner().invoke(cli, ["attachments", "check"], env=env)
        assert result.exit_code == 0 and "0 file(s)" in result.output
    finally:
        get_settings.cache_clear()
