"""Candidates for many parsed addresses at once: a few set-based queries, no per-address one.

1. the address memory by key (exact), and by the nearest learned house numbers of the same
   street and side (same parity) for a numbered address the memory has not seen;
2. the gazetteer by name keys: the place's name and each tail of it (an unknown word in
   front of a known name), the road, the crossing's roads, the areas named, each with its
   one-character deletions for typos;
3. geometry, for what a name alone does not place: the intersection of a crossing's two
   roads (or their closest point when they stop just short), a house number interpolated
   along its road's range (``ST_LineInterpolatePoint``), the communities a road passes;
   each computed point's community by ``ST_Covers`` on the boundary pieces;
4. last, trigram similarity (pg_trgm's GIN index) of unnumbered addresses that found
   nothing else against the memory's keys: suggestions for the dispatcher.

1 and the exact names of 2 go to the server in one round trip (:func:`pipelined`); the typo
keys, the geometry and the trigrams only when needed. Keys travel as one text split by the
server and are joined, not searched with ``= ANY``. The points of 3 are kept per process
(an entry's geometry never changes). The options and their scores go to
``geo.address_match.decide``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import Connection, text

from casegrid.db import RawQuery, json_param, pipelined
from geo.address_match import KIND_RULE, Option
from geo.address_normalize import ParsedAddress, without_generic
from geo.address_why import reason
from geo.boundaries import ACTIVE_GENERATION
from geo.gazetteer import deletions
from geo.routing import M_PER_DEG

# Learned numbers farther than this from the asked one are not its neighbours.
NEIGHBOUR_GAP = 400
# A learned number this close on the same side is the same block: its community.
SAME_BLOCK = 40
# Two roads that stop this short of each other still make a crossing.
CROSS_NEAR_M = 30.0
# Memory keys at least this similar (pg_trgm) are offered as suggestions.
TRGM_MIN = 0.55
TRGM_MAX_ASKS = 200

# Scores. An exact name > the tail of what was said > a one-character typo.
S_EXACT, S_TAIL, S_TYPO = 0.9, 0.82, 0.78
S_COMMUNITY, S_SUBDISTRICT, S_ROAD = 0.8, 0.4, 0.75
S_NEIGHBOURS, S_SAME_BLOCK, S_ONE_NEIGHBOUR, S_NO_NUMBER = 0.8, 0.72, 0.55, 0.6
HINT_BONUS, HINT_CONFLICT = 0.03, 0.3


# Many keys go to the database as one text split there (string_to_array on the unit
# separator, which no normalised address holds): a Python list of tens of thousands of
# strings costs more to adapt, element by element, than the query costs to run.
KEY_LIST = "string_to_array(CAST(:keys AS text), E'\\x1f')"


def key_list(keys) -> str:  # noqa: ANN001 - any iterable of str
    """``keys`` as one parameter for :data:`KEY_LIST`, in no particular order: each key's
    hits are grouped by key (not read in the order of the keys), and sorting the hundreds
    of thousands of keys of a bulk import's chunk cost a tenth of its matching time."""
    return "\x1f".join(keys)


@dataclass
class Candidates:
    """Options per address (in input order) and the active communities' names."""

    options: list[list[Option]]
    community_names: dict[str, str] = field(default_factory=dict)


@dataclass
class _Hit:
    entry_id: int
    kind: str
    name: str
    code: str | None  # the entry's community (a subdistrict: its own code)
    house_from: int | None
    house_to: int | None
    lon: float
    lat: float
    exact: bool


