"""A SYNTHETIC workflow history for the demo ledger: moves loaded complaints through the loop.

Nothing here is real. The sample year (:mod:`casegrid.demo.complaints`) loads every complaint as
``registered``; for the dispatcher map, the indicators and the report to show a working city,
this module gives each case a made-up but plausible history through the real workflow rules
(``cases.workflow``): review within hours (a few rejected as invalid or out of scope, repeat
complaints merged into an open main case), dispatch, some re-routed (改划) or returned (退单)
and dispatched to the neighbouring community, some extended (延期), handling mostly inside
the category's time limit (some late), verification (some sent back: 返工), reply to the
complainant, closing. Everything the simulation writes is ordinary ledger data: the case
columns and one ``case_event`` row per action, by named, revoked tokens ``simulated ...``,
so every figure remains reproducible from the history table.

**Time.** Each case's plan is laid out in working time (``cases.calendar``) from its receipt,
then cut at ``until`` (default: the earlier of now and one day after the newest case): the
last weeks' cases are left open in whatever state their plan had reached, and ~1% of cases
stall somewhere along the way (the overdue cases a real ledger always has).

**One executor, the ledger's own rules.** A year of actions through
:func:`cases.workflow.apply_action` one by one would keep ``make run`` waiting for half an
hour (a round trip and a savepoint per action), so :class:`_Replay` applies them in memory
through the workflow's public pieces: :func:`cases.workflow.check_action` (the same checks),
its handlers (``cases.workflow.HANDLERS`` with a :class:`cases.workflow.ActionContext`: the
same column changes, notes, event data and deadline arithmetic), its propagation rule for
merged duplicates (:data:`cases.workflow.PROPAGATED`), and the privacy masking of every free
text (:func:`cases.personal_text.mask_payload`, as ``apply_action`` does). It then COPYs the
final case rows into a temporary table applied with one UPDATE (the statistics triggers see
one statement) and COPYs the events in the order they happened.
``tests/test_simulate.py`` checks that the same plan applied through ``apply_action`` writes
the same case columns, ``case_stat`` rows and event sequences.

**Deterministic and idempotent.** Each case's plan comes from a generator seeded by the seed
and the case's ticket number (or id), and actions are applied in time order. Only cases
still ``registered`` whose history is only their ``register`` event are simulated; a second
run leaves already-simulated cases alone.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from casegrid.errors import Conflict, Forbidden
from cases import deadlines, personal_text
from cases.calendar import CITY_TZ, WorkCalendar
from cases.calendar_store import load_calendar
from cases.tokens import Principal, create_token
from cases.workflow import HANDLERS, PROPAGATED, ActionContext, check_action, propagated_note

SYNTHETIC_NOTE = ("SYNTHETIC workflow history (casegrid/demo/history.py): every review, dispatch, "
                  "handling, reply and closing of the sample cases is made up, none is real.")
DEFAULT_SEED = 20251101
# The register events' actor of the sample year (casegrid/demo/complaints.py): the demo only
# ever gives a made-up history to the made-up complaints, never to real ones.
SAMPLE_ACTOR = "sample-generator (synthetic)"
ProgressFn = Callable[[str, float, float | None], None]

# Shares of the plan's branches (per case; see _plan_case).
P_REJECT_INVALID = 0.02
P_REJECT_SCOPE = 0.015
P_DUPLICATE = {"0599": 0.12, "0508": 0.12, "0301": 0.15}  # when an open main case exists
P_DUPLICATE_OTHER = 0.06
P_REROUTE = 0.02
P_RETURN = 0.035
P_EXTENSION = {"0101": 0.3}
P_EXTENSION_OTHER = 0.025
P_LATE_HANDLE = 0.1
P_REWORK = 0.05
P_STALL = 0.012
DUPLICATE_WINDOW = timedelta(days=2)

_HANDLE_NOTES = {
    "0599": ["已上门劝导, 噪音已停止", "已联系物业及当事人, 音响音量已降低", "已现场劝离聚集人员"],
    "0504": ["已劝导商户将物品收回店内", "已责令整改, 占道桌椅已撤除"],
    "0102": ["已通知环卫清运, 垃圾已清理", "已协调保洁人员清理完毕"],
    "0101": ["已下达停工通知并督促当事人自行拆除", "违建已拆除, 恢复原状"],
    "0301": ["已责令工地停止夜间施工", "已核查夜间施工许可并要求降噪"],
    "0508": ["已劝导商户关闭外放音响", "已责令酒吧控制音量"],
    "0505": ["已张贴违停告知单并联系车主挪车", "已协调交警清理乱停车辆"],
    "0103": ["已组织清运渣土", "已督促责任单位清理积存垃圾"],
    "0104": ["已安排保洁冲洗路面", "路面油污已清理"],
    "0501": ["已劝离流动摊贩", "已引导摊贩进入便民市场经营"],
    "0510": ["已劝导停止露天烧烤", "烧烤摊已撤除"],
    "0201": ["小广告已清除", "已清理墙面小广告并登记号码"],
}
_REPLY_CHANNEL = {"hotline_12345": ("hotline_12345", "phone"), "app": ("app",),
                  "platform": ("wechat", "sms", "phone"), "patrol": ("in_person",),
                  "open311": ("app",), "walk_in": ("in_person", "phone")}
_SATISFACTION = (("satisfied", 0.78), ("basically_satisfied", 0.12), ("dissatisfied", 0.04),
                 ("unknown", 0.06))
_COLUMNS = ("id", "case_no", "external_id", "channel", "category_code", "received_at", "status",
            "version", "merged_into", "community_code", "subdistrict_code", "post_id",
            "generation_id", "route_rule", "input_lon", "input_lat", "input_crs",
            "current_due_at", "due_provisional", "reviewed_at", "dispatched_at", "handled_at",
            "verified_at", "replied_at", "closed_at", "rework_count", "extension_count",
            "review_due_at", "dispatch_due_at", "handle_due_at", "reply_due_at", "handle_hours",
            "reject_reason", "pending_extension", "updated_at")
# Columns the workflow's actions may change (written back by the in-memory executor).
_WRITTEN = ("status", "version", "updated_at", "merged_into", "community_code",
            "subdistrict_code", "post_id", "generation_id", "route_rule", "current_due_at",
            "due_provisional", "reviewed_at", "dispatched_at", "handled_at", "verified_at",
            "replied_at", "closed_at", "rework_count", "extension_count", "dispatch_due_at",
            "handle_due_at", "handle_hours", "reject_reason", "pending_extension")
_TYPES = {"status": "text", "version": "int", "updated_at": "timestamptz", "merged_into": "bigint",
          "community_code": "text", "subdistrict_code": "text", "post_id": "int",
          "generation_id": "int", "route_rule": "text", "current_due_at": "timestamptz",
          "due_provisional": "boolean", "reviewed_at": "timestamptz",
          "dispatched_at": "timestamptz", "handled_at": "timestamptz",
          "verified_at": "timestamptz", "replied_at": "timestamptz", "closed_at": "timestamptz",
          "rework_count": "int", "extension_count": "int", "dispatch_due_at": "timestamptz",
          "handle_due_at": "timestamptz", "handle_hours": "float8", "reject_reason": "text",
          "pending_extension": "jsonb"}


@dataclass
class SimReport:
    """What a simulation found and did."""

    until: datetime
    eligible: int = 0
    simulated: int = 0          # cases that got at least one action
    actions: int = 0            # actions applied (events written, propagated copies included)
    statuses: dict[str, int] = field(default_factory=dict)
    branches: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Actors:
    """The simulated staff: tokens named ``simulated ...`` (revoked: nobody can log in)."""

    reviewer: Principal
    closer: Principal
    dispatcher: Principal
    officers: dict[str, Principal]


@dataclass(frozen=True)
class _Step:
    at: datetime
    action: str
    actor: str          # "reviewer", "closer", "dispatcher" or "officer:<community code>"
    payload: dict


# -- actors ----------------------------------------------------------------------------------


def ensure_actors(conn: Connection) -> Actors:
    """The simulated staff's tokens, created (and revoked at once) on first use: a supervisor
    who reviews and verifies, another who closes, a dispatcher, and an officer per community
    of the active boundaries."""
    def token(role: str, name: str, communities: list[str] | None = None) -> Principal:
        row = conn.execute(text("SELECT id FROM api_token WHERE name = :n AND role = :r "
                                "ORDER BY id LIMIT 1"), {"n": name, "r": role}).first()
        if row is None:
            tid, _ = create_token(conn, role, name, communities)
            conn.execute(text("UPDATE api_token SET revoked_at = now() WHERE id = :i"),
                         {"i": tid})
        else:
            tid = row.id
        return Principal(tid, name, role, tuple(communities or ()))

    codes = conn.execute(text(
        "SELECT c.code FROM community c JOIN boundary_generation g ON g.id = c.generation_id "
        "AND g.active ORDER BY c.code")).scalars().all()
    return Actors(
        reviewer=token("supervisor", "simulated supervisor (审核/核查)"),
        closer=token("supervisor", "simulated supervisor (结案)"),
        dispatcher=token("dispatcher", "simulated dispatcher (指挥中心)"),
        officers={c: token("community_officer", f"simulated officer {c}", [c]) for c in codes},
    )


def _neighbours(conn: Connection) -> dict[str, list[str]]:
    rows = conn.execute(text(
        "SELECT a.code AS a, b.code AS b FROM community a JOIN boundary_generation g "
        "ON g.id = a.generation_id AND g.active JOIN community b ON b.generation_id = "
        "a.generation_id AND b.code <> a.code AND ST_Intersects(a.geom, b.geom) "
        "ORDER BY a.code, b.code")).all()
    out: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        out[r.a].append(r.b)
    return out


# -- planning --------------------------------------------------------------------------------


class _Planner:
    """Lays out each case's intended history in working time (before the cut at ``until``)."""

    def __init__(self, conn: Connection, calendar: WorkCalendar, seed: int,
                 neighbours: dict[str, list[str]], communities: list[str]) -> None:
        self.conn = conn
        self.cal = calendar
        self.seed = seed
        self.neighbours = neighbours
        self.communities = communities
        self._limits: dict[tuple[str, str], dict[str, deadlines.Limit]] = {}
        # (community, category) -> recent accepted cases: (received_at, id, open until)
        self.recent: dict[tuple[str, str], list[tuple[datetime, int, datetime | None]]] = \
            defaultdict(list)
        self.branches: Counter[str] = Counter()

    def limits(self, category: str, channel: str) -> dict[str, deadlines.Limit]:
        key = (category, channel)
        if key not in self._limits:
            self._limits[key] = deadlines.limits_for(self.conn, category, channel)
        return self._limits[key]

    def after(self, t: datetime, hours: float) -> datetime:
        """``hours`` working hours after ``t``, to the second, always later than ``t``."""
        at = self.cal.add(t, max(hours, 0.01), "working_hours").at.replace(microsecond=0)
        return max(at, t.replace(microsecond=0) + timedelta(seconds=1))

    def neighbour(self, rng: random.Random, code: str) -> str:
        options = self.neighbours.get(code) or [c for c in self.communities if c != code]
        return rng.choice(options)

    def plan(self, case: dict) -> list[_Step]:
        """The case's steps in time order (its reviews, dispatches, ... up to closing)."""
        key = case["external_id"] or f"id{case['id']}"
        rng = random.Random(f"{self.seed}:{key}")
        steps = self._steps(case, rng)
        if len(steps) > 1 and rng.random() < P_STALL:
            self.branches["stalled"] += 1
            steps = steps[:rng.randint(1, len(steps) - 1)]
        return steps

    def _steps(self, c: dict, rng: random.Random) -> list[_Step]:
        out: list[_Step] = []

        def add(at: datetime, action: str, actor: str, **payload: Any) -> datetime:
            if out and at <= out[-1].at:  # never before the step it follows
                at = self.after(out[-1].at, rng.uniform(0.1, 1.0))
            out.append(_Step(at, action, actor, payload))
            return at

        lim = self.limits(c["category_code"], c["channel"])
        review_h = rng.uniform(4.2, 9.0) if rng.random() < 0.05 else rng.uniform(0.2, 3.6)
        t = self.after(c["received_at"], review_h)
        comm = c["community_code"]
        r = rng.random()
        if comm is None or comm not in self.communities:
            self.branches["rejected_out_of_scope"] += 1
            add(t, "reject", "reviewer", reason="out_of_scope",
                note="位置不在城区网格范围内, 转属地乡镇处理")
            self._reply_close(c, rng, t, add, rejected=True)
            return out
        main = self._main_case(c, rng, t)
        if main is not None:
            self.branches["merged_duplicate"] += 1
            add(t, "reject", "reviewer", reason="duplicate", main_case_id=main,
                note="重复诉求, 并入主案卷")
            return out
        if r < P_REJECT_INVALID:
            self.branches["rejected_invalid"] += 1
            add(t, "reject", "reviewer", reason="invalid", note="诉求内容不明确, 经回访核实无需处置")
            self._reply_close(c, rng, t, add, rejected=True)
            return out
        if r < P_REJECT_INVALID + P_REJECT_SCOPE:
            self.branches["rejected_out_of_scope"] += 1
            add(t, "reject", "reviewer", reason="out_of_scope", note="不属于城市管理职责范围, 已转相关部门")
            self._reply_close(c, rng, t, add, rejected=True)
            return out
        add(t, "accept", "reviewer", note="审核通过, 予以立案")
        if rng.random() < P_REROUTE:
            self.branches["rerouted"] += 1
            comm = self.neighbour(rng, comm)
            t = add(self.after(t, rng.uniform(0.1, 1.0)), "reroute", "dispatcher",
                    community_code=comm, reason="核实位置后改划至相邻社区")
        slow = rng.random() < 0.05
        t = add(self.after(t, rng.uniform(2.2, 5.0) if slow else rng.uniform(0.1, 1.8)),
                "dispatch", "dispatcher", note="派遣至社区城市管理岗")
        due = self.cal.add(t, lim["handle"].amount, lim["handle"].unit).at  # type: ignore[arg-type]
        if rng.random() < P_RETURN:
            self.branches["returned"] += 1
            t = add(self.after(t, rng.uniform(0.3, 3.0)), "return", f"officer:{comm}",
                    reason="经现场核实不在本社区辖区, 申请退单")
            comm = self.neighbour(rng, comm)
            t = add(self.after(t, rng.uniform(0.2, 2.0)), "dispatch", "dispatcher",
                    community_code=comm, reason="退单后改派至相邻社区")
            due = self.cal.add(t, lim["handle"].amount, lim["handle"].unit).at  # type: ignore[arg-type]
        officer = f"officer:{comm}"
        dispatched = t
        window = max(self.cal.working_seconds_between(dispatched, due) / 3600.0, 0.5)
        if rng.random() < P_EXTENSION.get(c["category_code"], P_EXTENSION_OTHER):
            long_task = lim["handle"].unit == "working_days" and lim["handle"].amount >= 5
            amount = rng.randint(5, 10) if long_task else rng.randint(1, 2)
            t = add(self.after(t, window * rng.uniform(0.3, 0.7)), "request_extension", officer,
                    reason="需协调多方处置, 申请延期", amount=amount, unit="working_days")
            decider = "reviewer" if rng.random() < 0.6 else "dispatcher"
            t = self.after(t, rng.uniform(0.2, 3.0))
            if rng.random() < 0.85:
                self.branches["extended"] += 1
                add(t, "approve_extension", decider, note="同意延期")
                due = self.cal.add(due, amount, "working_days").at
            else:
                self.branches["extension_denied"] += 1
                add(t, "deny_extension", decider, note="理由不充分, 请按期处置")
        left = max(self.cal.working_seconds_between(t, due) / 3600.0, 0.0)
        if rng.random() < P_LATE_HANDLE or left < 0.2:
            self.branches["handled_late"] += 1
            handle_at = self.after(due, rng.uniform(0.5, 16.0))
        else:
            handle_at = self.after(t, left * rng.uniform(0.1, 0.95))
        t = add(handle_at, "handle", officer, **self._handle_payload(c, rng))
        # verification: usually the next working day
        t = self.after(t, rng.uniform(2.0, 12.0))
        if rng.random() < P_REWORK:
            self.branches["reworked"] += 1
            add(t, "verify_fail", "reviewer", note="核查发现问题仍存在, 退回返工")
            t = add(self.after(t, rng.uniform(1.0, 12.0)), "handle", officer,
                    **self._handle_payload(c, rng))
            t = self.after(t, rng.uniform(2.0, 10.0))
        add(t, "verify_pass", "reviewer", note="现场核查, 问题已解决")
        closed = self._reply_close(c, rng, t, add, rejected=False)
        # an accepted case may become the main case of repeat complaints until it closes
        self.recent[(c["community_code"], c["category_code"])].append(
            (c["received_at"], c["id"], closed))
        return out

    def _reply_close(self, c: dict, rng: random.Random, t: datetime, add: Callable[..., datetime],
                     rejected: bool) -> datetime:
        channel = rng.choice(_REPLY_CHANNEL.get(c["channel"], ("phone",)))
        body = ("您反映的问题经审核不予立案, 原因已告知, 感谢您的监督" if rejected
                else "您反映的问题已处置完毕, 感谢您对城市管理工作的支持")
        satisfaction = rng.choices([s for s, _ in _SATISFACTION],
                                   [w for _, w in _SATISFACTION])[0]
        # the reply within a few working days; closing when the week's files are archived
        t = add(self.after(t, rng.uniform(2.0, 24.0)), "reply", "dispatcher", channel=channel,
                text=body, satisfaction=None if c["channel"] == "patrol" else satisfaction)
        return add(self.after(t, rng.uniform(4.0, 40.0)), "close", "closer", note="归档结案")

    def _main_case(self, c: dict, rng: random.Random, reject_at: datetime) -> int | None:
        """An earlier accepted case about the same matter that is still open at ``reject_at``
        (its planned closing is later), if the dice say this complaint repeats it."""
        if c["channel"] == "patrol":
            return None
        bucket = self.recent.get((c["community_code"], c["category_code"]))
        if not bucket:
            return None
        # forget cases received before the window
        lo = c["received_at"] - DUPLICATE_WINDOW
        while bucket and bucket[0][0] < lo:
            bucket.pop(0)
        candidates = [cid for rec, cid, closed in bucket
                      if rec < c["received_at"] and (closed is None or closed > reject_at)]
        if not candidates:
            return None
        if rng.random() >= P_DUPLICATE.get(c["category_code"], P_DUPLICATE_OTHER):
            return None
        return candidates[-1]

    def _handle_payload(self, c: dict, rng: random.Random) -> dict:
        notes = _HANDLE_NOTES.get(c["category_code"], ["已现场处置完毕"])
        photos = [f"https://sample.casegrid.invalid/sim/{c['case_no']}-after.jpg"] \
            if c["channel"] in ("app", "patrol") or rng.random() < 0.5 else []
        return {"note": rng.choice(notes), "photo_urls": photos}



