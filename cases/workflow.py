"""The case ledger's closed loop: states, actions, who may do what. The API and the CLI both
call :func:`apply_action`; nothing else changes a case's status.

States (DOMAIN.md, GB/T 30428)::

    registered ─accept→ reviewed ─dispatch→ dispatched ─handle→ handled ─verify_pass→ verified
        │                  ↑ │                 │ ↑  ↑ (redispatch, extensions)  │           │
        └reject→ rejected  │ └─reroute         │ └──────── verify_fail (返工) ──┘          reply
                   │       └──dispatch── returned ←return (退单)                            ↓
                   └──────────────────────reply──────────────────────────────→ replied ─close→ closed

After the reply, ``follow_up`` (回访) records the citizen's verdict (several attempts; the
last counts) and ``reopen`` (发回重办) sends a replied or closed case whose citizen is not
satisfied (or on the 12345 centre's order) back to ``dispatched`` with new handling and
reply deadlines; the history keeps the first round.

``registered`` is 受理 (received, waiting for review); a review ``accept`` is 立案. A
``reject`` with reason ``duplicate`` merges the case into a main case (``merged_into``): the
main case's reply and closing are copied to every merged case, so every complainant is
answered. Rejected cases otherwise still get a reply (``reply`` from ``rejected``).

Role rules are the table :data:`RULES`, written once as data. ``admin`` may do everything,
with one exception that binds every role: whoever handled a case (any ``handle`` event by
the same token) never verifies or closes it. A community officer sees only the cases of its
own communities; others are reported as not found (404), as in the case list.

Concurrency: each action reads the case, checks, then ``UPDATE ... WHERE id = :id AND
version = :v`` (version + 1). Two concurrent actions on one case: exactly one matches; the
other raises :class:`Conflict` with the case's current status and version (HTTP 409).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from casegrid.errors import Conflict, Forbidden, InvalidInput, NotFound
from cases import deadlines, notices, personal_text
from cases.calendar import WorkCalendar, require_aware
from cases.privacy import MAY_HOLD_CONTACTS, public_digits
from cases.queries import REPORTER_FIELDS
from cases.tokens import Principal
from cases.vocabulary import CLOSED_STATES, STATE_LABELS, STATES, STATS_DAY_ZONE

STATE_ZH = {state: zh for state, (zh, _en) in STATE_LABELS.items()}
REJECT_REASONS = ("invalid", "out_of_scope", "duplicate")
REPLY_CHANNELS = ("phone", "sms", "app", "wechat", "letter", "in_person", "hotline_12345")
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied", "unknown")
# 回访 (follow-up call) results; the last attempt counts. "unreachable" (未能联系) is an
# attempt, not a follow-up: it counts in neither 回访率 nor 满意率 (cases.stats).
FOLLOW_UP_RESULTS = {"satisfied": "满意", "basically_satisfied": "基本满意",
                     "dissatisfied": "不满意", "unreachable": "未能联系"}
FOLLOW_UP_METHODS = {"phone": "电话", "sms": "短信", "app": "APP"}
# Why a case is sent back to be redone (发回重办): the citizen is not satisfied, or the
# 12345 centre orders it.
REOPEN_REASONS = {"dissatisfied": "群众不满意", "centre_order": "热线中心要求重办"}
# Reporter fields: never in action responses for roles that may not see them, never in reports.


@dataclass(frozen=True)
class Rule:
    """An action: the states it applies in, the state it leads to (None: unchanged), the
    roles that may take it (admin always may), and its Chinese name."""

    from_states: tuple[str, ...]
    to_state: str | None
    roles: tuple[str, ...]
    label_zh: str
    not_by_handler: bool = False


RULES: dict[str, Rule] = {
    "accept": Rule(("registered",), "reviewed", ("supervisor",), "审核通过(立案)"),
    "reject": Rule(("registered",), "rejected", ("supervisor",), "审核不通过"),
    "reroute": Rule(("registered", "reviewed", "returned"), None, ("dispatcher",), "改划社区"),
    "dispatch": Rule(("reviewed", "returned"), "dispatched", ("dispatcher",), "派遣"),
    "redispatch": Rule(("dispatched",), "dispatched", ("dispatcher",), "改派"),
    "return": Rule(("dispatched",), "returned", ("community_officer",), "退单"),
    "acknowledge": Rule(("dispatched",), None, ("community_officer",), "签收"),
    "handle": Rule(("dispatched",), "handled", ("community_officer",), "处置"),
    "request_extension": Rule(("dispatched",), None, ("community_officer",), "申请延期"),
    "approve_extension": Rule(("dispatched",), None, ("supervisor", "dispatcher"), "批准延期"),
    "deny_extension": Rule(("dispatched",), None, ("supervisor", "dispatcher"), "驳回延期"),
    "verify_pass": Rule(("handled",), "verified", ("supervisor",), "核查通过", True),
    "verify_fail": Rule(("handled",), "dispatched", ("supervisor",), "核查不通过(返工)", True),
    "reply": Rule(("verified", "rejected"), "replied", ("supervisor", "dispatcher"), "反馈"),
    "close": Rule(("replied",), "closed", ("supervisor",), "结案", True),
    "publish_description": Rule(STATES, None, ("supervisor", "dispatcher"), "批准公开描述"),
    "follow_up": Rule(("replied", "closed"), None, ("supervisor", "dispatcher"), "回访"),
    "reopen": Rule(("replied", "closed"), "dispatched", ("supervisor",), "发回重办"),
}
ACTIONS: tuple[str, ...] = tuple(RULES)


def allowed_roles(action: str) -> set[str]:
    """Roles that may take ``action`` (admin included)."""
    return set(RULES[action].roles) | {"admin"}


def available_actions(status: str, role: str) -> list[str]:
    """Actions ``role`` may take on a case in ``status`` (before per-case checks)."""
    return [a for a, r in RULES.items() if status in r.from_states and role in allowed_roles(a)]


def actions_for(conn: Connection, case: dict, actor: Principal) -> list[str]:
    """The actions ``actor`` may take on this case now: :func:`available_actions` less those
    its own state rules out (an extension decision with no request waiting, a second
    request, a second acknowledgement, verifying or closing a case the actor handled). The
    workbench shows these."""
    out = []
    handled = None
    for action in available_actions(case["status"], actor.role):
        pending = case.get("pending_extension")
        if action in ("approve_extension", "deny_extension") and not pending:
            continue
        if action == "request_extension" and pending:
            continue
        if action == "acknowledge" and case.get("acknowledged_at") is not None:
            continue
        if RULES[action].not_by_handler:
            if handled is None:
                handled = _handled_by(conn, case["id"], actor)
            if handled:
                continue
        out.append(action)
    return out


@dataclass
class _Step:
    """What one action does: column changes, the event's note and data."""

    changes: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    after: Callable[[], None] | None = None


