"""Evidence: photos and documents on intake, workflow actions and the case, with real files
(JPEG with EXIF GPS, PNG, HEIC, PDF, a fake, a truncated JPEG, a decompression bomb, too
many, too large), served back under the case's access rules."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases import attachments
from cases.calendar import CITY_TZ
from cases.ledger import LedgerQuery, export
from geo.coords import wgs84_to_gcj02
from tests.helpers import evidence_files as files
from tests.helpers.ledger import ADMIN, COMM_A, make_case, role_tokens
from tests.helpers.ledger import bearer as h

M_PER_DEG_LAT = 111_195.0


def _settings(store: Path, **kw) -> Settings:
    return Settings(attachment_dir=store, **kw)


@pytest.fixture
def ev(city_db_url, city_engine, tmp_path):
    store = tmp_path / "files"
    app = create_app(_settings(store), database_url=city_db_url)
    with city_engine.begin() as conn:
        tokens = role_tokens(conn)
        case_id = make_case(conn, COMM_A)
    with TestClient(app) as client:
        yield client, tokens, case_id, store, city_engine


def stored_files(store: Path) -> list[str]:
    return sorted(p.name for p in store.glob("*/*")) if store.exists() else []


def rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM attachment")).scalar_one()


def interior_point(engine, community: str) -> tuple[float, float]:
    with engine.connect() as conn:
        r = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(ST_Buffer(geom::geography, "
            "-300)::geometry) AS p FROM community WHERE code = :c) s"), {"c": community}).one()
    return r[0], r[1]


def test_intake_jpeg_gps_is_stripped_and_kept_as_staff_fact(ev):
    client, tokens, _, store, engine = ev
    lon, lat = interior_point(engine, COMM_A)
    # The app reports in GCJ-02 (hundreds of metres off WGS-84 here); the phone's GPS in
    # WGS-84, 300 m north of the reported place.
    glon, glat = (float(v[0]) for v in wgs84_to_gcj02([lon], [lat]))
    photo = files.jpeg(exif=files.gps_exif(lon, lat + 300 / M_PER_DEG_LAT))
    case = {"lon": glon, "lat": glat, "crs": "gcj02", "category": "0102",
            "channel": "app", "description": "垃圾堆在路边"}
    r = client.post("/api/v1/cases", headers=h(tokens, "intake"),
                    data={"case": json.dumps(case, ensure_ascii=False)},
                    files=[("photo", ("IMG_0001.jpg", photo, "image/jpeg"))])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["routing"]["community_code"] == COMM_A
    (att,) = body["attachments"]
    assert att["stage"] == "intake" and att["media_type"] == "image/jpeg"
    assert att["taken"]["at"].startswith("2026-12-01T09:30:00")
    assert 280 < att["taken"]["distance_m"] < 320, att["taken"]
    assert att["original_name"] == "IMG_0001.jpg"

    served = client.get(att["url"], headers=h(tokens, "dispatcher"))
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(served.content))
    img.load()
    exif = img.getexif()
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo) and ExifTags.Base.Make not in exif
    assert b"TestPhone" not in served.content
    thumb = client.get(att["thumb_url"], headers=h(tokens, "dispatcher"))
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 320

    # Planners never see citizens' photos; without a token nothing is served.
    assert client.get(att["url"], headers=h(tokens, "planner")).status_code == 404
    assert client.get(att["url"]).status_code == 401
    listed = client.get(f"/api/v1/cases/{body['id']}/attachments", headers=h(tokens, "planner"))
    assert listed.status_code == 200 and listed.json()["attachments"] == []
    # JSON-only intake keeps working.
    r = client.post("/api/v1/cases", headers=h(tokens, "intake"), json=case)
    assert r.status_code == 201 and "attachments" not in r.json()


def test_types_from_content_and_each_refusal_names_file_and_limit(ev):
    client, tokens, cid, store, engine = ev
    url = f"/api/v1/cases/{cid}/attachments"
    ok = [("photo", ("screen.png", files.png(), "image/png")),
          ("photo", ("IMG_2.HEIC", files.heic(exif=files.gps_exif(117.1, 35.1)), "image/heic")),
          ("photo", ("notice.pdf", files.pdf(), "application/octet-stream"))]
    r = client.post(url, headers=h(tokens, "officer_a"), data={"caption": "整改通知书"}, files=ok)
    assert r.status_code == 201, r.text
    got = {a["original_name"]: a for a in r.json()["attachments"]}
    assert got["screen.png"]["media_type"] == "image/png"
    assert got["IMG_2.HEIC"]["media_type"] == "image/jpeg"  # browsers show it
    assert got["IMG_2.HEIC"]["taken"]["lat"] == pytest.approx(35.1, abs=1e-6)
    assert got["notice.pdf"]["kind"] == "pdf" and got["notice.pdf"]["thumb_url"] is None
    assert {a["caption"] for a in got.values()} == {"整改通知书"}
    heic = client.get(got["IMG_2.HEIC"]["url"], headers=h(tokens, "officer_a"))
    assert Image.open(io.BytesIO(heic.content)).format == "JPEG"
    pdf = client.get(got["notice.pdf"]["url"], headers=h(tokens, "officer_a"))
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content == files.pdf()
    assert client.get(got["notice.pdf"]["url"] + "/thumb",
                      headers=h(tokens, "officer_a")).status_code == 404
    before_rows, before_files = rows(engine), stored_files(store)

    truncated = files.jpeg(size=(800, 600))
    refusals = [
        ("fake.jpg", b"this is a text file, not a photo\n" * 20, 415, "not a file type"),
        ("cut.jpg", truncated[: len(truncated) // 2], 422, "damaged or incomplete"),
        ("bomb.png", files.png_header_only(30_000, 30_000), 422, "64,000,000 pixels"),
        ("big.jpg", b"\xff\xd8\xff" + b"\x00" * 12_000_000, 413, "10 MB per file"),
        ("cut.pdf", files.pdf()[:-20], 422, "%%EOF"),
    ]
    for name, data, status, words in refusals:
        # A good file beside the bad one: nothing of the request is stored.
        r = client.post(url, headers=h(tokens, "officer_a"), files=[
            ("photo", ("good.png", files.png(seed=9), "image/png")),
            ("photo", (name, data, "image/jpeg"))])
        assert r.status_code == status, (name, r.text)
        assert name in r.json()["detail"] and words in r.json()["detail"], r.json()
        assert r.json()["field"] == "photo[1]"
        assert rows(engine) == before_rows and stored_files(store) == before_files, name


def test_complete_bomb_png_is_refused_before_decoding(ev):
    client, tokens, cid, store, engine = ev
    r = client.post(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "officer_a"),
                    files=[("photo", ("bomb.png", files.bomb_png(30_000), "image/png"))])
    assert r.status_code == 422 and "pixels" in r.json()["detail"], r.text
    assert rows(engine) == 0 and stored_files(store) == []


def test_twenty_files_per_case_and_the_21st_is_refused(ev):
    client, tokens, cid, store, engine = ev
    url = f"/api/v1/cases/{cid}/attachments"
    batch = [("photo", (f"p{i}.png", files.png(size=(64, 48), seed=i), "image/png"))
             for i in range(19)]
    assert client.post(url, headers=h(tokens, "officer_a"), files=batch).status_code == 201
    one = [("photo", ("p19.png", files.png(size=(64, 48), seed=19), "image/png"))]
    assert client.post(url, headers=h(tokens, "officer_a"), files=one).status_code == 201
    extra = [("photo", ("p20.png", files.png(size=(64, 48), seed=20), "image/png"))]
    r = client.post(url, headers=h(tokens, "officer_a"), files=extra)
    assert r.status_code == 422 and "20 files per case" in r.json()["detail"], r.text
    assert "p20.png" in r.json()["detail"]
    assert rows(engine) == 20


def test_officer_of_another_community_gets_404(ev):
    client, tokens, cid, _store, _engine = ev
    r = client.post(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "officer_a"),
                    files=[("photo", ("a.jpg", files.jpeg(), "image/jpeg"))])
    aid = r.json()["attachments"][0]["id"]
    for path in (f"/api/v1/attachments/{aid}", f"/api/v1/attachments/{aid}/thumb",
                 f"/api/v1/cases/{cid}/attachments"):
        assert client.get(path, headers=h(tokens, "officer_b")).status_code == 404, path
        assert client.get(path, headers=h(tokens, "officer_a")).status_code == 200, path
    # Nor may it add to that case; a planner only reads.
    r = client.post(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "officer_b"),
                    files=[("photo", ("b.jpg", files.jpeg(seed=2), "image/jpeg"))])
    assert r.status_code == 404
    r = client.post(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "planner"),
                    files=[("photo", ("b.jpg", files.jpeg(seed=2), "image/jpeg"))])
    assert r.status_code == 403
    # Staff-made photos are no citizen's: planners see them, without the staff facts.
    listed = client.get(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "planner")).json()
    assert len(listed["attachments"]) == 1 and "taken" not in listed["attachments"][0]


def test_caching_headers_and_same_bytes_stored_once(ev):
    client, tokens, cid, store, _engine = ev
    url = f"/api/v1/cases/{cid}/attachments"
    photo = files.jpeg(seed=4)
    a = client.post(url, headers=h(tokens, "officer_a"), files=[("photo", ("x.jpg", photo, "image/jpeg"))])
    b = client.post(url, headers=h(tokens, "officer_a"), files=[("photo", ("y.jpg", photo, "image/jpeg"))])
    assert a.status_code == b.status_code == 201
    assert len(stored_files(store)) == 2  # one copy and one thumbnail for the two rows
    r = client.get(a.json()["attachments"][0]["url"], headers=h(tokens, "officer_a"))
    assert r.headers["cache-control"] == attachments_cache()
    etag = r.headers["etag"]
    assert etag.strip('"') in stored_files(store)
    again = client.get(a.json()["attachments"][0]["url"],
                       headers={**h(tokens, "officer_a"), "If-None-Match": etag})
    assert again.status_code == 304 and not again.content


def attachments_cache() -> str:
    from api.routes.attachments import CACHE_CONTROL

    return CACHE_CONTROL


def test_workflow_actions_carry_photos_and_counts_per_step(ev, tmp_path):
    client, tokens, cid, _store, engine = ev
    act = f"/api/v1/cases/{cid}/actions"

    def step(who, payload, photos=()):
        if not photos:
            return client.post(act, headers=h(tokens, who), json=payload)
        return client.post(act, headers=h(tokens, who), data={"action": json.dumps(payload)},
                           files=[("photo", (n, d, "image/jpeg")) for n, d in photos])

    # Photos only go with the actions that carry evidence.
    r = step("supervisor", {"action": "accept"}, [("x.jpg", files.jpeg())])
    assert r.status_code == 422 and "takes no photos" in r.json()["detail"]
    assert step("supervisor", {"action": "accept"}).status_code == 200
    assert step("dispatcher", {"action": "dispatch"}).status_code == 200
    before = files.jpeg(seed=5)
    r = step("officer_a", {"action": "handle", "note": "已清理"},
             [("before.jpg", before), ("after.jpg", files.jpeg(seed=6))])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "handled"
    assert [a["stage"] for a in r.json()["attachments"]] == ["handle", "handle"]
    # A refused photo refuses the action: nothing of it is stored.
    r = step("supervisor", {"action": "verify_pass"}, [("bad.jpg", b"not a photo")])
    assert r.status_code == 415
    with engine.connect() as conn:
        assert conn.execute(text('SELECT status FROM "case" WHERE id = :i'), {"i": cid}).scalar() == "handled"
    r = step("supervisor", {"action": "verify_pass", "note": "现场核查"}, [("site.jpg", files.jpeg(seed=7))])
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text
    with engine.connect() as conn:
        events = dict(conn.execute(text(
            "SELECT a.stage, e.action FROM attachment a JOIN case_event e ON e.id = a.event_id "
            "WHERE a.case_id = :i"), {"i": cid}).all())
        assert events == {"handle": "handle", "verify_pass": "verify_pass"}
        # The ledger export names how many photos each step has.
        day, case_no = conn.execute(text(
            'SELECT (received_at AT TIME ZONE :tz)::date, case_no FROM "case" WHERE id = :i'),
            {"tz": CITY_TZ.key, "i": cid}).one()
        out = tmp_path / "ledger.csv"
        export(conn, LedgerQuery(day, day, ADMIN), out)
    row = next(r for r in csv.DictReader(io.StringIO(out.read_text("utf-8-sig")))
               if r["案件编号"] == case_no)
    assert (row["上报照片数"], row["处置照片数"], row["核查照片数"], row["照片数"]) == ("0", "2", "1", "3")
    # A malformed action part is the JSON body's 422, located in the part.
    r = client.post(act, headers=h(tokens, "supervisor"), data={"action": "{nope"},
                    files=[("photo", ("x.jpg", files.jpeg(), "image/jpeg"))])
    assert r.status_code == 422


def test_bad_multipart_requests_are_4xx(ev):
    client, tokens, cid, store, engine = ev
    url = f"/api/v1/cases/{cid}/attachments"
    # a file under another part name, no file at all, JSON instead of a form
    r = client.post(url, headers=h(tokens, "officer_a"),
                    files=[("picture", ("a.jpg", files.jpeg(), "image/jpeg"))])
    assert r.status_code == 422 and r.json()["field"] == "picture"
    r = client.post(url, headers=h(tokens, "officer_a"), data={"caption": "x"},
                    files=[("photo", ("", b"", "application/octet-stream"))])
    assert r.status_code == 422 and r.json()["field"] == "photo"
    r = client.post(url, headers=h(tokens, "officer_a"), json={"caption": "x"})
    assert r.status_code == 422 and r.json()["field"] == "Content-Type"
    r = client.post(url, headers={**h(tokens, "officer_a"),
                                  "Content-Type": "multipart/form-data; boundary=zz"},
                    content=b"--zz\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a\"\r\n\r\nabc")
    assert 400 <= r.status_code < 500
    # the intake without its case part
    r = client.post("/api/v1/cases", headers=h(tokens, "intake"),
                    files=[("photo", ("a.jpg", files.jpeg(), "image/jpeg"))])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "case"
    assert rows(engine) == 0 and stored_files(store) == []


def test_sweep_removes_only_old_files_no_row_names(ev, tmp_path):
    client, tokens, cid, store, engine = ev
    r = client.post(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "officer_a"),
                    files=[("photo", ("a.jpg", files.jpeg(), "image/jpeg"))])
    assert r.status_code == 201
    fs = attachments.store_for(_settings(store))
    orphan = fs.put(b"left by a crash")
    young = attachments.sweep(engine, fs, grace_s=3600)
    assert young.removed == [] and fs.exists(orphan)
    old = attachments.sweep(engine, fs, grace_s=0)
    assert old.removed == [orphan] and not fs.exists(orphan)
    assert attachments.missing_files(engine, fs) == []
    assert len(stored_files(store)) == 2
    with pytest.raises(ValueError):
        fs.path_of("../../etc/passwd")


def test_distance_is_metric(ev):
    """The staff fact's distance agrees with a great-circle distance of the two points."""
    _client, _tokens, cid, _store, engine = ev
    lon, lat = interior_point(engine, COMM_A)
    with engine.begin() as conn:
        conn.execute(text('UPDATE "case" SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) '
                          "WHERE id = :i"), {"x": lon, "y": lat, "i": cid})
    from cases.images import Limits, Upload, prepare

    east = 500 / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
    p = prepare(Upload("photo", 0, "e.jpg", files.jpeg(exif=files.gps_exif(lon + east, lat))),
                Limits(10_000_000, 64_000_000, 320))
    from cases.tokens import Principal

    admin = Principal(1, "admin", "admin")
    with engine.begin() as conn:
        attachments.attach(conn, cid, [p], stage="added", actor=admin, max_per_case=20)
        (item,) = attachments.list_for_case(conn, cid, admin, Settings())
    assert item["taken"]["distance_m"] == pytest.approx(500, abs=5)


