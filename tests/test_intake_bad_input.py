"""Every malformed intake or listing request gets a 4xx whose body names the field and says
what is wrong, and leaves no row behind (counted in "case" and case_event before and after).
A 500 would be a bug.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.intake_api import body, interior_points

LON, LAT = 117.1652, 35.0871  # central Tengzhou (WGS-84)


def _check(r, status: int, field: str, *words: str) -> dict:
    assert r.status_code == status, r.text
    out = r.json()
    assert out["field"] == field, out
    for word in words:
        assert word.lower() in out["detail"].lower(), (word, out["detail"])
    return out


def _unchanged(api, send):
    before = api.counts()
    response = send()
    assert api.counts() == before
    return response


BAD_BODIES = [
    # (id, body changes, field, words the message must contain)
    ("lat-missing", {"lon": LON}, "lat", ["missing"]),
    ("lon-missing", {"lat": LAT}, "lon", ["missing"]),
    ("no-location", {}, "lon", ["lon and lat", "address"]),
    ("lat-null", {"lon": LON, "lat": None}, "lat", ["missing"]),
    ("lat-text", {"lon": LON, "lat": "north"}, "lat", ["number"]),
    ("lat-nan-string", {"lon": LON, "lat": "NaN"}, "lat", ["nan"]),
    ("lon-out-of-range", {"lon": 200.0, "lat": LAT}, "lon", ["range", "-180"]),
    ("lat-out-of-range", {"lon": LON, "lat": -95.0}, "lat", ["range"]),
    ("swapped", {"lon": LAT, "lat": LON}, "lat", ["swapped", f"lon={LON}"]),
    ("crs-unknown", {"lon": LON, "lat": LAT, "crs": "utm50"}, "crs", ["wgs84", "gcj02", "bd09"]),
    ("crs-epsg", {"lon": LON, "lat": LAT, "crs": "EPSG:4527"}, "crs", ["not accepted"]),
    ("category-unknown", {"lon": LON, "lat": LAT, "category": "0999"}, "category",
     ["unknown category", "/api/v1/categories"]),
    ("category-malformed", {"lon": LON, "lat": LAT, "category": "noise"}, "category",
     ["4 digits", "/api/v1/categories"]),
    ("category-missing", {"lon": LON, "lat": LAT, "category": None}, "category", []),
    ("description-too-long", {"lon": LON, "lat": LAT, "description": "x" * 4001}, "description",
     ["4001", "4000"]),
    ("channel-unknown", {"lon": LON, "lat": LAT, "channel": "fax"}, "channel", ["hotline_12345"]),
    ("reported-naive", {"lon": LON, "lat": LAT, "reported_at": "2025-06-01T21:30:00"},
     "reported_at", ["offset"]),
    ("reported-future", {"lon": LON, "lat": LAT,
                         "reported_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat()},
     "reported_at", ["future"]),
    ("reported-garbage", {"lon": LON, "lat": LAT, "reported_at": "yesterday"}, "reported_at", []),
    ("reported-epoch-number", {"lon": LON, "lat": LAT, "reported_at": 0}, "reported_at",
     ["number", "ISO 8601"]),
    ("reported-epoch-ms", {"lon": LON, "lat": LAT, "reported_at": 1748784600000}, "reported_at",
     ["number"]),
    ("reported-true", {"lon": LON, "lat": LAT, "reported_at": True}, "reported_at", ["number"]),
    ("reported-epoch-text", {"lon": LON, "lat": LAT, "reported_at": "0"}, "reported_at", ["number"]),
    ("reported-epoch-decimal-text", {"lon": LON, "lat": LAT, "reported_at": "1700000000.5"},
     "reported_at", ["number"]),
    ("too-many-photos", {"lon": LON, "lat": LAT,
                         "photo_urls": [f"https://img.example.cn/{i}.jpg" for i in range(11)]},
     "photo_urls", ["10"]),
    ("photo-not-http", {"lon": LON, "lat": LAT, "photo_urls": ["ftp://x.example.cn/a.jpg"]},
     "photo_urls.0", []),
    ("phone-garbage", {"lon": LON, "lat": LAT, "reporter_phone": "call me"}, "reporter_phone",
     ["phone"]),
    ("unknown-field", {"lon": LON, "lat": LAT, "latitude": LAT}, "latitude", ["extra"]),
]


@pytest.mark.parametrize(("changes", "field", "words"), [b[1:] for b in BAD_BODIES],
                         ids=[b[0] for b in BAD_BODIES])
def test_bad_case_body_is_refused_naming_the_field(api, changes, field, words):
    b = body(**{k: v for k, v in changes.items() if k not in ("lon", "lat")})
    b.update({k: v for k, v in changes.items() if k in ("lon", "lat")})
    b = {k: v for k, v in b.items() if not (v is None and k not in ("lat",))}
    if "category" in changes and changes["category"] is None:
        b.pop("category", None)
    r = _unchanged(api, lambda: api.post_case(b))
    _check(r, 422, field, *words)


@pytest.mark.parametrize(("literal", "field", "word"), [
    ('"lat": NaN', "lat", "nan"),
    ('"lat": Infinity', "lat", "inf"),
    ('"lat": -Infinity', "lat", "inf"),
])
def test_non_finite_json_numbers_are_refused(api, literal, field, word):
    raw = f'{{"lon": {LON}, {literal}, "category": "0599", "channel": "app"}}'
    r = _unchanged(api, lambda: api.client.post(
        "/api/v1/cases", content=raw,
        headers=api.headers() | {"Content-Type": "application/json"}))
    _check(r, 422, field, word)


@pytest.mark.parametrize("raw", ['{"lon": 117.1,', "[1, 2]", '"a string"', ""])
def test_body_that_is_not_a_json_object_is_refused(api, raw):
    r = _unchanged(api, lambda: api.client.post(
        "/api/v1/cases", content=raw,
        headers=api.headers() | {"Content-Type": "application/json"}))
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_oversized_body_is_413_naming_the_limit(api):
    limit = api.client.app.state.settings.max_body_bytes
    big = json.dumps(body(LON, LAT, description="x" * (limit + 10)))
    r = _unchanged(api, lambda: api.client.post(
        "/api/v1/cases", content=big,
        headers=api.headers() | {"Content-Type": "application/json"}))
    out = _check(r, 413, "body", str(limit))
    assert out["limit_bytes"] == limit


def test_oversized_chunked_body_is_413_too(api):
    limit = api.client.app.state.settings.max_body_bytes
    big = json.dumps(body(LON, LAT, description="x" * (limit + 10))).encode()

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    r = _unchanged(api, lambda: api.client.post(
        "/api/v1/cases", content=chunks(),
        headers=api.headers() | {"Content-Type": "application/json"}))
    assert "content-length" not in {k.lower() for k in r.request.headers}
    _check(r, 413, "body", str(limit))


def test_chunked_body_under_the_limit_is_accepted(api):
    code, lon, lat = interior_points(api.engine)[0]
    raw = json.dumps(body(lon, lat)).encode()
    r = api.client.post("/api/v1/cases", content=iter([raw[:20], raw[20:]]),
                        headers=api.headers() | {"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "application/xml", None,
])
def test_wrong_content_type_is_415(api, content_type):
    headers = api.headers() | ({"Content-Type": content_type} if content_type else {})
    r = _unchanged(api, lambda: api.client.post(
        "/api/v1/cases", content=json.dumps(body(LON, LAT)).encode(), headers=headers))
    _check(r, 415, "Content-Type", "application/json")


def test_json_sent_as_multipart_is_422_naming_the_body(api):
    # Intake takes multipart too (the case in a part "case", photos in parts "photo"):
    # a body that is not a multipart form is refused as such, and nothing is stored.
    r = _unchanged(api, lambda: api.client.post(
        "/api/v1/cases", content=json.dumps(body(LON, LAT)).encode(),
        headers=api.headers() | {"Content-Type": "multipart/form-data; boundary=x"}))
    _check(r, 422, "body", "multipart")


def test_json_with_charset_is_fine(api):
    code, lon, lat = interior_points(api.engine)[0]
    r = api.client.post("/api/v1/cases", content=json.dumps(body(lon, lat)).encode(),
                        headers=api.headers() | {"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


def test_a_refused_officer_submission_and_a_planner_submission_write_nothing(api):
    r = _unchanged(api, lambda: api.post_case(body(LON, LAT), role="planner"))
    assert r.status_code == 403


# --- listing and reading ------------------------------------------------------------------------

BAD_LIST = [
    ({"bbox": "117.1,35.0,117.2"}, "bbox", ["4"]),
    ({"bbox": "117.1,35.0,117.2,north"}, "bbox", ["not a number"]),
    ({"bbox": "35.0,117.1,35.1,117.2"}, "bbox", ["range", "longitude comes first"]),
    ({"bbox": "117.2,35.0,117.1,35.1"}, "bbox", ["minimum"]),
    ({"bbox": "117.1,35.0,nan,35.1"}, "bbox", ["finite"]),
    ({"limit": "0"}, "limit", []),
    ({"limit": "501"}, "limit", ["500"]),
    ({"cursor": "not-a-cursor"}, "cursor", ["next_cursor"]),
    ({"from": "last week"}, "from", ["ISO 8601"]),
    ({"from": "2025-06-05", "to": "2025-06-01"}, "from", ["before"]),
    ({"channel": "fax"}, "channel", ["hotline_12345"]),
    ({"format": "kml"}, "format", []),
    ({"unrouted": "maybe"}, "unrouted", []),
]


@pytest.mark.parametrize(("params", "field", "words"), BAD_LIST,
                         ids=[f"{k}" for k, *_ in (list(p[0].items())[0] for p in BAD_LIST)])
def test_bad_list_parameters_are_refused_naming_the_field(api, params, field, words):
    r = api.client.get("/api/v1/cases", params=params, headers=api.headers("dispatcher"))
    _check(r, 422, field, *words)


@pytest.mark.parametrize(("params", "field", "word"), [
    ({"lat": LAT}, "lon", "required"),
    ({"lon": LON, "lat": "nan"}, "lat", "nan"),
    ({"lon": LAT, "lat": LON}, "lat", "swapped"),
    ({"lon": LON, "lat": LAT, "crs": "mars2000"}, "crs", "gcj02"),
])
def test_bad_route_dry_run_is_refused(api, params, field, word):
    r = api.client.get("/api/v1/route", params=params, headers=api.headers("planner"))
    _check(r, 422, field, word)


def test_reading_a_case_by_a_bad_or_unknown_id(api):
    assert api.client.get("/api/v1/cases/abc", headers=api.headers("dispatcher")).status_code == 422
    r = api.client.get("/api/v1/cases/999999", headers=api.headers("dispatcher"))
    _check(r, 404, "id", "999999")