@dataclass
class ActionContext:
    """What an action's handler (:data:`HANDLERS`) reads: the case row, the payload, who
    acts and when, the working calendar. ``limits`` are the case's time limits
    (:func:`cases.deadlines.limits_for`) when the caller already has them: a caller that
    applies many actions in memory (the demo's history) passes them instead of a query per
    action."""

    conn: Connection
    case: dict
    payload: dict
    actor: Principal
    at: datetime
    calendar: WorkCalendar
    limits: dict[str, deadlines.Limit] | None = None

    def time_limits(self) -> dict[str, deadlines.Limit]:
        if self.limits is None:
            self.limits = deadlines.limits_for(self.conn, self.case["category_code"],
                                               self.case["channel"])
        return self.limits

    def limit(self, step: str) -> deadlines.Limit:
        return self.time_limits()[step]

    def due(self, step: str, start: datetime | None = None) -> tuple[datetime, bool]:
        d = deadlines.due_after(self.calendar, start or self.at, self.limit(step))
        return d.at, d.provisional

    def post_steps(self, handle_due: datetime) -> dict[str, Any]:
        """What a (re)dispatch starts at the post: the acknowledgement (签收) deadline, none
        acknowledged yet, when the due-soon reminder of the handling falls, and no 督办 (the
        last round's escalation stays in the history; this round earns its own)."""
        from casegrid.settings import get_settings

        ack = self.time_limits().get("acknowledge")
        share = get_settings().remind_due_soon_share
        return {"acknowledge_due_at": deadlines.due_after(self.calendar, self.at, ack).at
                if ack else None, "acknowledged_at": None, "escalated_at": None,
                "handle_soon_at": deadlines.share_point(self.calendar, self.at, handle_due, share)}


# -- public entry points ---------------------------------------------------------------------

_CASE_SQL = 'SELECT * FROM "case" WHERE id = :id'


def load_case(conn: Connection, case_id: int, actor: Principal) -> dict:
    """The case row as a dict; 404 if absent or outside the actor's communities."""
    row = conn.execute(text(_CASE_SQL), {"id": case_id}).mappings().first()
    if row is None or not actor.may_see_community(row["community_code"]):
        raise NotFound(f"no case {case_id}", field="id")
    return dict(row)


def _rule(action: str) -> Rule:
    rule = RULES.get(action)
    if rule is None:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}",
                           field="action")
    return rule


