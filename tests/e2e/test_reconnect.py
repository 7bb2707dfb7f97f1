"""The page comes back by itself: after a daemon restart, and after a cut connection."""

from __future__ import annotations

import os
import shutil
import tempfile

from tests.e2e.base import BrowserTestCase, localhost
from tests.e2e.support import RECONNECT_WAIT_MS, CuttableProxy, Daemon, free_port


class ReconnectChecks:
    transport = ""

    def test_daemon_restart(self) -> None:
        """Stop the daemon, start it again on the same port with the same database."""
        workdir = tempfile.mkdtemp(prefix="cherrychat-e2e-")
        self.addCleanup(shutil.rmtree, workdir, True)
        options = {"port": free_port(), "database": os.path.join(workdir, "chat.sqlite3")}
        daemon = Daemon(**options).start()
        self.addCleanup(daemon.stop)

        ann = self.open_page(localhost(daemon.url), self.transport)
        ben = self.open_page(daemon.url, self.transport)
        ann.join("ann")
        ben.join("ben")
        ben.say("before the restart")
        before = ["ann joined", "ben joined", "ben before the restart"]
        ann.wait_lines(before)

        daemon.stop()
        status = ann.wait_status("reconnecting")
        self.assertIn("Reconnecting", status)
        ben.wait_status("reconnecting")

        daemon.start()
        ann.wait_joined(timeout=RECONNECT_WAIT_MS)
        ben.wait_joined(timeout=RECONNECT_WAIT_MS)
        ann.say("after the restart")
        # Members stay members across the restart (the database keeps them): nobody is
        # announced again, and each page shows every line once, in order.
        for page in (ann, ben):
            lines = self.wait_last_line(page, "ann after the restart")
            self.assertEqual(lines, [*before, "ann after the restart"])
        self.assertPageClean(ann, ben)

    def wait_last_line(self, page, last: str) -> list[str]:
        page.page.wait_for_function(
            "last => { const e = document.querySelectorAll('#box .event .line');"
            " return e.length > 0 && e[e.length - 1].textContent === last; }",
            arg=last, timeout=RECONNECT_WAIT_MS)
        return page.lines()

    def test_connection_cut(self) -> None:
        """The network drops the page's connections; it shows so, and resumes without loss.

        Some cuts give the page no signal at all (a streaming iframe just stays
        "loading"): the heartbeat is what reveals them, so it is short here.
        """
        daemon = self.start_daemon(extra=["--heartbeat", "1"])
        proxy = CuttableProxy(daemon.port)
        self.addCleanup(proxy.close)

        ann = self.open_page(f"http://127.0.0.1:{proxy.port}", self.transport)
        ben = self.open_page(localhost(daemon.url), self.transport)
        ann.join("ann")
        ben.join("ben")
        ann.say("before the cut")
        expected = ["ann joined", "ben joined", "ann before the cut"]
        ben.wait_lines(expected)
        ann.wait_lines(expected)

        if self.transport == "iframe":
            self.wait_iframe_heartbeat(ann)
        proxy.refusing.set()
        proxy.cut()
        status = ann.wait_status("reconnecting")
        self.assertIn("Reconnecting", status)
        ben.say("while ann is away")
        expected.append("ben while ann is away")
        ben.wait_lines(expected)

        proxy.refusing.clear()
        ann.wait_joined(timeout=RECONNECT_WAIT_MS)
        ann.wait_lines(expected, timeout=RECONNECT_WAIT_MS)
        ben.say("welcome back")
        ann.say("thanks")
        expected += ["ben welcome back", "ann thanks"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        self.assertPageClean(ann, ben)


    def wait_iframe_heartbeat(self, page) -> None:
        """Wait until the page's iframe stream carried a heartbeat after its last event.

        A cut iframe stream gives no sign: the page learns from the heartbeats how long a
        silence means a dead stream, so it must have seen them before the cut.
        """
        frames = [f for f in page.page.frames if "/cherrychat?" in f.url and not f.is_detached()]
        self.assertEqual(len(frames), 1)
        frames[0].wait_for_function(
            "() => { const s = document.scripts; return s.length > 2"
            " && s[s.length - 1].text.includes('heartbeat')"
            " && s[s.length - 2].text.includes('heartbeat'); }")


class HistoryLostTests(BrowserTestCase):
    def test_reset_reloads_history(self) -> None:
        """A daemon restarted without its history sends `reset`: the page shows its history."""
        port = free_port()
        daemon = Daemon(port=port).start()
        self.addCleanup(daemon.stop)
        ann = self.open_page(daemon.url)
        ann.join("ann")
        ann.say("soon forgotten")
        ann.wait_lines(["ann joined", "ann soon forgotten"])

        daemon.stop()
        ann.wait_status("reconnecting")
        daemon.start()   # :memory: again: nothing of before is left
        ann.wait_joined(timeout=RECONNECT_WAIT_MS)
        ann.wait_lines(["ann joined"], timeout=RECONNECT_WAIT_MS)
        ann.say("fresh start")
        ann.wait_lines(["ann joined", "ann fresh start"])
        self.assertPageClean(ann)


class WebSocketReconnectTests(ReconnectChecks, BrowserTestCase):
    transport = "websocket"


class SseReconnectTests(ReconnectChecks, BrowserTestCase):
    transport = "sse"


class XhrStreamReconnectTests(ReconnectChecks, BrowserTestCase):
    transport = "xhrstream"


class IframeReconnectTests(ReconnectChecks, BrowserTestCase):
    transport = "iframe"


class LongPollReconnectTests(ReconnectChecks, BrowserTestCase):
    transport = "longpoll"
