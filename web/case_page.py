"""The case page's panels, and the words it derives from a case (routing, history).

The page is built of panels, each a template under ``templates/case/`` placed in a column
(``a``: what was reported and what to do; ``b``: where, what happened, evidence). To add a
panel (say, photos), add a template and one :class:`Panel` to :data:`PANELS`; its template
sees the page's context (``case``, ``events``, ``actions``, ``csrf``, ``t``, ``lang``...).
"""

from __future__ import annotations

from dataclasses import dataclass

from cases import deadlines, workflow
from web import forms, i18n


@dataclass(frozen=True)
class Panel:
    """One box of the case page: a name, its template and its column (``a`` or ``b``)."""

    name: str
    template: str
    column: str


PANELS: list[Panel] = [
    Panel("report", "case/report.html", "a"),
    Panel("photos", "case/photos.html", "a"),  # the citizen's photos (web.evidence)
    Panel("actions", "case/actions.html", "a"),
    Panel("placement", "case/placement.html", "b"),  # 需定位: only for a case without a point
    Panel("location", "case/location.html", "b"),
    Panel("evidence", "case/evidence.html", "b"),
    Panel("timeline", "case/timeline.html", "b"),
]


def action_label(action: str, lang: str) -> str:
    """An action's name in ``lang`` (history entries too: ``register`` and others have no
    rule)."""
    if action in workflow.RULES or action in forms.ACTION_FORMS:
        return forms.form_for(action).label(lang)
    return {"register": ("受理登记", "Registered"),
            "remind": ("系统提醒", "Reminder"),  # the worker's 催办/督办 (cases.reminders)
            }.get(action, (action, action))[lang == "en"]


def labelled_events(events: list[dict], lang: str) -> list[dict]:
    """History entries with their action's name in ``lang``, and the choice the action
    recorded where the note does not say it (a follow-up's result and how; why a case was
    sent back), in the words of its form."""
    return [{**e, "label": action_label(e["action"], lang), "detail": _detail(e, lang)}
            for e in events]


# action -> the form fields whose chosen value the history entry shows
_DETAIL_FIELDS = {"follow_up": ("result", "method"), "reopen": ("reason",)}


def _detail(event: dict, lang: str) -> str:
    names = _DETAIL_FIELDS.get(event["action"])
    if not names:
        return ""
    data = event.get("data") or {}
    words = []
    for f in forms.form_for(event["action"]).fields:
        if f.name in names and data.get(f.name):
            words.append(next((en if lang == "en" else zh for v, zh, en in f.choices
                               if v == data[f.name]), data[f.name]))
    return " · ".join(words)


def routing_text(case: dict, t: dict[str, str], lang: str) -> str:
    """Why the case is with its community, in one line (rule, distance, alternates)."""
    rule = case.get("route_rule")
    name = case.get("community_name") or case.get("community_code") or "—"
    dist = case.get("route_distance_m")
    if rule == "nearest":
        text = t["rule_nearest"].format(c=name, d=round(dist or 0))
    elif rule == "manual":
        text = t["rule_manual"].format(c=name)
    elif rule in ("outside", "unlocated"):
        text = t[f"rule_{rule}"]
    else:
        text = t["rule_within"].format(c=name)
    if case.get("near_boundary"):
        alts = ", ".join(f'{a.get("name") or a.get("code")} ({round(a.get("distance_m") or 0)} m)'
                         for a in case.get("route_alternates") or [])
        text += " · " + t["near_boundary"].format(a=alts or "—")
    return text


def rule_word(rule: str | None, lang: str) -> str:
    """A routing rule's short name."""
    return i18n.pick(i18n.RULE_WORDS, rule, lang)


def deadline_label(dues: dict, lang: str) -> str | None:
    """The name of the current deadline (审核时限, 处置时限, ...): the step still open whose
    due time is the case's current one (``dues``: :func:`cases.deadlines.due_summary`);
    None when no step matches (the page then says 办理时限)."""
    current = (dues.get("current") or {}).get("due_at")
    if current is None:
        return None
    for step in deadlines.STEPS:
        due = dues.get(step) or {}
        if due.get("due_at") == current and due.get("done_at") is None:
            return i18n.pick(i18n.STEP_DEADLINES, step, lang)
    return None
