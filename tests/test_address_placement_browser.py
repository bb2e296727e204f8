"""Placing address-only cases in the workbench (issue 27), in Chromium against the served app.

Two hotline calls arrive without coordinates: one names a compound that exists in two
communities (the matcher gives two suggestions, no guess), one an address nobody knows
(no suggestion). The dispatcher finds both in the 需定位 list with the suggestions, places
the first with one click on a suggestion and the second by clicking the map, after the page
said which community the point falls in. Each placement routes the case and teaches the
address memory: the next call from the same address text is located by it.
"""

from __future__ import annotations

import json
import urllib.request

from sqlalchemy import text

from tests.helpers.workbench_browser import DESK, PHONE, Person, no_sideways_scroll, shot
from tests.helpers.workbench_helpers import COMM_B, point_in

TWIN = "幸福小区5号楼门口"  # 幸福小区 is a compound in two communities of the sample city
UNKNOWN = "杏花村东头老槐树下"  # no name the gazetteer or the memory knows


def call(served: dict, address: str, n: int) -> dict:
    """A hotline order with an address and no coordinates, through the intake API."""
    body = {"category": "0508", "channel": "hotline_12345", "external_id": f"PLACE{n:04d}",
            "description": "夜间噪音扰民", "address": address, "reporter_name": "张三",
            "reporter_phone": "13800000000"}
    req = urllib.request.Request(f"{served['base']}/api/v1/cases", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {served['token']}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
        return json.loads(r.read())


def routing_of(engine, case_id: int) -> tuple[str, str | None, bool]:
    with engine.connect() as conn:
        row = conn.execute(text('SELECT route_rule, community_code, geom IS NOT NULL FROM "case"'
                                " WHERE id = :id"), {"id": case_id}).one()
    return row[0], row[1], row[2]


def test_dispatcher_places_cases_and_the_memory_locates_the_next_call(browser, site):
    engine = site["engine"]
    twin = call(site, TWIN, 1)
    unknown = call(site, UNKNOWN, 2)
    assert twin["routing"]["rule"] == "unlocated" and len(twin["routing"]["alternates"]) == 2
    assert unknown["routing"]["rule"] == "unlocated" and unknown["routing"]["alternates"] == []
    disp = Person(browser, site["base"], "disp", DESK)
    try:
        # The list: both cases, the twin with its two suggestions and their communities.
        disp.open("/work")
        assert "需定位" in disp.page.inner_text("body")
        disp.open("/work/queue/place")
        rows = disp.page.locator("tr.row")
        assert rows.count() == 2
        listed = disp.page.inner_text("table.rows")
        for s in twin["routing"]["alternates"]:
            assert s["community_name"] in listed
        assert "无候选位置" in listed
        shot(disp.page, "desk_queue_place.png")

        # The twin: two one-click placements, each saying its community and why.
        disp.page.click(f'td.no a[href*="/work/cases/{twin["id"]}"]')
        disp.page.wait_for_selector("#place-map .leaflet-interactive")
        picks = disp.page.locator("li.suggestion")
        assert picks.count() == 2
        # The matcher's words in the page's language (Chinese; English with lang=en).
        said = disp.page.inner_text("#placement")
        assert "2 处均符合" in said and "小区 幸福小区" in said
        assert "places fit" not in said and "compound" not in said
        # The active communities' outlines under the suggestions, named on hover.
        disp.page.wait_for_selector("#place-map[data-outlines]")
        drawn = int(disp.page.get_attribute("#place-map", "data-outlines"))
        assert drawn >= 2 and disp.page.locator("#place-map path.outline").count() == drawn
        for s in twin["routing"]["alternates"]:
            assert disp.page.locator(f"#place-map path.outline-{s['community_code']}").count() == 1
        at = point_in(engine, COMM_B)
        xy = disp.page.evaluate(
            "([lat, lon]) => { const p = document.getElementById('place-map').placeMap"
            ".latLngToContainerPoint([lat, lon]); return [p.x, p.y]; }", [at[1], at[0]])
        box = disp.page.locator("#place-map").bounding_box()
        if 0 < xy[0] < box["width"] and 0 < xy[1] < box["height"]:
            disp.page.mouse.move(box["x"] + xy[0], box["y"] + xy[1])
            with engine.connect() as conn:
                name_b = conn.execute(text("SELECT name FROM community WHERE code = :c AND "
                                           "generation_id = (SELECT id FROM boundary_generation "
                                           "WHERE level = 'community' AND active)"),
                                      {"c": COMM_B}).scalar_one()
            disp.page.wait_for_selector(".leaflet-tooltip.outline-name")
            assert disp.page.inner_text(".leaflet-tooltip.outline-name") == name_b
            disp.page.mouse.move(box["x"] - 20, box["y"] - 20)
        shot(disp.page, "desk_case_place.png")
        disp.open(f"/work/cases/{twin['id']}?lang=en")
        said = disp.page.inner_text("#placement")
        assert "2 places fit" in said and "compound 幸福小区" in said and "处均符合" not in said
        disp.open(f"/work/cases/{twin['id']}?queue=place")
        disp.page.wait_for_selector("#place-map .leaflet-interactive")
        chosen = twin["routing"]["alternates"][1]
        assert chosen["community_name"] in picks.nth(1).inner_text()
        with disp.page.expect_navigation():
            picks.nth(1).locator("button[type=submit]").click()
        rule, code, has_point = routing_of(engine, twin["id"])
        assert (rule, code, has_point) == ("manual", chosen["community_code"], True)
        # ... and the list's next case opens: the unknown address.
        assert f"/work/cases/{unknown['id']}" in disp.page.url
        assert disp.page.locator("li.suggestion").count() == 0
        assert "地址中没有已知地名" in disp.page.inner_text("#placement")

        # Click the map inside COMM_B: the page says where it goes before saving.
        lon, lat = point_in(engine, COMM_B)
        disp.page.wait_for_function("document.getElementById('place-map').placeMap !== undefined")
        x, y = disp.page.evaluate(
            "([lat, lon]) => { const m = document.getElementById('place-map').placeMap;"
            " m.setView([lat, lon], 16); const p = m.latLngToContainerPoint([lat, lon]);"
            " return [p.x, p.y]; }", [lat, lon])
        disp.page.locator("#place-map").click(position={"x": x, "y": y})
        disp.page.wait_for_selector(f'#place-preview [data-community="{COMM_B}"]')
        assert disp.page.locator("#place-form").is_visible()
        shot(disp.page, "desk_case_place_preview.png")
        with disp.page.expect_navigation():
            disp.page.click("#place-form button[type=submit]")
        rule, code, has_point = routing_of(engine, unknown["id"])
        assert (rule, code, has_point) == ("manual", COMM_B, True)
        disp.open("/work/queue/place")
        assert disp.page.locator("tr.row").count() == 0

        # The page on a dispatcher's phone: one column, nothing wider than the screen.
        again = call(site, "幸福小区8号楼", 3)  # another building: still two places
        phone = Person(browser, site["base"], "disp", PHONE)
        try:
            phone.open(f"/work/cases/{again['id']}")
            assert phone.page.locator("li.suggestion").count() == 2
            phone.page.wait_for_selector("#place-map[data-outlines] path.outline")
            no_sideways_scroll(phone.page)
            shot(phone.page, "phone_case_place.png", full=True)
            phone.check()
        finally:
            phone.close()
        disp.check()
    finally:
        disp.close()

    # The next calls from the same addresses are located by the memory.
    nxt = call(site, TWIN, 4)
    assert nxt["routing"]["rule"] == "address_memory"
    assert nxt["routing"]["community_code"] == chosen["community_code"]
    nxt = call(site, UNKNOWN, 5)
    assert nxt["routing"]["rule"] == "address_memory"
    assert nxt["routing"]["community_code"] == COMM_B
