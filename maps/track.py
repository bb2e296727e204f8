"""The citizen's tracking page (``/track``): a form for the case number (or the hotline
ticket) and the last four digits of the phone, and the public account of one case
(``cases.track.track_view``, the only thing it shows). Server-rendered with Jinja2 from
``templates/track.html``; its styles are inline, so the page needs no other request and
works offline. Chinese first, English with ``lang=en``; laid out for a 390 px phone first.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cases.calendar import CITY_TZ
from maps.i18n import LANGS

if TYPE_CHECKING:
    from jinja2 import Environment

_T: dict[str, tuple[str, str]] = {
    "title": ("案件查询", "Track your case"),
    "intro": ("输入案件编号(或12345热线工单号)和您反映问题时留下的手机号后4位。",
              "Enter the case number (or the 12345 hotline ticket) and the last 4 digits of "
              "the phone number you gave."),
    "number": ("案件编号或工单号", "Case number or ticket"),
    "digits": ("手机号后4位", "Last 4 digits of your phone"),
    "submit": ("查询", "Look up"),
    "not_found": ("没有找到与该编号和手机号后4位相符的案件,请核对后重试。",
                  "No case matches that number and those digits. Please check them and "
                  "try again."),
    "bad_digits": ("请输入手机号的后4位数字。", "Please enter the last 4 digits of your phone."),
    "throttled": ("查询次数过多,请 {minutes} 分钟后再试。",
                  "Too many tries. Please try again in {minutes} minutes."),
    "status": ("办理状态", "Status"),
    "category": ("问题类别", "Problem"),
    "community": ("所在社区", "Community"),
    "received": ("反映时间", "Reported"),
    "due": ("办理时限", "Due"),
    "steps": ("办理过程", "Steps"),
    "reply": ("答复内容", "Reply"),
    "post": ("负责的城市管理岗", "Community post in charge"),
    "name": ("名称", "Name"),
    "phone": ("电话", "Phone"),
    "address": ("地址", "Address"),
    "hours": ("服务时间", "Hours"),
    "description": ("您反映的问题", "What you reported"),
    "not_public": ("这类问题不在任何公开渠道显示,只有您本人可以凭案件编号和手机号在此查询。",
                   "Cases of this kind are shown nowhere in public: only you can look this one "
                   "up here, with its number and your phone."),
    "again": ("查询其他案件", "Look up another case"),
    "other_lang": ("English", "中文"),
    "privacy": ("本页只显示办理进度,不显示任何个人信息。",
                "This page shows the progress only, never anyone's personal details."),
}


def _when(value: datetime | None) -> str:
    return value.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M") if value else ""


@functools.cache
def _env() -> Environment:
    """The page's Jinja2 environment, made by the first page of the process: Jinja2 stays
    off the serving workers' heap until a page is asked for (web/render.py says why)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    return env


def strings(lang: str) -> dict[str, str]:
    """The page's text in ``lang`` (zh or en)."""
    i = LANGS.index(lang)
    return {k: v[i] for k, v in _T.items()}


def render_track(lang: str, *, case: dict | None = None, message: str | None = None,
                 number: str = "", minutes: int | None = None) -> str:
    """The page: the form (with ``message`` if any: a key of the strings), or one case."""
    t = strings(lang)
    text = t[message].format(minutes=minutes) if message else None
    return _env().get_template("track.html").render(
        t=t, lang=lang, other=("en" if lang == "zh" else "zh"), case=case, message=text,
        number=number)