def fetch_candidates(conn: Connection, parsed: list[ParsedAddress]) -> Candidates:
    """The options of every address in ``parsed`` (module docstring). The statements that
    do not depend on each other (the active generation, the memory by key and by
    neighbouring numbers, the names) go in one round trip; typo keys, geometry and
    trigram suggestions follow only when the first answers leave them needed."""
    options: list[list[Option]] = [[] for _ in parsed]
    signatures = _signatures(parsed)
    keys = {p.key for p in parsed if p.key}
    numbered = [(i, p) for i, p in enumerate(parsed) if p.street_key and p.number is not None]
    wanted = _wanted_keys(signatures)
    asked = key_list(wanted)
    gen_rows, memory_rows, neighbour_rows, name_rows, typoed_rows = pipelined(conn, [
        (ACTIVE_GENERATION, {"l": "community"}),
        (_MEMORY, {"keys": key_list(keys)}),
        (_NEIGHBOURS, {"sk": [p.street_key for _, p in numbered],
                       "num": [p.number for _, p in numbered],
                       "idx": [i for i, _ in numbered], "gap": NEIGHBOUR_GAP}),
        (_EXACT_HITS, {"keys": asked}),
        (_TYPOED, {"keys": asked}),
    ])
    gen = gen_rows[0].id if gen_rows else None
    names = _community_names(conn, gen)
    remembered = _memory_exact(memory_rows, parsed, options)
    _memory_neighbours(neighbour_rows, parsed, options, remembered)
    requests = _gazetteer(conn, parsed, signatures, wanted, name_rows, options,
                          {r.key for r in typoed_rows})
    if requests:
        _geometry(conn, requests, options, gen)
    _memory_similar(conn, parsed, options)
    for i in remembered:
        _memory_settles(options[i])
    return Candidates(options, names)


def _memory_settles(options: list[Option]) -> None:
    """The memory has this very address in one community only, and the names say it could
    be that community or others (a compound name found in two): the memory, taught by a
    dispatcher's placement of this address, settles it. Names that point elsewhere only
    (no option of the memory's community among them) still make it ambiguous."""
    memory = [o for o in options if o.rule == "address_memory"]
    learned = {o.community_code for o in memory}
    others = {o.community_code for o in options if o.rule != "address_memory"}
    if len(learned) == 1 and learned <= others:
        # The names agree with the memory: its point (where the case really was) with the
        # better of the two scores, a little more for the agreement.
        best = max(o.score for o in options if o.community_code in learned)
        for o in memory:
            o.score = min(0.95, max(o.score, best) + HINT_BONUS)
            o.reasons = [*o.reasons, reason("gazetteer_agrees")]
        options[:] = memory


# A generation's communities never change once stored (a redistricting is a new
# generation), so their names are read once per generation and process.
_NAMES: dict[int, dict[str, str]] = {}


def _community_names(conn: Connection, gen: int | None) -> dict[str, str]:
    if gen is None:
        return {}
    if gen not in _NAMES:
        _NAMES[gen] = {r.code: r.name for r in conn.execute(
            text("SELECT code, name FROM community WHERE generation_id = :g"), {"g": gen})}
    return _NAMES[gen]


# --- memory ---------------------------------------------------------------------------

# A join with the keys, not "key = ANY(:keys)": a bulk import asks tens of thousands of
# keys at once, and a long array is searched element by element for each row.
_MEMORY = RawQuery(
    "SELECT m.key, m.community_label, m.n, m.sum_lon / m.n AS lon, m.sum_lat / m.n AS lat"
    f" FROM unnest({KEY_LIST}) AS q(key) JOIN address_memory m ON m.key = q.key")


def _memory_exact(rows: list, parsed: list[ParsedAddress],
                  options: list[list[Option]]) -> set[int]:
    by_key: dict[str, list] = defaultdict(list)
    for r in rows:
        by_key[r.key].append(r)
    found = set()
    for i, p in enumerate(parsed):
        hits = by_key.get(p.key)
        if not hits:
            continue
        found.add(i)
        total = sum(h.n for h in hits)
        for h in hits:
            share = h.n / total
            why = [reason("memory", n=h.n)]
            if share < 1:
                why.append(reason("memory_elsewhere", n=total - h.n))
            score = (0.8 + 0.05 * min(h.n, 3)) * share
            if p.line_only:
                # A street without a number is a line: where one case on it was says
                # little about the next.
                score = min(score, S_ONE_NEIGHBOUR)
                why.append(reason("street_only"))
            options[i].append(Option("address_memory", h.lon, h.lat, h.community_label,
                                     score, why))
    return found


