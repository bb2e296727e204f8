"""The address matcher's explanations: codes with parameters, said in Chinese or English from
one vocabulary (geo.address_why), kept with the answer (case_locate.reasons), in the
locate-file output and the workbench's words."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from geo.address_file import locate_frame
from geo.address_match import match_address
from geo.address_why import WHY, explain, reason
from web.i18n import address_why

UNKNOWN = "杏花村东头老槐树下"
TWIN = "幸福小区5号楼门口"  # a compound name in two communities of the sample city


def test_each_code_is_said_in_both_languages() -> None:
    for code, (zh, en) in WHY.items():
        assert zh and en and (zh != en or code == "place"), code
    assert explain([reason("nothing")], "zh") == "地址中没有已知地名"
    assert explain([reason("nothing")]) == "no known place in the address"
    place = [reason("place", kind="compound", name="幸福小区"), reason("tail")]
    assert explain(place, "en") == "compound 幸福小区 (tail of the address)"
    assert explain(place, "zh") == "小区 幸福小区 (地址末尾部分)"
    moved = [reason("crossing", a="荆河路", b="解放路"), reason("shifted", m=50.0, deg=0.0)]
    assert explain(moved, "zh") == "荆河路与解放路交叉口；向北50米"
    assert explain(moved, "en") == "crossing of 荆河路 and 解放路; 50 m towards 0°"
    assert explain([reason("names_subdistrict", name="北辛街道", sub="370481001")], "zh") == \
        "只写明街道 北辛街道 (370481001)"
    with pytest.raises(KeyError):
        reason("no_such_code")
    # A code this version does not know (a newer writer) is not an error on a page.
    assert explain([{"code": "later", "text": "x"}], "zh") == "x"


def test_answers_carry_codes_and_the_words_follow_the_language(city_engine) -> None:
    with city_engine.connect() as conn:
        unknown = match_address(conn, UNKNOWN)
        twin = match_address(conn, TWIN)
    assert unknown.reasons == [{"code": "nothing"}]
    assert unknown.why == "no known place in the address"
    assert unknown.to_dict()["reasons"] == [{"code": "nothing"}]
    assert twin.reasons[0]["code"] == "ambiguous" and twin.reasons[0]["n"] == 2
    zh = address_why(twin.to_dict(), "zh")
    assert zh.startswith("2 处均符合") and "小区 幸福小区" in zh and "compound" not in zh
    assert address_why(twin.to_dict(), "en").startswith("2 places fit")
    for s in twin.suggestions:
        d = s.to_dict()
        assert d["reasons"][0] == {"code": "place", "kind": "compound", "name": "幸福小区"}
        assert d["why"].startswith("compound 幸福小区")  # the English words stay
        assert address_why(d, "zh").startswith("小区 幸福小区")
    # An answer stored before reasons were kept: its words as stored.
    assert address_why({"why": "old words", "reasons": None}, "zh") == "old words"


def test_locate_file_adds_the_codes_and_keeps_its_columns(city_engine) -> None:
    frame = pd.DataFrame({"addr": [UNKNOWN, TWIN, ""]})
    with city_engine.connect() as conn:
        out, _ = locate_frame(conn, frame, ["addr"])
    assert list(out.columns) == ["addr", "lon", "lat", "community_code", "rule", "confidence",
                                 "suggestions", "reasons"]
    assert json.loads(out["reasons"][0]) == [{"code": "nothing"}]
    assert json.loads(out["reasons"][1])[0]["code"] == "ambiguous"
    assert all("reasons" in s and "why" in s for s in json.loads(out["suggestions"][1]))
    assert out["reasons"][2] == ""
