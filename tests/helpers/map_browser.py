"""The map pages in a real browser, shared by the map and evidence browser tests: a page
opened with a machine's token, watched for console errors and outside requests, waited on
until it has loaded its cases, and a screenshot into test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


class Watch:
    """Console errors, page errors and every requested URL of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.urls.append(r.url))

    def check(self) -> None:
        assert not self.errors, self.errors
        outside = [u for u in self.urls if urlparse(u).scheme in ("http", "https", "ws", "wss")
                   and urlparse(u).hostname not in ("127.0.0.1", "localhost")]
        assert not outside, outside[:5]
        assert any("/static/vendor/leaflet/leaflet.js" in u for u in self.urls)


def open_page(browser, url: str, token: str | None = None):
    """A new 1400 px browser context at ``url``: (context, page, its :class:`Watch`)."""
    # A machine's token as a header on every request (people sign in: test_workbench_browser).
    headers = {"Authorization": f"Bearer {token}"} if token else None
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN",
                              extra_http_headers=headers)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(url)
    return ctx, page, watch


def screenshot(page, name: str) -> Path:
    """A screenshot into test-artifacts/, checked not to be blank."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def wait_loaded(page, watch: Watch) -> None:
    """Wait until the map page has loaded its cases once; the failure names what went wrong."""
    try:
        page.wait_for_selector("body[data-cg-loads]", state="attached", timeout=15000)
    except Exception:
        status = page.locator("#cg-status").all_inner_texts()
        api = [u for u in watch.urls if "/maps/api/" in u]
        raise AssertionError(f"page never loaded its cases; console: {watch.errors[:5]}, status {status}, "
                             f"api calls {api[:3]}") from None
