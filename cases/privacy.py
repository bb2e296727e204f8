"""Contact details that citizens type into free text, masked when the text is stored.

Complaints often carry the caller's number or ID in the text itself ("我是3号楼的王先生,
电话138xxxxxxxx"). Under the Personal Information Protection Law these are personal
information: descriptions, addresses and workflow notes are scanned when stored, and the
ledger keeps the masked text where everyone reads it (lists, maps, exports, reports, logs).
When masking changed something, the text as written is kept beside it, in
``personal_text`` (see :mod:`cases.personal_text`), readable only by roles that may see
the reporter and only through an explicit reveal that the case's history records.

Masked, keeping the digits a caller needs to recognise a number (the way Chinese services
print them): mainland mobiles (138****5678; with +86, and with spaces or dashes inside),
landlines with an area code (0632-*****45), 18-digit resident ID numbers
(3704**********1234, X check digit too), bank card numbers (16-19 digits passing the Luhn
check, so that order and ticket numbers stay) and e-mail addresses (l***@example.com).
Full-width digits (１３８…) count as digits. Numbers inside longer digit runs are left
alone unless the run splits at a space or dash into a number of one of these kinds.

Never applied to fields meant to hold a phone (the reporter's phone), which have their own
access rule (:attr:`cases.tokens.Principal.sees_reporter`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

# Full-width digits and signs as their ASCII twins (a 1:1 map, so positions stay).
_ASCII = str.maketrans("０１２３４５６７８９＋－（）＠　", "0123456789+-()@ ")
_D = "[0-9\uff10-\uff19]"
_SEP = "[ \u3000\\-\uff0d()\uff08\uff09]"
# A digit run of at least 10 digits (the shortest kind, a landline with its area code),
# single separators allowed between digits, an X check digit at the end. Not preceded or
# followed by a digit: a number inside a longer run is not the number. The pattern starts
# with the digit and looks behind it (not before it) for another: a pattern that starts
# with a character class lets the regex engine skip ahead to the next digit instead of
# trying the lookbehind at every position of the text.
_RUN = re.compile(rf"{_D}(?<!{_D}{_D})(?:{_SEP}?{_D}){{9,}}(?:[Xx\uff38\uff58])?(?!{_D})")
# What text must hold for mask_contacts to change it (a pre-filter for vectorised callers:
# the bulk import tests a whole column with it, then masks the rows it matches).
MAY_HOLD_CONTACTS = _RUN.pattern + "|[@\uff20]"
# The cheap test before the scan: every number masked here has at least 10 digits (one
# pass up to the tenth digit; possessive, so a text with fewer fails without backtracking).
_TEN_DIGITS = re.compile(rf"(?:[^0-9\uff10-\uff19]*+{_D}){{10}}")
_DIGIT_OR_X = frozenset("0123456789Xx")
_GROUP_SEP = re.compile(rf"{_SEP}+")
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*([@\uff20][A-Za-z0-9\-]+"
                    r"(?:\.[A-Za-z0-9\-]+)+)")
_MOBILE = re.compile(r"(86)?1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"0[1-9][0-9]{8,10}")
_ID = re.compile(r"[0-9]{6}((?:18|19|20)[0-9]{2})([01][0-9])([0-3][0-9])[0-9]{3}[0-9X]")
_STAR = "*"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_id(digits: str) -> bool:
    m = _ID.fullmatch(digits)
    if m is None:
        return False
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _keep(digits: str) -> tuple[int, int] | None:
    """How many leading and trailing digits of ``digits`` stay visible, or None when it is
    not a number of a kind that is masked."""
    n = len(digits)
    if n == 18 and _is_id(digits):
        return 4, 4
    if digits[-1] == "X":
        return None
    if _MOBILE.fullmatch(digits):
        return (5 if n == 13 else 3), 4
    if _LANDLINE.fullmatch(digits):
        return (3 if digits[1] in "12" else 4), 2
    if 16 <= n <= 19 and _luhn(digits):
        return 4, 4
    return None


def _drop_seps(run: str) -> str:
    """A run (after _ASCII) without its separators: its digits and X. Four replaces are
    several times faster than a str.translate that deletes."""
    return run.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")


def _mask_span(text: str, keep: tuple[int, int]) -> str:
    """``text`` (a run as :func:`_mask_run` reads it: ASCII digits, X, separators) with its
    digits starred but the first and last ``keep``, separators kept."""
    head, tail = keep
    if text.isalnum():  # digits only (and X): the common case, by slicing
        n = len(text)
        return text if n <= head + tail else text[:head] + _STAR * (n - head - tail) + text[n - tail:]
    chars = list(text)
    digits = [i for i, ch in enumerate(chars) if ch in _DIGIT_OR_X]
    for i in digits[head:len(digits) - tail]:
        chars[i] = _STAR
    return "".join(chars)


def _mask_run(match: re.Match) -> str:
    run = match[0]
    # Full-width digits and signs as ASCII, x as X (most runs are ASCII already).
    run = run.upper() if run.isascii() else run.translate(_ASCII).upper().replace("Ｘ", "X")
    digits = run if run.isalnum() else _drop_seps(run)
    keep = _keep(digits)
    if keep is not None:
        return _mask_span(run, keep)
    # Not one number: maybe several written side by side ("301 13812345678"). Try the
    # longest runs of whole groups first, left to right.
    groups = _GROUP_SEP.split(run)
    seps = _GROUP_SEP.findall(run)
    if len(groups) == 1:
        return match[0]
    out: list[str] = []
    i, changed = 0, False
    while i < len(groups):
        for j in range(len(groups), i, -1):
            digits = "".join(groups[i:j])
            keep = _keep(digits) if len(digits) >= 10 else None
            if keep is not None:
                span = "".join(g + (seps[k] if k < j - 1 else "") for k, g in
                               enumerate(groups[i:j], start=i))
                out.append(_mask_span(span, keep))
                changed = True
                break
        else:
            j = i + 1
            out.append(groups[i])
        if j < len(groups):
            out.append(seps[j - 1])
        i = j
    return "".join(out) if changed else match[0]


def _mask_email(match: re.Match) -> str:
    return match[1] + "***" + match[2].translate(_ASCII)


def public_digits(numbers: Iterable[str | None]) -> frozenset[str]:
    """The digits of numbers that are public (a community post's phone on its sign), for
    :func:`mask_contacts`'s ``public``."""
    return frozenset(d for d in ("".join(ch for ch in (n or "").translate(_ASCII)
                                         if ch.isdigit()) for n in numbers) if d)


def mask_contacts(text: str | None, public: frozenset[str] = frozenset()) -> str | None:
    """``text`` with phone, ID and bank card numbers and e-mail addresses masked. A number
    whose digits are in ``public`` (:func:`public_digits`: a post's phone, written into a
    reply so the citizen can call back) is nobody's personal data and stays as written."""
    if not text:
        return text
    email = "@" in text or "\uff20" in text
    # Most text holds neither a number (at least 10 digits) nor an @: one pass counting
    # digits is cheaper than the scan for runs.
    if not email and _TEN_DIGITS.match(text) is None:
        return text
    if public:
        def sub(match: re.Match) -> str:
            digits = "".join(ch for ch in match[0].translate(_ASCII) if ch.isdigit())
            return match[0] if digits in public else _mask_run(match)
        masked = _RUN.sub(sub, text)
    else:
        masked = _RUN.sub(_mask_run, text)
    if email:  # masking numbers adds no @
        masked = _EMAIL.sub(_mask_email, masked)
    return masked


def masked_and_original(text: str | None, public: frozenset[str] = frozenset()
                        ) -> tuple[str | None, str | None]:
    """``(masked, original)`` for storing ``text``: ``original`` is None when masking
    changed nothing (then there is nothing more to keep)."""
    masked = mask_contacts(text, public)
    return masked, (None if masked == text else text)


def mask_free_text(description: str | None,
                   address: str | None) -> tuple[str | None, str | None, dict | None]:
    """A new case's description and address as stored (masked), and the originals that
    masking changed, by field (None when it changed nothing: the common case)."""
    masked_d, original_d = masked_and_original(description)
    masked_a, original_a = masked_and_original(address)
    if original_d is None and original_a is None:
        return description, address, None
    originals = {k: v for k, v in (("description", original_d), ("address", original_a))
                 if v is not None}
    return masked_d, masked_a, originals
