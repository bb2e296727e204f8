"""Action forms of the case page, described once per workflow action.

The case page shows one form for each action :func:`cases.workflow.actions_for` allows,
built from its :class:`ActionForm` here: fields, labels (zh/en), which are folded away.
A new workflow action (a rule in ``cases.workflow.RULES`` and its handler) needs only one
entry in :data:`ACTION_FORMS` to appear on the page; :func:`payload_from_form` turns the
posted form into the action's payload, and ``apply_action`` checks it as for the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from casegrid.errors import InvalidInput
from cases import attachments, workflow

Choice = tuple[str, str, str]  # value, Chinese, English


@dataclass(frozen=True)
class Field:
    """One input. ``kind``: text, textarea, int, select, community (the active communities),
    hidden. ``choices`` for select. ``required`` marks it in the page (the ledger checks)."""

    name: str
    kind: str
    label_zh: str
    label_en: str
    required: bool = False
    choices: tuple[Choice, ...] = ()
    default: str = ""
    min: int | None = None
    max: int | None = None

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_zh


@dataclass(frozen=True)
class ActionForm:
    """How an action is asked for on the page. ``folded``: a rare action, behind "more";
    ``tone``: primary (the common next step), danger (sends the case back or away), or
    plain."""

    action: str
    label_en: str
    fields: tuple[Field, ...] = ()
    folded: bool = False
    tone: str = "plain"
    label_zh: str = ""
    # A template shown at the top of the form, before its fields (the reply's 常用回复).
    include: str = ""

    def label(self, lang: str) -> str:
        if lang == "en":
            return self.label_en
        return self.label_zh or workflow.RULES[self.action].label_zh


def _note(required: bool = False, zh: str = "说明", en: str = "Note") -> Field:
    return Field("note", "textarea", zh, en, required=required)


def _reason(zh: str = "原因", en: str = "Reason") -> Field:
    return Field("reason", "textarea", zh, en, required=True)


REJECT_REASONS: tuple[Choice, ...] = (
    ("invalid", "无效信息", "Not a valid report"),
    ("out_of_scope", "不属于城市管理范围", "Not city management's business"),
    ("duplicate", "重复案件 (合并)", "Duplicate (merge)"),
)
REPLY_CHANNELS: tuple[Choice, ...] = (
    ("phone", "电话", "Phone"), ("sms", "短信", "SMS"), ("app", "应用内", "In the app"),
    ("wechat", "微信", "WeChat"), ("letter", "书面", "Letter"), ("in_person", "当面", "In person"),
    ("hotline_12345", "12345热线回复", "Through the 12345 hotline"),
)
SATISFACTION: tuple[Choice, ...] = (
    ("", "未评价", "Not asked"), ("satisfied", "满意", "Satisfied"),
    ("basically_satisfied", "基本满意", "Basically satisfied"),
    ("dissatisfied", "不满意", "Dissatisfied"), ("unknown", "未知", "Unknown"),
)
# No verdict is preselected: a follow-up saved without a choice is refused, not recorded as 满意.
FOLLOW_UP_RESULTS: tuple[Choice, ...] = (
    ("", "请选择", "Choose"), ("satisfied", "满意", "Satisfied"), ("basically_satisfied", "基本满意", "Basically satisfied"),
    ("dissatisfied", "不满意", "Dissatisfied"), ("unreachable", "未能联系", "Could not reach"),
)
FOLLOW_UP_METHODS: tuple[Choice, ...] = (("phone", "电话", "Phone"), ("sms", "短信", "SMS"),
                                         ("app", "APP", "In the app"))
REOPEN_REASONS: tuple[Choice, ...] = (
    ("dissatisfied", "群众不满意", "The citizen is not satisfied"),
    ("centre_order", "热线中心要求重办", "The 12345 centre orders it"),
)
UNITS: tuple[Choice, ...] = (("working_days", "工作日", "working days"),
                             ("working_hours", "工作小时", "working hours"))
assert {c[0] for c in REJECT_REASONS} == set(workflow.REJECT_REASONS)
assert {c[0] for c in REPLY_CHANNELS} == set(workflow.REPLY_CHANNELS)
assert [c[0] for c in FOLLOW_UP_RESULTS[1:]] == list(workflow.FOLLOW_UP_RESULTS)
assert [c[0] for c in FOLLOW_UP_METHODS] == list(workflow.FOLLOW_UP_METHODS)
assert [c[0] for c in REOPEN_REASONS] == list(workflow.REOPEN_REASONS)

ACTION_FORMS: dict[str, ActionForm] = {f.action: f for f in (
    ActionForm("accept", "Accept (register)", (_note(),), tone="primary"),
    ActionForm("reject", "Reject", (
        Field("reason", "select", "不予立案原因", "Reason", required=True, choices=REJECT_REASONS),
        Field("main_case_id", "int", "合并到案件 (内部编号, 仅重复案件)", "Merge into case id (duplicates only)"),
        _note(zh="说明 (重复案件可不填)", en="Note (optional for a duplicate)"),
    ), tone="danger"),
    ActionForm("dispatch", "Dispatch", (
        Field("community_code", "community", "派遣到社区 (默认当前社区)", "To community (default: the current one)"),
        _note(),
    ), tone="primary"),
    ActionForm("reroute", "Re-route", (
        Field("community_code", "community", "改划到社区", "To community", required=True),
        _reason("改划原因", "Reason"),
    ), folded=True),
    ActionForm("redispatch", "Re-dispatch", (
        Field("community_code", "community", "改派到社区", "To community", required=True),
        _reason("改派原因", "Reason"),
    ), folded=True),
    # 签收: one tap, the officer's first step on a dispatched case (offered until done).
    ActionForm("acknowledge", "Acknowledge", (), tone="primary"),
    ActionForm("return", "Return (wrongly sent)", (_reason("退单原因", "Why it is not ours"),),
               tone="danger"),
    ActionForm("handle", "Record the handling", (_note(True, "处置情况", "What was done"),),
               tone="primary"),
    ActionForm("request_extension", "Ask for more time", (
        Field("amount", "int", "延期", "Extend by", required=True, default="1", min=1, max=60),
        Field("unit", "select", "单位", "Unit", choices=UNITS),
        _reason("延期原因", "Reason"),
    ), folded=True),
    ActionForm("approve_extension", "Approve the extension", (_note(),), tone="primary"),
    ActionForm("deny_extension", "Deny the extension", (_note(True, "驳回原因", "Why not"),),
               tone="danger"),
    ActionForm("verify_pass", "Verified: pass", (_note(),), tone="primary"),
    ActionForm("verify_fail", "Send back for rework", (_note(True, "返工原因", "What is still wrong"),),
               tone="danger"),
    ActionForm("reply", "Reply to the citizen", (
        Field("channel", "select", "回复方式", "Channel", required=True, choices=REPLY_CHANNELS),
        Field("text", "textarea", "回复内容", "Reply", required=True),
        Field("satisfaction", "select", "满意度", "Satisfaction", choices=SATISFACTION),
    ), tone="primary", include="case/reply_templates.html"),
    ActionForm("close", "Close", (_note(),), tone="primary"),
    # 回访: the citizen's verdict after the reply; several attempts, the last counts.
    ActionForm("follow_up", "Follow-up call", (
        Field("result", "select", "回访结果", "Result", required=True, choices=FOLLOW_UP_RESULTS),
        Field("method", "select", "回访方式", "How", required=True, choices=FOLLOW_UP_METHODS),
        _note(zh="回访记录", en="What the citizen said"),
    ), tone="primary"),
    # 发回重办: back to the post with new deadlines; rare, and it undoes the reply.
    ActionForm("reopen", "Send back to be redone", (
        Field("reason", "select", "重办原因", "Why", required=True, choices=REOPEN_REASONS),
        _note(True, "重办要求", "What must be redone"),
    ), tone="danger"),
)}


def form_for(action: str) -> ActionForm:
    """The action's form; an action with no description gets a note-only form under "more
    actions", so a new rule is usable at once without crowding the common step, and its
    description can follow."""
    return ACTION_FORMS.get(action) or ActionForm(action, action.replace("_", " "), (_note(),),
                                                  folded=True)


def takes_photos(action: str) -> bool:
    """Whether the action's form has a photo input: the actions evidence is filed under
    (:data:`cases.attachments.ACTION_STAGES`); the photos are posted with the action."""
    return action in attachments.ACTION_STAGES


def payload_from_form(action: str, form: Mapping[str, str]) -> dict:
    """The action's payload from posted form values: empty optional fields left out,
    whole numbers converted (``InvalidInput`` naming the field otherwise)."""
    payload: dict = {}
    for f in form_for(action).fields:
        raw = (form.get(f.name) or "").strip()
        if not raw:
            continue
        if f.kind == "int":
            try:
                payload[f.name] = int(raw)
            except ValueError:
                raise InvalidInput(f"{f.name} must be a whole number, not {raw!r}",
                                   field=f.name) from None
        else:
            payload[f.name] = raw
    # A point moved on the map (re-route by dragging) comes as lon/lat in WGS-84.
    if action in ("reroute", "dispatch", "redispatch") and form.get("lon") and form.get("lat"):
        payload.pop("community_code", None)
        # The marker moves on the base map's datum (GCJ-02 for a Chinese tile source).
        crs = form.get("crs") if form.get("crs") in ("wgs84", "gcj02") else "wgs84"
        payload.update({"lon": form["lon"], "lat": form["lat"], "crs": crs})
    return payload


@dataclass
class FormState:
    """A form shown again after a refusal: the values typed and the message per field."""

    action: str
    values: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