def check_action(case: dict, action: str, actor: Principal,
                 expected_version: int | None = None) -> Rule:
    """The checks of an action that need only the case row, in :func:`apply_action`'s
    order: the action exists (422), the actor may see the case (404), the role may take
    the action (403), ``expected_version`` matches (409), the status allows it (409).
    Returns the action's rule. (Whether the actor handled the case needs its history.)"""
    rule = _rule(action)
    if not actor.may_see_community(case["community_code"]):
        raise NotFound(f"no case {case['id']}", field="id")
    if actor.role not in allowed_roles(action):
        raise Forbidden(
            f"role {actor.role!r} may not {action} ({rule.label_zh}); allowed: "
            f"{', '.join(sorted(allowed_roles(action)))}", field="action")
    current = {"status": case["status"], "version": case["version"]}
    if expected_version is not None and expected_version != case["version"]:
        raise Conflict(f"case {case['id']} is at version {case['version']}, not "
                       f"{expected_version}: reload it and retry", current=current,
                       field="version")
    if case["status"] not in rule.from_states:
        raise Conflict(f"cannot {action} a case that is {case['status']}; {action} applies "
                       f"to {', '.join(rule.from_states)}", current=current, field="action")
    return rule


def apply_action(
    conn: Connection,
    case_id: int,
    action: str,
    payload: dict | None,
    actor: Principal,
    expected_version: int | None = None,
    *,
    at: datetime | None = None,
) -> dict:
    """Take ``action`` on a case as ``actor`` and return the updated case (see :func:`view`).

    Checks, in order: the action exists (422); the case exists and the actor may see it
    (404); the role may take the action (403); ``expected_version`` matches (409); the
    status allows it (409); the handler is not verifying or closing its own case (403); the
    payload (422). ``at`` backdates the action (simulations and tests; the API never
    passes it). Runs in a savepoint of the caller's transaction.
    """
    _rule(action)
    payload = dict(payload or {})
    # Free text is stored masked; what was written goes to personal_text (cases.privacy).
    # The posts' phones are public (on their signs): a reply that gives one stays callable.
    originals = personal_text.mask_payload(payload, _post_phones(conn, payload))
    with _begin(conn):
        case = load_case(conn, case_id, actor)
        rule = check_action(case, action, actor, expected_version)
        current = {"status": case["status"], "version": case["version"]}
        if rule.not_by_handler and _handled_by(conn, case_id, actor):
            raise Forbidden(f"{actor.name!r} handled case {case_id} and may not {action} it",
                            field="action")
        if at is None:
            at = conn.execute(text("SELECT now()")).scalar_one()
        from cases.calendar_store import load_calendar

        ctx = ActionContext(conn, case, payload, actor, require_aware(at, "at"), load_calendar(conn))
        step = HANDLERS[action](ctx)
        to_state = rule.to_state or case["status"]
        _write(conn, case, step, to_state, at, current)
        event_id = _event(conn, case_id, actor, action, case["status"], to_state, step.note,
                          step.data, at)
        personal_text.store(conn, case_id, originals, event_id)
        if step.after:
            step.after()
        notices.record_action(conn, case_id, action, at,
                              {"action": action, "actor": actor.name, "note": step.note})
        return view(conn, case_id, actor, now=at)


def _post_phones(conn: Connection, payload: dict) -> frozenset[str]:
    """The digits of every post's phone, read only when a free-text field could hold a
    number at all (a run of ten digits)."""
    if not any(isinstance(payload.get(f), str) and re.search(MAY_HOLD_CONTACTS, payload[f])
               for f in personal_text.FREE_TEXT_FIELDS):
        return frozenset()
    return public_digits(conn.execute(text(
        "SELECT phone FROM community_post WHERE phone IS NOT NULL")).scalars())


def history(conn: Connection, case_id: int, actor: Principal) -> list[dict]:
    """The case's events, oldest first (404 if the actor may not see the case)."""
    load_case(conn, case_id, actor)
    return case_events(conn, case_id)


def case_events(conn: Connection, case_id: int) -> list[dict]:
    """The case's events, oldest first, for a caller that has checked already that the
    actor may see the case (the case page, after :func:`view`)."""
    rows = conn.execute(
        text("SELECT id, at, actor, role, action, from_state, to_state, note, data, user_id "
             "FROM case_event WHERE case_id = :id ORDER BY at, id"), {"id": case_id}).mappings()
    return [dict(r) for r in rows]


def view(conn: Connection, case_id: int, actor: Principal, now: datetime | None = None) -> dict:
    """The case as the actor may see it, with due times, due status and next actions."""
    case = load_case(conn, case_id, actor)
    if now is None:
        now = conn.execute(text("SELECT now()")).scalar_one()
    return view_of(case, actor, now)


