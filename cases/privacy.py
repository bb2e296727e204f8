"""Contact details that citizens type into free text, masked for readers who may not see
the reporter.

Planners never get the reporter's name or phone fields, and the public Open311 feed gets
neither, but complaints often carry the caller's number in the text itself ("请回电
13812345678"). Under the Personal Information Protection Law such numbers are personal
information; these readers get the text with them masked. Dispatchers, supervisors and
community officers, who call reporters back, see the text as written.

Masked: mainland mobile numbers (11 digits from 13x-19x, optionally +86 and 3-4-4 spaced or
dashed), landlines with an area code (0xx(x)-xxxxxxx(x)), 18-digit resident ID numbers and
e-mail addresses. Numbers inside longer digit runs (ticket numbers, amounts) are left alone.
"""

from __future__ import annotations

import re

MASK = "[已隐藏]"

_PATTERNS = (
    # Resident ID first: 6-digit region, birth date, 3-digit sequence, check digit (or X).
    re.compile(r"(?<![0-9A-Za-z])\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
               r"\d{3}[\dXx](?![0-9A-Za-z])"),
    re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"),
    re.compile(r"(?<!\d)(?:\(0\d{2,3}\)|0\d{2,3})[- ]?\d{7,8}(?!\d)"),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
)


def mask_contacts(text: str | None) -> str | None:
    """``text`` with phone numbers, ID numbers and e-mail addresses replaced by ``MASK``."""
    if not text:
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text
