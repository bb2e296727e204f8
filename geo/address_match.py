"""The address matcher: a point, its community, a confidence and a rule for address text.

For a list of addresses (one, or a million from a bulk import) the work is set-based:
each distinct address is parsed once (``geo.address_normalize``), then a handful of
queries fetch the candidates of all of them at once (:mod:`geo.address_candidates`):
the address memory by key and by neighbouring house numbers, the gazetteer by name keys
(typos included), and the geometry of crossings, house-number ranges and roads. Python
then weighs each address's candidates (:func:`decide`); no query runs per address.

Rules, as the case stores them: ``address_memory``, ``address_doorplate``,
``address_compound``, ``address_crossing``, ``address_road``, ``address_landmark``,
``address_community``.

**Never confidently wrong.** Each candidate (an *option*) carries a score and the
community it lies in. The best option is taken only when its score reaches
``Settings.address_min_confidence`` and no option in another community comes within
``RIVAL_MARGIN`` of it: the same compound name in two communities, a road that crosses
three, a memory that saw the address in two communities, or the memory and the gazetteer
disagreeing all leave the case unlocated with up to three suggestions, each with its
community and why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection

from casegrid.settings import get_settings
from geo.address_normalize import ParsedAddress, city_prefixes, parse_address
from geo.address_why import explain, reason
from geo.routing import M_PER_DEG

ADDRESS_RULES = ("address_memory", "address_doorplate", "address_compound", "address_crossing",
                 "address_road", "address_landmark", "address_community")
MAX_SUGGESTIONS = 3
# An option in another community this close to the best one makes the answer ambiguous.
RIVAL_MARGIN = 0.15
# Options of one community closer than this are one place (two buildings of a compound).
SAME_PLACE_M = 300.0
# What a relative phrase ("往北50米", "对面") costs: the point is only about there.
RELATIVE_PENALTY = 0.03

KIND_RULE = {"compound": "address_compound", "building": "address_compound",
              "doorplate": "address_doorplate", "poi": "address_landmark",
              "landmark": "address_landmark", "post": "address_landmark",
              "crossing": "address_crossing", "road": "address_road",
              "community": "address_community", "subdistrict": "address_community"}


@dataclass
class Option:
    """One place an address may mean, with why (``reasons``: :mod:`geo.address_why`)."""

    rule: str
    lon: float
    lat: float
    community_code: str | None
    score: float
    reasons: list[dict]
    community_name: str | None = None

    @property
    def why(self) -> str:
        """The reasons in English words."""
        return explain(self.reasons)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = round(self.score, 3)
        d["why"] = self.why
        return d


@dataclass
class AddressMatch:
    """The matcher's answer for one address."""

    address: str
    normalized: str
    rule: str | None = None
    confidence: float = 0.0
    lon: float | None = None
    lat: float | None = None
    community_code: str | None = None
    community_name: str | None = None
    reasons: list[dict] = field(default_factory=list)
    suggestions: list[Option] = field(default_factory=list)

    @property
    def located(self) -> bool:
        """True when the matcher answers with a point (confident enough, unambiguous)."""
        return self.rule is not None and self.lon is not None

    @property
    def why(self) -> str | None:
        """The reasons in English words (None when there are none)."""
        return explain(self.reasons) if self.reasons else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["confidence"] = round(self.confidence, 3)
        d["why"] = self.why
        d["suggestions"] = [s.to_dict() for s in self.suggestions]
        d["located"] = self.located
        return d


def match_addresses(conn: Connection, addresses: list[str], *,
                    min_confidence: float | None = None,
                    cache: dict[str, AddressMatch] | None = None) -> list[AddressMatch]:
    """Match each address (module docstring); the answers in order, one per address.
    Each distinct text is matched once; ``cache`` (text -> answer) carries answers across
    calls (a bulk import's chunks)."""
    from geo.address_candidates import fetch_candidates

    threshold = get_settings().address_min_confidence if min_confidence is None else min_confidence
    cache = {} if cache is None else cache
    todo = [a for a in dict.fromkeys(addresses) if a not in cache]
    if todo:
        prefixes = city_prefixes()
        parsed = [parse_address(a, prefixes) for a in todo]
        cands = fetch_candidates(conn, parsed)
        for a, p, options in zip(todo, parsed, cands.options, strict=True):
            cache[a] = decide(p, options, threshold, cands.community_names)
    return [cache[a] for a in addresses]


def match_address(conn: Connection, address: str, **options) -> AddressMatch:
    """:func:`match_addresses` for one address."""
    return match_addresses(conn, [address], **options)[0]


def _distance_m(a: Option, b: Option) -> float:
    dx = (a.lon - b.lon) * M_PER_DEG * math.cos(math.radians((a.lat + b.lat) / 2))
    dy = (a.lat - b.lat) * M_PER_DEG
    return math.hypot(dx, dy)


def _same_place(a: Option, b: Option) -> bool:
    if a.community_code is not None and b.community_code is not None:
        return a.community_code == b.community_code
    return _distance_m(a, b) <= SAME_PLACE_M


def _shift(option: Option, bearing: float | None, metres: float | None) -> Option:
    """``option`` moved ``metres`` along ``bearing`` (degrees from north), for "往北50米"."""
    if bearing is None or not metres:
        return option
    dy = metres * math.cos(math.radians(bearing)) / M_PER_DEG
    dx = metres * math.sin(math.radians(bearing)) / (M_PER_DEG * math.cos(math.radians(option.lat)))
    return Option(option.rule, option.lon + dx, option.lat + dy, option.community_code,
                  option.score, [*option.reasons, reason("shifted", m=metres, deg=bearing)],
                  option.community_name)


def decide(parsed: ParsedAddress, options: list[Option], threshold: float,
           community_names: dict[str, str] | None = None) -> AddressMatch:
    """Weigh an address's options (module docstring): the answer, or suggestions."""
    names = community_names or {}
    out = AddressMatch(address=parsed.text, normalized=parsed.normalized)
    if not options:
        out.reasons = [reason("nothing")]
        return out
    for o in options:
        o.community_name = o.community_name or names.get(o.community_code or "")
    ranked = sorted(options, key=lambda o: (-o.score, o.rule, o.community_code or "", o.lon))
    distinct: list[Option] = []
    for o in ranked:
        if not any(_same_place(o, d) for d in distinct):
            distinct.append(o)
    top = distinct[0]
    rivals = [o for o in distinct[1:] if o.score >= top.score - RIVAL_MARGIN]
    penalty = RELATIVE_PENALTY if parsed.relative else 0.0
    if rivals:
        # Ambiguous: as sure as a fair choice between the rivals would be.
        out.confidence = top.score / (len(rivals) + 1)
        out.reasons = [reason("ambiguous", n=len(rivals) + 1, options=[
            {"community_code": o.community_code, "community_name": o.community_name,
             "reasons": o.reasons} for o in [top, *rivals][:MAX_SUGGESTIONS]])]
    else:
        out.confidence = max(0.0, top.score - penalty)
        out.reasons = list(top.reasons)
    if not rivals and out.confidence >= threshold:
        chosen = _shift(top, parsed.bearing, parsed.metres)
        out.rule, out.lon, out.lat = chosen.rule, chosen.lon, chosen.lat
        out.community_code, out.community_name = chosen.community_code, chosen.community_name
        out.reasons = list(chosen.reasons)
        return out
    out.suggestions = [_shift(o, parsed.bearing, parsed.metres)
                       for o in distinct[:MAX_SUGGESTIONS]]
    return out