def view_of(case: dict, actor: Principal, now: datetime) -> dict:
    """:func:`view` of a case row the caller has read whole and checked ``actor`` may see
    (the case page reads it with its names, :func:`cases.queries.get_case`); ``case`` is
    changed and returned."""
    case.pop("geom", None)
    if not actor.sees_reporter:
        for f in REPORTER_FIELDS:
            case.pop(f, None)
    case["dues"] = deadlines.due_summary(case, now)
    case["actions"] = available_actions(case["status"], actor.role)
    return case


# -- internals -------------------------------------------------------------------------------


def _begin(conn: Connection):
    return conn.begin_nested() if conn.in_transaction() else conn.begin()


def _handled_by(conn: Connection, case_id: int, actor: Principal) -> bool:
    if actor.user_id is not None:  # a person: by account, whatever their display name
        return bool(conn.execute(
            text("SELECT 1 FROM case_event WHERE case_id = :id AND action = 'handle' "
                 "AND user_id = :uid LIMIT 1"), {"id": case_id, "uid": actor.user_id}).first())
    return bool(conn.execute(
        text("SELECT 1 FROM case_event WHERE case_id = :id AND action = 'handle' "
             "AND (data->>'token_id')::int = :tid AND actor = :name LIMIT 1"),
        {"id": case_id, "tid": actor.token_id, "name": actor.name}).first())


def _write(conn: Connection, case: dict, step: _Step, to_state: str, at: datetime,
           current: dict) -> None:
    changes = {**step.changes, "status": to_state}
    # An on-time acknowledgement counts where the case is: a move takes it along.
    moves = case.get("acknowledged_on_time") and any(
        k in changes and changes[k] != case[k] for k in ("community_code", "subdistrict_code"))
    if moves:
        _ack_stat(conn, case["id"], -1)
    sets = ", ".join(f"{col} = :c_{col}" for col in changes)
    params = {f"c_{k}": (json.dumps(v) if k == "pending_extension" and v is not None else v)
              for k, v in changes.items()}
    done = conn.execute(
        text(f'UPDATE "case" SET {sets}, version = version + 1, updated_at = :at '
             "WHERE id = :id AND version = :v"),
        {**params, "at": at, "id": case["id"], "v": case["version"]},
    ).rowcount
    if not done:
        now = conn.execute(text('SELECT status, version FROM "case" WHERE id = :id'),
                           {"id": case["id"]}).mappings().one()
        raise Conflict(f"case {case['id']} changed while this action ran (now {now['status']}, "
                       f"version {now['version']}): reload it and retry",
                       current=dict(now), field="version")
    if moves:
        _ack_stat(conn, case["id"], 1)


def _event(conn: Connection, case_id: int, actor: Principal, action: str, from_state: str | None,
           to_state: str | None, note: str | None, data: dict, at: datetime) -> int:
    return conn.execute(
        text("INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, "
             "note, data, user_id) VALUES (:c, :at, :actor, :role, :action, :f, :t, :note, "
             "CAST(:data AS jsonb), :uid) RETURNING id"),
        {"c": case_id, "at": at, "actor": actor.name, "role": actor.role, "action": action,
         "f": from_state, "t": to_state, "note": note, "uid": actor.user_id,
         "data": json.dumps({"token_id": actor.token_id, **data}, default=str,
                            ensure_ascii=False)},
    ).scalar_one()


def record_event(conn: Connection, case_id: int, actor: Principal, action: str, data: dict,
                 note: str | None = None) -> int:
    """A history entry that is not a step of the loop (a reveal of personal text, a purge):
    the case's status stays, its version too."""
    status, at = conn.execute(text('SELECT status, now() FROM "case" WHERE id = :id'),
                              {"id": case_id}).one()
    return _event(conn, case_id, actor, action, status, status, note, data, at)


def _text(payload: dict, name: str, *, required: bool, max_len: int = 2000) -> str | None:
    value = payload.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} is required for this action", field=name)
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{name} must be text of at most {max_len} characters", field=name)
    return value.strip()


def _choice(payload: dict, name: str, choices: tuple[str, ...], *, required: bool) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}, not {value!r}", field=name)
    return value


# -- one handler per action ------------------------------------------------------------------


def _accept(ctx: ActionContext) -> _Step:
    due, prov = ctx.due("dispatch")
    return _Step({"reviewed_at": ctx.at, "dispatch_due_at": due, "current_due_at": due,
                  "due_provisional": prov}, _text(ctx.payload, "note", required=False),
                 {"due_at": due})


