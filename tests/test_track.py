"""The citizen's /track page: the right and the wrong digits, an unknown number, a hotline
ticket, what the page never shows, the throttle per address and per number, and the page
at 390 px in Debian's Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases import track
from cases.vocabulary import CHANNEL_LABELS, CHANNELS, STATE_LABELS, STATES
from cases.workflow import REJECT_REASONS
from tests.helpers.ledger import COMM_A, DISP, OFF_A, SUP, act, drive, make_case, sh
from tests.helpers.server import running_server
from tests.helpers.workbench_browser import PHONE, no_sideways_scroll

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _seed(engine) -> dict:
    """A replied case (phone 13800000000, ticket GD-1) handled by a community officer, and
    another citizen's case in the same community."""
    with engine.begin() as conn:
        cid = make_case(conn, COMM_A)
        other = make_case(conn, COMM_A, received_at=sh(2026, 9, 14, 10))
        conn.execute(text("""UPDATE "case" SET external_id = 'GD-1', address = '荆河路88号',
                             description = '楼下烧烤噪音 请回电13800000000' WHERE id = :i"""),
                     {"i": cid})
        conn.execute(text("""UPDATE "case" SET reporter_name = '李四', reporter_phone =
                             '13911112222', address = '别人家门口' WHERE id = :i"""), {"i": other})
        drive(conn, cid, "verified")
        act(conn, cid, "reply", DISP, at=sh(2026, 9, 15, 9), channel="phone",
            text="已责令停止夜间烧烤。")
        row = conn.execute(text(
            'SELECT c.case_no, p.name, p.phone, p.contact_name FROM "case" c '
            "JOIN community_post p ON p.id = c.post_id WHERE c.id = :i"), {"i": cid}).one()
        other_no = conn.execute(text('SELECT case_no FROM "case" WHERE id = :i'),
                                {"i": other}).scalar_one()
    return {"id": cid, "no": row.case_no, "post": row.name, "phone": row.phone,
            "contact": row.contact_name, "other_no": other_no}


def _app(url: str, **limits) -> object:
    return create_app(settings=Settings(database_url=url, tiles="none", **limits),
                      database_url=url)


def test_track_right_wrong_unknown(city_engine, city_db_url):
    seed = _seed(city_engine)
    with TestClient(_app(city_db_url)) as client:
        form = client.get("/track")
        assert form.status_code == 200 and "案件查询" in form.text and 'name="digits"' in form.text
        assert "Track your case" in client.get("/track?lang=en").text
        ok = client.post("/track", data={"number": seed["no"], "digits": "0000"})
        assert ok.status_code == 200
        page = ok.text.split("</style>")[1]   # the page's text, not its stylesheet
        for shown in (seed["no"], "已答复", "已责令停止夜间烧烤。", seed["post"], seed["phone"],
                      "已受理", "已立案", "已派遣", "已处置", "2026-09-15 09:00"):
            assert shown in page, shown
        # never staff names, the reporter's details, the address or the text with a phone,
        # nor the other citizen's case
        for hidden in (OFF_A.name, SUP.name, DISP.name, "张三", "13800000000", "荆河路88号",
                       "楼下烧烤", seed["other_no"], "李四", "别人家门口"):
            assert hidden not in page, hidden
        if seed["contact"]:
            assert seed["contact"] not in page
        # the hotline ticket works as well, lower-case case numbers too; English on request
        assert seed["no"] in client.post("/track", data={"number": "GD-1", "digits": "0000"}).text
        assert seed["no"] in client.post("/track", data={"number": seed["no"].lower(),
                                                          "digits": "0000"}).text
        en = client.post("/track", data={"number": seed["no"], "digits": "0000", "lang": "en"})
        assert "replied" in en.text and "Community post in charge" in en.text
        # wrong digits and an unknown number: the same answer, byte for byte
        wrong = client.post("/track", data={"number": seed["no"], "digits": "1234"})
        unknown = client.post("/track", data={"number": "CG20269999999", "digits": "1234"})
        assert wrong.status_code == unknown.status_code == 200
        assert wrong.text.replace(seed["no"], "X") == unknown.text.replace("CG20269999999", "X")
        assert "没有找到" in wrong.text and "已答复" not in wrong.text
        # the other citizen's digits do not open this case
        assert "已答复" not in client.post(
            "/track", data={"number": seed["no"], "digits": "2222"}).text
        bad = client.post("/track", data={"number": seed["no"], "digits": "12a4"})
        assert bad.status_code == 422 and "后4位" in bad.text


