"""Text shown on the maps: Chinese (the sample city's language, the default) and English.

Pages take ``lang=zh|en``; :func:`strings` returns the table for one language, which pages
also hand to their JavaScript so that legends, popups and controls speak the same language.
"""

from __future__ import annotations

from casegrid.errors import InvalidInput

LANGS = ("zh", "en")

_T: dict[str, tuple[str, str]] = {
    # page titles
    "dispatch_title": ("调度地图", "Dispatch map"),
    "hotspots_title": ("投诉热点分析", "Complaint hotspots"),
    "case_title": ("案件位置", "Case location"),
    "evaluation_title": ("城市管理岗考核", "Evaluation of community posts"),
    # evaluation and activities
    "evaluation_layer": ("考核得分", "Evaluation score"),
    "score": ("得分", "Score"),
    "too_few_cases": ("案件 {n} 件, 不参与排名", "{n} cases: not ranked"),
    "no_cases": ("本期无案件", "no cases in the period"),
    "not_ranked": ("不参与排名 (案件过少)", "not ranked (too few cases)"),
    "listed_apart": ("案件少于 {n} 件, 单列", "fewer than {n} cases, listed apart"),
    "activities": ("社区活动", "Community activities"),
    "reached": ("覆盖人数", "People reached"),
    # layers
    "subdistricts": ("街道", "Subdistricts"),
    "communities": ("社区", "Communities"),
    "posts": ("城市管理岗", "Community posts"),
    "cases": ("案件", "Cases"),
    "heatmap": ("投诉热力图", "Complaint heatmap"),
    "gi_cells": ("显著热点/冷点 (Gi*)", "Significant hot/cold spots (Gi*)"),
    "choropleth": ("各社区案件数", "Cases per community"),
    "hourly": ("按小时动画", "Hour-of-day animation"),
    "alternates": ("备选社区", "Alternate communities"),
    "duplicates": ("附近可能重复的案件", "Nearby possible duplicates"),
    "dup_radius": ("查重半径", "Duplicate radius"),
    # states
    "state_new": ("新立案", "New"),
    "state_dispatched": ("已派遣", "Dispatched"),
    "state_handled": ("已处置", "Handled"),
    "state_closed": ("已结案", "Closed"),
    "state_overdue": ("超期", "Overdue"),
    "flag_check": ("需核实位置 (边界附近/就近分派)", "Check location (near a boundary / nearest)"),
    "flag_near_boundary": ("靠近边界", "Near a boundary"),
    "flag_nearest": ("不在任何社区内, 就近分派", "Outside every community, routed to the nearest"),
    # filters
    "filters": ("筛选", "Filters"),
    "subdistrict": ("街道", "Subdistrict"),
    "community": ("社区", "Community"),
    "category": ("类别", "Category"),
    "state": ("状态", "State"),
    "channel": ("来源", "Channel"),
    "date_from": ("起始日期", "From"),
    "date_to": ("截止日期", "To"),
    "all": ("全部", "All"),
    "open_cases": ("全部未结案件", "All open cases"),
    "apply": ("应用", "Apply"),
    "reset": ("重置", "Reset"),
    "shown": ("显示案件", "Cases shown"),
    "zoom_in": ("放大查看单个案件", "Zoom in to see single cases"),
    "loading": ("加载中…", "Loading…"),
    "load_failed": ("加载失败", "Loading failed"),
    # popups
    "case_no": ("案件编号", "Case no."),
    "reported_at": ("上报时间", "Reported"),
    "due_at": ("处置时限", "Due"),
    "route_rule": ("分派规则", "Routing rule"),
    "distance": ("距离", "Distance"),
    "record": ("案件记录", "Case record"),
    "case_map": ("案件地图", "Case map"),
    "post": ("城市管理岗", "Post"),
    "contact": ("联系人", "Contact"),
    "phone": ("电话", "Phone"),
    "address": ("地址", "Address"),
    "hours": ("服务时间", "Hours"),
    "rule_inside": ("位于社区内", "inside"),
    "rule_on_boundary": ("位于边界上", "on the boundary"),
    "rule_nearest": ("就近分派", "nearest"),
    "rule_outside": ("辖区外", "outside"),
    "rule_unlocated": ("无位置", "unlocated"),
    # hotspots
    "hot99": ("热点 99%", "Hot spot 99%"),
    "hot95": ("热点 95%", "Hot spot 95%"),
    "hot90": ("热点 90%", "Hot spot 90%"),
    "cold90": ("冷点 90%", "Cold spot 90%"),
    "cold95": ("冷点 95%", "Cold spot 95%"),
    "cold99": ("冷点 99%", "Cold spot 99%"),
    "poi_school": ("学校", "Schools"),
    "poi_hospital": ("医院", "Hospitals"),
    "poi_market": ("集贸市场", "Markets"),
    "poi_park_plaza": ("公园广场", "Parks and plazas"),
    "rings": ("距离圈", "Distance rings"),
    "ranking": ("重点场所投诉排名", "Places ranked by complaints"),
    "rank": ("排名", "Rank"),
    "name": ("名称", "Name"),
    "kind": ("类型", "Kind"),
    "within": ("范围内", "within"),
    "rate_ratio": ("相对全市密度", "Rate vs city"),
    "in_hotspot": ("位于热点", "In hotspot"),
    "top_category": ("主要类别", "Top category"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "csv": ("导出 CSV", "Export CSV"),
    "cases_count": ("案件数", "Cases"),
    "cell": ("网格", "Cell"),
    "z_score": ("Gi* z 值", "Gi* z-score"),
    "parameters": ("参数", "Parameters"),
    "period": ("时段", "Period"),
    "hour_window": ("时间段", "Time of day"),
    "replica_data": ("数据来自只读副本, 最多滞后 {lag:.0f} 秒",
                     "data from the read replica, at most {lag:.0f} s behind"),
    "cell_size": ("网格大小", "Cell size"),
    "total_cases": ("案件总数", "Cases in total"),
    "fdr_note": ("Getis-Ord Gi*, 999 次置换, FDR 校正", "Getis-Ord Gi*, 999 permutations, FDR-corrected"),
    "legend": ("图例", "Legend"),
    "hour": ("时", "h"),
}


def check_lang(lang: str | None) -> str:
    """``zh`` (default) or ``en``; ``InvalidInput`` for anything else."""
    lang = (lang or "zh").lower()
    if lang not in LANGS:
        raise InvalidInput(f"lang must be zh or en, not {lang!r}", field="lang")
    return lang


def strings(lang: str) -> dict[str, str]:
    """All texts in ``lang``."""
    k = LANGS.index(check_lang(lang))
    return {key: pair[k] for key, pair in _T.items()}


def category_name(row: dict, lang: str) -> str:
    """A category's display name from a row with ``name_zh``/``name_en``."""
    name = row.get("name_en" if lang == "en" else "name_zh") or row.get("name_zh") or ""
    return name or str(row.get("code", ""))
