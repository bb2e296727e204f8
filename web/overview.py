"""The leadership overview's words (Chinese first, English) and its bar widths: rendering
helpers only; the figures come from :func:`cases.overview.overview`."""

from __future__ import annotations

_T: dict[str, tuple[str, str]] = {
    "title": ("月度概览", "Monthly overview"),
    "programme": ("城市管理进社区", "City management in the communities"),
    "month": ("月份", "Month"),
    "show": ("查看", "Show"),
    "print": ("打印 / 存为 PDF", "Print / save as PDF"),
    "this": ("本月", "This month"),
    "last": ("上月", "Last month"),
    "year_ago": ("去年同期", "Same month last year"),
    "overdue_now": ("当前超期在办", "Overdue now"),
    "overdue_hint": ("尚未办结且已超过当前时限的案件", "open cases past their current deadline"),
    "best": ("考核前五名", "Five best posts"),
    "weakest": ("考核后五名", "Five weakest posts"),
    "post": ("城市管理岗", "Post"),
    "score": ("得分", "Score"),
    "cases": ("案件", "Cases"),
    "not_ranked": ("另有 {n} 个岗位本月案件少于 {m} 件, 不参与排名",
                   "{n} more posts had fewer than {m} cases this month and are not ranked"),
    "top_categories": ("投诉类别前五", "Top complaint types"),
    "top_places": ("案件最多的社区", "Communities with the most cases"),
    "activities": ("社区活动", "Community activities"),
    "held": ("开展活动", "held"),
    "reached": ("覆盖人数", "people reached"),
    "none": ("暂无", "none yet"),
    "evaluation_map": ("考核地图", "Evaluation map"),
    "bad_month": ("月份格式应为 YYYY-MM", "month must be YYYY-MM"),
}


def words(lang: str) -> dict[str, str]:
    """The overview's texts in ``lang``."""
    i = 1 if lang == "en" else 0
    return {k: v[i] for k, v in _T.items()}


def bar_widths(values: list[float | None]) -> list[int]:
    """Each value as a percentage of the largest (for the bars drawn in HTML)."""
    top = max((v for v in values if v), default=0)
    return [int(round(100 * (v or 0) / top)) if top else 0 for v in values]