def _reject(ctx: ActionContext) -> _Step:
    reason = _choice(ctx.payload, "reason", REJECT_REASONS, required=True)
    note = _text(ctx.payload, "note", required=reason != "duplicate")
    changes: dict[str, Any] = {"reject_reason": reason, "current_due_at": ctx.case["reply_due_at"]}
    data: dict[str, Any] = {"reason": reason}
    step = _Step(changes, note, data)
    if reason == "duplicate":
        main_id = ctx.payload.get("main_case_id")
        if not isinstance(main_id, int) or isinstance(main_id, bool):
            raise InvalidInput("main_case_id (the case this one repeats) is required to merge "
                               "a duplicate", field="main_case_id")
        if main_id == ctx.case["id"]:
            raise InvalidInput("a case cannot be merged into itself", field="main_case_id")
        main = load_case(ctx.conn, main_id, ctx.actor)
        if main["merged_into"] is not None or main["status"] in CLOSED_STATES:
            raise InvalidInput(f"case {main_id} is {main['status']}"
                               f"{' (merged)' if main['merged_into'] else ''}: merge into an "
                               "open main case", field="main_case_id")
        changes["merged_into"] = main_id
        data["main_case_id"] = main_id
        data["main_case_no"] = main["case_no"]
        if main["replied_at"] is not None:
            # The main case has answered already: this complainant gets that answer now.
            step.after = lambda: _propagate(ctx, main_id, "reply", only=ctx.case["id"])
    return step


def _target_community(ctx: ActionContext) -> dict:
    """Routing of the community the payload names (``community_code``) or the point it gives
    (``lon``, ``lat``, ``crs``), in the active boundary generation."""
    from geo.routing import community_details, route

    code = ctx.payload.get("community_code")
    if code is None and ctx.payload.get("lon") is not None:
        r = route(ctx.conn, ctx.payload.get("lon"), ctx.payload.get("lat"),
                  ctx.payload.get("crs") or "wgs84")
        if r.community_code is None:
            raise InvalidInput("that point is outside every community; give community_code",
                               field="lon")
        code = r.community_code
        point = {"lon": r.lon, "lat": r.lat, "input_lon": r.input_lon, "input_lat": r.input_lat,
                 "input_crs": r.input_crs}
    else:
        point = None
    if not isinstance(code, str):
        raise InvalidInput("community_code (or lon/lat) of the new community is required",
                       field="community_code")
    row = ctx.conn.execute(
        text("SELECT c.id, c.generation_id FROM community c JOIN boundary_generation g "
             "ON g.id = c.generation_id AND g.active WHERE c.code = :code"),
        {"code": code}).first()
    if row is None:
        raise InvalidInput(f"no community {code!r} in the active boundaries",
                           field="community_code")
    details = community_details(ctx.conn, row.id)
    return {"community_code": details["community_code"],
            "subdistrict_code": details["subdistrict_code"],
            "post_id": (details["post"] or {}).get("id"), "generation_id": row.generation_id,
            "point": point}


_ROUTING = ("community_code", "subdistrict_code", "post_id", "generation_id", "route_rule")


def _reroute_changes(ctx: ActionContext, require_move: bool) -> tuple[dict, dict]:
    target = _target_community(ctx)
    reason = _text(ctx.payload, "reason", required=True)
    if require_move and target["community_code"] == ctx.case["community_code"]:
        raise InvalidInput(f"the case is already with community {target['community_code']}",
                           field="community_code")
    old = {k: ctx.case[k] for k in _ROUTING}
    changes = {k: target[k] for k in _ROUTING if k != "route_rule"}
    changes["route_rule"] = "manual"
    point = target.pop("point")
    if point:
        changes.update({k: point[k] for k in ("input_lon", "input_lat", "input_crs")})
        # geom is set separately (a geometry needs SQL, not a bound value)
        ctx.payload["_geom"] = (point["lon"], point["lat"])
        if ctx.case.get("address"):
            # A dispatcher's placement teaches the address memory (issue 27).
            from geo.address_memory import learn_placement

            learn_placement(ctx.conn, ctx.case["address"], point["lon"], point["lat"],
                            target["community_code"])
    new = {k: changes[k] for k in _ROUTING}
    return changes, {"reason": reason, "from": old, "to": new, "point": point}


def _reroute(ctx: ActionContext) -> _Step:
    changes, data = _reroute_changes(ctx, require_move=True)
    step = _Step(changes, data["reason"], data)
    _maybe_geom(ctx, step)
    return step


def _maybe_geom(ctx: ActionContext, step: _Step) -> None:
    geom = ctx.payload.pop("_geom", None)
    if geom:
        prev = step.after

        def set_geom() -> None:
            ctx.conn.execute(text('UPDATE "case" SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326)'
                                  " WHERE id = :id"), {"x": geom[0], "y": geom[1],
                                                       "id": ctx.case["id"]})
            if prev:
                prev()
        step.after = set_geom


