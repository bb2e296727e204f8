"""Open311 GeoReport v2: discovery, services, POST/GET requests, tokens, errors, JSON and XML."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from casegrid.cluster import free_port
from cases.tokens import create_token

BASE = "/open311/v2"
# 文昌社区's interior point (WGS-84) and the same place as Amap would give it (GCJ-02).
WENCHANG = {"lat": "35.081772", "long": "117.159807"}
WENCHANG_GCJ = {"lat": "35.081305", "long": "117.165711"}


@pytest.fixture
def env(city_db_url, city_engine):
    with city_engine.begin() as conn:
        _, intake = create_token(conn, "intake", "open311 test client")
        _, planner = create_token(conn, "planner", "planner")
    with TestClient(create_app(database_url=city_db_url)) as client:
        yield client, intake, planner, city_engine


def _post(client, key, fmt="json", **fields):
    # 店外经营 (0504): a public category, so the public reads below find the case (noise
    # complaints are not public: tests/test_publication.py).
    data = {"api_key": key, "service_code": "0504", **WENCHANG,
            "description": "店外经营占道", **fields}
    return client.post(f"{BASE}/requests.{fmt}", data={k: v for k, v in data.items() if v is not None})


def _xml(resp) -> ET.Element:
    assert resp.headers["content-type"].startswith("text/xml")
    assert resp.content.startswith(b"<?xml")
    return ET.fromstring(resp.content)


def test_discovery_json_and_xml(env):
    client, *_ = env
    js = client.get(f"{BASE}/discovery.json")
    assert js.status_code == 200
    endpoint = js.json()["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2")
    root = _xml(client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    formats = [f.text for f in root.findall("./endpoints/endpoint/formats/format")]
    assert set(formats) == {"application/json", "text/xml"}


def test_services_follow_the_catalogue(env):
    client, _, _, engine = env
    with engine.connect() as conn:
        codes = [r[0] for r in conn.execute(text("SELECT code FROM category WHERE active ORDER BY code"))]
    services = client.get(f"{BASE}/services.json").json()
    assert [s["service_code"] for s in services] == codes
    noise = next(s for s in services if s["service_code"] == "0599")
    assert noise["service_name"] == "社会生活噪音扰民"
    assert noise["type"] == "realtime" and noise["metadata"] is True and noise["group"]
    root = _xml(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == codes
    assert root.find("service").findtext("metadata") == "true"


def test_service_definition_both_formats_and_unknown_code(env):
    client, *_ = env
    definition = client.get(f"{BASE}/services/0101.json").json()
    assert definition["service_code"] == "0101"
    attrs = {a["code"]: a for a in definition["attributes"]}
    assert set(attrs) == {"crs", "time_of_day"}
    assert {v["key"] for v in attrs["crs"]["values"]} == {"wgs84", "gcj02", "bd09"}
    assert attrs["crs"]["datatype"] == "singlevaluelist" and attrs["crs"]["required"] is False
    root = _xml(client.get(f"{BASE}/services/0101.xml"))
    assert root.tag == "service_definition"
    assert len(root.findall("./attributes/attribute/values/value")) == 7
    missing = client.get(f"{BASE}/services/4242.json")
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404 and "4242" in missing.json()[0]["description"]
    err = _xml(client.get(f"{BASE}/services/4242.xml"))
    assert err.tag == "errors" and err.find("error").findtext("code") == "404"


def test_post_then_get_by_id_and_token(env):
    client, intake, _, engine = env
    resp = _post(client, intake, first_name="张", last_name="三", phone="13800000000",
                 email="z@example.cn", media_url="https://img.example.cn/n.jpg",
                 **{"attribute[time_of_day]": "evening"})
    assert resp.status_code == 201, resp.text
    item = resp.json()[0]
    request_id, token = item["service_request_id"], item["token"]
    assert request_id.startswith("CG") and "城市管理岗" in item["service_notice"]

    got = client.get(f"{BASE}/requests/{request_id}.json").json()
    assert len(got) == 1
    req = got[0]
    assert req["status"] == "open" and req["service_code"] == "0504"
    assert req["agency_responsible"] == "文昌社区城市管理岗"
    # The public sees the location coarsened to a 100 m grid cell (cases.publication), no
    # photo and no description until staff approve one.
    assert req["lat"] == pytest.approx(35.081772, abs=0.001)
    assert req["long"] == pytest.approx(117.159807, abs=0.001)
    assert req["lat"] != pytest.approx(35.081772, abs=1e-6)
    assert req["media_url"] is None and req["description"] is None
    assert datetime.fromisoformat(req["requested_datetime"]) <= datetime.now(UTC)
    assert req["expected_datetime"] is not None  # the case's current due time
    # reporter data is stored, but never shown by the public read
    assert "13800000000" not in str(got) and "张" not in str(got) and "example.cn/z" not in str(got)
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT channel, external_id, reporter_name, reporter_phone FROM \"case\"")).one()
    assert tuple(stored) == ("open311", token, "张 三", "13800000000")

    assert client.get(f"{BASE}/tokens/{token}.json").json() == [
        {"service_request_id": request_id, "token": token}]
    tok = _xml(client.get(f"{BASE}/tokens/{token}.xml"))
    assert tok.find("request").findtext("service_request_id") == request_id
    assert client.get(f"{BASE}/tokens/nope.json").status_code == 404

    xml = _xml(client.get(f"{BASE}/requests/{request_id}.xml"))
    assert xml.tag == "service_requests"
    assert xml.find("request").findtext("agency_responsible") == "文昌社区城市管理岗"
    assert client.get(f"{BASE}/requests/CG0000000000.json").status_code == 404


def test_post_in_xml_and_with_gcj02_attribute(env):
    client, intake, *_ = env
    resp = _post(client, intake, fmt="xml", **WENCHANG_GCJ, **{"attribute[crs]": "gcj02"})
    assert resp.status_code == 201
    request_id = _xml(resp).find("request").findtext("service_request_id")
    req = client.get(f"{BASE}/requests/{request_id}.json").json()[0]
    # converted to WGS-84 before routing: same community as the WGS-84 point
    assert req["agency_responsible"] == "文昌社区城市管理岗"
    assert req["long"] == pytest.approx(117.159807, abs=0.001)


def test_address_only_request_is_taken_unrouted(env):
    client, intake, *_ = env
    resp = _post(client, intake, lat=None, long=None, address_string="滕州市某某烧烤店门口")
    assert resp.status_code == 201
    req = client.get(f"{BASE}/requests/{resp.json()[0]['service_request_id']}.json").json()[0]
    assert req["agency_responsible"] is None and req["lat"] is None
    # The address as reported may be the reporter's door: the public sees the community's
    # name only (cases.publication), and an unrouted case has none yet.
    assert req["address"] is None


def test_address_only_request_is_located_by_the_gazetteer(env):
    """address_string without lat/long: the matcher places a house number on its road
    (issue 27), and the request is routed to that community's post."""
    client, intake, *_ = env
    resp = _post(client, intake, lat=None, long=None, address_string="滕州市荆河路13号")
    assert resp.status_code == 201
    req = client.get(f"{BASE}/requests/{resp.json()[0]['service_request_id']}.json").json()[0]
    assert req["agency_responsible"].endswith("城市管理岗") and req["lat"] is not None
    assert req["address"] and "荆河路13号" not in req["address"]


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"api_key": "cg_wrong"}, 403, "api_key"),
        ({"api_key": ""}, 403, "api_key"),
        ({"service_code": "4242"}, 400, "service_code"),
        ({"service_code": None}, 400, "service_code"),
        ({"lat": None, "long": None}, 400, "location is missing"),
        ({"long": None}, 400, "long is missing"),
        ({"lat": "abc"}, 400, "lat"),
        ({"lat": "95", "long": "117.16"}, 400, "lat"),
        ({"attribute[colour]": "red"}, 400, "attribute[colour]"),
        ({"attribute[crs]": "mars"}, 400, "attribute[crs]"),
        ({"description": "x" * 4001}, 400, "description"),
        ({"phone": "call me"}, 400, "phone"),
        # PostgreSQL text cannot hold NUL: refused by the request model, in the spec's format.
        ({"description": "noise\x00at night"}, 400, "NUL"),
        ({"first_name": "Li\x00"}, 400, "NUL"),
    ],
)
def test_bad_posts_answer_in_spec_format_and_write_nothing(env, fields, status, words):
    client, intake, _, engine = env
    key = fields.get("api_key", intake)
    rest = {k: v for k, v in fields.items() if k != "api_key"}
    for fmt in ("json", "xml"):
        resp = _post(client, key, fmt=fmt, **rest)
        assert resp.status_code == status, resp.text
        if fmt == "json":
            body = resp.json()
            assert isinstance(body, list) and body[0]["code"] == status
            assert words in body[0]["description"]
        else:
            err = _xml(resp).find("error")
            assert err.findtext("code") == str(status) and words in err.findtext("description")
    with engine.connect() as conn:
        assert conn.execute(text('SELECT count(*) FROM "case"')).scalar_one() == 0


