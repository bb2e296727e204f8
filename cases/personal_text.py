"""Free text as written, kept beside its masked form, and the reveal that reads it.

The ledger stores descriptions, addresses and workflow notes masked (:mod:`cases.privacy`),
and activities' titles, places and notes too (:data:`ACTIVITY_TEXT_FIELDS`); when masking
changed a text, the text as written goes to ``personal_text`` (of a case, or of an
activity). Every default view (API, pages, maps, exports, reports, logs) reads the masked
text. A role that may see the reporter (:attr:`cases.tokens.Principal.reads_personal_text`)
reads the originals only through :func:`reveal` (a case's) or :func:`reveal_activity`, which
write a ``reveal_personal_text`` entry to the case's (the activity's) history: who, when,
which texts. The bureau can say who saw what.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from casegrid.errors import Forbidden, NotFound
from casegrid.settings import get_settings
from cases.privacy import masked_and_original
from cases.tokens import Principal

# Workflow payload fields that hold free text (notes, reasons, reply texts).
FREE_TEXT_FIELDS = ("note", "reason", "text")
# An activity's free text (cases.activities): an organiser's or a resident's number is
# typed into a title or a place as easily as into a note.
ACTIVITY_TEXT_FIELDS = ("title", "place", "note")
REVEAL_ACTION = "reveal_personal_text"


def mask_payload(payload: dict, public: frozenset[str] = frozenset(),
                 fields: tuple[str, ...] = FREE_TEXT_FIELDS) -> dict[str, str]:
    """Mask the free-text ``fields`` of a payload (a workflow action's, an activity's) in
    place; their originals by field (only those that masking changed). Numbers in
    ``public`` stay (cases.privacy)."""
    if not get_settings().privacy_mask_free_text:
        return {}
    originals = {}
    for name in fields:
        value = payload.get(name)
        if isinstance(value, str):
            masked, original = masked_and_original(value, public)
            if original is not None:
                payload[name] = masked
                originals[name] = original
    return originals


def store(conn: Connection, case_id: int | None, originals: dict[str, str],
          event_id: int | None = None, *, activity_id: int | None = None) -> None:
    """Keep the originals of a case's (or one of its events', or an activity's) masked
    texts."""
    if not originals:
        return
    conn.execute(text(
        "INSERT INTO personal_text (case_id, event_id, activity_id, field, original) "
        "SELECT :c, :e, :a, f, o FROM jsonb_each_text(CAST(:items AS jsonb)) AS t(f, o)"),
        {"c": case_id, "e": event_id, "a": activity_id,
         "items": json.dumps(originals, ensure_ascii=False)})


def _refuse_unless_reads(actor: Principal) -> None:
    if not actor.reads_personal_text:
        raise Forbidden(f"role {actor.role!r} may not read what reporters wrote as written; "
                        "the masked text is what it sees", field="Authorization")


def reveal(conn: Connection, case_id: int, actor: Principal) -> dict:
    """The texts of case ``case_id`` as written (404 outside the actor's communities, 403
    for a role that may not: :attr:`cases.tokens.Principal.reads_personal_text`); records
    the view in the case's history."""
    from cases.workflow import load_case, record_event

    case = load_case(conn, case_id, actor)
    _refuse_unless_reads(actor)
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


def reveal_activity(conn: Connection, activity_id: int, actor: Principal) -> dict:
    """The title, place and note of activity ``activity_id`` as written (404 out of the
    actor's sight, 403 for a role that may not read texts as written); records the view in
    the activity's history (:func:`cases.activities.record_activity_event`)."""
    from cases.activities import list_activities, record_activity_event

    found = list_activities(conn, actor, activity_id=activity_id)
    if not found:
        raise NotFound(f"no activity {activity_id}", field="activity_id")
    _refuse_unless_reads(actor)
    rows = conn.execute(text(
        "SELECT field, original FROM personal_text WHERE activity_id = :a ORDER BY id"),
        {"a": activity_id}).all()
    out = {"activity_id": activity_id} | {f: found[0][f] for f in ACTIVITY_TEXT_FIELDS}
    out.update({field: original for field, original in rows})
    record_activity_event(conn, activity_id, actor, REVEAL_ACTION,
                          {"fields": sorted({field for field, _ in rows}), "texts": len(rows)})
    return out
