"""The address matcher on the sample city: spoken forms, typos, aliases, crossings,
house numbers, relative phrases; ambiguity gives suggestions; placements are learned."""

from __future__ import annotations

import json
import math

import pytest
import shapely
from shapely.geometry import shape

from casegrid.demo.gazetteer import GAZETTEER_FILE
from geo.address_match import match_address, match_addresses
from geo.address_memory import learn_placement
from geo.address_normalize import cn_numeral_to_int, parse_address
from geo.routing import M_PER_DEG, route

PREFIXES = ("山东省", "枣庄市", "滕州市")


@pytest.fixture(scope="module")
def features() -> list[dict]:
    return json.loads(GAZETTEER_FILE.read_text(encoding="utf-8"))["features"]


def _unique_compound(features: list[dict], n: int = 0) -> dict:
    names = [f["properties"]["name"] for f in features]
    found = [f for f in features if f["properties"]["kind"] == "compound"
             and names.count(f["properties"]["name"]) == 1 and not f["properties"]["aliases"]
             and len(f["properties"]["name"]) >= 3]
    return found[n]


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    dx = (lon1 - lon2) * M_PER_DEG * math.cos(math.radians(lat1))
    return math.hypot(dx, (lat1 - lat2) * M_PER_DEG)


# --- normalisation (no database) ----------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [("二十三", 23), ("一百零五", 105), ("三零一", 301),
                                             ("十", 10), ("两千", 2000)])
def test_chinese_numerals(text: str, value: int) -> None:
    assert cn_numeral_to_int(text) == value


def test_parse_takes_a_hotline_address_apart() -> None:
    p = parse_address("山东省滕州市北辛街道锦华社区善國苑小區三号楼二单元301室东侧", PREFIXES)
    assert p.areas == ["北辛街道", "锦华社区"]
    assert p.core == "善国苑小区" and p.building == "3号楼2单元301室"
    assert p.relative == "东侧" and p.bearing == 90.0
    assert p.key == "善国苑3号楼2单元301室"
    c = parse_address("荆河路与解放路交叉口往北５０米", PREFIXES)
    assert c.cross == ("荆河路", "解放路") and c.bearing == 0.0 and c.metres == 50.0
    assert parse_address("荆河路解放路口", PREFIXES).cross == ("荆河路", "解放路")
    d = parse_address("北辛路一百二十八号", PREFIXES)
    assert (d.road, d.number) == ("北辛路", 128)
    e = parse_address("952 East 58th St, Brooklyn")
    assert (e.road, e.number, e.locality) == ("EAST 58 STREET", 952, "BROOKLYN")
    assert e.key == "952 EAST 58 STREET, BROOKLYN"
    assert parse_address("94-52 225 STREET, QUEENS").number == 9452
    assert parse_address("十里铺村", PREFIXES).core == "十里铺村"  # a name keeps its numeral


# --- matching on the sample city ----------------------------------------------------------

def _community_of(conn, lon: float, lat: float) -> str | None:  # noqa: ANN001
    return route(conn, lon, lat).community_code


def test_a_compound_in_many_spoken_forms(city_engine, features) -> None:
    f = _unique_compound(features)
    name = f["properties"]["name"]
    home = f["properties"]["community_code_generated"]
    typo = name[0] + ("丙" if name[1] != "丙" else "丁") + name[2:]
    forms = [name, f"滕州市{name}", f"山东省枣庄市滕州市{name}3号楼东侧", f"{name}三号楼二单元301室",
             f"{name}往北50米", f"{name}对面", f"{name}附近", typo,
             unicodedata_fullwidth(f"{name}3号楼"), f"{name}小区" if not name.endswith("小区")
             else name]
    with city_engine.connect() as conn:
        results = match_addresses(conn, forms)
        for form, m in zip(forms, results, strict=True):
            assert m.located, (form, m)
            assert m.rule == "address_compound", (form, m.rule)
            assert _community_of(conn, m.lon, m.lat) == home, form
            assert m.community_code == home
        assert results[7].confidence < results[0].confidence  # a typo costs
        north = results[4]
        assert 45 < _metres(north.lon, north.lat, results[0].lon, results[0].lat) < 55
        assert north.lat > results[0].lat