# -- the run ---------------------------------------------------------------------------------

_ELIGIBLE_SQL = f"""
SELECT {", ".join("c." + k for k in _COLUMNS)}
FROM "case" c
WHERE c.status = 'registered' AND c.merged_into IS NULL AND c.received_at <= :until
  AND (CAST(:ids AS bigint[]) IS NULL OR c.id = ANY(CAST(:ids AS bigint[])))
  AND NOT EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id AND e.action <> 'register')
  AND (CAST(:reg AS text) IS NULL OR EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id
                                             AND e.action = 'register' AND e.actor = :reg))
  AND NOT EXISTS (SELECT 1 FROM "case" d WHERE d.merged_into = c.id)
ORDER BY c.received_at, c.id
FOR UPDATE OF c
"""


def default_until(conn: Connection) -> datetime:
    """The simulation's clock: the earlier of now and one day after the newest case."""
    return conn.execute(text(
        "SELECT least(now(), coalesce(max(received_at), now()) + interval '1 day') "
        'FROM "case"')).scalar_one().astimezone(CITY_TZ)


@dataclass
class Plan:
    """The cases a run acts on and their actions in the order they happen."""

    until: datetime
    actors: Actors
    calendar: WorkCalendar
    planner: _Planner
    cases: dict[int, dict]
    steps: list[tuple[int, _Step]]

    def actor(self, step: _Step) -> Principal:
        """The simulated person who takes ``step``."""
        if step.actor.startswith("officer:"):
            return self.actors.officers[step.actor.split(":", 1)[1]]
        return getattr(self.actors, step.actor)