def _dispatch(ctx: ActionContext) -> _Step:
    changes: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if ctx.payload.get("community_code") or ctx.payload.get("lon") is not None:
        moved, data = _reroute_changes(ctx, require_move=False)
        changes.update(moved)
    community = changes.get("community_code", ctx.case["community_code"])
    if community is None:
        raise InvalidInput("the case has no community (it was not routed): give community_code",
                           field="community_code")
    due, prov = ctx.due("handle")
    changes.update({"dispatched_at": ctx.at, "handle_due_at": due, "current_due_at": due,
                    "due_provisional": prov, "pending_extension": None, **ctx.post_steps(due)})
    data.update({"community_code": community, "post_id": changes.get("post_id", ctx.case["post_id"]),
                 "due_at": due})
    step = _Step(changes, _text(ctx.payload, "note", required=False), data)
    _maybe_geom(ctx, step)
    return step


def _redispatch(ctx: ActionContext) -> _Step:
    if not (ctx.payload.get("community_code") or ctx.payload.get("lon") is not None):
        raise InvalidInput("redispatch (改派) needs the new community_code and a reason",
                           field="community_code")
    moved, data = _reroute_changes(ctx, require_move=True)
    due, prov = ctx.due("handle")
    moved.update({"dispatched_at": ctx.at, "handle_due_at": due, "current_due_at": due,
                  "due_provisional": prov, "pending_extension": None, **ctx.post_steps(due)})
    data["due_at"] = due
    step = _Step(moved, data["reason"], data)
    _maybe_geom(ctx, step)
    return step


def _return(ctx: ActionContext) -> _Step:
    reason = _text(ctx.payload, "reason", required=True)
    due, prov = ctx.due("dispatch")
    return _Step({"dispatch_due_at": due, "current_due_at": due, "due_provisional": prov,
                  "pending_extension": None}, reason, {"reason": reason, "due_at": due})


def _acknowledge(ctx: ActionContext) -> _Step:
    """签收: the post's officer confirms the case has reached them. The first
    acknowledgement of a case decides whether it counts as on time (按时签收率)."""
    if ctx.case["acknowledged_at"] is not None:
        raise Conflict(f"case {ctx.case['id']} was acknowledged at "
                       f"{ctx.case['acknowledged_at'].isoformat()}",
                       current={"status": ctx.case["status"], "version": ctx.case["version"]},
                       field="action")
    due = ctx.case["acknowledge_due_at"]
    on_time = due is None or ctx.at <= due
    step = _Step({"acknowledged_at": ctx.at}, _text(ctx.payload, "note", required=False),
                 {"on_time": on_time, "due_at": due})
    if ctx.case["acknowledged_on_time"] is None:
        step.changes["acknowledged_on_time"] = on_time
        if on_time:
            step.after = lambda: _ack_stat(ctx.conn, ctx.case["id"], 1)
    return step


_ACK_STAT_SQL = f"""
INSERT INTO case_stat AS t (dim, day, key, acknowledged_on_time)
SELECT v.dim, (c.received_at AT TIME ZONE '{STATS_DAY_ZONE}')::date, v.key, CAST(:s AS int)
FROM "case" c
CROSS JOIN LATERAL (VALUES ('community', coalesce(c.community_code, '')),
                           ('subdistrict', coalesce(c.subdistrict_code, '')),
                           ('category', c.category_code), ('channel', c.channel)) AS v(dim, key)
WHERE c.id = :id
ON CONFLICT (dim, day, key) DO UPDATE
SET acknowledged_on_time = t.acknowledged_on_time + EXCLUDED.acknowledged_on_time
"""


def _ack_stat(conn: Connection, case_id: int, sign: int) -> None:
    """Add ``sign`` to ``case_stat.acknowledged_on_time`` of the case's day and keys (the
    statistics triggers keep the other counts; this one is the acknowledge action's)."""
    conn.execute(text(_ACK_STAT_SQL), {"s": sign, "id": case_id})


def _handle(ctx: ActionContext) -> _Step:
    note = _text(ctx.payload, "note", required=True)
    photos = ctx.payload.get("photo_urls") or []
    if not isinstance(photos, list) or not all(
            isinstance(p, str) and p.startswith(("http://", "https://")) for p in photos):
        raise InvalidInput("photo_urls must be a list of http(s) URLs", field="photo_urls")
    hours = ctx.calendar.working_seconds_between(ctx.case["dispatched_at"], ctx.at) / 3600.0
    return _Step({"handled_at": ctx.at, "handle_hours": round(hours, 4),
                  "current_due_at": ctx.case["reply_due_at"], "pending_extension": None},
                 note, {"photo_urls": photos, "handle_hours": round(hours, 4),
                        "on_time": ctx.at <= ctx.case["handle_due_at"]})


