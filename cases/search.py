"""Finding a case by what a person has at hand: its case number, the hotline's ticket
number, the reporter's phone, or words of its address.

Each kind of look-up has its own index (migration 0024 for the phone and the address), so
the search box answers in milliseconds on a ledger of millions: the exact kinds are tried
one at a time, most specific first, and the address words only when none of them matched.

Address words need three characters for the trigram index. A shorter word (善国) is looked
up among the known place names first (:mod:`geo.place_names`, migration 0032) and the
ledger searched by the names holding it (善国苑, 善国路...); a word no known name holds, or
a single character, is not searched at all: the answer says to type more
(:attr:`SearchResult.too_short`). Never a read of every case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from cases import queries
from cases.filters import CaseFilters
from cases.tokens import Principal
from cases.vocabulary import CHANNELS
from geo.place_names import MIN_NAME, names_containing

MAX_RESULTS = 30
MAX_QUERY = 100
# pg_trgm's trigrams: an address word shorter than this cannot use case_address_trgm (the
# place names searched instead are at least as long: one rule, geo.place_names.MIN_NAME).
MIN_ADDRESS_WORD = MIN_NAME
# At most this many place names searched for a short word (one index probe each).
MAX_PLACE_NAMES = 8
# The reporter's phone as digits only, the expression the index case_reporter_phone_digits
# is built on (migrations 0024, 0027): the planner uses the index only for this expression.
PHONE_DIGITS_SQL = "regexp_replace(c.reporter_phone, '[^0-9]', '', 'g')"
# What a typed phone may look like: digits with an optional +, spaces, dashes, brackets.
_PHONE_TYPED = re.compile(r"^\+?[0-9][0-9 ()\-]*$")
_SHORTEST_PHONE = 7  # a landline without its area code


def phone_digits(q: str) -> list[str]:
    """The digit strings a typed phone may be stored as (``+86 138...`` also as the
    11-digit mobile), or ``[]`` when ``q`` does not look like a phone number."""
    if not _PHONE_TYPED.match(q):
        return []
    digits = re.sub(r"[^0-9]", "", q)
    if len(digits) < _SHORTEST_PHONE:
        return []
    forms = [digits]
    if len(digits) == 13 and digits.startswith("86"):
        forms.append(digits[2:])
    elif len(digits) == 11 and digits.startswith("1"):
        forms.append("86" + digits)
    return forms


@dataclass
class SearchResult:
    """What a search found, and how the address words were searched: ``names``, the known
    place names searched for a word too short to search itself (``more_names``: more
    names hold it than were searched); ``too_short``: an address word that was not searched
    (shorter than :data:`MIN_ADDRESS_WORD` and in no known name)."""

    rows: list[dict]
    names: list[str] = field(default_factory=list)
    more_names: bool = False
    too_short: bool = False


def search_cases(conn: Connection, q: str, principal: Principal,
                 limit: int = MAX_RESULTS) -> list[dict]:
    """The rows of :func:`search`."""
    return search(conn, q, principal, limit).rows


def search(conn: Connection, q: str, principal: Principal,
           limit: int = MAX_RESULTS) -> SearchResult:
    """Cases ``principal`` may see matching ``q``, newest reported first: the case number,
    a channel's ticket number or the reporter's phone when one of them matches exactly
    (tried in that order), otherwise addresses containing ``q`` (a word shorter than
    :data:`MIN_ADDRESS_WORD`: addresses containing a known place name that holds it).

    Searching by phone follows the rule for seeing it (:attr:`Principal.sees_reporter`):
    a planner's phone number is searched only as address words, which are stored with
    phone numbers masked (:mod:`cases.privacy`), so a planner cannot find cases by phone."""
    q = (q or "").strip()[:MAX_QUERY]
    if not q:
        return SearchResult([])
    params = {"q": q, "q_upper": q.upper(), "channels": list(CHANNELS), "limit": limit}
    exact = ["c.case_no = :q_upper", "(c.channel = ANY(:channels) AND c.external_id = :q)"]
    phones = phone_digits(q) if principal.sees_reporter else []
    if phones:
        exact.append(f"{PHONE_DIGITS_SQL} = ANY(:phones)")
        params["phones"] = phones
    for condition in exact:  # one at a time: each is one look-up in its own index
        rows = _select(conn, principal, condition, params)
        if rows:
            return SearchResult(rows)
    if len(q) >= MIN_ADDRESS_WORD:
        return SearchResult(_select(conn, principal, "c.address ILIKE :like",
                                    {**params, "like": _contains(q)}))
    found = names_containing(conn, q, MAX_PLACE_NAMES)
    if not found.names:
        return SearchResult([], too_short=True)
    # One trigram probe per name, OR-ed (a bitmap of each): never the short word itself.
    likes = {f"name{i}": _contains(n) for i, n in enumerate(found.names)}
    condition = "(" + " OR ".join(f"c.address ILIKE :{k}" for k in likes) + ")"
    return SearchResult(_select(conn, principal, condition, {**params, **likes}),
                        names=found.names, more_names=found.more)


def _contains(word: str) -> str:
    """An ILIKE pattern for addresses containing ``word`` (its wildcards escaped)."""
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _select(conn: Connection, principal: Principal, condition: str, params: dict) -> list[dict]:
    where, scope = queries.where_sql(CaseFilters(), principal, [(condition, {})])
    sql = queries.CASE_SELECT + where + " ORDER BY c.reported_at DESC, c.id DESC LIMIT :limit"
    rows = conn.execute(text(sql), {**params, **scope}).mappings()
    return [queries.redact(dict(r), principal) for r in rows]