def plan_history(conn: Connection, seed: int, until: datetime | None,
                 case_ids: list[int] | None, register_actor: str | None,
                 progress: ProgressFn | None = None) -> Plan:
    """Lock the eligible cases (see the module docstring and :func:`simulate_ledger` for the
    arguments) and lay out their actions up to ``until``, in time order. Writes nothing but
    the simulated staff's tokens."""
    until = (until or default_until(conn)).astimezone(CITY_TZ)
    actors = ensure_actors(conn)
    calendar = load_calendar(conn)
    rows = conn.execute(text(_ELIGIBLE_SQL), {"until": until, "ids": case_ids,
                                                  "reg": register_actor}).mappings().all()
    cases = {r["id"]: dict(r) for r in rows}
    planner = _Planner(conn, calendar, seed, _neighbours(conn), sorted(actors.officers))
    queue: list[tuple[datetime, int, int, _Step]] = []
    for n, (order, case) in enumerate(enumerate(cases.values()), start=1):
        for i, step in enumerate(planner.plan(case)):
            if step.at > until:
                break  # the rest of this case's history has not happened yet
            queue.append((step.at, order, i, step))
        if progress and n % 500 == 0:
            progress("plan", n, len(cases))
    queue.sort(key=lambda q: q[:3])
    if progress:
        progress("plan", len(cases), len(cases))
    ids = list(cases)
    return Plan(until, actors, calendar, planner, cases,
                [(ids[order], step) for _, order, _, step in queue])


