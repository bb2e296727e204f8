"""Address text as callers say it, normalised and taken apart (no database).

Chinese (the hotline's "滕州市北辛街道锦华社区善国苑小区3号楼东侧") and Western
("952 East 58th St, Brooklyn") forms alike come out as one :class:`ParsedAddress`:

* the text normalised: full/half width (NFKC), traditional variants of the few characters
  addresses use (號/号, 區/区, 樓/楼 ...), Chinese numerals before a unit (二十三号 -> 23号),
  the city's own province/city/county prefixes (``Settings.address_prefixes``) removed;
* ``areas``: subdistrict (街道/镇/乡) and community (社区) names said at the front;
* ``relative``: a relative phrase at the end ("往北50米", "对面", "东侧"): its bearing and
  distance when it has them;
* ``cross``: the two roads of a crossing ("A路与B路交叉口", "A路B路口", "A & B");
* ``road`` and ``number``: a road and its house number ("荆河路128号", "952 EAST 58 STREET");
* ``building``: building, unit and room ("3号楼2单元301");
* ``core``: what is left, the place's own name (a compound, a landmark);
* ``key``: the address without areas and relative phrase, the address memory's key.

:func:`name_key` normalises a gazetteer name the same way, so names and addresses meet.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from casegrid.settings import get_settings


def city_prefixes() -> tuple[str, ...]:
    """The city's own province/city/county prefixes, longest first (settings)."""
    return tuple(sorted(get_settings().address_prefixes, key=len, reverse=True))


# Traditional / variant characters that turn up in addresses typed on other input methods.
_VARIANTS = str.maketrans({
    "號": "号", "國": "国", "區": "区", "樓": "楼", "單": "单", "東": "东", "與": "与", "橋": "桥",
    "門": "门", "園": "园", "莊": "庄", "裡": "里", "裏": "里", "鎮": "镇", "鄉": "乡",
    "廣": "广", "場": "场", "醫": "医", "學": "学", "〇": "零", "貳": "二", "叁": "三",
    "棟": "栋", "層": "层", "側": "侧", "對": "对", "邊": "边", "處": "处", "條": "条",
    "衚": "胡", "衕": "同", "寧": "宁", "華": "华", "興": "兴", "陽": "阳", "漢": "汉",
})
_DROP = re.compile(r"[\s,，。.、;；:：'\"“”‘’()（）\[\]【】<>《》·#*_~-]+")
_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
# A Chinese numeral is converted only before a unit an address uses it with, so names such
# as 十里铺 or 三里屯 stay names.
_CN_NUMBER = re.compile(r"[零一二两三四五六七八九十百千]+(?=号|栋|幢|单元|室|层|楼|米|排|巷|弄|户|座|期|区)")

_DIRECTIONS = {"东": 90.0, "南": 180.0, "西": 270.0, "北": 0.0, "东北": 45.0, "东南": 135.0,
               "西南": 225.0, "西北": 315.0}
_DIR = "东北|东南|西北|西南|东|南|西|北"
# Relative phrases, stripped from the end one at a time.
_RELATIVE_TAIL = [
    re.compile(rf"(?:往|向|朝)?({_DIR})(?:侧|边|面|方向|方)?(?:约|大约|大概)?(\d+)(?:米|m)"
               r"(?:处|左右|远|的地方)?$"),
    re.compile(rf"(?:往|向|朝)({_DIR})(?:侧|边|面|方向|方)?$"),
    re.compile(rf"({_DIR})(?:侧|边|面|门|门口|大门|角)$"),
    re.compile(r"(?:对面|附近|旁边|隔壁|周边|一带|周围|门口|大门口|大门|门前|路边|路旁|后面|前面"
               r"|里面|内|处|旁)$"),
]
_SUBDISTRICT = re.compile(r"^([\u4e00-\u9fff]{1,8}?(?:街道办事处|街道办|街道|镇|乡))")
_COMMUNITY = re.compile(r"^([\u4e00-\u9fff]{1,8}?(?:社区居委会|社区居民委员会|社区))")
_ROAD_CN = r"[\u4e00-\u9fff0-9A-Za-z]{1,12}?(?:大街|大道|路|街|巷|胡同|弄|公路)"
_CROSS_CN = [
    re.compile(rf"^({_ROAD_CN})(?:与|和|跟|同|及|/|&|\+)({_ROAD_CN})"
               r"(?:的)?(?:十字路口|交叉路口|交叉口|交汇处|交叉处|交口|路口|口)?$"),
    re.compile(rf"^({_ROAD_CN})({_ROAD_CN})(?:十字路口|交叉路口|交叉口|交汇处|交叉处|交口|路口|口)$"),
]
_DOORPLATE_CN = re.compile(rf"^({_ROAD_CN})(\d+)(?:号院|号)")
_BUILDING_CN = re.compile(r"(\d+)(?:号楼|栋|幢|座)(?:(\d+)单元)?(?:(\d+)(?:室|户|号)?)?$"
                          r"|(\d+)单元(?:(\d+)(?:室|户|号)?)?$")
