"""The activities ledger page's words and choices (rendering only)."""

from __future__ import annotations

from cases.activities import KINDS

KIND_CHOICES = list(KINDS)
_T: dict[str, tuple[str, str]] = {
    "title": ("活动台账", "Activities"),
    "record": ("登记活动", "Record an activity"),
    "started_at": ("活动时间", "When"),
    "kind": ("活动类型", "Type"),
    "kind_name": ("其他类型名称", "Name of the other type"),
    "name": ("活动名称", "Title"),
    "communities": ("举办的城市管理岗 (可多选)", "Posts that held it (one or several)"),
    "place": ("地点", "Place"),
    "poi": ("或选择重点场所 (学校、医院、市场、公园广场)", "Or pick a key place (school, hospital, market, park)"),
    "staff": ("工作人员", "Staff"),
    "volunteers": ("志愿者", "Volunteers"),
    "reached": ("覆盖人数", "People reached"),
    "note": ("备注", "Note"),
    "photos": ("照片", "Photos"),
    "photos_hint": ("可多选; 手机可直接拍照", "one or several; a phone can take them now"),
    "save": ("保存", "Save"),
    "saved": ("已保存", "Saved"),
    "month": ("月份", "Month"),
    "show": ("查看", "Show"),
    "held": ("开展活动", "Activities held"),
    "none": ("本月暂无活动记录", "No activity recorded this month"),
    "bad_month": ("月份格式应为 YYYY-MM", "month must be YYYY-MM"),
    "error": ("未保存", "Not saved"),
}


def words(lang: str) -> dict[str, str]:
    """The page's texts in ``lang``."""
    i = 1 if lang == "en" else 0
    return {k: v[i] for k, v in _T.items()}
