"""The intake answer is serialized without validating an ``IntakeOut`` first
(``api.schemas.intake_json``); it must say exactly what the model would say."""

from __future__ import annotations

import json

from api.schemas import IntakeOut, case_out, intake_json
from casegrid.settings import get_settings
from cases import queries
from cases.intake import NewCase
from cases.intake_batch import Accepted, register_batch
from cases.tokens import Principal, create_token
from tests.helpers.intake_api import interior_points


def _body(lon: float | None, lat: float | None, ticket: str, **kw) -> NewCase:
    data = {"lon": lon, "lat": lat, "category": "0599", "channel": "hotline_12345",
            "external_id": ticket, "description": "夜间施工噪音 13912345678", **kw}
    return NewCase.model_validate({k: v for k, v in data.items() if v is not None})


def _through_the_model(row: dict, created: bool, duplicates: list[dict]) -> dict:
    """What the route answered before: the dict validated into IntakeOut, then dumped."""
    out = case_out(row)
    out["created"] = created
    out["possible_duplicates"] = duplicates
    return json.loads(IntakeOut.model_validate(out).model_dump_json())


def test_the_intake_body_equals_the_model_s_for_every_kind_of_case(city_engine):
    (_code, lon, lat), (_code_b, lon_b, lat_b) = interior_points(city_engine)[:2]
    with city_engine.begin() as conn:
        token = create_token(conn, "dispatcher", "json-eq")[1]
    items = [
        (token, _body(lon, lat, "J-1")),                                    # routed inside
        (token, _body(lon, lat, "J-2")),                                    # duplicate of J-1
        (token, _body(lon_b, lat_b, "J-3", reporter_name="张三", reporter_phone="13800000000",
                      photo_urls=["https://example.org/a.jpg"], crs="gcj02")),
        (token, _body(None, None, "J-4", address="滕州市荆河街道某小区")),    # address only
        (token, _body(116.2, 34.2, "J-5")),                                 # outside the city
        (token, _body(lon, lat, "J-1")),                                    # the same ticket again
    ]
    out = register_batch(city_engine, items, get_settings())
    assert all(isinstance(o, Accepted) for o in out), out
    assert out[1].result.possible_duplicates, "J-2 should find J-1 nearby"
    assert out[3].result.case["lon"] is None and out[4].result.case["community_code"] is None
    assert not out[5].result.created
    planner = Principal(0, "planner", "planner")
    checked = 0
    for accepted in out:
        result = accepted.result
        for who in (accepted.principal, planner):  # planners get the redacted row
            row = queries.redact(dict(result.case), who)
            fast = intake_json(dict(row), result.created, result.possible_duplicates)
            assert json.loads(fast) == _through_the_model(row, result.created,
                                                          result.possible_duplicates)
            IntakeOut.model_validate_json(fast)  # and it parses back into the model
            checked += 1
    assert checked == 12
    # The duplicates carry only the documented fields (the search also returns others).
    dup = json.loads(intake_json(out[1].result.case, True, out[1].result.possible_duplicates))
    assert set(dup["possible_duplicates"][0]) == {"id", "case_no", "status", "reported_at",
                                                  "distance_m"}