def unicodedata_fullwidth(text: str) -> str:
    """Digits and ASCII letters as full-width characters, as some input methods type them."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_an_alias_finds_its_compound(city_engine, features) -> None:
    f = next(x for x in features if x["properties"]["aliases"])
    with city_engine.connect() as conn:
        m = match_address(conn, f["properties"]["aliases"])
    assert m.located and m.community_code == f["properties"]["community_code_generated"]


def test_a_house_number_is_interpolated_along_its_road(city_engine, features) -> None:
    road = next(x for x in features if x["properties"]["name"] == "荆河路")
    line = shape(road["geometry"])
    top = road["properties"]["house_to"]
    with city_engine.connect() as conn:
        for text in ("荆河路100号", "滕州市荆河路一百号", "荆和路100号"):
            m = match_address(conn, text)
            assert m.located and m.rule == "address_doorplate", text
            expected = line.interpolate((100 - 1) / (top - 1), normalized=True)
            assert _metres(m.lon, m.lat, expected.x, expected.y) < 5, text
            assert _community_of(conn, m.lon, m.lat) == m.community_code


def test_a_crossing_is_where_the_two_roads_meet(city_engine, features) -> None:
    geoms = {x["properties"]["name"]: shape(x["geometry"]) for x in features
             if x["properties"]["kind"] == "road"}
    meet = geoms["善国路"].intersection(geoms["解放路"])
    with city_engine.connect() as conn:
        for text in ("善国路与解放路交叉口", "善国路解放路口", "解放路和善国路十字路口"):
            m = match_address(conn, text)
            assert m.located and m.rule == "address_crossing", text
            assert _metres(m.lon, m.lat, meet.x, meet.y) < 1, text
        shifted = match_address(conn, "善国路与解放路交叉口往北50米")
        assert shifted.located
        assert 45 < _metres(shifted.lon, shifted.lat, meet.x, meet.y) < 55
        assert shifted.lat > meet.y
        # Two parallel roads never meet: no crossing, no guess.
        assert not match_address(conn, "荆河路与解放路交叉口").located


def test_ambiguity_gives_suggestions_not_a_guess(city_engine, features) -> None:
    twins = [x for x in features if x["properties"]["name"] == "幸福小区"]
    homes = {x["properties"]["community_code_generated"] for x in twins}
    assert len(homes) == 2
    with city_engine.connect() as conn:
        m = match_address(conn, "幸福小区")
        assert not m.located and m.rule is None
        assert {s.community_code for s in m.suggestions} == homes
        assert all(s.why and s.community_name for s in m.suggestions)
        assert m.confidence < 0.7
        # The community the caller names settles it.
        named = conn.execute(shapely_text("SELECT name FROM community WHERE code = :c"),
                             {"c": sorted(homes)[0]}).scalar_one()
        settled = match_address(conn, f"北辛街道{named}幸福小区")
        assert settled.located and settled.community_code == sorted(homes)[0]
        # A main street crosses many communities: at most three suggestions, no answer.
        road = match_address(conn, "善国路")
        assert not road.located and 2 <= len(road.suggestions) <= 3
        assert len({s.community_code for s in road.suggestions}) == len(road.suggestions)
        # Nothing known: unlocated, no suggestion.
        nothing = match_address(conn, "某某烧烤店门口")
        assert not nothing.located and nothing.suggestions == []


def shapely_text(sql: str):  # noqa: ANN201 - sqlalchemy TextClause
    from sqlalchemy import text

    return text(sql)


def test_a_community_named_alone_is_that_community(city_engine) -> None:
    with city_engine.connect() as conn:
        name, code = conn.execute(shapely_text(
            "SELECT name, code FROM community ORDER BY code LIMIT 1")).one()
        m = match_address(conn, f"滕州市荆河街道{name}")
        assert m.located and m.rule == "address_community" and m.community_code == code
        assert _community_of(conn, m.lon, m.lat) == code


def test_a_placement_is_learned_and_used_next_time(city_engine) -> None:
    address = "滕州市老城区张记烧烤店门口"
    with city_engine.begin() as conn:
        assert not match_address(conn, address).located
        lon, lat = 117.1600, 35.0800
        code = _community_of(conn, lon, lat)
        learn_placement(conn, address, lon, lat, code)
        m = match_address(conn, "老城区张记烧烤店对面")  # same place, said differently
        assert m.located and m.rule == "address_memory" and m.community_code == code
        assert _metres(m.lon, m.lat, lon, lat) < 1
        # Seen once in another community too: the memory says so, and does not guess.
        learn_placement(conn, address, 117.2000, 35.1100, _community_of(conn, 117.2, 35.11))
        torn = match_address(conn, address)
        assert not torn.located and len(torn.suggestions) == 2
        # Three more in the first: a clear majority (4 to 1) again.
        for _ in range(3):
            learn_placement(conn, address, lon, lat, code)
        back = match_address(conn, address)
        assert back.located and back.community_code == code


def test_memory_and_gazetteer_disagreeing_is_ambiguous(city_engine, features) -> None:
    f = _unique_compound(features, 3)
    name = f["properties"]["name"]
    home = f["properties"]["community_code_generated"]
    with city_engine.begin() as conn:
        other = conn.execute(shapely_text(
            "SELECT code FROM community WHERE code <> :c ORDER BY code LIMIT 1"),
            {"c": home}).scalar_one()
        learn_placement(conn, name, 117.2, 35.11, other)
        m = match_address(conn, name)
        assert not m.located
        assert {s.community_code for s in m.suggestions} == {home, other}


def test_one_lookup_and_many_agree(city_engine, features) -> None:
    names = [x["properties"]["name"] for x in features if x["properties"]["kind"] == "compound"][:40]
    with city_engine.connect() as conn:
        many = match_addresses(conn, names + names)
        for name, m in zip(names, many, strict=False):
            one = match_address(conn, name)
            assert one.to_dict() == m.to_dict()
    assert shapely is not None
