"""The base class of the browser tests: one Chromium per test class, a daemon per test."""

from __future__ import annotations

import atexit
from typing import Any

from twisted.trial.unittest import TestCase

from tests.e2e.support import BrowserSession, ChatPage, Daemon, require_browser

_shared: list[BrowserSession] = []


def shared_browser() -> BrowserSession:
    """One Chromium for the whole run: starting it is the slowest step of a test."""
    if not _shared:
        _shared.append(BrowserSession())
        atexit.register(_close_shared)
    return _shared[0]


def _close_shared() -> None:
    while _shared:
        _shared.pop().close()


class BrowserTestCase(TestCase):
    """Every test gets fresh browser contexts (fresh cookies and storage) and its own daemon."""

    # Trial's own bound on one test, in seconds.
    timeout = 120
    browser: BrowserSession

    def setUp(self) -> None:
        require_browser()
        self.browser = shared_browser()
        self.addCleanup(self.browser.close_contexts)

    def start_daemon(self, **options: Any) -> Daemon:
        daemon = Daemon(**options).start()
        self.addCleanup(daemon.stop)
        return daemon

    def open_page(self, base: str, transport: str | None = None, **context_options: Any) -> ChatPage:
        """The chat page in a new context: another person, with their own cookies."""
        return ChatPage(self.browser.context(**context_options), base, transport)

    def assertPageClean(self, *pages: ChatPage) -> None:
        """No dialog opened and no script error happened on any page."""
        for page in pages:
            self.assertEqual(page.dialogs, [], f"dialogs on {page.url}")
            self.assertEqual(page.errors, [], f"script errors on {page.url}")


def localhost(url: str) -> str:
    """The same daemon under the name localhost: the tutorial's second window."""
    return url.replace("://127.0.0.1:", "://localhost:")
