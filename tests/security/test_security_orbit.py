"""Bad input on a running ``--orbit-listen``, over real sockets: each gets a ``Failure`` or
its connection closed, nothing is published, and the daemon goes on serving."""

from __future__ import annotations

import json
import socket

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from cherrychat.pyorbited.simple import Client
from tests.integration.integration_support import DaemonTestCase

KEY = "ann, 0, /cherrychat"


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send ``data``, then read until the daemon closes or goes quiet; ``(answer, closed)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        connection.settimeout(1.0)
        answer = b""
        for _ in range(1000):
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                return answer, False
            if not chunk:
                return answer, True
            answer += chunk
        return answer, False


def event(recipients: list[str], payload: str = "x", request_id: int = 1) -> bytes:
    body = json.dumps(payload).encode()
    head = [b"Orbit 1.0", b"Event", b"id: %d" % request_id, *(b"recipient: " + r.encode() for r in recipients), b"length: %d" % len(body)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class OrbitBadInputTests(DaemonTestCase):
    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.service, _ = yield self.start_daemon("--orbit-listen", "tcp:0")
        self.port = (yield self.service.listeners[-1].when_listening()).getHost().port

    def published(self) -> int:
        return self.service.hub.published

    @inlineCallbacks
    def test_bad_input_fails_publishes_nothing_and_harms_nothing(self):
        cases = {
            "garbage": (b"\x00\xff GET / HTTP/1.1\r\n\r\n", True),
            "huge length": (b"Orbit 1.0\r\nEvent\r\nid: 1\r\nlength: 999999999999\r\n\r\n", True),
            "endless line": (b"Orbit 1.0\r\n" + b"A" * 100_000, True),
            "a thousand bad keys": (event([f"bad{n}" for n in range(1000)]), False),
            "not JSON": (b"Orbit 1.0\r\nEvent\r\nid: 1\r\nrecipient: %s\r\nlength: 3\r\n\r\nabc" % KEY.encode(), False),
        }
        for name, (data, closes) in cases.items():
            answer, closed = yield deferToThread(exchange, self.port, data)
            self.assertTrue(answer.startswith(b"Failure\r\nid: "), f"{name}: {answer[:80]!r}")
            self.assertIn(b"\r\nmsg: ", answer, name)
            self.assertTrue(answer.endswith(b"\r\n\r\n"), name)
            self.assertEqual(closed, closes, name)
        self.assertEqual(self.published(), 0)
        # Half a request, then the client goes away: nothing is published either.
        yield deferToThread(exchange, self.port, event([KEY])[:-2])
        self.assertEqual(self.published(), 0)
        # And the daemon still publishes for a good client.
        client = Client("127.0.0.1", self.port, timeout=10)
        self.addCleanup(client.disconnect)
        reply = yield deferToThread(client.event, [KEY], "still here")
        self.assertTrue(reply.startswith("Success"))
        self.assertEqual(self.published(), 1)
