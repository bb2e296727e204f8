"""Finding a case by what a person has at hand: its case number, the hotline's ticket
number, the reporter's phone, or words of its address.

Each kind of look-up has its own index (migration 0024 for the phone and the address), so
the search box answers in milliseconds on a ledger of millions: the exact kinds are tried
one at a time, most specific first, and the address words only when none of them matched.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from cases import queries
from cases.filters import CaseFilters
from cases.tokens import Principal
from cases.vocabulary import CHANNELS

MAX_RESULTS = 30
MAX_QUERY = 100
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


def search_cases(conn: Connection, q: str, principal: Principal,
                 limit: int = MAX_RESULTS) -> list[dict]:
    """Cases ``principal`` may see matching ``q``, newest reported first: the case number,
    a channel's ticket number or the reporter's phone when one of them matches exactly
    (tried in that order), otherwise addresses containing ``q``.

    Searching by phone follows the rule for seeing it (:attr:`Principal.sees_reporter`):
    a planner's phone number is searched only as address words, which are stored with
    phone numbers masked (:mod:`cases.privacy`), so a planner cannot find cases by phone."""
    q = (q or "").strip()[:MAX_QUERY]
    if not q:
        return []
    params = {"q": q, "q_upper": q.upper(), "channels": list(CHANNELS), "limit": limit}
    exact = ["c.case_no = :q_upper", "(c.channel = ANY(:channels) AND c.external_id = :q)"]
    phones = phone_digits(q) if principal.sees_reporter else []
    if phones:
        exact.append(f"{PHONE_DIGITS_SQL} = ANY(:phones)")
        params["phones"] = phones
    for condition in exact:  # one at a time: each is one look-up in its own index
        rows = _select(conn, principal, condition, params)
        if rows:
            return rows
    like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return _select(conn, principal, "c.address ILIKE :like", {**params, "like": like})


def _select(conn: Connection, principal: Principal, condition: str, params: dict) -> list[dict]:
    where, scope = queries.where_sql(CaseFilters(), principal, [(condition, {})])
    sql = queries.CASE_SELECT + where + " ORDER BY c.reported_at DESC, c.id DESC LIMIT :limit"
    rows = conn.execute(text(sql), {**params, **scope}).mappings()
    return [queries.redact(dict(r), principal) for r in rows]
