"""Presence over real sockets, with the daemon's timers on an injected clock."""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock

from tests.integration.integration_support import ChatTestCase
from tests.support import wait_until


class PresenceTests(ChatTestCase):
    """A member leaves when its last connection has been gone for the presence timeout."""

    daemon_arguments = ("--presence-timeout", "10")

    def setUp(self):
        self.clock = Clock()
        return super().setUp()

    @inlineCallbacks
    def who(self, browser):
        status, body = yield browser.get("/who")
        self.assertEqual(status, 200)
        return json.loads(body)["members"]

    @inlineCallbacks
    def test_closing_the_window_leaves_and_frees_the_nickname(self):
        ann, ben, carl = (yield self.browser()), (yield self.browser()), (yield self.browser())
        ann_stream, _ = yield self.connect(ann, "ann", "sse")
        ben_stream, _ = yield self.connect(ben, "ben", "xhrstream")
        yield ann.post("/join", user="ann")
        yield ben.post("/join", user="ben")
        self.clock.advance(1)  # the presence window: "ben joined" goes out
        yield ann_stream.wait_for_events(2)
        self.assertEqual((yield self.who(carl)), ["ann", "ben"])

        ben_stream.disconnect()
        yield ben_stream.closed.addTimeout(5, reactor)
        yield self.until_offline("ben, 0, /cherrychat")
        self.clock.advance(9.9)
        self.assertEqual((yield self.who(carl)), ["ann", "ben"])
        self.assertEqual((yield carl.post("/join", user="ben")), (409, "nickname ben is taken\n"))
        self.clock.advance(0.2)
        yield ann_stream.wait_for_events(3)
        self.assertEqual(ann_stream.payloads[-1], "ben left")
        self.assertEqual((yield self.who(carl)), ["ann"])
        self.assertEqual((yield carl.post("/join", user="ben")), (200, "joined\n"))

    @inlineCallbacks
    def test_reloading_inside_the_timeout_is_no_leave_and_no_join(self):
        ann, ben = (yield self.browser()), (yield self.browser())
        ann_stream, _ = yield self.connect(ann, "ann", "websocket")
        ben_stream, _ = yield self.connect(ben, "ben", "longpoll")
        yield ann.post("/join", user="ann")
        yield ben.post("/join", user="ben")
        self.clock.advance(1)  # the presence window: "ben joined" goes out
        yield ann_stream.wait_for_events(2)
        yield ben_stream.wait_for_events(1)

        ben_stream.disconnect()
        yield ben_stream.closed.addTimeout(5, reactor)
        yield self.until_offline("ben, 0, /cherrychat")
        self.clock.advance(5)
        reloaded, _ = yield self.connect(ben, "ben", "longpoll", last_event_id=ben_stream.last_event_id)
        yield self.until_listening("ben, 0, /cherrychat")
        self.assertEqual((yield ben.post("/join", user="ben")), (200, "already joined\n"))
        self.clock.advance(30)
        yield ann.post("/msg", user="ann", msg="still here?")
        yield ann_stream.wait_for_events(3)
        yield reloaded.wait_for_events(1)
        self.assertEqual(ann_stream.payloads, ["ann joined", "ben joined", "<b>ann</b> still here?"])
        self.assertEqual(reloaded.payloads, ["<b>ann</b> still here?"])
        self.assertEqual((yield self.who(ann)), ["ann", "ben"])

    def until_offline(self, key: str):
        """Wait, in bounded steps, until the daemon has noticed the connection is gone."""
        return wait_until(lambda: not self.service.hub.listener_count(key), f"{key!r} to be gone")
