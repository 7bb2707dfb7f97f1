"""Orbited 0.3.2's own ``orbited.js`` (from its PyPI sdist, fetched by the test setup) on a
page of the daemon's origin receives events over ``xhr_stream`` and ``iframe``.

Orbited 0.3 served the page and the comet URL from one origin (its proxy role), and its
client builds a relative URL; so the test opens a URL of the daemon and answers it, and
the old script, from Playwright instead of the network. The comet requests go to the real
daemon, and the events are published by pyorbited's interface over ``--orbit-listen``.
"""

from __future__ import annotations

import re
import time
import urllib.request

from cherrychat.pyorbited.simple import Client

from tests.e2e.base import BrowserTestCase, localhost
from tests.e2e.support import WAIT_MS, free_port
from tests.legacy_clients import orbited_js, require

PAGE = """<!DOCTYPE html>
<html><head><script src="/legacy/orbited-0.3.2.js"></script>
<script>var got = []; function chat_event(data) { got.push(data); }</script>
</head><body></body></html>"""

PAYLOADS = ['<b>ann</b> "quotes" & \\ back', "caf\u00e9 \u2603 \u2028 line", "third"]


def wait_for_connection(metrics_port: int, transport: str, timeout: float = WAIT_MS / 1000) -> None:
    """Wait, bounded in time, until the daemon's /metrics counts a connection of ``transport``."""
    line = re.compile(rb'^cherrychat_connections\{transport="' + re.escape(transport.encode()) + rb'"\} (\d+)', re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:  # noqa: S310
            found = line.search(answer.read())
        if found and float(found.group(1)) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {transport} connection reached the daemon")


class OrbitedClientTests(BrowserTestCase):
    def receive_over(self, transport: str, host=lambda url: url) -> None:
        script = require(orbited_js).read_bytes()
        orbit_port, metrics_port = free_port(), free_port()
        daemon = self.start_daemon(extra=["--orbit-listen", f"tcp:{orbit_port}",
                                          "--metrics-listen", f"tcp:{metrics_port}:interface=127.0.0.1"])
        base = host(daemon.url)
        page = self.browser.context().new_page()
        errors: list[str] = []
        dialogs: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.route(f"{base}/legacy/page.html", lambda route: route.fulfill(body=PAGE, content_type="text/html"))
        page.route(f"{base}/legacy/orbited-0.3.2.js", lambda route: route.fulfill(body=script, content_type="text/javascript"))
        page.goto(f"{base}/legacy/page.html")
        page.evaluate(f"() => Orbited.connect(chat_event, 'ann', '/cherrychat', '0', '{transport}')")
        # An event to a nickname nobody holds yet is read by nobody (as with Orbited, which
        # dropped it): publish once the page's connection holds "ann".
        wait_for_connection(metrics_port, transport)
        publisher = Client("127.0.0.1", orbit_port, timeout=10)
        self.addCleanup(publisher.disconnect)
        for payload in PAYLOADS:
            publisher.event(["ann, 0, /cherrychat"], payload)
        try:
            page.wait_for_function("n => got.length >= n", arg=len(PAYLOADS), timeout=WAIT_MS)
        except Exception:
            raise AssertionError(f"over {transport} the page got {page.evaluate('got')}, errors {errors}") from None
        self.assertEqual(page.evaluate("got"), PAYLOADS)
        publisher.event(["ann, 0, /cherrychat"], "live")
        page.wait_for_function("() => got.length === 4 && got[3] === 'live'", timeout=WAIT_MS)
        self.assertEqual(errors, [])
        self.assertEqual(dialogs, [])

    def test_xhr_stream(self) -> None:
        self.receive_over("xhr_stream")

    def test_iframe(self) -> None:
        self.receive_over("iframe", localhost)
