"""Two browsers chat over each transport, through the real daemon on loopback sockets."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import ChatTestCase, settle


def _transport_tests(transport: str) -> type:
    class TwoBrowsersChat(ChatTestCase):
        @inlineCallbacks
        def test_one_sends_the_other_receives_exactly_once(self):
            ann, ben = (yield self.browser()), (yield self.browser())
            ann_stream, status = yield self.connect(ann, "ann", transport)
            self.assertEqual(status, 101 if transport == "websocket" else 200)
            ben_stream, _ = yield self.connect(ben, "ben", transport)
            yield ann_stream.wait_opened()
            yield ben_stream.wait_opened()
            self.assertEqual((yield ann.get("/join", user="ann", session="0")), (200, "joined\n"))
            self.assertEqual((yield ben.get("/join", user="ben", session="0")), (200, "joined\n"))
            status = yield ann.get("/msg", ie_nocache=2, user="ann", msg="hello <ben> & all", session="0")
            self.assertEqual(status, (200, "sent\n"))
            yield ben_stream.wait_for_events(2)
            yield ann_stream.wait_for_events(3)
            # Wait until a duplicate would have arrived, before asserting there is none.
            yield settle(ann, "ann", [ann_stream, ben_stream])
            self.assertEqual(ben_stream.payloads, ["ben joined", "<b>ann</b> hello &lt;ben&gt; &amp; all"])
            self.assertEqual(
                ann_stream.payloads, ["ann joined", "ben joined", "<b>ann</b> hello &lt;ben&gt; &amp; all"]
            )
            ids = [event["id"] for event in ann_stream.events]
            self.assertEqual(ids, sorted(set(ids)))

        @inlineCallbacks
        def test_another_session_cannot_read_a_joined_nickname(self):
            ann, mallory = (yield self.browser()), (yield self.browser())
            yield ann.get("/join", user="ann")
            stream, status = yield self.connect(mallory, "ann", transport)
            self.assertEqual(status, 403)
            self.assertEqual(self.service.hub.listener_count("ann, 0, /cherrychat"), 0)

        @inlineCallbacks
        def test_resume_after_a_dropped_connection_loses_nothing(self):
            ann, ben = (yield self.browser()), (yield self.browser())
            yield ann.get("/join", user="ann")
            first, _ = yield self.connect(ben, "ben", transport)
            yield first.wait_opened()
            yield ben.get("/join", user="ben")
            yield first.wait_for_events(1)
            last_seen = first.events[-1]["id"]
            first.disconnect()
            yield first.closed
            for n in range(3):
                yield ann.post("/msg", user="ann", msg=f"while away {n}")
            second, _ = yield self.connect(ben, "ben", transport, last_event_id=last_seen)
            yield self.until_listening("ben, 0, /cherrychat")
            yield second.wait_for_events(3)
            yield ann.post("/msg", user="ann", msg="after")
            yield second.wait_for_events(4)
            self.assertEqual(
                second.payloads, [f"<b>ann</b> while away {n}" for n in range(3)] + ["<b>ann</b> after"]
            )

    TwoBrowsersChat.__name__ = TwoBrowsersChat.__qualname__ = f"{transport.title()}ChatTests"
    return TwoBrowsersChat


IframeChatTests = _transport_tests("iframe")
XhrstreamChatTests = _transport_tests("xhrstream")
LongpollChatTests = _transport_tests("longpoll")
SseChatTests = _transport_tests("sse")
WebsocketChatTests = _transport_tests("websocket")


class SSEResumeHeaderTests(ChatTestCase):
    """EventSource's own reconnect keeps its first URL; the header's id is the newer one."""

    @inlineCallbacks
    def test_last_event_id_header_wins_over_a_stale_url_id(self):
        ann = yield self.browser()
        yield ann.post("/join", user="ann")
        for n in range(3):
            yield ann.post("/msg", user="ann", msg=f"m{n}")
        stream, status = yield self.connect(ann, "ann", "sse", last_event_id=1, headers={"Last-Event-ID": "3"})
        self.assertEqual(status, 200)
        yield stream.wait_for_events(1)
        self.assertEqual([e["id"] for e in stream.events], [4])