def test_track_a_noise_complaint_for_its_reporter_only(city_engine, city_db_url):
    """Noise (0599) is kept from the public: no Open311, no listing. Its reporter, who proves
    the number and the digits, still follows it on /track, without its point (exact or
    coarsened), address, unapproved description, staff names or anybody else's case."""
    from cases.publication import public_params
    from tests.helpers.public_grid import cell_centre
    from tests.helpers.workbench_helpers import point_in

    lon, lat = point_in(city_engine, COMM_A)
    with city_engine.begin() as conn:
        cid = make_case(conn, COMM_A, category="0599")
        neighbour = make_case(conn, COMM_A, category="0599", received_at=sh(2026, 9, 14, 11))
        conn.execute(text("""UPDATE "case" SET external_id = 'GD-N1', address = '善国苑3号楼',
                             description = '楼上夜里装修', geom = ST_SetSRID(ST_MakePoint(:x, :y),
                             4326) WHERE id = :i"""), {"i": cid, "x": lon, "y": lat})
        conn.execute(text("""UPDATE "case" SET reporter_phone = '13911112222' WHERE id = :i"""),
                     {"i": neighbour})
        drive(conn, cid, "verified")
        act(conn, cid, "reply", DISP, at=sh(2026, 9, 15, 9), channel="phone",
            text="已上门劝导,装修已停止。")
        no, other_no = (conn.execute(text('SELECT case_no FROM "case" WHERE id = :i'),
                                     {"i": i}).scalar_one() for i in (cid, neighbour))
        post = conn.execute(text('SELECT p.name, p.phone FROM "case" c JOIN community_post p '
                                 "ON p.id = c.post_id WHERE c.id = :i"), {"i": cid}).one()
        assert public_params()["grid"]   # the public would get a cell for a public category
    cell = cell_centre(lon, lat, float(public_params()["cell_m"]))
    with TestClient(_app(city_db_url)) as client:
        # the public does not see it at all
        assert client.get(f"/open311/v2/requests/{no}.json").status_code == 404
        listing = client.get("/open311/v2/requests.json", params={
            "start_date": "2026-09-01T00:00:00+08:00",
            "end_date": "2026-09-30T00:00:00+08:00"}).json()
        assert no not in [r["service_request_id"] for r in listing]
        # its reporter does, by case number and by hotline ticket
        for number in (no, "GD-N1"):
            r = client.post("/track", data={"number": number, "digits": "0000"})
            assert r.status_code == 200
            page = r.text.split("</style>")[1]
            for shown in (no, "社会生活噪音扰民", "已答复", "已上门劝导,装修已停止。", post.name,
                          post.phone, "已派遣", "已处置", "不在任何公开渠道显示"):
                assert shown in page, shown
            for hidden in ("善国苑", "楼上夜里装修", "张三", "13800000000", OFF_A.name, SUP.name,
                           DISP.name, other_no, f"{lon:.4f}", f"{lat:.4f}", f"{cell[0]:.4f}",
                           f"{cell[1]:.4f}", f"{lon:.3f}", f"{lat:.3f}"):
                assert hidden not in page, hidden
        # wrong digits: the same answer as an unknown number; the neighbour's digits do not
        # open it, and the neighbour's number does not open with this reporter's digits
        wrong = client.post("/track", data={"number": no, "digits": "2222"})
        unknown = client.post("/track", data={"number": "CG20269999999", "digits": "2222"})
        assert wrong.text.replace(no, "X") == unknown.text.replace("CG20269999999", "X")
        assert "没有找到" in client.post("/track", data={"number": other_no,
                                                       "digits": "0000"}).text
        # a public case says nothing about being private
        en = client.post("/track", data={"number": no, "digits": "0000", "lang": "en"})
        assert "shown nowhere in public" in en.text
    seed = _seed(city_engine)
    with TestClient(_app(city_db_url)) as client:
        assert "不在任何公开渠道显示" not in client.post(
            "/track", data={"number": seed["no"], "digits": "0000"}).text


def test_track_throttle_per_number_and_per_address(city_engine, city_db_url):
    seed = _seed(city_engine)
    app = _app(city_db_url, track_failures_per_number=3, track_failures_per_address=5,
               track_window_s=600)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/track", data={"number": seed["no"],
                                               "digits": "9999"}).status_code == 200
        # the number is locked now, even with the right digits, for 10 minutes
        r = client.post("/track", data={"number": seed["no"], "digits": "0000"})
        assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 600
        assert "查询次数过多" in r.text and "已答复" not in r.text
        # an unknown number behaves the same way (nothing tells the two apart)
        for _ in range(3):
            client.post("/track", data={"number": "CG20260000999", "digits": "9999"})
        assert client.post("/track", data={"number": "CG20260000999",
                                           "digits": "9999"}).status_code == 429
        # six failures from this address: another number is refused as well
        assert client.post("/track", data={"number": seed["other_no"],
                                           "digits": "2222"}).status_code == 429
    # the window over, the citizen gets in again
    with city_engine.begin() as conn:
        conn.execute(text("UPDATE track_throttle SET window_start = now() - interval '11 min'"))
    with TestClient(app) as client:
        r = client.post("/track", data={"number": seed["no"], "digits": "0000"})
        assert r.status_code == 200 and "已答复" in r.text


@pytest.mark.browser
def test_track_page_on_a_phone(browser, city_engine, city_db_url):
    seed = _seed(city_engine)
    with running_server(_app(city_db_url)) as base:
        ctx = browser.new_context(**PHONE)
        try:
            page = ctx.new_page()
            errors, urls = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: urls.append(r.url))
            page.goto(f"{base}/track")
            page.fill("#number", seed["no"])
            page.fill("#digits", "0000")
            page.click("button[type=submit]")
            page.wait_for_selector("#steps li")
            assert page.inner_text("#status") == "已答复"
            assert "已责令停止夜间烧烤" in page.inner_text("#reply")
            no_sideways_scroll(page)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "track_390.png"), full_page=True)
            page.goto(f"{base}/track?lang=en")
            page.fill("#number", seed["no"])
            page.fill("#digits", "1111")
            page.click("button[type=submit]")
            page.wait_for_selector("#message")
            assert "No case matches" in page.inner_text("#message")
            page.screenshot(path=str(ARTIFACTS / "track_390_en_not_found.png"), full_page=True)
            assert not errors, errors
            assert all(u.startswith(base) for u in urls), urls
        finally:
            ctx.close()


def test_the_words_cover_the_vocabulary():
    """Every status, channel and reject reason of the ledger has its words, for staff
    (cases.vocabulary) and for the reporter (cases.track), and no word names another."""
    assert set(STATE_LABELS) == set(track.STATUS_LABELS) == set(STATES)
    assert set(CHANNEL_LABELS) == set(CHANNELS)
    assert set(track.REJECT_LABELS) == set(REJECT_REASONS)