def _request_extension(ctx: ActionContext) -> _Step:
    if ctx.case["pending_extension"]:
        raise Conflict("an extension request is already waiting for a decision",
                       current={"status": ctx.case["status"], "version": ctx.case["version"]},
                       field="action")
    reason = _text(ctx.payload, "reason", required=True)
    unit = _choice(ctx.payload, "unit", ("working_days", "working_hours"), required=False) \
        or "working_days"
    amount = ctx.payload.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= 60:
        raise InvalidInput("amount must be a whole number from 1 to 60", field="amount")
    pending = {"amount": amount, "unit": unit, "reason": reason, "by": ctx.actor.name,
               "at": ctx.at.isoformat()}
    return _Step({"pending_extension": pending}, reason, {"amount": amount, "unit": unit})


def _decide_extension(approve: bool) -> Callable[[ActionContext], _Step]:
    def handler(ctx: ActionContext) -> _Step:
        pending = ctx.case["pending_extension"]
        if not pending:
            raise Conflict("no extension request is waiting for a decision",
                           current={"status": ctx.case["status"], "version": ctx.case["version"]},
                           field="action")
        note = _text(ctx.payload, "note", required=not approve)
        if not approve:
            return _Step({"pending_extension": None}, note, {"request": pending})
        new = ctx.calendar.add(ctx.case["handle_due_at"], pending["amount"], pending["unit"])
        from casegrid.settings import get_settings

        soon = deadlines.share_point(ctx.calendar, ctx.case["dispatched_at"], new.at,
                                     get_settings().remind_due_soon_share)
        return _Step({"pending_extension": None, "handle_due_at": new.at, "current_due_at": new.at,
                      "due_provisional": new.provisional, "handle_soon_at": soon,
                      "extension_count": ctx.case["extension_count"] + 1},
                     note, {"request": pending, "from_due_at": ctx.case["handle_due_at"],
                            "due_at": new.at})
    return handler


def _verify_pass(ctx: ActionContext) -> _Step:
    return _Step({"verified_at": ctx.at, "current_due_at": ctx.case["reply_due_at"]},
                 _text(ctx.payload, "note", required=False))


def _verify_fail(ctx: ActionContext) -> _Step:
    note = _text(ctx.payload, "note", required=True)
    # Rework keeps the original handling deadline: returning late work does not buy time.
    # The failed handling is no longer "the" handling (its event stays in the history).
    return _Step({"rework_count": ctx.case["rework_count"] + 1, "handled_at": None,
                  "handle_hours": None, "current_due_at": ctx.case["handle_due_at"]}, note,
                 {"rework": ctx.case["rework_count"] + 1,
                  "failed_handled_at": ctx.case["handled_at"]})


def _reply(ctx: ActionContext) -> _Step:
    channel = _choice(ctx.payload, "channel", REPLY_CHANNELS, required=True)
    body = _text(ctx.payload, "text", required=True)
    satisfaction = _choice(ctx.payload, "satisfaction", SATISFACTION, required=False)
    due = ctx.case["reply_due_at"]
    data = {"channel": channel, "text": body, "satisfaction": satisfaction,
            "on_time": None if due is None else ctx.at <= due}
    step = _Step({"replied_at": ctx.at, "current_due_at": None, "due_provisional": False},
                 body, data)
    step.after = lambda: _propagate(ctx, ctx.case["id"], "reply", data=data)
    return step


def _close(ctx: ActionContext) -> _Step:
    step = _Step({"closed_at": ctx.at, "current_due_at": None},
                 _text(ctx.payload, "note", required=False))
    step.after = lambda: _propagate(ctx, ctx.case["id"], "close")
    return step


def _publish_description(ctx: ActionContext) -> _Step:
    """Approve the description for the public (cases.publication): the case's own
    (masked) description, or a ``text`` written for the public; ``publish: false``
    withdraws it."""
    publish = ctx.payload.get("publish", True)
    if not isinstance(publish, bool):
        raise InvalidInput("publish must be true or false", field="publish")
    if not publish:
        return _Step({"public_description": None}, None, {"publish": False})
    public = _text(ctx.payload, "text", required=False, max_len=4000) or ctx.case["description"]
    if not public:
        raise InvalidInput("the case has no description: give the text to publish", field="text")
    return _Step({"public_description": public}, None, {"publish": True, "text": public})
def _follow_up(ctx: ActionContext) -> _Step:
    result = _choice(ctx.payload, "result", tuple(FOLLOW_UP_RESULTS), required=True)
    method = _choice(ctx.payload, "method", tuple(FOLLOW_UP_METHODS), required=True)
    note = _text(ctx.payload, "note", required=False)
    return _Step({"follow_up_result": result, "follow_up_at": ctx.at}, note,
                 {"result": result, "method": method,
                  "previous_result": ctx.case["follow_up_result"]})