def test_dispatcher_popup_shows_the_first_thumbnail_fetched_with_the_page_cookie(ev):
    client, tokens, cid, _store, _engine = ev
    r = client.get(f"/maps/api/cases/{cid}", headers=h(tokens, "dispatcher"))
    assert r.status_code == 200 and r.json()["thumb_url"] is None
    for seed in (1, 2):
        client.post(f"/api/v1/cases/{cid}/attachments", headers=h(tokens, "officer_a"),
                    files=[("photo", (f"{seed}.jpg", files.jpeg(seed=seed), "image/jpeg"))])
    first = client.get(f"/api/v1/cases/{cid}/attachments",
                       headers=h(tokens, "dispatcher")).json()["attachments"][0]
    r = client.get(f"/maps/api/cases/{cid}", headers=h(tokens, "dispatcher"))
    assert r.json()["thumb_url"] == first["thumb_url"]
    # An <img> in the page sends the signed-in person's session cookie, not a header.
    from cases.users import SessionPolicy, create_user, sign_in

    with _engine.begin() as conn:
        create_user(conn, "disp1", "dispatcher", "correct horse battery")
        secret, _session = sign_in(conn, "disp1", "correct horse battery", "127.0.0.1",
                                   SessionPolicy())
    client.cookies.set("casegrid_session", secret)
    try:
        img = client.get(first["thumb_url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    finally:
        client.cookies.clear()
    assert client.get(first["thumb_url"]).status_code == 401  # and without it, nothing


@pytest.mark.parametrize(("path", "content_type", "queued"), [
    ("/api/v1/cases/7/attachments", b"multipart/form-data; boundary=x", False),
    ("/api/v1/cases/7/actions", b"multipart/form-data; boundary=x", False),
    ("/open311/v2/requests.json", b"multipart/form-data; boundary=x", False),
    ("/api/v1/cases/7/actions", b"application/json", True),  # JSON waits as before
    ("/open311/v2/requests.json", b"application/x-www-form-urlencoded", True),
])
def test_uploads_decode_without_holding_a_turn_at_the_pool(path, content_type, queued):
    from api.db_gate import waits_its_turn

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(b"content-type", content_type)]}
    assert waits_its_turn(scope) is queued


def test_behind_a_proxy_prefix_an_upload_is_still_an_upload():
    from api.middleware import is_upload

    scope = {"type": "http", "method": "POST", "path": "/casegrid/api/v1/cases/7/attachments",
             "root_path": "/casegrid", "headers": [(b"content-type", b"multipart/form-data; boundary=x")]}
    assert is_upload(scope)
    assert not is_upload({**scope, "method": "GET"})