def simulate_ledger(
    conn: Connection,
    *,
    seed: int = DEFAULT_SEED,
    until: datetime | None = None,
    case_ids: list[int] | None = None,
    register_actor: str | None = None,
    progress: ProgressFn | None = None,
) -> SimReport:
    """Give the registered cases received up to ``until`` a SYNTHETIC workflow history (see
    the module docstring) and return what was done. Runs in the caller's transaction.

    ``case_ids`` limits the run to those cases, ``register_actor`` to the cases registered by
    that actor (the CLI passes :data:`SAMPLE_ACTOR`).
    """
    clock = time.perf_counter()
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    plan = plan_history(conn, seed, until, case_ids, register_actor, progress)
    report = SimReport(until=plan.until, eligible=len(plan.cases),
                       branches=dict(plan.planner.branches.most_common()))
    report.seconds["plan"] = round(time.perf_counter() - clock, 3)

    clock = time.perf_counter()
    replay = _Replay(conn, plan)
    for n, (case_id, step) in enumerate(plan.steps, start=1):
        replay.apply(case_id, step.action, step.payload, plan.actor(step), step.at)
        if progress and n % 2000 == 0:
            progress("apply", n, len(plan.steps))
    if progress and plan.steps:
        progress("apply", len(plan.steps), len(plan.steps))
    report.seconds["replay"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    if progress and replay.events:
        progress("write", 0, None)
    replay.write()
    report.actions = len(replay.events)
    report.seconds["write"] = round(time.perf_counter() - clock, 3)
    report.simulated = len({case_id for case_id, _ in plan.steps})
    report.statuses = dict(conn.execute(text(
        'SELECT status, count(*) FROM "case" WHERE id = ANY(:ids) GROUP BY status '
        "ORDER BY count(*) DESC"), {"ids": list(plan.cases)}).all())
    return report


# -- the executor ----------------------------------------------------------------------------


class _Replay:
    """Applies actions to in-memory copies of the cases as ``apply_action`` would (the
    workflow's checks, handlers and propagation rule; free text masked), collecting the
    events; :meth:`write` stores the final rows, the events and any masked originals."""

    def __init__(self, conn: Connection, plan: Plan) -> None:
        self.conn = conn
        self.plan = plan
        self.cases = plan.cases
        self.original_version = {cid: c["version"] for cid, c in plan.cases.items()}
        self.changed: set[int] = set()
        self.events: list[tuple] = []
        self.handlers: dict[int, set[tuple[int, str]]] = defaultdict(set)
        self.merged: dict[int, list[int]] = defaultdict(list)
        self.last_reply: dict[int, dict] = {}
        self.originals: list[tuple[int, dict[str, str]]] = []

    def apply(self, case_id: int, action: str, payload: dict, actor: Principal,
              at: datetime) -> None:
        case = self.cases[case_id]
        payload = dict(payload)
        # Free text is stored masked, as apply_action stores it (cases.privacy).
        originals = personal_text.mask_payload(payload)
        if originals:
            self.originals.append((case_id, originals))
        rule = check_action(case, action, actor)
        if rule.not_by_handler and (actor.token_id, actor.name) in self.handlers[case_id]:
            raise Forbidden(f"{actor.name} handled case {case_id}", field="action")
        ctx = ActionContext(self.conn, dict(case), payload, actor, at, self.plan.calendar,
                            limits=self.plan.planner.limits(case["category_code"],
                                                            case["channel"]))
        step = HANDLERS[action](ctx)
        if step.after is not None and action in ("reroute", "dispatch", "redispatch"):
            # a point payload moves the case's geometry: the planner never sends one
            raise NotImplementedError("the in-memory replay does not move case points")
        from_state = case["status"]
        to_state = rule.to_state or from_state
        self._set(case_id, {**step.changes, "status": to_state}, at)
        self._event(case_id, at, actor, action, from_state, to_state, step.note, step.data)
        if action == "handle":
            self.handlers[case_id].add((actor.token_id, actor.name))
        elif action == "reply":
            self.last_reply[case_id] = step.data
            self._propagate(case_id, "reply", actor, at, data=step.data)
        elif action == "close":
            self._propagate(case_id, "close", actor, at)
        elif action == "reject" and case["merged_into"] is not None:
            main_id = case["merged_into"]
            self.merged[main_id].append(case_id)
            if self.cases[main_id]["replied_at"] is not None:
                self._propagate(main_id, "reply", actor, at, only=case_id)

    def _set(self, case_id: int, changes: dict, at: datetime) -> None:
        case = self.cases[case_id]
        case.update(changes)
        case["version"] += 1
        case["updated_at"] = at
        self.changed.add(case_id)

    def _event(self, case_id: int, at: datetime, actor: Principal, action: str,
               from_state: str | None, to_state: str | None, note: str | None,
               data: dict) -> None:
        self.events.append((case_id, at, actor.name, actor.role, action, from_state, to_state,
                            note, json.dumps({"token_id": actor.token_id, **data}, default=str,
                                             ensure_ascii=False)))

    def _propagate(self, main_id: int, action: str, actor: Principal, at: datetime, *,
                   only: int | None = None, data: dict | None = None) -> None:
        """The main case's reply or closing copied to its merged duplicates, by the
        workflow's rule (:data:`cases.workflow.PROPAGATED`)."""
        if action == "reply" and data is None:  # a late merge gets the main case's last reply
            ev = self.last_reply[main_id]
            data = {k: ev.get(k) for k in ("channel", "text", "satisfaction")}
        from_state, to_state, column = PROPAGATED[action]
        for dup in self.merged.get(main_id, []):
            if self.cases[dup]["status"] != from_state or (only is not None and dup != only):
                continue
            self._set(dup, {column: at, "current_due_at": None, "status": to_state}, at)
            self.events.append((
                dup, at, actor.name, actor.role, action, from_state, to_state,
                propagated_note(main_id, action),
                json.dumps({"token_id": actor.token_id, "via_main_case": main_id,
                            **(data or {})}, default=str, ensure_ascii=False)))

    def write(self) -> None:
        """COPY the changed cases' final columns into a temporary table and apply them with one
        UPDATE (optimistic: each case at the version it was loaded with; the statistics
        triggers see one statement), then COPY the events in the order they happened."""
        ids = sorted(self.changed)
        cur = self.conn.connection.driver_connection.cursor()  # same transaction
        if ids:
            cols = ", ".join(f"{c} {_TYPES[c]}" for c in _WRITTEN)
            self.conn.execute(text("DROP TABLE IF EXISTS _sim_case"))
            self.conn.execute(text(
                f"CREATE TEMP TABLE _sim_case (id bigint PRIMARY KEY, v0 int, {cols}) "
                "ON COMMIT DROP"))
            with cur.copy(f"COPY _sim_case (id, v0, {', '.join(_WRITTEN)}) FROM STDIN") as cp:
                for i in ids:
                    case = self.cases[i]
                    row = [i, self.original_version[i]]
                    for col in _WRITTEN:
                        v = case[col]
                        if col == "pending_extension" and v is not None:
                            v = json.dumps(v, default=str, ensure_ascii=False)
                        row.append(v)
                    cp.write_row(row)
            sets = ", ".join(f"{c} = u.{c}" for c in _WRITTEN)
            done = self.conn.execute(text(
                f'UPDATE "case" k SET {sets} FROM _sim_case u '
                "WHERE k.id = u.id AND k.version = u.v0")).rowcount
            if done != len(ids):
                raise Conflict(f"{len(ids) - done} simulated cases changed while the simulation "
                               "ran: run it again", field="version")
        with cur.copy("COPY case_event (case_id, at, actor, role, action, from_state, to_state, "
                      "note, data) FROM STDIN") as cp:
            for ev in self.events:
                cp.write_row(ev)
        for case_id, originals in self.originals:
            personal_text.store(self.conn, case_id, originals)