_NEIGHBOURS = RawQuery("""
SELECT q.i, s.side, s.house_no, s.community_label, s.lon, s.lat
FROM unnest(CAST(:sk AS text[]), CAST(:num AS int[]), CAST(:idx AS int[])) AS q(sk, num, i)
CROSS JOIN LATERAL (
    (SELECT 'lo' AS side, house_no, community_label, sum_lon / n AS lon, sum_lat / n AS lat
     FROM address_memory
     WHERE street_key = q.sk AND house_no < q.num AND house_no >= q.num - :gap
       AND house_no % 2 = q.num % 2
     ORDER BY house_no DESC LIMIT 3)
    UNION ALL
    (SELECT 'hi', house_no, community_label, sum_lon / n, sum_lat / n
     FROM address_memory
     WHERE street_key = q.sk AND house_no > q.num AND house_no <= q.num + :gap
       AND house_no % 2 = q.num % 2
     ORDER BY house_no LIMIT 3)
) s
""")


def _memory_neighbours(rows: list, parsed: list[ParsedAddress],
                       options: list[list[Option]], remembered: set[int]) -> None:
    """A number between two learned numbers of its street and side, both learned in one
    community: that community, the point interpolated between them (``rows``: the
    neighbours of every numbered address; those the memory knows exactly are skipped)."""
    rows = [r for r in rows if r.i not in remembered]
    by_i: dict[int, dict[str, list]] = defaultdict(lambda: {"lo": [], "hi": []})
    for r in rows:
        by_i[r.i][r.side].append(r)
    for i, sides in by_i.items():
        p = parsed[i]
        near = {s: [r for r in rows_ if r.house_no == rows_[0].house_no] if rows_ else []
                for s, rows_ in sides.items()}
        labels = {r.community_label for rows_ in near.values() for r in rows_}
        if near["lo"] and near["hi"] and len(labels) == 1:
            lo, hi = near["lo"][0], near["hi"][0]
            t = (p.number - lo.house_no) / (hi.house_no - lo.house_no)
            options[i].append(Option(
                "address_memory", lo.lon + t * (hi.lon - lo.lon), lo.lat + t * (hi.lat - lo.lat),
                lo.community_label, S_NEIGHBOURS,
                [reason("memory_between", lo=lo.house_no, hi=hi.house_no, street=p.street_key)]))
            continue
        for rows_ in near.values():
            for r in rows_:
                close = abs(r.house_no - p.number) <= SAME_BLOCK and len(labels) == 1
                options[i].append(Option(
                    "address_memory", r.lon, r.lat, r.community_label,
                    S_SAME_BLOCK if close else S_ONE_NEIGHBOUR,
                    [reason("memory_neighbour", no=r.house_no, street=p.street_key)]))


def _memory_similar(conn: Connection, parsed: list[ParsedAddress],
                    options: list[list[Option]]) -> None:
    # Only keys without digits: a learned address that differs in a number is another
    # place, not a typo of this one. And only a few at a time: each is a GIN probe whose
    # common trigrams can touch many keys (a bulk import's unknown rows stay unlocated).
    asks = [(i, p.key) for i, p in enumerate(parsed)
            if not options[i] and len(p.key) >= 4 and not any(ch.isdigit() for ch in p.key)]
    if not asks or len(asks) > TRGM_MAX_ASKS:
        return
    conn.execute(text("SELECT set_config('pg_trgm.similarity_threshold', :t, true)"),
                 {"t": str(TRGM_MIN)})
    rows = conn.execute(text("""
        SELECT q.i, m.key, m.community_label, m.n, m.lon, m.lat, m.sim
        FROM unnest(CAST(:keys AS text[]), CAST(:idx AS int[])) AS q(k, i)
        CROSS JOIN LATERAL (
            SELECT key, community_label, n, sum_lon / n AS lon, sum_lat / n AS lat,
                   similarity(key, q.k) AS sim
            FROM address_memory WHERE key % q.k
            ORDER BY similarity(key, q.k) DESC, key LIMIT 3) m"""),
        {"keys": [k for _, k in asks], "idx": [i for i, _ in asks]}).all()
    for r in rows:
        options[r.i].append(Option("address_memory", r.lon, r.lat, r.community_label,
                                   0.75 * r.sim, [reason("memory_similar", key=r.key)]))


# --- gazetteer ------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def _place_keys(core: str) -> tuple[tuple[str, float], ...]:
    """Keys to look the place up by, with their score: the name, then each shorter tail."""
    out = []
    for start in range(0, max(0, len(core) - 1)):
        tail = core[start:]
        score = S_EXACT if start == 0 else S_TAIL
        out.append((tail, score))
        bare = without_generic(tail)
        if bare:
            out.append((bare, score))
    return tuple(out)


