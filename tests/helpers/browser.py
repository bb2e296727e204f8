"""Debian's Chromium for the page tests, launched one way for all of them.

The ``browser`` fixture of ``tests/conftest.py`` (one Chromium per test module) comes from
:func:`chromium`; a test that needs a browser asks for that fixture instead of launching
its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that talks to the network on its own: the tests check that pages
# ask only the loopback server for anything.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator:
    """Debian's headless Chromium through Playwright, closed afterwards; the test is
    skipped when Playwright or the browser is not installed."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
