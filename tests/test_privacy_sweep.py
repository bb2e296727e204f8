"""Every way a case's text leaves casegrid goes through the one masking rule.

One case carries contact data everywhere free text goes (description, address, a workflow
note, an attachment's caption) plus a reporter's name and phone and a link to the photo the
citizen sent (Open311 media_url: reporter data, never for a planner); one activity carries
numbers in its title, place and note. Then every GET operation
of the access matrix (tests/helpers/access_matrix.py: the one list of the app's routes) is read
as a planner and as a dispatcher, with a token and, for the workbench pages, signed in;
the ledger's XLSX is unzipped. No body holds a number as written; a planner's holds no
reporter either. The notifications written for the case (webhook body, SMS text, email)
are checked the same way. Only the recorded reveal gives the texts as written."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.settings import Settings
from cases.calendar import CITY_TZ
from notify.base import Message
from notify.mail import compose
from notify.sms import sms_text
from notify.webhook import encode
from tests.helpers import evidence_files
from tests.helpers.access_matrix import OPERATIONS
from tests.helpers.workbench_helpers import COMM_A, PASSWORD, csrf_of, make_users, point_in

DESCRIPTION_PHONE = "13912340001"
ID_NUMBER = "370481199001011234"
EMAIL = "wangxm@example.cn"
ADDRESS_PHONE = "13912340002"
NOTE_PHONE = "13912340004"
CAPTION_PHONE = "13912340005"
TITLE_PHONE, PLACE_PHONE, ACTIVITY_NOTE_PHONE = "13912340006", "0632-5512345", "13912340008"
AS_WRITTEN = (DESCRIPTION_PHONE, ID_NUMBER, EMAIL, ADDRESS_PHONE, NOTE_PHONE, CAPTION_PHONE,
              "wangxm@", TITLE_PHONE, PLACE_PHONE, "5512345", ACTIVITY_NOTE_PHONE)
# The citizen's photo link names them (a messaging app's id in the path).
PHOTO_LINK = "https://img.example.cn/wx/o6_wangxiaoming_d3/shop.jpg"
REPORTER = ("王小明", "13812340003", "o6_wangxiaoming_d3")
# Pages that carry no case (framework, assets, health, metrics, the sign-in form).
NOT_ABOUT_CASES = re.compile(r"^/(docs|redoc|openapi|static|health|metrics|login)")


@pytest.fixture
def world(city_engine, city_db_url, tmp_path):
    make_users(city_engine)
    settings = Settings(tiles="none", database_url=city_db_url, attachment_dir=tmp_path / "files")
    app = create_app(settings=settings, database_url=city_db_url)
    from cases.tokens import create_token

    with city_engine.begin() as conn:
        tokens = {role: create_token(conn, role, f"sweep-{role}")[1]
                  for role in ("admin", "supervisor", "dispatcher", "planner", "intake")}
    with TestClient(app) as client:
        def bearer(role):
            return {"Authorization": f"Bearer {tokens[role]}"}

        lon, lat = point_in(city_engine, COMM_A)
        r = client.post("/api/v1/cases", headers=bearer("intake"), json={
            "lon": lon, "lat": lat, "category": "0504", "channel": "hotline_12345",
            "external_id": "SWEEP-1", "reporter_name": REPORTER[0], "reporter_phone": REPORTER[1],
            "description": f"店外经营占道, 我是王先生电话{DESCRIPTION_PHONE}, 身份证{ID_NUMBER}, "
                           f"邮箱{EMAIL}",
            "address": f"北辛路8号 联系{ADDRESS_PHONE}", "photo_urls": [PHOTO_LINK]})
        assert r.status_code == 201, r.text
        case = r.json()
        r = client.post(f"/api/v1/cases/{case['id']}/actions", headers=bearer("supervisor"),
                        json={"action": "accept", "version": case["version"],
                              "note": f"已电话联系 {NOTE_PHONE}"})
        assert r.status_code == 200, r.text
        r = client.post(f"/api/v1/cases/{case['id']}/attachments", headers=bearer("admin"),
                        data={"caption": f"业主提供, 电话{CAPTION_PHONE}"},
                        files=[("photo", ("shop.png", evidence_files.png(), "image/png"))])
        assert r.status_code == 201, r.text
        attachment_id = r.json()["attachments"][0]["id"]
        # An activity of this month (the pages' default period), numbers in every text.
        r = client.post("/api/v1/activities", headers=bearer("admin"), json={
            "started_at": datetime.now(CITY_TZ).replace(microsecond=0).isoformat(),
            "kind": "volunteer", "title": f"楼道清理, 联系人{TITLE_PHONE}",
            "place": f"北辛路8号院, 物业{PLACE_PHONE}", "note": f"居民代表 {ACTIVITY_NOTE_PHONE}",
            "communities": [COMM_A], "lon": lon, "lat": lat, "reached": 30})
        assert r.status_code == 201, r.text
        client.activity = r.json()  # type: ignore[attr-defined]
        client.bearer = bearer  # type: ignore[attr-defined]
        yield client, city_engine, case, attachment_id


def _url(op, case: dict, attachment_id: int) -> str | None:
    url = (op.url or op.route).replace("{case_id}", str(case["id"]))
    url = url.replace("{case_no}", case["case_no"]).replace("{attachment_id}", str(attachment_id))
    url = url.replace("{code}", "0504").replace("{fmt}", "json")
    return None if "{" in url else url  # tokens, activities: no case of this test there


def _body(r) -> str:
    """A response as text; an XLSX workbook as the text of all its parts."""
    if r.content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            return "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    return r.content.decode("utf-8", "replace")


def _sweep(client, headers: dict, urls: list[str], refused: tuple[str, ...]) -> list[str]:
    """GET each url; fail on a body holding one of ``refused``; the urls answered 200."""
    answered = []
    for url in urls:
        r = client.get(url, headers=headers, follow_redirects=False)
        assert r.status_code < 500, (url, r.status_code, r.text[:300])
        body = _body(r)
        for value in refused:
            assert value not in body, f"{url} shows {value!r}"
        if r.status_code == 200:
            answered.append(url)
    return answered


def _sign_in(client, username: str) -> None:
    client.cookies.clear()
    page = client.get("/login")
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": csrf_of(page.text), "next": "/work"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def test_no_route_shows_text_as_written_nor_a_planner_the_reporter(world):
    client, _engine, case, attachment_id = world
    ops = [op for op in OPERATIONS if op.method == "GET" and not NOT_ABOUT_CASES.match(op.route)]
    urls = sorted({u for op in ops if (u := _url(op, case, attachment_id))})
    queues = client.get("/api/v1/queues", headers=client.bearer("dispatcher")).json()
    names = [q["name"] for q in (queues.get("queues", queues) if isinstance(queues, dict) else queues)]
    urls += [f"/api/v1/queues/{n}" for n in names] + [f"/work/queue/{n}" for n in names]
    urls += [f"/api/v1/search?q={case['case_no']}", f"/work/search?q={case['case_no']}",
             f"/maps/dispatch?community={COMM_A}"]
    api_urls = [u for u in urls if not u.startswith("/work")]
    pages = [u for u in urls if u.startswith("/work")]

    for role, refused in (("planner", AS_WRITTEN + REPORTER), ("dispatcher", AS_WRITTEN)):
        client.cookies.clear()
        answered = _sweep(client, client.bearer(role), api_urls, refused)
        _sign_in(client, {"planner": "plan", "dispatcher": "disp"}[role])
        answered += _sweep(client, {}, pages, refused)
        # The sweep met the case: its own pages answered, with the masked text.
        for must in (f"/api/v1/cases/{case['id']}", f"/maps/api/cases/{case['id']}",
                     f"/api/v1/cases/{case['id']}/attachments", f"/work/cases/{case['id']}",
                     "/api/v1/export/ledger.csv?from=2026-01-01&to=2026-12-31"):
            assert must in answered, (role, must)
        seen = client.get(f"/api/v1/cases/{case['id']}", headers=client.bearer(role)).text
        assert "139****0001" in seen and "3704**********1234" in seen and "w***@example.cn" in seen
        files = client.get(f"/api/v1/cases/{case['id']}/attachments", headers=client.bearer(role))
        assert files.json()["attachments"][0]["caption"] == "业主提供, 电话139****0005"
        assert (PHOTO_LINK in seen) is (role == "dispatcher")  # reporter data
        # The sweep met the activity: the list, the ledger page and the map layer show it
        # masked.
        for must in ("/api/v1/activities", "/work/activities"):
            assert must in answered, (role, must)
        listed = client.get("/api/v1/activities", headers=client.bearer(role)).json()
        mine = next(a for a in listed if a["id"] == client.activity["id"])
        assert (mine["title"], mine["place"], mine["note"]) == (
            "楼道清理, 联系人139****0006", "北辛路8号院, 物业0632-*****45", "居民代表 139****0008")
        assert len(answered) >= 25, answered
    client.cookies.clear()
    # Who may, reads the texts as written through the reveal, which the history records.
    revealed = client.post(f"/api/v1/cases/{case['id']}/reveal", headers=client.bearer("dispatcher"))
    assert revealed.status_code == 200 and DESCRIPTION_PHONE in revealed.text
    act = client.activity["id"]
    refused = client.post(f"/api/v1/activities/{act}/reveal", headers=client.bearer("planner"))
    assert refused.status_code == 403
    revealed = client.post(f"/api/v1/activities/{act}/reveal", headers=client.bearer("dispatcher"))
    assert revealed.status_code == 200, revealed.text
    assert {k: revealed.json()[k] for k in ("title", "place", "note")} == {
        "title": f"楼道清理, 联系人{TITLE_PHONE}", "place": f"北辛路8号院, 物业{PLACE_PHONE}",
        "note": f"居民代表 {ACTIVITY_NOTE_PHONE}"}
    with world[1].connect() as conn:
        views = conn.execute(text(
            "SELECT role, action, data FROM activity_event WHERE activity_id = :a"),
            {"a": act}).all()
    assert views == [("dispatcher", "reveal_personal_text",
                      {"fields": ["note", "place", "title"], "texts": 3})]


def test_notifications_carry_only_masked_text_and_no_reporter(world):
    _client, engine, case, _attachment_id = world
    with engine.connect() as conn:
        events = conn.execute(text(
            "SELECT id, type, at, payload FROM outbox_event WHERE case_id = :c ORDER BY id"),
            {"c": case["id"]}).mappings().all()
    assert [e["type"] for e in events] == ["case.registered", "case.reviewed"]
    for e in events:
        body = {"id": e["id"], "type": e["type"], "at": e["at"].isoformat(),
                "case": e["payload"]["case"], "data": e["payload"].get("data") or {}}
        mail = compose(Message(1, e["id"], e["type"], "duty@example.cn", body), "cg@example.cn")
        for out in (encode(body).decode("utf-8"), sms_text(body),
                    mail["Subject"] + mail.get_content()):
            for value in AS_WRITTEN + REPORTER:
                assert value not in out, (e["type"], value)
    assert "139****0002" in events[0]["payload"]["case"]["address"]
    assert "139****0004" in events[1]["payload"]["data"]["note"]