# Generic words a name may carry or not ("善国苑小区" and "善国苑" are one compound).
GENERIC_SUFFIXES = ("小区", "社区", "居委会", "家属院", "宿舍", "街道")
_GENERIC_LAST = frozenset(s[-1] for s in GENERIC_SUFFIXES)

# Western (NYC-style) addresses.
_EN_WORDS = {
    "ST": "STREET", "STR": "STREET", "AVE": "AVENUE", "AV": "AVENUE", "RD": "ROAD",
    "BLVD": "BOULEVARD", "PL": "PLACE", "DR": "DRIVE", "CT": "COURT", "LN": "LANE",
    "PKWY": "PARKWAY", "HWY": "HIGHWAY", "TER": "TERRACE", "SQ": "SQUARE", "EXPY": "EXPRESSWAY",
    "E": "EAST", "W": "WEST", "N": "NORTH", "S": "SOUTH", "FT": "FORT", "MT": "MOUNT",
}
_EN_ORDINAL = re.compile(r"\b(\d+)(?:ST|ND|RD|TH)\b")
_EN_NUMBER = re.compile(r"^(\d+)(?:-(\d+))?[A-Z]?\s+(.+)$")
_EN_CROSS = re.compile(r"^(.+?)\s+(?:&|AND|@|/)\s+(.+)$")
_EN_STREET_TYPES = frozenset(v for v in _EN_WORDS.values() if v not in (
    "EAST", "WEST", "NORTH", "SOUTH", "FORT", "MOUNT"))
_EN_RELATIVE = re.compile(r"^(?:NEAR|OPPOSITE|ACROSS FROM|IN FRONT OF|CORNER OF)\s+")


@dataclass
class ParsedAddress:
    """An address taken apart; see the module docstring."""

    text: str
    normalized: str = ""
    key: str = ""
    lang: str = "zh"
    areas: list[str] = field(default_factory=list)
    relative: str | None = None
    bearing: float | None = None
    metres: float | None = None
    cross: tuple[str, str] | None = None
    road: str | None = None
    number: int | None = None
    building: str | None = None
    core: str = ""
    locality: str | None = None

    @property
    def line_only(self) -> bool:
        """True when the address names a road or street and nothing on it (no house number,
        no place): it stands for a line that may cross several communities."""
        if self.lang == "en":
            return self.number is None and self.cross is None and bool(
                set(self.core.split()) & _EN_STREET_TYPES)
        return self.road is not None and self.number is None and not self.core

    @property
    def street_key(self) -> str | None:
        """The road (with the locality for Western addresses): the key under which the
        memory keeps learned house numbers of one street."""
        if self.road is None:
            return None
        return f"{self.road}, {self.locality}" if self.locality else self.road


def cn_numeral_to_int(text: str) -> int:
    """Chinese numeral to int: 二十三 -> 23, 一百零五 -> 105, 三零一 -> 301 (digit by digit)."""
    if not any(ch in _CN_UNITS for ch in text):
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
    return total + current


def _basic(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_VARIANTS)
    return _CN_NUMBER.sub(lambda m: str(cn_numeral_to_int(m.group(0))), text)


_ASCII_LETTER = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _is_western(text: str) -> bool:
    # Counted with the regex engine, not character by character in Python: most hotline
    # addresses hold no Latin letter at all, and a bulk import parses every distinct one.
    letters = len(_ASCII_LETTER.findall(text))
    return letters > 0 and letters >= len(_HAN.findall(text)) * 2


def name_key(name: str, prefixes: tuple[str, ...] = ()) -> str:
    """A gazetteer name (or alias) normalised the way :func:`parse_address` normalises
    an address, for equality joins."""
    text = _basic(name)
    if _is_western(text):
        return _english_words(text.upper())
    text = _DROP.sub("", text)
    return _strip_prefixes(text, prefixes)