def _reopen(ctx: ActionContext) -> _Step:
    reason = _choice(ctx.payload, "reason", tuple(REOPEN_REASONS), required=True)
    note = _text(ctx.payload, "note", required=True)
    if ctx.case["merged_into"] is not None:
        raise InvalidInput(f"case {ctx.case['id']} is merged into case {ctx.case['merged_into']}: "
                           "reopen the main case", field="id")
    if ctx.case["dispatched_at"] is None or ctx.case["community_code"] is None:
        raise InvalidInput("this case was never dispatched (rejected at review): there is no "
                           "handling to redo", field="action")
    if reason == "dissatisfied" and ctx.case["follow_up_result"] != "dissatisfied":
        last = ctx.case["follow_up_result"] or "none"
        raise InvalidInput(f"the last follow-up result is {last}, not dissatisfied: record the "
                           "follow-up first, or reopen with reason centre_order",
                           field="reason")
    # A new round on the working calendar: the handling deadline from now, as a dispatch
    # sets it, and a new reply deadline, as intake sets it from receipt.
    due, prov = ctx.due("handle")
    reply_due, reply_prov = ctx.due("reply")
    changes = {"dispatched_at": ctx.at, "handle_due_at": due, "current_due_at": due,
               "reply_due_at": reply_due, "due_provisional": prov or reply_prov,
               "handled_at": None, "handle_hours": None, "verified_at": None,
               "replied_at": None, "closed_at": None, "pending_extension": None,
               "reopen_count": ctx.case["reopen_count"] + 1,
               **ctx.post_steps(due)}   # the post acknowledges (签收) the new round too
    data = {"reason": reason, "due_at": due, "reply_due_at": reply_due,
            "reopen": ctx.case["reopen_count"] + 1, "post_id": ctx.case["post_id"],
            "community_code": ctx.case["community_code"],
            "previous": {k: ctx.case[k] for k in ("handled_at", "verified_at", "replied_at",
                                                   "closed_at", "follow_up_result")}}
    return _Step(changes, note, data)


HANDLERS: dict[str, Callable[[ActionContext], _Step]] = {
    "accept": _accept, "reject": _reject, "reroute": _reroute, "dispatch": _dispatch,
    "redispatch": _redispatch, "return": _return, "acknowledge": _acknowledge,
    "handle": _handle,
    "request_extension": _request_extension, "approve_extension": _decide_extension(True),
    "deny_extension": _decide_extension(False), "verify_pass": _verify_pass,
    "verify_fail": _verify_fail, "reply": _reply, "close": _close,
    "publish_description": _publish_description,
    "follow_up": _follow_up, "reopen": _reopen,
}


# A main case's reply or closing is copied to its merged duplicates: action -> (the
# duplicates' status it applies to, the status they move to, the column that gets the time).
PROPAGATED: dict[str, tuple[str, str, str]] = {
    "reply": ("rejected", "replied", "replied_at"),
    "close": ("replied", "closed", "closed_at"),
}


def propagated_note(main_id: int, action: str) -> str:
    """The history note of a duplicate's copied reply or closing."""
    return f"merged into case {main_id}: {action} copied"


def _propagate(ctx: ActionContext, main_id: int, action: str, *, only: int | None = None,
               data: dict | None = None) -> None:
    """Copy a main case's reply (or closing) to its merged duplicates, set-based, with one
    history event each naming the main case."""
    if action == "reply" and data is None:  # late merge: reuse the main case's last reply
        ev = ctx.conn.execute(text(
            "SELECT data FROM case_event WHERE case_id = :m AND action = 'reply' "
            "ORDER BY at DESC, id DESC LIMIT 1"), {"m": main_id}).scalar_one()
        data = {k: ev.get(k) for k in ("channel", "text", "satisfaction")}
    from_state, to_state, column = PROPAGATED[action]
    sets = f"{column} = :at, current_due_at = NULL"
    ids = ctx.conn.execute(text(
        f'UPDATE "case" SET {sets}, status = :to, version = version + 1, updated_at = :at '
        "WHERE merged_into = :m AND status = :from AND (CAST(:only AS bigint) IS NULL OR id = :only) "
        "RETURNING id"),
        {"at": ctx.at, "to": to_state, "m": main_id, "from": from_state, "only": only}).scalars().all()
    if not ids:
        return
    payload = json.dumps({"token_id": ctx.actor.token_id, "via_main_case": main_id,
                          **(data or {})}, default=str, ensure_ascii=False)
    ctx.conn.execute(text(
        "INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, note, "
        "data, user_id) SELECT i, :at, :actor, :role, :action, :f, :t, :note, "
        "CAST(:data AS jsonb), :uid FROM unnest(CAST(:ids AS bigint[])) AS i"),
        {"ids": list(ids), "at": ctx.at, "actor": ctx.actor.name, "role": ctx.actor.role,
         "uid": ctx.actor.user_id,
         "action": action, "f": from_state, "t": to_state,
         "note": propagated_note(main_id, action), "data": payload})
