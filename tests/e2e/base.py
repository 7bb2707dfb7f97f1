"""The base class of the browser tests: one Chromium per test class, a daemon per test."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from .support import BrowserSession, ChatPage, Daemon, require_browser


class BrowserTestCase(TestCase):
    """Starts Chromium once per class; every test gets fresh contexts and its own daemon."""

    # Trial's own bound on one test, in seconds.
    timeout = 120
    browser: BrowserSession

    @classmethod
    def setUpClass(cls) -> None:
        require_browser()
        cls.browser = BrowserSession()

    @classmethod
    def tearDownClass(cls) -> None:
        browser = getattr(cls, "browser", None)
        if browser is not None:
            browser.close()

    def setUp(self) -> None:
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
