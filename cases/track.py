"""The citizen's tracking page's rules (``/track``): finding a case by its number and the
last four digits of the reporter's phone, and the account of it the page shows.

The account is the case's form for its own reporter under the publication policy
(:func:`cases.publication.reporters_case`: the public form, also for a category that is not
public, such as noise: the reporter who proves the case number and the phone's last digits
follows their own complaint, which still appears in no public listing, Open311 or map) plus
its public steps with their dates (:data:`cases.publication.PUBLIC_ACTIONS`), the reply and
the post's public phone. It never carries a staff member's name, a note written for staff,
the reporter's name or phone, a description staff did not approve for the public, or the
case's point (not even the coarsened cell) or address.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from casegrid.errors import NotFound
from cases import publication
from cases.vocabulary import is_open

STATUS_LABELS: dict[str, tuple[str, str]] = {
    "registered": ("已受理,待审核", "received, awaiting review"),
    "reviewed": ("已立案,待派遣", "registered, awaiting dispatch"),
    "rejected": ("不予立案", "not accepted"),
    "dispatched": ("处置中", "being handled"),
    "returned": ("处置中", "being handled"),
    "handled": ("已处置,待核查", "handled, being checked"),
    "verified": ("已核查,待答复", "checked, reply coming"),
    "replied": ("已答复", "replied"),
    "closed": ("已结案", "closed"),
}
REJECT_LABELS = {"invalid": ("信息不实或无法核实", "could not be verified"),
                 "out_of_scope": ("不属于城市管理职责", "not a city-management matter"),
                 "duplicate": ("与他人反映的同一问题合并办理",
                               "merged with a report of the same problem")}


def _digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def find_for_track(conn: Connection, number: str, last4: str) -> str | None:
    """The case number of the case numbered ``number`` (case number or hotline ticket) whose
    reporter's phone ends in ``last4``; ``None`` alike for an unknown number and for wrong
    digits."""
    number = (number or "").strip()
    if not number or not re.fullmatch(r"\d{4}", last4 or ""):
        return None
    rows = conn.execute(text(
        """SELECT case_no, reporter_phone FROM "case"
           WHERE case_no = upper(:n) OR (external_id = :n AND channel <> 'open311')"""),
        {"n": number}).all()
    # Every candidate is compared, not the first: which one failed takes no less time.
    found = [r.case_no for r in rows if len(_digits(r.reporter_phone)) >= 4
             and _digits(r.reporter_phone)[-4:] == last4]
    return found[0] if len(found) == 1 else None


_STEPS_SQL = f"""
SELECT e.action, e.at, e.data->>'reason' AS reason, p.name AS post_name
FROM case_event e
JOIN "case" c ON c.id = e.case_id
LEFT JOIN LATERAL (SELECT coalesce(e.data->'post_id', e.data->'to'->'post_id') AS v) pid ON true
LEFT JOIN community_post p ON p.id = CASE WHEN jsonb_typeof(pid.v) = 'number'
                                          THEN (pid.v #>> '{{}}')::int END
WHERE c.case_no = :no AND e.action IN ({publication.PUBLIC_ACTIONS_SQL})
ORDER BY e.at, e.id
"""


def track_view(conn: Connection, case_no: str) -> dict | None:
    """What the tracking page shows its reporter of a case (found by :func:`find_for_track`),
    or ``None`` for an unknown number."""
    try:
        case = publication.reporters_case(conn, case_no)
    except NotFound:
        return None
    steps = []
    for r in conn.execute(text(_STEPS_SQL), {"no": case_no}).mappings():
        zh, en = publication.PUBLIC_ACTIONS[r["action"]]
        detail_zh = detail_en = None
        if r["action"] in ("dispatch", "redispatch", "reopen") and r["post_name"]:
            detail_zh = detail_en = r["post_name"]
        elif r["action"] == "reject" and r["reason"] in REJECT_LABELS:
            detail_zh, detail_en = REJECT_LABELS[r["reason"]]
        steps.append({"action": r["action"], "at": r["at"], "label_zh": zh, "label_en": en,
                      "detail_zh": detail_zh, "detail_en": detail_en})
    zh, en = STATUS_LABELS.get(case["status"], (case["status"], case["status"]))
    post = conn.execute(text(
        'SELECT p.name, p.phone, p.address, p.hours FROM "case" c JOIN community_post p '
        "ON p.id = c.post_id WHERE c.case_no = :no"), {"no": case_no}).mappings().first()
    return {
        "case_no": case["case_no"], "status": case["status"], "status_zh": zh, "status_en": en,
        "category_zh": case["name_zh"], "category_en": case["name_en"],
        "community": case["community_name"], "reported_at": case["reported_at"],
        "updated_at": case["updated_at"], "due_at": case["current_due_at"] if is_open(case["status"], case["closed_at"]) else None,
        "description": case["description"], "reply_text": case["reply_text"],
        "post": dict(post) if post else None, "steps": steps,
        # a category kept from the public: the page tells the reporter so
        "public": case["category_public"],
    }
