"""The search box with address words shorter than three characters, in Chromium against the
served app: at the desk a two-character word (善国) lists the cases at the known places
holding it and says which names were searched; on the phone (the box submitted by the
keyboard's search key) a word no known place holds gets the hint to type more, in Chinese
and in English. Screenshots go to docs/workbench/."""

from __future__ import annotations

import json
import urllib.request

from tests.helpers.workbench_browser import DESK, PHONE, Person, no_sideways_scroll, shot
from tests.helpers.workbench_helpers import COMM_A, case_body, point_in


def _case_at(site: dict, address: str, n: int) -> int:
    body = case_body(*point_in(site["engine"], COMM_A), n=n)
    body["address"] = address
    req = urllib.request.Request(f"{site['base']}/api/v1/cases", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {site['token']}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["id"]


def test_short_address_words_in_the_search_box(browser, site):
    _case_at(site, "善国苑3号楼东侧", 31)
    _case_at(site, "善国路与荆河路交叉口往北50米", 32)
    _case_at(site, "北辛路8号", 33)
    disp = Person(browser, site["base"], "disp", DESK)
    off = Person(browser, site["base"], "off", PHONE)
    try:
        disp.open("/work")
        disp.page.fill(".search input[name=q]", "善国")
        with disp.page.expect_navigation():
            disp.page.press(".search input[name=q]", "Enter")
        rows = disp.page.locator("table.rows tbody tr")
        assert rows.count() == 2
        assert all("善国" in a for a in disp.page.locator("td.addr").all_inner_texts())
        said = disp.page.inner_text("#search-names")
        assert "不足三个字" in said and "善国苑" in said and "善国路" in said
        shot(disp.page, "desk_search_short_word.png")

        off.open("/work")
        off.page.fill(".search input[name=q]", "鲸鲨")
        with off.page.expect_navigation():
            off.page.press(".search input[name=q]", "Enter")  # the phone keyboard's 搜索 key
        hint = off.page.locator("#search-too-short")
        assert hint.is_visible() and "至少输入三个字" in hint.inner_text()
        assert "没有已知地名包含“鲸鲨”" in hint.inner_text()
        assert off.page.locator("table.rows").count() == 0
        no_sideways_scroll(off.page)
        shot(off.page, "phone_search_too_short.png")
        off.open("/work/search?q=%E9%B2%B8%E9%B2%A8&lang=en")
        assert "Type at least three characters" in off.page.inner_text("#search-too-short")
        disp.check()
        off.check()
    finally:
        disp.close()
        off.close()
