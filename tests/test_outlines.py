"""GET /work/outlines: the active communities' outlines and names for the 需定位 panel's map,
for a signed-in person, by box; a missing or wrong box is a 422 naming bbox."""

from __future__ import annotations

from shapely.geometry import Point, shape

from tests.helpers.workbench_helpers import COMM_A, login, point_in


def test_outlines_of_a_box_with_their_names(wb, city_engine):
    login(wb, "disp")
    lon, lat = point_in(city_engine, COMM_A)
    r = wb.get("/work/outlines", params={"bbox": f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"})
    assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
    features = r.json()["features"]
    own = [f for f in features if f["properties"]["code"] == COMM_A]
    assert len(own) == 1 and own[0]["properties"]["name"]
    assert shape(own[0]["geometry"]).buffer(1e-5).contains(Point(lon, lat))
    # A box far from the city: nothing; a whole-city box: every active community once.
    assert wb.get("/work/outlines", params={"bbox": "10,10,10.1,10.1"}).json()["features"] == []
    whole = wb.get("/work/outlines", params={"bbox": "110,30,125,40"}).json()["features"]
    codes = [f["properties"]["code"] for f in whole]
    assert COMM_A in codes and len(codes) == len(set(codes)) > 10
    for bad in ("", "1,2,3", "117,35,116,36", "a,b,c,d"):
        r = wb.get("/work/outlines", params={"bbox": bad})
        assert r.status_code == 422 and "bbox" in r.text, (bad, r.text)
