"""The publication policy (cases.publication) over every public route: noise complaints do
not exist for the public, a public case shows a location snapped to the grid and the exact
point never appears, a description only once staff approved it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.helpers.intake_api import interior_points
from tests.helpers.public_grid import CELL, TO_METRES, cell_centre


def _far_from_centre(engine):
    """An interior point at least 15 m from its cell's centre on both axes, so that no
    rounding of the snapped location can spell the exact one."""
    for code, lon, lat in interior_points(engine):
        x, y = TO_METRES.transform(lon, lat)
        if min(abs(x % CELL - 50), abs(y % CELL - 50)) > 15:
            return code, lon, lat
    raise AssertionError("no suitable point")


def _exact_spellings(lon: float, lat: float) -> list[str]:
    """How the exact point could appear in a body: 4 decimals (about 10 m) and more."""
    out = []
    for v in (lon, lat):
        out += [f"{v:.4f}", f"{v:.5f}", repr(round(v, 7))]
    return out


@pytest.fixture
def cases(api):
    """A noise complaint and a public one (road flooding, 0406) at the same exact point,
    with contact data in the text."""
    _, lon, lat = _far_from_centre(api.engine)
    made = {}
    for key, category in (("noise", "0599"), ("public", "0406")):
        r = api.post_case({"lon": lon, "lat": lat, "category": category, "channel": "app",
                           "external_id": f"pub-{key}", "description": f"{key} 积水 请回电13812345678",
                           "address": "荆河路13号3单元", "reporter_phone": "13812345678"})
        assert r.status_code == 201, r.text
        made[key] = r.json()
    with api.engine.connect() as conn:
        exact = conn.execute(text('SELECT ST_X(geom), ST_Y(geom) FROM "case" WHERE id = :i'),
                             {"i": made["public"]["id"]}).one()
    return {**made, "lon": exact[0], "lat": exact[1]}


def test_noise_is_absent_from_the_public_listing_and_404_by_id(api, cases):
    listing = api.client.get("/open311/v2/requests.json").json()
    ids = [r["service_request_id"] for r in listing]
    assert cases["public"]["case_no"] in ids and cases["noise"]["case_no"] not in ids
    for fmt in ("json", "xml"):
        noise = api.client.get(f"/open311/v2/requests/{cases['noise']['case_no']}.{fmt}")
        unknown = api.client.get(f"/open311/v2/requests/CG20269999999.{fmt}")
        assert noise.status_code == unknown.status_code == 404
        assert noise.text.replace(cases["noise"]["case_no"], "X") == \
            unknown.text.replace("CG20269999999", "X")
    by_ids = api.client.get("/open311/v2/requests.json", params={
        "service_request_id": f"{cases['noise']['case_no']},{cases['public']['case_no']}"}).json()
    assert [r["service_request_id"] for r in by_ids] == [cases["public"]["case_no"]]


def test_public_case_shows_the_grid_cell_not_the_point(api, cases):
    (req,) = api.client.get(f"/open311/v2/requests/{cases['public']['case_no']}.json").json()
    lon, lat = cell_centre(cases["lon"], cases["lat"])
    assert req["long"] == pytest.approx(lon, abs=2e-6) and req["lat"] == pytest.approx(lat, abs=2e-6)
    # Status, dates, post and category stay public; no description, no reported address.
    assert req["status"] == "open" and req["service_code"] == "0406"
    assert req["agency_responsible"] and req["requested_datetime"]
    assert req["description"] is None and "荆河路13号" not in str(req)


def test_a_category_marked_sensitive_leaves_the_public(api, cases):
    no = cases["public"]["case_no"]
    r = api.client.put("/api/v1/categories/0406/public", json={"public": False},
                       headers=api.headers("admin"))
    assert r.status_code == 200 and r.json()["public"] is False
    assert api.client.get(f"/open311/v2/requests/{no}.json").status_code == 404
    refused = api.client.put("/api/v1/categories/0406/public", json={"public": True},
                             headers=api.headers("dispatcher"))
    assert refused.status_code == 403
    bad = api.client.put("/api/v1/categories/0406/public", json={"public": "yes"},
                         headers=api.headers("admin"))
    assert bad.status_code == 422 and "public" in bad.text
    policy = api.client.get("/api/v1/categories/public", headers=api.headers("planner")).json()
    flags = {c["code"]: c["public"] for c in policy}
    assert flags["0406"] is False and flags["0599"] is False and flags["0504"] is True


def test_only_an_approved_description_is_public(api, cases):
    no, case_id = cases["public"]["case_no"], cases["public"]["id"]

    def public_description():
        return api.client.get(f"/open311/v2/requests/{no}.json").json()[0]["description"]

    assert public_description() is None
    refused = api.client.post(f"/api/v1/cases/{case_id}/actions", headers=api.headers("planner"),
                              json={"action": "publish_description"})
    assert refused.status_code == 403
    r = api.client.post(f"/api/v1/cases/{case_id}/actions", headers=api.headers("dispatcher"),
                        json={"action": "publish_description"})
    assert r.status_code == 200, r.text
    assert public_description() == "public 积水 请回电138****5678"
    r = api.client.post(f"/api/v1/cases/{case_id}/actions", headers=api.headers("supervisor"),
                        json={"action": "publish_description", "text": "道路积水, 已处置"})
    assert public_description() == "道路积水, 已处置"
    r = api.client.post(f"/api/v1/cases/{case_id}/actions", headers=api.headers("supervisor"),
                        json={"action": "publish_description", "publish": False})
    assert r.status_code == 200 and public_description() is None
    history = api.client.get(f"/api/v1/cases/{case_id}/history", headers=api.headers("dispatcher"))
    assert [e["actor"] for e in history.json()["events"] if e["action"] == "publish_description"
            ] == ["test-dispatcher", "test-supervisor", "test-supervisor"]


# Values for the path parameters of public routes. A new public route with a parameter not
# named here fails test_no_public_route_shows_the_exact_point until it is added: every
# route that answers without credentials is checked.
def _path_values(cases, token):
    return {
        "fmt": ["json", "xml"],
        "service_request_id": [cases["public"]["case_no"], cases["noise"]["case_no"]],
        "case_no": [cases["public"]["case_no"], cases["noise"]["case_no"]],
        "token": [token],
        "service_code": ["0406", "0599"],
        "case_id": [str(cases["public"]["id"]), str(cases["noise"]["id"])],
        "code": ["0406"],
    }


def _urls(path: str, values: dict) -> tuple[list[str], list[str]]:
    """The URLs to try for a route, and the names of its parameters without values here
    (tried with "1": a route that needs credentials answers 401/403 before reading them)."""
    names = re.findall(r"{(\w+)(?::\w+)?}", path)
    urls = [path]
    missing = [n for n in names if n not in values]
    for name in names:
        urls = [re.sub(r"{" + name + r"(?::\w+)?}", v, u, count=1)
                for u in urls for v in values.get(name, ["1"])]
    return urls, missing


def test_no_public_route_shows_the_exact_point(api, cases):
    # An Open311 submission, so the tokens route has a token of a public case.
    form = {"api_key": api.tokens["intake"], "service_code": "0406", "lat": str(cases["lat"]),
            "long": str(cases["lon"]), "description": "积水"}
    posted = api.client.post("/open311/v2/requests.json", data=form)
    assert posted.status_code == 201, posted.text
    values = _path_values(cases, posted.json()[0]["token"])
    api.client.cookies.clear()
    public, checked = [], 0
    # Every GET operation of the app, from its OpenAPI document (the documented list of
    # routes: routers are included lazily, so app.routes does not list them).
    paths = api.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if "get" not in operations:
            continue
        urls, missing = _urls(path, values)
        for url in urls:
            r = api.client.get(url)
            if r.status_code in (401, 403):
                continue
            assert not missing, f"public route {path}: add values for {missing} to _path_values"
            checked += 1
            if r.status_code == 200:
                public.append(url)
            for spelled in _exact_spellings(cases["lon"], cases["lat"]):
                assert spelled not in r.text, f"{url} shows the exact point ({spelled})"
            assert "13812345678" not in r.text and "荆河路13号" not in r.text, url
    # The sweep met the public routes (a sweep that checks nothing proves nothing).
    assert any("/requests/" in u for u in public) and any("/tokens/" in u for u in public)
    assert any(u.endswith("/requests.json") for u in public) and checked >= len(public)