def _name_query(only: str) -> RawQuery:
    """The hits of the keys (``only``: a condition on the hit, e.g. its exactness)."""
    return RawQuery(f"""
SELECT n.name_key, n.exact, e.id, e.kind, e.name, e.house_from, e.house_to,
       CASE WHEN e.kind = 'subdistrict' THEN e.properties->>'code'
            ELSE e.community_code END AS code,
       ST_X(pt.g) AS lon, ST_Y(pt.g) AS lat
FROM unnest({KEY_LIST}) AS q(key)
JOIN gazetteer_name n ON n.name_key = q.key {only}
JOIN gazetteer_entry e ON e.id = n.entry_id
CROSS JOIN LATERAL (SELECT ST_PointOnSurface(e.geom) AS g) pt
""")


# The keys asked for a name (each shorter ending of what was said) are typo keys of many
# other names in a large gazetteer, and a lookup reads a word's typo hits only when the
# word has no exact hit (_lookup): so the exact hits come first, and the typo hits that
# can be read after (_gazetteer).
_NAME_HITS, _EXACT_HITS, _TYPO_HITS = (
    _name_query(only) for only in ("", "AND n.exact", "AND NOT n.exact"))
# Which of the keys have typo hits: whether a name found anything at all (_gazetteer).
_TYPOED = RawQuery(f"""
SELECT q.key FROM unnest({KEY_LIST}) AS q(key)
WHERE EXISTS (SELECT 1 FROM gazetteer_name n WHERE n.name_key = q.key AND NOT n.exact)
""")


def _add_hits(rows: list, by_key: dict[str, list[_Hit]]) -> None:
    for r in rows:
        by_key[r.name_key].append(_Hit(r.id, r.kind, r.name, r.code, r.house_from, r.house_to,
                                       r.lon, r.lat, r.exact))


def _signatures(parsed: list[ParsedAddress]) -> dict[tuple, list[int]]:
    """Addresses that differ only in what the gazetteer does not hold (building, relative
    phrase, prefix) share one signature and are weighed once."""
    signatures: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(parsed):
        if p.lang == "zh":
            signatures[(p.core, p.road, p.number, p.cross, tuple(p.areas))].append(i)
    return signatures


def _wanted_keys(signatures: dict[tuple, list[int]]) -> set[str]:
    """The name keys to look up exactly for ``signatures``."""
    wanted: set[str] = set()
    for core, road, number, cross, areas in signatures:
        for token in (road, *(cross or ()), *areas):
            if token:
                wanted.add(token)
                bare = without_generic(token)
                if bare:
                    wanted.add(bare)
        wanted.update(k for k, _ in _place_keys(core))
        if road and number is not None:
            wanted.add(f"{road}{number}号")
    return wanted


def _has_exact(token: str, by_key: dict[str, list[_Hit]],
               kinds: tuple[str, ...] | None = None) -> bool:
    bare = without_generic(token)
    return any(h.exact and (kinds is None or h.kind in kinds)
               for k in (token, bare) if k for h in by_key.get(k, ()))


