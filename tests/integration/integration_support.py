"""What the tests over real sockets share: waiting, and daemons with their browsers and clients.

- :class:`DaemonTestCase`: the daemons, browsers and comet clients a test opens, all
  closed when it ends.
- :class:`ChatTestCase`: one daemon per test, browsers that loaded the chat page, and
  comet connections opened the way the tutorial opens them.
- :func:`settle`: wait until nothing sent before now is still on its way to some clients.
- :func:`stop_process`: stop a subprocess (a daemon, Redis, nginx) by its pid.

The integration, security and Redis tests import this module as
``tests.integration.integration_support``.
"""

from __future__ import annotations

import subprocess
from typing import Any, Iterable

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import FailTest, TestCase

from tests.integration.clients import CLIENTS, Browser, CometClient
from tests.integration.daemon import start_daemon, stop_daemon
from tests.support import until_connections_closed, wait_until


#: What :func:`settle` sends; it never appears in what the clients are left with.
SETTLE_MARKER = "settle marker"


@inlineCallbacks
def settle(browser: Browser, user: str, clients: Iterable[CometClient], timeout: float = 10.0):
    """Wait until every event published before now, and any copy of one, has reached ``clients``.

    ``user`` (a member, through ``browser``) sends one more message. A connection gets
    its events in order, so once each client has that message, a duplicate or stray
    event sent before it would have arrived too: this is the condition a test waits for
    before asserting there is none. The message is then taken out of what the clients
    received, so the test's assertions see only the events before it. (It stays in the
    history: read ``/history`` before settling.)
    """
    status = yield browser.post("/msg", user=user, msg=SETTLE_MARKER)
    if status != (200, "sent\n"):
        raise FailTest(f"the settle marker was refused: {status}")
    payload = f"<b>{user}</b> {SETTLE_MARKER}"
    for client in clients:
        yield client.wait_until(lambda c=client: payload in c.payloads, timeout, "the settle marker")
        client.messages[:] = [m for m in client.messages if not (m.get("type") == "event" and m.get("data") == payload)]


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a subprocess by its pid: SIGTERM, then SIGKILL if it has not exited within
    ``timeout`` seconds. A process that has already exited is left alone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class DaemonTestCase(TestCase):
    """Daemons, browsers and comet clients of one test, all closed when it ends.

    Open them with :meth:`start_daemon`, :meth:`add_browser` and :meth:`add_client`. At
    tear-down the clients disconnect, the daemons still running stop, the clients that
    were accepted finish, and the browsers close their pooled connections.
    """

    timeout = 30  # seconds; trial fails a test that hangs longer

    def setUp(self):
        self.services: list = []
        self.browsers: list[Browser] = []
        self.clients: list[CometClient] = []

    @inlineCallbacks
    def start_daemon(self, *arguments: str, clock: Clock | None = None):
        """Start a daemon on a loopback port; fires with ``(service, base_url)``."""
        service, base = yield start_daemon(*arguments, clock=clock)
        self.services.append(service)
        return service, base

    def add_browser(self, base: str) -> Browser:
        """A new browser (with no cookie yet) talking to the daemon at ``base``."""
        browser = Browser(reactor, base)
        self.browsers.append(browser)
        return browser

    def add_client(self, browser: Browser, user: str, transport: str, **kwargs: Any) -> CometClient:
        """A comet client of ``transport`` for ``browser``, not connected yet."""
        client = CLIENTS[transport](browser, user, transport, **kwargs)
        self.clients.append(client)
        return client

    @inlineCallbacks
    def tearDown(self):
        for client in self.clients:
            client.disconnect()
        for service in self.services:
            if service.running:
                yield stop_daemon(service)
        for client in self.clients:
            if client.status in (101, 200):
                yield client.finished().addTimeout(5, reactor)
        for browser in self.browsers:
            yield browser.close()
        # Let aborted connections finish closing before trial checks for a dirty reactor.
        yield until_connections_closed()


class ChatTestCase(DaemonTestCase):
    """A daemon per test, started with ``daemon_arguments`` (its timers on ``clock``, if
    one is set before ``setUp``), and browsers that are closed at the end."""

    daemon_arguments: tuple[str, ...] = ()
    clock: Clock | None = None

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.service, self.base = yield self.start_daemon(*self.daemon_arguments, clock=self.clock)

    @inlineCallbacks
    def browser(self):
        """A browser that loaded the chat page, and so holds its session cookie."""
        browser = self.add_browser(self.base)
        status, _ = yield browser.get("/static/chat.html")
        self.assertEqual(status, 200)
        return browser

    def until_listening(self, key: str, timeout: float = 5.0):
        """Wait, in bounded steps, until the daemon holds a connection for ``key``."""
        return wait_until(lambda: self.service.hub.listener_count(key), f"a connection for {key!r}", timeout)

    @inlineCallbacks
    def connect(self, browser: Browser, user: str, transport: str, **kwargs):
        """Open a comet connection the way the tutorial does: before joining."""
        client = self.add_client(browser, user, transport)
        status = yield client.connect(**kwargs)
        return client, status
