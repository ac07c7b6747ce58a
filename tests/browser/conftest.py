"""What a user sees in a real browser: Debian's Chromium driven by Playwright.

Playwright's own browser download does not work everywhere, so these tests drive the
Chromium of the OS packages (``/usr/bin/chromium``, or ``$EDGEKIT_CHROMIUM``) with a new,
empty profile (``make test`` installs it when it may). Every request that leaves the
loopback interface is refused and recorded. Without the playwright package or Chromium
the tests skip, naming what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


class Browser:
    """Pages in one Chromium profile; `outside` lists refused non-loopback requests."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.outside: list[str] = []
        context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("file", "data", "blob") or parts.hostname in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.errors = []  # uncaught page errors, for the assertion messages
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        return page


@pytest.fixture(scope="module")
def browser(chromium_context: Any) -> Browser:
    """Chromium at 1280x900 with a fresh profile, or a skip naming what is missing."""
    return Browser(chromium_context)


@pytest.fixture
def screenshot_on_failure(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Any]]:
    """Append the pages to the yielded list; a failing test leaves a screenshot of each."""
    pages: list[Any] = []
    yield pages
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    for i, page in enumerate(pages):
        path = tmp_path / f"failure-{i}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # the page may be gone; say so next to the failure
            report.sections.append(("screenshot", f"no screenshot of page {i}: {exc}"))
        else:
            report.sections.append(("screenshot", f"page {i} at the failure: {path}"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, for `screenshot_on_failure`."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