def _gazetteer(conn: Connection, parsed: list[ParsedAddress], signatures: dict[tuple, list[int]],
               wanted: set[str], name_rows: list, options: list[list[Option]],
               typoed: set[str]) -> list[dict]:
    """Options from names alone (``name_rows``: the exact hits of ``wanted``, the keys
    :func:`_wanted_keys` gave for ``signatures``; ``typoed``: those of them with typo
    hits); returns the geometry requests (crossings, numbers on roads, roads) for
    :func:`_geometry`. In a second query, the typo keys (deletions) of the words that
    found nothing exactly, and the typo hits of ``wanted`` that a lookup may read."""
    if not signatures:
        return []
    by_key: dict[str, list[_Hit]] = defaultdict(list)
    _add_hits(name_rows, by_key)
    typos: set[str] = set()  # every hit
    read: set[str] = set()  # the keys whose typo hits _lookup may read
    for core, road, number, cross, areas in signatures:
        door = f"{road}{number}号" if road and number is not None else None
        for token, kinds in ((road, _ROAD_KINDS), (door, ("doorplate",)),
                             *((t, _ROAD_KINDS) for t in cross or ()),
                             *((t, ("subdistrict",)) for t in areas)):
            if token and not _has_exact(token, by_key, kinds):
                read.update((token, *deletions(token)))
                if token != door and not _has_exact(token, by_key):
                    typos.update(deletions(token))
        place_keys = [k for k, _ in _place_keys(core)]
        if core and not any(h.exact and h.kind in _PLACE_KINDS
                            for k in place_keys for h in by_key.get(k, ())):
            read.update((core, *deletions(core)))
            if not any(by_key.get(k) or k in typoed for k in place_keys):
                typos.add(core)
                typos.update(deletions(core))
    typos -= wanted
    read &= wanted & typoed
    for rows in pipelined(conn, [(query, {"keys": key_list(keys)}) for query, keys
                                 in ((_NAME_HITS, typos), (_TYPO_HITS, read)) if keys]):
        _add_hits(rows, by_key)
    requests: list[dict] = []
    for members in signatures.values():
        first = members[0]
        start, own = len(requests), len(options[first])
        _options_for(first, parsed[first], by_key, options[first], requests)
        # The names' options only: the memory's options of the first member (found above
        # by its whole text) are its own, not its signature's.
        shared = options[first][own:]
        for i in members[1:]:
            options[i].extend(shared)
        for r in requests[start:]:
            r["members"] = members  # the geometry's answer goes to each of them
    return requests


def _lookup(token: str, by_key: dict[str, list[_Hit]], kinds: tuple[str, ...] | None
            ) -> tuple[list[_Hit], bool]:
    """Entries named ``token`` (exactly, else within one typo), and whether exactly."""
    def keep(hits: list[_Hit]) -> list[_Hit]:
        seen, out = set(), []
        for h in hits:
            if (kinds is None or h.kind in kinds) and h.entry_id not in seen:
                seen.add(h.entry_id)
                out.append(h)
        return out

    bare = without_generic(token)
    exact = keep([h for k in (token, bare) if k for h in by_key.get(k, []) if h.exact])
    if exact:
        return exact, True
    typo = keep([h for k in [token, *deletions(token)] for h in by_key.get(k, [])])
    return typo, False


_PLACE_KINDS = ("compound", "building", "doorplate", "poi", "landmark", "post", "community",
                "subdistrict")
_ROAD_KINDS = ("road",)


def _options_for(i: int, p: ParsedAddress, by_key: dict[str, list[_Hit]],
                 out: list[Option], requests: list[dict]) -> None:
    first_request = len(requests)
    hinted_communities: set[str] = set()
    hinted_subdistricts: set[str] = set()
    area_options: list[Option] = []
    for area in p.areas:
        hits, exact = _lookup(area, by_key, ("community", "subdistrict"))
        for h in hits:
            if h.kind == "community" and h.code:
                hinted_communities.add(h.code)
                area_options.append(Option("address_community", h.lon, h.lat, h.code,
                                           S_COMMUNITY if exact else S_COMMUNITY - 0.05,
                                           [reason("names_community", name=h.name)]))
            elif h.kind == "subdistrict" and h.code:
                hinted_subdistricts.add(h.code)
    mine: list[Option] = []
    if p.cross:
        a_hits, a_exact = _lookup(p.cross[0], by_key, _ROAD_KINDS)
        b_hits, b_exact = _lookup(p.cross[1], by_key, _ROAD_KINDS)
        if a_hits and b_hits:
            requests.append({"i": i, "op": "cross", "a": [h.entry_id for h in a_hits],
                             "b": [h.entry_id for h in b_hits],
                             "score": S_EXACT if a_exact and b_exact else S_TYPO,
                             "why": [reason("crossing", a=a_hits[0].name, b=b_hits[0].name)]})
    if p.road:
        door, door_exact = _lookup(f"{p.road}{p.number}号", by_key, ("doorplate",)) \
            if p.number is not None else ([], False)
        for h in door:
            mine.append(Option("address_doorplate", h.lon, h.lat, h.code,
                               S_EXACT if door_exact else S_TYPO, [reason("doorplate", name=h.name)]))
        roads, exact = _lookup(p.road, by_key, _ROAD_KINDS)
        ranged = [h for h in roads if p.number is not None and h.house_from is not None
                  and h.house_to is not None
                  and min(h.house_from, h.house_to) <= p.number <= max(h.house_from, h.house_to)]
        if not door and ranged:
            for h in ranged:
                requests.append({"i": i, "op": "door", "e": h.entry_id, "num": p.number,
                                 "score": S_EXACT if exact else S_TYPO,
                                 "why": [reason("road_number", no=p.number, road=h.name,
                                                lo=h.house_from, hi=h.house_to)]})
        elif not door and roads and not p.core:
            score = S_ROAD if p.number is None else S_NO_NUMBER
            for h in roads:
                requests.append({"i": i, "op": "road", "e": h.entry_id, "score": score,
                                 "why": [reason("road", road=h.name)] + (
                                     [reason("no_range", no=p.number)] if p.number else [])})
    if p.core and not mine:
        mine.extend(_place_options(p.core, by_key))
    if not mine and not p.cross and not p.road and area_options:
        mine.extend(area_options)
    elif not mine and not p.cross and not p.road:
        for sub in sorted(hinted_subdistricts):
            hits = [h for area in p.areas for h in _lookup(area, by_key, ("subdistrict",))[0]]
            for h in hits[:1]:
                mine.append(Option("address_community", h.lon, h.lat, None, S_SUBDISTRICT,
                                   [reason("names_subdistrict", name=h.name, sub=sub)]))
    for o in mine:
        _apply_hints(o, hinted_communities, hinted_subdistricts)
    out.extend(mine)
    for r in requests[first_request:]:
        r["communities"] = sorted(hinted_communities)
        r["subdistricts"] = sorted(hinted_subdistricts)


