"""A reader that stops reading is disconnected, never buffered without bound, and resumes."""

from __future__ import annotations

import socket

from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import ChatTestCase, settle

MESSAGES = 3000
TEXT = "x" * 4000


class SlowReaderTests(ChatTestCase):
    """With a 64 KiB queue bound, a stalled reader is dropped and resumes without loss."""

    # One session sends thousands of messages here: lift the rate limit for it. That
    # sender has no comet connection, so it leaves one presence timeout after joining; on
    # a loaded machine the loop takes longer than the default 10 s (then /msg answers 403).
    daemon_arguments = (
        "--max-queued-bytes", "65536", "--retain-events", "4000", "--rate-burst", "100000", "--address-rate-burst", "100000",
        "--presence-timeout", "600",
    )

    @inlineCallbacks
    def test_stalled_reader_is_dropped_then_resumes_everything(self):
        ann, ben = (yield self.browser()), (yield self.browser())
        yield ann.post("/join", user="ann")
        yield ben.post("/join", user="ben")
        host, port = self.base.split("//")[1].split(":")
        # A raw socket with a tiny receive buffer that reads nothing: a stalled browser.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        self.addCleanup(stalled.close)
        stalled.sendall(
            b"GET /cherrychat?user=ben&session=0&transport=sse&last_event_id=2 HTTP/1.1\r\n"
            b"Host: " + host.encode() + b"\r\nCookie: " + ben.cookie_header() + b"\r\n\r\n"
        )
        yield self.until_listening("ben, 0, /cherrychat")
        comet = self.service.comet
        for n in range(MESSAGES):
            status, _ = yield ann.post("/msg", user="ann", msg=f"{n} {TEXT}")
            self.assertEqual(status, 200)
            if comet.slow_clients_dropped:
                break
        self.assertEqual(comet.slow_clients_dropped, 1)
        self.assertEqual(self.service.hub.listener_count("ben, 0, /cherrychat"), 0)
        sent = n + 1
        for n in range(sent, sent + 3):
            yield ann.post("/msg", user="ann", msg=f"{n} {TEXT}")

        resumed, _ = yield self.connect(ben, "ben", "sse", last_event_id=2)
        yield resumed.wait_for_events(sent + 3)
        yield settle(ann, "ann", [resumed])  # an extra event would have arrived by now
        self.assertEqual(resumed.payloads, [f"<b>ann</b> {n} {TEXT}" for n in range(sent + 3)])
