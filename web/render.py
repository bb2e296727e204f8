"""Rendering the workbench pages: one Jinja2 environment, autoescaped, with the filters the
templates share (local times, working time left). Only rendering: data comes in from the
route handlers, which get it from ``cases/`` and ``geo/``.

Jinja2 is imported by the first page (:func:`_env`), not with this module: every serving
worker imports it through the page routes, and what a worker's imports leave on its heap is
walked by each full garbage collection, during which the worker answers no request
(bench/RESULTS.md, issue 20; tests/test_serving_imports.py). Intake renders no page.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from markupsafe import Markup

from cases.calendar import CITY_TZ, WorkCalendar
from cases.vocabulary import CHANNEL_LABELS, STATE_LABELS
from web import forms, i18n

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = "/static/vendor"



def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in the city's time zone ("" for None)."""
    return "" if value is None else value.astimezone(CITY_TZ).strftime(fmt)


def tojson_script(value: object) -> Markup:
    """JSON safe inside a <script> element (no closing tags)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@functools.cache
def _env() -> Environment:
    """The pages' one Jinja2 environment, made by the first page of the process."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    # auto_reload off: each template is compiled once per process and not checked against
    # its file at every use (a page's includes are looked up per row); a changed template is
    # seen after a restart.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters["local"] = local_time
    env.filters["tojson_script"] = tojson_script
    return env


def working_left(calendar: WorkCalendar, due: datetime | None, now: datetime,
                 t: dict[str, str]) -> dict | None:
    """How much working time is left before ``due`` (negative: overdue by), in words, with
    the tone of the row: ``overdue`` (red), ``soon`` (amber: under 4 working hours) or ``ok``.
    The working time is the calendar's (:meth:`WorkCalendar.working_seconds_between`)."""
    if due is None:
        return None
    seconds = calendar.working_seconds_between(now, due)
    minutes = int(abs(seconds) // 60)
    hours, mins = divmod(minutes, 60)
    day_hours = max(1, int(sum((_minutes(b) - _minutes(a)) for a, b in calendar.work_periods) // 60))
    if hours >= 2 * day_hours:
        words = t["days_hours"].format(d=hours // day_hours, h=hours % day_hours)
    else:
        words = t["hours_minutes"].format(h=hours, m=mins)
    overdue = due < now
    tone = "overdue" if overdue else ("soon" if seconds <= 4 * 3600 else "ok")
    text = t["overdue_by" if overdue else "left_working"].format(t=words)
    return {"seconds": seconds, "text": text, "short": ("-" if overdue else "") + words, "tone": tone}


def _minutes(t) -> int:  # noqa: ANN001 - datetime.time
    return t.hour * 60 + t.minute


def page_url(path: str, lang: str, **params) -> str:
    """``path`` with query parameters (None and "" left out) and ``lang=en`` when English."""
    items = [(k, v) for k, v in params.items() if v not in (None, "", [])]
    flat = [(k, x) for k, v in items for x in (v if isinstance(v, list | tuple) else [v])]
    if lang == "en":
        flat.append(("lang", "en"))
    return path + ("?" + urlencode(flat) if flat else "")


def render(template: str, lang: str, root: str = "", **context) -> str:
    """Render ``template`` with the language's words and the shared helpers. ``root``: the
    proxy's path prefix, put before every link, form and asset of the page."""
    t = i18n.strings(lang)
    return _env().get_template(template).render(
        lang=lang, t=t, assets=root + ASSETS, forms=forms, root=root,
        url=lambda path, **params: root + page_url(path, lang, **params),
        state=lambda s: i18n.pick(STATE_LABELS, s, lang),
        channel=lambda c: i18n.pick(CHANNEL_LABELS, c, lang),
        role=lambda r: t.get(f"role_{r}", r),
        why=lambda item: i18n.address_why(item, lang),
        **context)