def _place_options(core: str, by_key: dict[str, list[_Hit]]) -> list[Option]:
    for key, score in _place_keys(core):
        hits = [h for h in by_key.get(key, []) if h.exact and h.kind in _PLACE_KINDS]
        if hits:
            return [_hit_option(h, score) for h in _unique(hits)]
    hits, exact = _lookup(core, by_key, _PLACE_KINDS)
    return [_hit_option(h, S_EXACT if exact else S_TYPO) for h in hits]


def _unique(hits: list[_Hit]) -> list[_Hit]:
    seen, out = set(), []
    for h in hits:
        if h.entry_id not in seen:
            seen.add(h.entry_id)
            out.append(h)
    return out


def _hit_option(h: _Hit, score: float) -> Option:
    if h.kind == "community":
        return Option("address_community", h.lon, h.lat, h.code, min(score, S_COMMUNITY),
                      [reason("community", name=h.name)])
    if h.kind == "subdistrict":
        return Option("address_community", h.lon, h.lat, None, S_SUBDISTRICT,
                      [reason("subdistrict", name=h.name)])
    why = [reason("place", kind=h.kind, name=h.name)]
    if score != S_EXACT:
        why.append(reason("tail" if score == S_TAIL else "typo"))
    return Option(KIND_RULE.get(h.kind, "address_landmark"), h.lon, h.lat, h.code, score, why)


def _apply_hints(o: Option, communities: set[str] | set, subdistricts: set[str] | set) -> None:
    """A community or subdistrict the caller named confirms an option or contradicts it."""
    if o.community_code is None:
        return
    if communities:
        o.score += HINT_BONUS if o.community_code in communities else -HINT_CONFLICT
    elif subdistricts and not any(o.community_code.startswith(s) for s in subdistricts):
        o.score -= HINT_CONFLICT
    o.score = min(o.score, 0.95)


# --- geometry -------------------------------------------------------------------------

