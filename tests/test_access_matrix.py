"""Access and hostile input on the sample city (real PostGIS):

* the access matrix of ``tests/helpers/access_matrix.py``, one test per (operation, caller), and a
  check that every route of the app has a row;
* tokens are stored only as hashes;
* a reporter's name and phone never reach planner or public outputs (API JSON/GeoJSON,
  history, stats, hotspot JSON/CSV, maps pages and their JSON, Open311, the CSV/XLSX report);
* SQL-injection text in every filter and path parameter is refused or matches nothing, and
  the tables are intact afterwards;
* path traversal in static asset URLs and in the file arguments of the CLI is refused.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from api.app import create_app
from casegrid.db import make_engine
from casegrid.settings import Settings
from cases.intake import NewCase, create_case
from cases.tokens import authenticate, create_token, revoke_token
from cases.workflow import apply_action
from tests.helpers.access_matrix import CALLERS, OPERATIONS, PATH_TO_STATE, Operation
from tests.helpers.app_routes import walk_routes
from tests.helpers.databases import fresh_database
from tests.helpers.evidence_files import png
from tests.helpers.intake_api import interior_points

REPORTER_NAME = "Zhuang Qiaoyun 庄巧云"
REPORTER_PHONE = "13987654321"
SECRET_NEEDLES = (REPORTER_NAME, "庄巧云", "Zhuang Qiaoyun", REPORTER_PHONE, "987654321")


@dataclass
class Matrix:
    """A client on a fresh sample city with a token per caller and a case factory."""

    app: FastAPI
    client: TestClient
    engine: Engine
    tokens: dict[str, str | None]
    own: tuple[str, float, float]      # (community code, lon, lat) of officer_own
    other: tuple[str, float, float]
    prep: dict[str, str]               # admin tokens that prepare cases (not in the table)

    def headers(self, caller: str) -> dict[str, str]:
        secret = self.tokens[caller]
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def new_case(self, state: str = "registered", *, where: tuple[str, float, float] | None = None,
                 channel: str = "hotline_12345", external_id: str | None = None,
                 category: str = "0504") -> dict:
        """A fresh case in ``state`` (at the officer's own community unless ``where``)."""
        _code, lon, lat = where or self.own
        with self.engine.begin() as conn:
            builder = authenticate(conn, self.prep["builder"])
            handler = authenticate(conn, self.prep["handler"])
            case = create_case(conn, NewCase(
                lon=lon, lat=lat, category=category, channel=channel,
                external_id=external_id or uuid.uuid4().hex, description="matrix case",
                reported_at=datetime.now(UTC) - timedelta(hours=2), reporter_name=REPORTER_NAME,
                reporter_phone=REPORTER_PHONE), builder).case
            for step in PATH_TO_STATE[state]:
                actor = handler if step["action"] == "handle" else builder
                apply_action(conn, case["id"], step["action"], dict(step), actor)
        return case


@pytest.fixture(scope="module")
def matrix(pg_cluster, city_template, tmp_path_factory) -> Iterator[Matrix]:
    for url in fresh_database(pg_cluster, city_template):
        engine = make_engine(url)
        points = interior_points(engine)
        own, other = points[0], points[-1]
        tokens: dict[str, str | None] = {"no_token": None}
        with engine.begin() as conn:
            for caller in CALLERS:
                role = {"officer_own": "community_officer", "officer_other": "community_officer",
                        "revoked": "dispatcher"}.get(caller, caller)
                scope = {"officer_own": [own[0]], "officer_other": [other[0]]}.get(caller)
                if caller != "no_token":
                    token_id, tokens[caller] = create_token(conn, role, f"matrix-{caller}", scope)
                if caller == "revoked":
                    revoke_token(conn, token_id)
            prep = {name: create_token(conn, "admin", f"prep-{name}")[1]
                    for name in ("builder", "handler")}
        app = create_app(Settings(attachment_dir=tmp_path_factory.mktemp("files")),
                         database_url=url)
        try:
            with TestClient(app) as client:
                yield Matrix(app, client, engine, tokens, own, other, prep)
        finally:
            engine.dispose()


# --- the table covers every route ----------------------------------------------------------


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route of the app, HEAD aside."""
    return {(method, path) for path, route in walk_routes(app)
            for method in getattr(route, "methods", None) or {"GET"} if method != "HEAD"}


def test_the_table_has_a_row_for_every_route():
    routes = app_routes(create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/x"))
    table = {(op.method, op.route) for op in OPERATIONS}
    assert routes - table == set(), "routes without a row in tests/helpers/access_matrix.py"
    assert table - routes == set(), "rows in tests/helpers/access_matrix.py for routes that do not exist"
    assert len(routes) >= 30


def test_the_table_is_well_formed():
    names = [op.name for op in OPERATIONS]
    assert len(names) == len(set(names))
    for op in OPERATIONS:
        assert len(op.expected) == len(CALLERS), op.name
        assert op.state is None or op.state in {*PATH_TO_STATE, "open311", "activity"}, op.name


# --- the matrix itself ---------------------------------------------------------------------


_PNG = png(size=(32, 24))


def _call(m: Matrix, op: Operation, caller: str):
    url = op.url or op.route
    body = dict(op.body) if op.body else None
    if op.state == "activity":  # an activity of officer_own's community, with a photo
        builder = {"Authorization": f"Bearer {m.prep['builder']}"}
        act = m.client.post("/api/v1/activities", headers=builder, json={
            "started_at": "2026-05-20T09:00:00+08:00", "kind": "volunteer",
            "title": "matrix photos", "communities": [m.own[0]]}).json()
        url = url.replace("{activity_id}", str(act["id"]))
        if "{attachment_id}" in url:
            added = m.client.post(f"/api/v1/activities/{act['id']}/attachments",
                                  headers=builder, files=[("photo", ("m.png", _PNG, "image/png"))])
            url = url.replace("{attachment_id}", str(added.json()["photos"][0]["id"]))
    elif op.state == "open311":
        token = str(uuid.uuid4())
        m.new_case(channel="open311", external_id=token)
        url = url.replace("{token}", token)
    elif op.state is not None:
        case = m.new_case(op.state)
        url = url.replace("{case_id}", str(case["id"])).replace("{case_no}", case["case_no"])
        if "{attachment_id}" in url:
            added = m.client.post(f"/api/v1/cases/{case['id']}/attachments",
                                  headers={"Authorization": f"Bearer {m.prep['builder']}"},
                                  files=[("photo", ("m.png", _PNG, "image/png"))])
            url = url.replace("{attachment_id}", str(added.json()["attachments"][0]["id"]))
    if op.route == "/api/v1/activities" and op.method == "POST":
        body = {**(body or {}), "communities": [m.own[0]]}
    if op.route == "/api/v1/cases":
        _code, lon, lat = m.own
        body = {**(body or {}), "lon": lon, "lat": lat, "external_id": uuid.uuid4().hex}
    if op.auth == "form":  # a page's form (POST /track): fields, not JSON
        form = {k: v.replace("{case_no}", case["case_no"]) for k, v in (body or {}).items()}
        return m.client.post(url, data=form, headers=m.headers(caller))
    if op.auth == "api_key":
        _code, lon, lat = m.own
        form = {**(body or {}), "lat": str(lat), "long": str(lon)}
        if m.tokens[caller]:
            form["api_key"] = m.tokens[caller]
        return m.client.post(url, data=form)
    if op.upload:
        return m.client.post(url, headers=m.headers(caller), data={"caption": "matrix"},
                             files=[("photo", ("m.png", _PNG, "image/png"))],
                             follow_redirects=False)
    return m.client.request(op.method, url, json=body, headers=m.headers(caller),
                            follow_redirects=False)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_access(matrix: Matrix, op: Operation, caller: str):
    r = _call(matrix, op, caller)
    expected = op.expect()[caller]
    assert r.status_code == expected, f"{op.name} as {caller}: {r.status_code} {r.text[:300]}"
    # Open311 answers in its own format, the workbench's pages in HTML.
    if expected >= 400 and not op.route.startswith(("/open311/", "/login", "/work")):
        body = r.json()
        assert body["code"] and body["detail"], body


def test_other_communitys_officer_sees_none_of_its_cases_in_lists_and_maps(matrix: Matrix):
    case = matrix.new_case()
    h = matrix.headers("officer_other")
    ids = [c["id"] for c in matrix.client.get("/api/v1/cases?limit=500", headers=h).json()["items"]]
    assert case["id"] not in ids
    own_ids = [c["id"] for c in matrix.client.get(
        "/api/v1/cases?limit=500", headers=matrix.headers("officer_own")).json()["items"]]
    assert case["id"] in own_ids
    view = matrix.client.get("/maps/api/cases?bbox=116.9,34.9,117.4,35.3", headers=h).json()
    assert str(case["id"]) not in re.findall(r'"id":\s*(\d+)', str(view).replace("'", '"'))


# --- tokens are stored hashed ----------------------------------------------------------------


def test_tokens_are_stored_only_as_sha256_hashes(matrix: Matrix):
    with matrix.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM api_token")).mappings()]
        columns = [r[0] for r in conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_token'"))]
    secrets = [s for s in matrix.tokens.values() if s] + list(matrix.prep.values())
    dump = repr(rows)
    for secret in secrets:
        assert secret not in dump
        assert secret[8:40] not in dump  # not even a part of it
    hashes = {r["token_hash"] for r in rows}
    for secret in secrets:
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes
    assert not {"token", "secret", "plain"} & set(columns)


# --- reporter data never in planner or public outputs --------------------------------------


def _leaks(payload: str | bytes) -> list[str]:
    text_ = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return [n for n in SECRET_NEEDLES if n in text_]


def test_reporter_name_and_phone_never_reach_planner_or_public_outputs(matrix: Matrix, tmp_path):
    case = matrix.new_case("verified")
    token = str(uuid.uuid4())
    m311 = matrix.new_case(channel="open311", external_id=token)
    # Also an Open311 submission carrying the reporter's name and phone in its own fields.
    _code, lon, lat = matrix.own
    posted = matrix.client.post("/open311/v2/requests.json", data={
        "api_key": matrix.tokens["intake"], "service_code": "0504", "lat": str(lat),
        "long": str(lon), "description": "stall on the pavement", "first_name": "Zhuang",
        "last_name": "Qiaoyun 庄巧云", "phone": REPORTER_PHONE})
    assert posted.status_code == 201, posted.text
    posted_no = posted.json()[0]["service_request_id"]

    # Control: a dispatcher does see them, so the needles are where they should be.
    seen = matrix.client.get(f"/api/v1/cases/{case['id']}", headers=matrix.headers("dispatcher"))
    assert _leaks(seen.text), "control failed: the dispatcher should see the reporter"

    planner = matrix.headers("planner")
    cid = case["id"]
    planner_urls = [
        "/api/v1/cases?limit=500", "/api/v1/cases?limit=500&format=geojson",
        f"/api/v1/cases/{cid}", f"/api/v1/cases/{cid}/history",
        "/api/v1/stats?from=2020-01-01&to=2030-12-31&group_by=community",
        "/api/v1/hotspots/pois", "/api/v1/hotspots/pois?format=csv",
        "/maps/dispatch", "/maps/api/cases?bbox=116.9,34.9,117.4,35.3",
        f"/maps/api/cases/{cid}", f"/maps/cases/{cid}", "/maps/hotspots",
    ]
    public_urls = [
        "/open311/v2/requests.json", "/open311/v2/requests.xml",
        f"/open311/v2/requests/{case['case_no']}.json", f"/open311/v2/requests/{posted_no}.xml",
        f"/open311/v2/requests/{m311['case_no']}.json", f"/open311/v2/tokens/{token}.json",
        "/open311/v2/services.json", "/open311/v2/discovery.json",
    ]
    checked = 0
    for url in planner_urls:
        r = matrix.client.get(url, headers=planner)
        assert r.status_code == 200, (url, r.text[:200])
        assert _leaks(r.content) == [], f"planner output {url} shows the reporter"
        checked += 1
    for url in public_urls:
        r = matrix.client.get(url)
        assert r.status_code == 200, (url, r.text[:200])
        assert _leaks(r.content) == [], f"public output {url} shows the reporter"
        checked += 1
    # The map popups and pages show no reporter to anyone (the maps' own promise).
    for url in (f"/maps/api/cases/{cid}", f"/maps/cases/{cid}",
                "/maps/api/cases?bbox=116.9,34.9,117.4,35.3"):
        r = matrix.client.get(url, headers=matrix.headers("dispatcher"))
        assert r.status_code == 200 and _leaks(r.content) == [], url
    # The planner's lists really contain the case (the grep looked at it).
    listed = matrix.client.get("/api/v1/cases?limit=500", headers=planner).json()["items"]
    mine = next(c for c in listed if c["id"] == cid)
    assert mine["reporter_name"] is None and mine["reporter_phone"] is None
    assert checked == len(planner_urls) + len(public_urls)


def test_report_csv_and_xlsx_carry_no_reporter_data(matrix: Matrix, tmp_path, monkeypatch):
    import casegrid.cli.case as case_cli
    from casegrid.cli import app as cli

    matrix.new_case("replied")
    monkeypatch.setattr(case_cli, "engine", lambda: matrix.engine)
    day = datetime.now(UTC).date()
    out = tmp_path / "report.xlsx"
    res = CliRunner().invoke(cli, ["report", "--from", (day - timedelta(days=2)).isoformat(),
                                   "--to", (day + timedelta(days=1)).isoformat(), "--out", str(out)])
    assert res.exit_code == 0, res.output
    written = sorted(tmp_path.iterdir())
    assert out in written and any(p.suffix == ".csv" for p in written)
    for p in written:
        if p.suffix == ".csv":
            assert _leaks(p.read_bytes()) == [], p.name
    wb = openpyxl.load_workbook(out)
    cells = [str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row]
    assert cells and _leaks("\n".join(cells)) == []


def test_map_files_written_by_the_cli_carry_no_reporter_data(matrix: Matrix, tmp_path):
    from casegrid.cli import app as cli

    matrix.new_case("dispatched")
    url = matrix.engine.url.render_as_string(hide_password=False)
    for cmd in ("dispatch", "hotspots"):
        out = tmp_path / f"{cmd}.html"
        res = CliRunner().invoke(cli, ["map", cmd, "--out", str(out), "--database-url", url,
                                       "--tiles", "none"])
        assert res.exit_code == 0, res.output
        assert _leaks(out.read_bytes()) == [], cmd


# --- SQL injection -------------------------------------------------------------------------

INJECTIONS = ("' OR 1=1 --", '1; DROP TABLE "case"', "1' UNION SELECT token_hash FROM api_token --",
              "0101'); DELETE FROM api_token; --", "%' OR '%'='")

# Every filter and path parameter; {x} is where the injection goes. Each must be refused
# (4xx) unless listed in FREE_CODE_FILTERS.
INJECTABLE = [
    *[f"/api/v1/cases?{p}={{x}}" for p in
      ("status", "category", "community", "subdistrict", "channel", "bbox", "from", "to",
       "cursor", "unrouted", "overdue", "limit", "format")],
    *[f"/maps/api/cases?bbox=116.9,34.9,117.4,35.3&{p}={{x}}" for p in
      ("subdistrict", "community", "category", "channel", "state", "date_from", "date_to",
       "zoom", "lang", "tiles")],
    "/maps/api/cases?bbox={x}",
    *[f"/api/v1/hotspots/pois?{p}={{x}}" for p in
      ("category", "kind", "rings", "sort", "ring", "format", "date_from", "date_to",
       "hour_from", "hour_to", "cell_m", "lang")],
    "/api/v1/stats?from=2020-01-01&to=2030-12-31&group_by={x}",
    "/api/v1/stats?from={x}&to=2030-12-31", "/api/v1/stats?from=2020-01-01&to={x}",
    "/api/v1/route?lon=117.16&lat=35.08&crs={x}", "/api/v1/route?lon={x}&lat=35.08",
    *[f"/maps/dispatch?{p}={{x}}" for p in ("community", "category", "state", "channel",
                                            "date_from", "lang", "tiles")],
    *[f"/maps/hotspots?{p}={{x}}" for p in ("category", "kind", "rings", "lang", "cell_m")],
    "/api/v1/cases/{x}", "/api/v1/cases/{x}/history", "/maps/api/cases/{x}", "/maps/cases/{x}",
]
# Filters on free codes (categories, communities, subdistricts): text is bound as a
# parameter and simply matches nothing. The value says how a 200 shows "nothing matched".
FREE_CODE_FILTERS = {
    "/api/v1/cases?category={x}": ("items", []),
    "/api/v1/cases?community={x}": ("items", []),
    "/api/v1/cases?subdistrict={x}": ("items", []),
    "/maps/api/cases?bbox=116.9,34.9,117.4,35.3&category={x}": ("total", 0),
    "/maps/api/cases?bbox=116.9,34.9,117.4,35.3&community={x}": ("total", 0),
    "/maps/api/cases?bbox=116.9,34.9,117.4,35.3&subdistrict={x}": ("total", 0),
    "/api/v1/hotspots/pois?category={x}": ("city_cases", 0),
    # The pages render the same filters the JSON above answers; they carry no case list.
    "/maps/dispatch?community={x}": None, "/maps/dispatch?category={x}": None,
    "/maps/hotspots?category={x}": None,
}
HEAVY = ("/maps/hotspots", "/maps/dispatch", "/api/v1/hotspots/pois")
OPEN311_INJECTABLE = [
    *[f"/open311/v2/requests.json?{p}={{x}}" for p in
      ("service_request_id", "service_code", "start_date", "end_date", "status")],
    "/open311/v2/services/{x}.json", "/open311/v2/requests/{x}.json", "/open311/v2/tokens/{x}.json",
]


def _table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in ("case", "case_event", "api_token", "community", "category")}


def test_sql_injection_in_every_filter_and_path_parameter_is_refused(matrix: Matrix):
    from urllib.parse import quote

    matrix.new_case()
    before = _table_counts(matrix.engine)
    for template in INJECTABLE:
        # A hotspot analysis or a map page costs about a second: two payloads there.
        heavy = template.startswith(HEAVY) and template in FREE_CODE_FILTERS
        for payload in INJECTIONS[:2] if heavy else INJECTIONS:
            url = template.replace("{x}", quote(payload, safe=""))
            r = matrix.client.get(url, headers=matrix.headers("admin"))
            if r.status_code == 200 and template in FREE_CODE_FILTERS:
                empty = FREE_CODE_FILTERS[template]
                if empty is None:
                    assert r.headers["content-type"].startswith("text/html"), url
                else:
                    assert r.json()[empty[0]] == empty[1], (url, r.text[:300])
                continue
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
            assert r.json()["code"] and r.json()["detail"], url
    for template in OPEN311_INJECTABLE:  # the spec's 400/404, or an empty list
        for payload in INJECTIONS:
            url = template.replace("{x}", quote(payload, safe=""))
            r = matrix.client.get(url)
            assert r.status_code < 500, (url, r.text[:300])
            assert r.status_code in (400, 404) or r.json() == [], (url, r.text[:300])
    assert _table_counts(matrix.engine) == before


# --- path traversal ------------------------------------------------------------------------

MAPPING = Path(__file__).resolve().parent.parent / "cases" / "mappings" / "hotline12345_zh.toml"
TRAVERSALS = ("../../../../etc/passwd", "..%2f..%2f..%2f..%2fetc%2fpasswd",
              "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "....//....//etc/passwd",
              "/etc/passwd", "..\\..\\..\\etc\\passwd", "leaflet.js/../../../../../etc/passwd")


@pytest.mark.parametrize("package", ["leaflet", "casegrid", "..", "%2e%2e", "folium"])
def test_path_traversal_in_static_asset_urls_is_refused(matrix: Matrix, package):
    for attempt in TRAVERSALS:
        r = matrix.client.get(f"/static/vendor/{package}/{attempt}")
        assert r.status_code in (400, 404), (package, attempt, r.status_code)
        assert b"root:" not in r.content
    assert matrix.client.get("/static/vendor/leaflet/leaflet.js").status_code == 200


def _cli_path_commands(tmp_path) -> list[tuple[str, list[str]]]:
    """Every CLI command that reads a file, with the traversal as that file."""
    evil = "../../../../../../../../etc/passwd"
    good = str(tmp_path / "ok.csv")
    return [
        ("boundaries import", ["boundaries", "import", evil, "--level", "community",
                               "--code-field", "code", "--name-field", "name"]),
        ("posts import", ["posts", "import", evil]),
        ("poi import", ["poi", "import", evil, "--kind", "school", "--name-field", "name"]),
        ("calendar import", ["calendar", "import", evil]),
        ("route-file", ["route-file", evil, "--lon-col", "x", "--lat-col", "y",
                        "--out", str(tmp_path / "out.csv")]),
        ("cases import", ["cases", "import", evil, "--mapping", str(MAPPING)]),
        ("cases import --mapping", ["cases", "import", good, "--mapping", evil]),
    ]


def test_path_traversal_in_cli_file_arguments_is_refused_cleanly(matrix: Matrix, tmp_path,
                                                                    monkeypatch):
    import casegrid.cli._common as common
    from casegrid.cli import app as cli

    (tmp_path / "ok.csv").write_text("x,y\n117.16,35.08\n")
    for module in ("boundaries", "routing", "calendar", "case", "cases_import"):
        mod = __import__(f"casegrid.cli.{module}", fromlist=["engine"])
        if hasattr(mod, "engine"):
            monkeypatch.setattr(mod, "engine", lambda: matrix.engine)
    monkeypatch.setattr(common, "engine", lambda: matrix.engine)
    before = _table_counts(matrix.engine)
    runner = CliRunner()
    for name, args in _cli_path_commands(tmp_path):
        res = runner.invoke(cli, args)
        output = res.output + (res.stderr if res.stderr_bytes is not None else "")
        assert res.exit_code == 2, (name, res.exit_code, output[-600:], res.exception)
        assert "Traceback" not in output, (name, output[-600:])
        assert "root:" not in output, name  # nothing of the file is echoed
        assert output.strip(), name
    assert _table_counts(matrix.engine) == before