def without_generic(key: str) -> str | None:
    """``key`` without a generic suffix (小区, 社区 ...), or None when it has none or nothing
    distinctive would be left."""
    if not key or key[-1] not in _GENERIC_LAST:
        return None
    for suffix in GENERIC_SUFFIXES:
        if key.endswith(suffix) and len(key) - len(suffix) >= 2:
            return key[: -len(suffix)]
    return None


def _strip_prefixes(text: str, prefixes: tuple[str, ...]) -> str:
    changed = True
    while changed and text:
        changed = False
        for prefix in prefixes:
            if prefix and text.startswith(prefix) and len(text) > len(prefix):
                text = text[len(prefix):]
                changed = True
    return text


def parse_address(text: str, prefixes: tuple[str, ...] = ()) -> ParsedAddress:
    """Normalise ``text`` and take it apart (module docstring). ``prefixes`` are the
    city's own province/city/county names, longest first."""
    basic = _basic(text or "")
    if _is_western(basic):
        return _parse_english(text, basic)
    out = ParsedAddress(text=text)
    rest = _strip_prefixes(_DROP.sub("", basic), prefixes)
    out.normalized = rest
    rest = _strip_relative(rest, out)
    for pattern in (_SUBDISTRICT, _COMMUNITY):
        m = pattern.match(rest)
        if m and len(m.group(1)) < len(rest) + 1:
            out.areas.append(m.group(1))
            rest = rest[m.end():]
    # The memory's key: without areas, relative phrase and the generic 小区 (callers say
    # it or not).
    out.key = (rest.replace("小区", "") or rest) if rest else "".join(out.areas)
    for pattern in _CROSS_CN:
        m = pattern.match(rest)
        if m:
            out.cross = (m.group(1), m.group(2))
            out.core = ""
            return out
    m = _DOORPLATE_CN.match(rest)
    if m:
        out.road, out.number = m.group(1), int(m.group(2))
        rest = rest[m.end():]
    m = _BUILDING_CN.search(rest)
    if m and m.start() > 0 or (m and out.road):
        out.building = m.group(0)
        rest = rest[: m.start()]
    if out.road is None and re.fullmatch(_ROAD_CN, rest or "-"):
        out.road, rest = rest, ""
    out.core = rest
    return out


def _strip_relative(rest: str, out: ParsedAddress) -> str:
    """Take relative phrases off the end of ``rest`` (one or more), keeping the first
    bearing and distance found."""
    phrases = []
    for _ in range(3):
        for pattern in _RELATIVE_TAIL:
            m = pattern.search(rest)
            if m and m.start() >= 2:
                phrases.insert(0, m.group(0))
                groups = [g for g in m.groups() if g]
                if groups and groups[0] in _DIRECTIONS and out.bearing is None:
                    out.bearing = _DIRECTIONS[groups[0]]
                    if len(groups) > 1:
                        out.metres = float(groups[1])
                rest = rest[: m.start()]
                break
        else:
            break
    if rest.endswith("与") or rest.endswith("和"):
        rest = rest[:-1]
    out.relative = "".join(phrases) or None
    return rest


def _english_words(text: str) -> str:
    text = _EN_ORDINAL.sub(r"\1", re.sub(r"[.,;#]", " ", text))
    return " ".join(_EN_WORDS.get(w, w) for w in text.split())


def _parse_english(text: str, basic: str) -> ParsedAddress:
    out = ParsedAddress(text=text, lang="en")
    upper = basic.upper()
    head, _, locality = upper.partition(",")
    out.locality = _english_words(locality) or None
    head = _english_words(head)
    m = _EN_RELATIVE.match(head)
    if m:
        out.relative = m.group(0).strip()
        head = head[m.end():]
    out.normalized = f"{head}, {out.locality}" if out.locality else head
    out.key = out.normalized
    m = _EN_CROSS.match(head)
    if m:
        out.cross = (m.group(1), m.group(2))
        return out
    m = _EN_NUMBER.match(head)
    if m and m.group(3) in _EN_STREET_TYPES:
        m = None  # "5 AVENUE", "3 STREET": a numbered street, no house number
    if m:
        # Queens' hyphenated numbers (94-52: block 94, house 52) sort as 9452 along the street.
        out.number = int(m.group(1) + (m.group(2) or "").zfill(2 if m.group(2) else 0))
        out.road = m.group(3)
    else:
        out.core = head
    return out