# Each branch first fetches its entries by id (MATERIALIZED: else the planner may join
# every community with every road before it looks at the requests).
_GEOMETRY_SQL = """
WITH q AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(CAST(:req AS jsonb))
        AS q(k int, op text, a bigint[], b bigint[], e bigint, num int)
), pairs AS MATERIALIZED (
    SELECT q.k, ea.geom AS ga, eb.geom AS gb
    FROM q
    CROSS JOIN LATERAL unnest(q.a) AS ia(id)
    CROSS JOIN LATERAL unnest(q.b) AS ib(id)
    JOIN gazetteer_entry ea ON ea.id = ia.id
    JOIN gazetteer_entry eb ON eb.id = ib.id
    WHERE q.op = 'cross'
), lines AS MATERIALIZED (
    SELECT q.k, q.op, q.num, e.geom, e.house_from, e.house_to
    FROM q JOIN gazetteer_entry e ON e.id = q.e
    WHERE q.op IN ('door', 'road')
), pts AS MATERIALIZED (
    SELECT p.k, ST_PointOnSurface(d.geom) AS g, NULL::text AS code
    FROM pairs p
    CROSS JOIN LATERAL ST_Dump(CASE WHEN ST_Intersects(p.ga, p.gb)
                                    THEN ST_Intersection(p.ga, p.gb)
                                    ELSE ST_ClosestPoint(p.ga, p.gb) END) d
    WHERE ST_DWithin(p.ga, p.gb, :near_deg)
    UNION ALL
    SELECT l.k, ST_LineInterpolatePoint(m.line, least(1.0, greatest(0.0,
               (l.num - l.house_from)::float8 / NULLIF(l.house_to - l.house_from, 0)))), NULL
    FROM lines l
    CROSS JOIN LATERAL (SELECT CASE WHEN GeometryType(l.geom) = 'LINESTRING' THEN l.geom
                                    ELSE ST_GeometryN(ST_LineMerge(l.geom), 1) END AS line) m
    WHERE l.op = 'door' AND GeometryType(m.line) = 'LINESTRING'
    UNION ALL
    SELECT l.k, ST_PointOnSurface(ST_Intersection(c.geom, l.geom)), c.code
    FROM lines l
    JOIN community c ON c.generation_id = CAST(:gen AS int) AND ST_Intersects(c.geom, l.geom)
    WHERE l.op = 'road'
    UNION ALL
    SELECT l.k, ST_PointOnSurface(l.geom), NULL
    FROM lines l
    WHERE l.op = 'road' AND CAST(:gen AS int) IS NULL
)
SELECT p.k, ST_X(p.g) AS lon, ST_Y(p.g) AS lat, COALESCE(p.code, w.code) AS code
FROM pts p
LEFT JOIN LATERAL (
    SELECT c.code FROM community_piece cp JOIN community c ON c.id = cp.community_id
    WHERE p.code IS NULL AND cp.generation_id = CAST(:gen AS int) AND ST_Covers(cp.geom, p.g)
    ORDER BY c.code LIMIT 1
) w ON true
WHERE NOT ST_IsEmpty(p.g)
"""


# Computed points of gazetteer entries, per database and community generation: an entry's
# geometry never changes (a re-import stores new entries under new ids, a redistricting is
# a new generation), so the crossing of two roads is computed once per process, not at
# every call from that corner. Bounded: cleared when full.
_POINTS: dict[tuple, list[tuple[float, float, str | None]]] = {}
_POINTS_MAX = 100_000


def _geometry(conn: Connection, requests: list[dict], options: list[list[Option]],
              gen: int | None) -> None:
    """Points for crossings, numbers on roads and roads (module docstring), as options."""
    url = conn.engine.url
    where = (url.host, url.port, url.database, gen)
    keys = [(where, r["op"], tuple(r.get("a") or ()), tuple(r.get("b") or ()), r.get("e"),
             r.get("num")) for r in requests]
    todo = list(dict.fromkeys(k for k in keys if k not in _POINTS))
    if todo:
        payload = [{"k": j, "op": op, "a": list(a) or None, "b": list(b) or None, "e": e,
                    "num": num} for j, (_w, op, a, b, e, num) in enumerate(todo)]
        rows = conn.execute(text(_GEOMETRY_SQL), {
            "req": json_param(payload), "gen": gen, "near_deg": CROSS_NEAR_M / M_PER_DEG}).all()
        if len(_POINTS) + len(todo) > _POINTS_MAX:
            _POINTS.clear()
        for k in todo:
            _POINTS[k] = []
        for r in rows:
            _POINTS[todo[r.k]].append((r.lon, r.lat, r.code))
    rule = {"cross": "address_crossing", "door": "address_doorplate", "road": "address_road"}
    for req, key in zip(requests, keys, strict=True):
        for lon, lat, code in _POINTS.get(key, ()):
            o = Option(rule[req["op"]], lon, lat, code, req["score"], req["why"])
            _apply_hints(o, set(req.get("communities", ())), set(req.get("subdistricts", ())))
            for i in req.get("members", (req["i"],)):
                options[i].append(o)
