"""The workbench in a real browser, shared by the page tests that drive it: screen sizes
(the dispatcher's desk, the officer's phone), a signed-in person watching for console
errors and outside requests, screenshots into docs/workbench/, the phone-layout checks,
and a case submitted through the intake API as the hotline gateway sends it.

The served app these run against is the ``site`` fixture of ``tests.helpers.fixtures``.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlparse

from tests.helpers.workbench_helpers import PASSWORD, case_body, point_in

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "workbench"
DESK = {"viewport": {"width": 1920, "height": 1080}, "locale": "zh-CN"}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True, "locale": "zh-CN"}


def submit(site, code: str, n: int) -> int:
    """A case through the intake API, as the hotline gateway sends it."""
    lon, lat = point_in(site["engine"], code)
    req = urllib.request.Request(f"{site['base']}/api/v1/cases", method="POST",
                                 data=json.dumps(case_body(lon, lat, n=n)).encode(),
                                 headers={"Authorization": f"Bearer {site['token']}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
        return json.loads(r.read())["id"]


class Person:
    """One signed-in browser context, watching for console errors and outside requests."""

    def __init__(self, browser, base: str, username: str, options: dict,
                 landing: str | None = None):
        """Signed in through the login form; with ``landing`` (a path and query), through
        ``/login?next=landing``, waiting until the page has landed there."""
        self.ctx = browser.new_context(**options)
        self.page = self.ctx.new_page()
        self.base = base
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.sign_in(username, landing=landing)

    def _request(self, r) -> None:  # noqa: ANN001
        u = urlparse(r.url)
        if u.scheme in ("http", "https") and u.hostname not in ("127.0.0.1", "localhost"):
            self.outside.append(r.url)

    def sign_in(self, username: str, password: str = PASSWORD, landing: str | None = None) -> None:
        self.page.goto(f"{self.base}/login" + (f"?next={quote(landing, safe='/')}" if landing else ""))
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        if landing:
            self.page.wait_for_url(re.compile(".*" + re.escape(landing) + "$"))

    def open(self, path: str):  # noqa: ANN201
        return self.page.goto(self.base + path)

    def act(self, action: str, **fields: str) -> None:
        """Fill the action's form on the case page and submit it."""
        form = self.page.locator(f"#form-{action}")
        if not form.is_visible():
            self.page.locator("details.more > summary").click()
        for name, value in fields.items():
            field = form.locator(f'[name="{name}"]')
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        with self.page.expect_navigation():
            form.locator("button[type=submit]").click()

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.outside, self.outside[:5]

    def close(self) -> None:
        self.ctx.close()


def shot(page, name: str, full: bool = False) -> None:  # noqa: ANN001
    """A screenshot of the page into docs/workbench/ (looked at before a page is called done)."""
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / name), full_page=full)


def no_sideways_scroll(page) -> None:  # noqa: ANN001
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"


def on_first_screen(page, selector: str) -> list[bool]:  # noqa: ANN001
    """For each element of ``selector``: whether all of it shows without scrolling."""
    return page.evaluate("""s => [...document.querySelectorAll(s)].map(e => {
        const r = e.getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; })""", selector)


def compact_phone_header(page) -> None:  # noqa: ANN001
    """The phone's header is one line (brand, search, menu); the menu opens who is signed
    in and the tools, every one a tap target of at least 40 px."""
    header = page.locator("header.top").bounding_box()
    assert header["height"] <= 64, f"the header is {header['height']} px high on a phone"
    assert page.locator(".search input[name=q]").is_visible()
    assert not page.locator(".tools").is_visible()
    page.locator("#top-menu").click()
    assert page.locator(".tools").is_visible() and page.locator(".who").is_visible()
    assert not small_taps(page), small_taps(page)
    no_sideways_scroll(page)
    page.locator("#top-menu").click()
    assert not page.locator(".tools").is_visible()


def small_taps(page) -> list[str]:  # noqa: ANN001
    """Visible buttons, links in lists and inputs shorter than 40 px."""
    return page.evaluate("""() => [...document.querySelectorAll(
        'button, .button, input:not([type=hidden]), select, textarea, .queues a, td.no a, .tools a')]
        .filter(e => e.offsetParent !== null)
        .filter(e => e.getBoundingClientRect().height < 40)
        .map(e => e.outerHTML.slice(0, 80))""")
