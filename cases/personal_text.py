"""Free text as written, kept beside its masked form, and the reveal that reads it.

The ledger stores descriptions, addresses and workflow notes masked (:mod:`cases.privacy`);
when masking changed a text, the text as written goes to ``personal_text``. Every default
view (API, maps, exports, reports, logs) reads the masked text. A role that may see the
reporter (:attr:`cases.tokens.Principal.reads_personal_text`) reads the originals only through
:func:`reveal`, which writes a ``reveal_personal_text`` event to the case's history (who,
when, which texts): the bureau can say who saw what.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from casegrid.errors import Forbidden
from casegrid.settings import get_settings
from cases.privacy import masked_and_original
from cases.tokens import Principal

# Workflow payload fields that hold free text (notes, reasons, reply texts).
FREE_TEXT_FIELDS = ("note", "reason", "text")
REVEAL_ACTION = "reveal_personal_text"


def mask_payload(payload: dict, public: frozenset[str] = frozenset()) -> dict[str, str]:
    """Mask the free-text fields of a workflow payload in place; their originals by field
    (only those that masking changed). Numbers in ``public`` stay (cases.privacy)."""
    if not get_settings().privacy_mask_free_text:
        return {}
    originals = {}
    for name in FREE_TEXT_FIELDS:
        value = payload.get(name)
        if isinstance(value, str):
            masked, original = masked_and_original(value, public)
            if original is not None:
                payload[name] = masked
                originals[name] = original
    return originals


def store(conn: Connection, case_id: int, originals: dict[str, str],
          event_id: int | None = None) -> None:
    """Keep the originals of a case's (or one of its events') masked texts."""
    if not originals:
        return
    conn.execute(text(
        "INSERT INTO personal_text (case_id, event_id, field, original) "
        "SELECT :c, :e, f, o FROM jsonb_each_text(CAST(:items AS jsonb)) AS t(f, o)"),
        {"c": case_id, "e": event_id, "items": json.dumps(originals, ensure_ascii=False)})


def reveal(conn: Connection, case_id: int, actor: Principal) -> dict:
    """The texts of case ``case_id`` as written (404 outside the actor's communities, 403
    for a role that may not: :attr:`cases.tokens.Principal.reads_personal_text`); records
    the view in the case's history."""
    from cases.workflow import load_case, record_event

    case = load_case(conn, case_id, actor)
    if not actor.reads_personal_text:
        raise Forbidden(f"role {actor.role!r} may not read what reporters wrote as written; "
                        "the masked text is what it sees", field="Authorization")
    rows = conn.execute(text(
        "SELECT p.field, p.original, p.event_id, e.action, e.at FROM personal_text p "
        "LEFT JOIN case_event e ON e.id = p.event_id WHERE p.case_id = :c ORDER BY p.id"),
        {"c": case_id}).mappings().all()
    out: dict = {"case_id": case_id, "description": case["description"],
                 "address": case["address"], "notes": []}
    for r in rows:
        if r["event_id"] is None:
            out[r["field"]] = r["original"]
        else:
            out["notes"].append({"event_id": r["event_id"], "action": r["action"], "at": r["at"],
                                 "field": r["field"], "text": r["original"]})
    record_event(conn, case_id, actor, REVEAL_ACTION,
                 {"fields": sorted({r["field"] for r in rows}), "texts": len(rows)})
    return out