def _spec_error(resp, fmt: str) -> tuple[str, str]:
    """The (code, description) of the spec's one-error answer, from JSON or XML."""
    if fmt == "json":
        body = resp.json()
        assert isinstance(body, list) and len(body) == 1, body
        return str(body[0]["code"]), body[0]["description"]
    err = _xml(resp).find("error")
    return err.findtext("code"), err.findtext("description")


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413_in_the_spec_format(env, chunked):
    # Refused before any route runs when Content-Length says so, by the route when a chunked
    # body passes the limit: either way a 413 in the spec's error format, not a parse error.
    client, intake, _, engine = env
    limit = client.app.state.settings.max_body_bytes
    form = f"api_key={intake}&service_code=0599&description=".encode() + b"x" * limit
    for fmt in ("json", "xml"):
        content = iter([form[:65536], form[65536:]]) if chunked else form
        resp = client.post(f"{BASE}/requests.{fmt}", content=content,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status_code == 413, resp.text
        assert ("content-length" in {k.lower() for k in resp.request.headers}) is not chunked
        code, description = _spec_error(resp, fmt)
        assert code == "413" and str(limit) in description
    with engine.connect() as conn:
        assert conn.execute(text('SELECT count(*) FROM "case"')).scalar_one() == 0


def test_a_nul_in_the_query_is_the_specs_400_in_the_format_asked_for(env):
    client, *_ = env
    for fmt in ("json", "xml"):
        resp = client.get(f"{BASE}/requests.{fmt}?service_code=%00")
        assert resp.status_code == 400
        code, description = _spec_error(resp, fmt)
        assert code == "400" and "NUL" in description


def test_planner_key_may_not_submit_and_json_body_is_refused(env):
    client, _, planner, _ = env
    resp = _post(client, planner)
    assert resp.status_code == 403 and "planner" in resp.json()[0]["description"]
    as_json = client.post(f"{BASE}/requests.json", json={"service_code": "0599"})
    assert as_json.status_code == 400 and "form-encoded" in as_json.json()[0]["description"]
    assert client.get(f"{BASE}/services.csv").status_code == 404


def _seed_cases(engine) -> dict[str, str]:
    """Three cases at known times and states."""
    now = datetime.now(UTC)
    return _insert_cases(engine, {"recent_open": (now - timedelta(days=2), "registered", "0504"),
                                  "recent_closed": (now - timedelta(days=5), "closed", "0101"),
                                  "old": (now - timedelta(days=200), "registered", "0504")})


def _insert_cases(engine, rows: dict[str, tuple]) -> dict[str, str]:
    """A case per key at its (reported_at, status, category), written directly (the ledger is
    not under test), with reporter data no read may show; their numbers by key."""
    out = {}
    with engine.begin() as conn:
        for key, (at, status, code) in rows.items():
            out[key] = conn.execute(text(
                "INSERT INTO \"case\" (channel, category_code, reported_at, status, "
                "reporter_name, reporter_phone, geom) VALUES ('hotline_12345', :c, :at, :s, "
                "'李四', '13912345678', ST_SetSRID(ST_MakePoint(117.16, 35.08), 4326)) "
                "RETURNING case_no"), {"c": code, "at": at, "s": status}).scalar_one()
    return out


def test_get_requests_filters(env):
    client, _, _, engine = env
    ids = _seed_cases(engine)
    default = client.get(f"{BASE}/requests.json").json()
    assert {r["service_request_id"] for r in default} == {ids["recent_open"], ids["recent_closed"]}
    assert "13912345678" not in str(default) and "李四" not in str(default)
    by_status = client.get(f"{BASE}/requests.json", params={"status": "closed"}).json()
    assert [r["service_request_id"] for r in by_status] == [ids["recent_closed"]]
    assert by_status[0]["status"] == "closed" and by_status[0]["expected_datetime"] is None
    by_code = client.get(f"{BASE}/requests.json", params={"service_code": "0504"}).json()
    assert [r["service_request_id"] for r in by_code] == [ids["recent_open"]]
    start = (datetime.now(UTC) - timedelta(days=210)).isoformat()
    end = (datetime.now(UTC) - timedelta(days=150)).isoformat()
    old = client.get(f"{BASE}/requests.json", params={"start_date": start, "end_date": end}).json()
    assert [r["service_request_id"] for r in old] == [ids["old"]]
    listed = client.get(f"{BASE}/requests.json",
                        params={"service_request_id": f"{ids['old']},{ids['recent_open']}"}).json()
    assert {r["service_request_id"] for r in listed} == {ids["old"], ids["recent_open"]}
    xml = _xml(client.get(f"{BASE}/requests.xml", params={"status": "open"}))
    assert [r.findtext("service_request_id") for r in xml.findall("request")] == [ids["recent_open"]]


def test_get_requests_filters_combine(env):
    """Dates (both ends included, to the microsecond), service codes and status together;
    a rejected case and one merged into another are closed; a noise complaint is never
    listed; service_request_id overrides every other filter."""
    client, _, _, engine = env
    start = datetime.now(UTC).replace(microsecond=123456) - timedelta(days=20)
    end = start + timedelta(days=10)
    rows = {"first": (start, "registered", "0504"), "last": (end, "rejected", "0504"),
            "merged": (start + timedelta(days=1), "registered", "0101"),
            "closed": (start + timedelta(days=2), "closed", "0101"),
            "noise": (start + timedelta(days=3), "registered", "0599"),
            "after": (end + timedelta(microseconds=1), "registered", "0504")}
    nos = _insert_cases(engine, rows)
    with engine.begin() as conn:
        conn.execute(text('UPDATE "case" SET merged_into = (SELECT id FROM "case" WHERE '
                          "case_no = :into) WHERE case_no = :no"),
                     {"into": nos["first"], "no": nos["merged"]})

    def listed(**params) -> list[str]:
        got = client.get(f"{BASE}/requests.json", params={
            "start_date": start.isoformat(), "end_date": end.isoformat(), **params})
        assert got.status_code == 200, got.text
        return [r["service_request_id"] for r in got.json()]

    newest_first = [nos[k] for k in ("last", "closed", "merged", "first")]
    assert listed() == newest_first
    assert listed(status="open,closed") == newest_first
    assert listed(service_code="0504") == [nos["last"], nos["first"]]
    assert listed(service_code="0504", status="closed") == [nos["last"]]
    assert listed(service_code="0504,0101", status="open") == [nos["first"]]
    assert listed(service_code="0101", status="closed") == [nos["closed"], nos["merged"]]
    assert listed(service_code="0599") == []
    ids = ",".join(nos[k] for k in ("first", "noise", "after"))
    assert listed(service_request_id=ids, status="closed", service_code="0101") == \
        [nos["after"], nos["first"]]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"},
         "90 days"),
        ({"start_date": "2026-06-01", "end_date": "2026-05-01"}, "before start_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"status": "pending"}, "status"),
    ],
)
def test_get_requests_bad_filters(env, params, words):
    client, *_ = env
    resp = client.get(f"{BASE}/requests.json", params=params)
    assert resp.status_code == 400 and words in resp.json()[0]["description"]
    xml = client.get(f"{BASE}/requests.xml", params=params)
    assert xml.status_code == 400 and _xml(xml).tag == "errors"


def test_a_plain_form_client_over_http(city_db_url, city_engine):
    """What an existing Open311 client does: form POST with requests, then poll the status."""
    with city_engine.begin() as conn:
        _, key = create_token(conn, "intake", "external open311 app")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(database_url=city_db_url), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}{BASE}"
        services = requests.get(f"{base}/services.json", timeout=10).json()
        code = next(s["service_code"] for s in services if s["service_code"] == "0504")
        posted = requests.post(f"{base}/requests.json", timeout=10, data={
            "api_key": key, "service_code": code, **WENCHANG, "description": "店外经营占道"})
        assert posted.status_code == 201, posted.text
        token = posted.json()[0]["token"]
        found = requests.get(f"{base}/tokens/{token}.json", timeout=10).json()[0]
        status = requests.get(f"{base}/requests/{found['service_request_id']}.json", timeout=10)
        assert status.json()[0]["status"] == "open"
        assert status.json()[0]["service_code"] == "0504"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
