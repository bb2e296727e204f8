"""What the address matcher said about each address-only case (table ``case_locate``):
rule, confidence, the normalised address, why (English words) and its reasons (codes with
parameters, :mod:`geo.address_why`), and up to three suggestions."""

from __future__ import annotations

from sqlalchemy import Connection, text

from casegrid.db import json_param
from geo.address_match import AddressMatch

_STORE_SQL = """
INSERT INTO case_locate (case_id, rule, confidence, normalized, why, reasons, suggestions)
SELECT r.case_id, r.rule, r.confidence, r.normalized, r.why, r.reasons, r.suggestions
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(case_id bigint, rule text,
    confidence float8, normalized text, why text, reasons jsonb, suggestions jsonb)
ON CONFLICT (case_id) DO UPDATE
SET rule = EXCLUDED.rule, confidence = EXCLUDED.confidence, normalized = EXCLUDED.normalized,
    why = EXCLUDED.why, reasons = EXCLUDED.reasons, suggestions = EXCLUDED.suggestions,
    at = now()
"""


def store_case_locate(conn: Connection, pairs: list[tuple[int, AddressMatch]]) -> None:
    """Store the matcher's answer for each ``(case id, answer)``, in one statement."""
    if not pairs:
        return
    rows = [{"case_id": cid, "rule": m.rule, "confidence": round(m.confidence, 3),
             "normalized": m.normalized, "why": m.why, "reasons": m.reasons,
             "suggestions": [s.to_dict() for s in m.suggestions]} for cid, m in pairs]
    conn.execute(text(_STORE_SQL), {"rows": json_param(rows)})


def case_locate(conn: Connection, case_id: int) -> dict | None:
    """The matcher's stored answer for a case, or None (the case came with coordinates)."""
    row = conn.execute(text(
        "SELECT rule, confidence, normalized, why, reasons, suggestions, at FROM case_locate"
        " WHERE case_id = :c"), {"c": case_id}).mappings().first()
    return dict(row) if row else None
