"""Memory comes back when members leave: 10,000 sessions join the installed daemon from five
loopback addresses, never connect, and leave at the presence timeout, twice. Nothing of
them is kept (the Python heap after a storm is within a few hundred KiB of before it); what
the allocator keeps of the process's RSS is reused by the next storm, never added to."""

from __future__ import annotations

import http.client
import json
import threading
import time

from tests.integration.test_twistd import DaemonTestCase, Page

SESSIONS = 10_000
ADDRESSES = [f"127.0.0.{n}" for n in range(1, 6)]
#: the per-address bounds lifted: this test is about memory, not about the bounds
LIFTED = ("--address-sessions-per-minute", "1000000", "--address-joins-per-minute", "1000000",
          "--address-rate-limit", "1000000", "--address-rate-burst", "1000000", "--no-access-log",
          "--presence-timeout", "2", "--database", ":memory:")


def rss_kib(pid: int) -> int:
    """The process's resident set, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class SessionStormTests(DaemonTestCase):
    def join_all(self, port: int, source: str, names: range, refused: list[int]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
        for n in names:
            # No cookie: every join is a new browser session.
            connection.request("GET", f"/join?user=storm{n}")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                refused.append(response.status)
        connection.close()

    def storm(self, port: int, page: Page, first: int) -> None:
        """10,000 new sessions join, from five addresses; then wait until they all left."""
        refused: list[int] = []
        share = SESSIONS // len(ADDRESSES)
        threads = [
            threading.Thread(target=self.join_all,
                             args=(port, source, range(first + k * share, first + (k + 1) * share), refused))
            for k, source in enumerate(ADDRESSES)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertEqual(refused, [])
        self.assertGreater(len(json.loads(page.request("GET", "/who")[1])["members"]), 0)
        # Nobody connected: everyone leaves at the presence timeout.
        deadline = time.monotonic() + 60
        while json.loads(page.request("GET", "/who")[1])["members"] and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(json.loads(page.request("GET", "/who")[1]), {"members": []})

    def test_ten_thousand_sessions_come_and_go_and_memory_comes_back(self) -> None:
        port = self.start(*LIFTED)
        pid = self.daemon.process.pid
        page = Page(port)
        page.request("GET", "/static/chat.html")
        # Warm the daemon up (imports, caches, first allocations) before the baseline.
        refused: list[int] = []
        self.join_all(port, ADDRESSES[0], range(-200, 0), refused)
        deadline = time.monotonic() + 30
        while json.loads(page.request("GET", "/who")[1])["members"] and time.monotonic() < deadline:
            time.sleep(0.2)
        start = rss_kib(pid)
        self.storm(port, page, 0)
        first = rss_kib(pid)
        self.storm(port, page, SESSIONS)
        second = rss_kib(pid)
        figures = f"RSS idle {start} KiB, after one storm {first} KiB, after two {second} KiB"
        # Was +1 GiB, kept after everyone left (issue 14); now what the allocator keeps
        # (about a fifth of the idle daemon) is reused, not added to, by the next storm.
        self.assertLessEqual(first, start * 1.25, figures)
        self.assertLessEqual(second, first * 1.05, figures)
        # The storm's notices did not push the conversation out: history still answers.
        self.assertEqual(page.request("GET", "/history?limit=1")[0], 200)
