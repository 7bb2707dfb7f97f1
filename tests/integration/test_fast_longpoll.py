"""Long polls on the fast path, through the real daemon on loopback sockets.

Each poller is one keep-alive TCP connection that polls again at once with the last id it
saw, as the page's orbited.js does; a member sends a burst of messages while they poll.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from tests.integration.integration_support import ChatTestCase, wait_until

POLLERS = 12
MESSAGES = 30


class KeepAlivePoller(Protocol):
    """Polls ``/cherrychat`` over one connection, each poll after the last one's answer."""

    def __init__(self, user: str, cookie: bytes, last_event_id: int):
        self.user = user
        self.cookie = cookie
        self.last = last_event_id
        self.buffer = b""
        self.messages: list[dict[str, Any]] = []
        self.answers: list[tuple[int, dict[bytes, bytes]]] = []
        self.closed: Deferred = Deferred()
        self.stopping = False

    def connectionMade(self) -> None:
        self.poll()

    def poll(self) -> None:
        assert self.transport is not None
        target = f"/cherrychat?user={self.user}&session=0&transport=longpoll&last_event_id={self.last}"
        self.transport.write(b"GET " + target.encode("ascii") + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Cookie: " + self.cookie + b"\r\n\r\n")

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (line.partition(b":") for line in lines[1:])}
            length = int(headers.get(b"content-length", b"-1"))
            if length < 0 or len(rest) < length:
                return  # the fast path answers with a length; wait for the whole body
            body, self.buffer = rest[:length], rest[length:]
            self.answers.append((int(lines[0].split(b" ")[1]), headers))
            for message in json.loads(body):
                self.messages.append(message)
                if "id" in message:
                    self.last = max(self.last, message["id"])
            if not self.stopping:
                self.poll()

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(None)


class FastLongPollTests(ChatTestCase):
    daemon_arguments = ("--presence-timeout", "30")

    @inlineCallbacks
    def test_keep_alive_pollers_get_every_message_once_in_order(self):
        ann = yield self.browser()
        yield ann.get("/join", user="ann")
        pollers = []
        for n in range(POLLERS):
            browser = yield self.browser()
            self.assertEqual((yield browser.get("/join", user=f"p{n}")), (200, "joined\n"))
            pollers.append(KeepAlivePoller(f"p{n}", browser.cookie_header(), 0))
        polls = self.service.site.requestFactory.fast_polls
        connections = []
        for poller in pollers:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", int(self.base.rsplit(":", 1)[1]))
            connections.append((yield connectProtocol(endpoint, poller)))
        try:
            # Everyone is held once the join notices are read.
            yield wait_until(lambda: self.service.comet.counts["longpoll"] == POLLERS, "every poll held", 10)
            served_before = polls.served
            for n in range(MESSAGES):
                status = yield ann.post("/msg", user="ann", msg=f"m{n}")
                self.assertEqual(status, (200, "sent\n"))
            want = [f"<b>ann</b> m{n}" for n in range(MESSAGES)]

            def done() -> bool:
                return all([m["data"] for m in p.messages if m.get("data", "").startswith("<b>")] == want
                           for p in pollers)

            yield wait_until(done, "every message at every poller", 15)
        finally:
            for poller in pollers:
                poller.stopping = True
                if poller.transport is not None:
                    poller.transport.loseConnection()
            for poller in pollers:
                yield poller.closed
        for poller in pollers:
            ids = [m["id"] for m in poller.messages if m["type"] == "event"]
            self.assertEqual(ids, sorted(set(ids)), poller.user)  # in order, none twice
            self.assertTrue(all(status == 200 for status, _ in poller.answers))
        # The polls after the first were the fast path's (a poll with an id and a cookie).
        self.assertGreaterEqual(polls.served - served_before, MESSAGES)
        self.assertEqual(polls.passed, 0)
        yield wait_until(lambda: not self.service.comet.connections, "every poll over", 5)
        self.assertEqual(self.service.comet.admission.sessions, {})
