"""Frames gathered per reactor turn keep their order with what the request writes itself."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import ChatTestCase


class RecycleOrderTests(ChatTestCase):
    """A stream that is recycled ends with `reconnect` after every event it carried."""

    @inlineCallbacks
    def test_events_then_reconnect_in_order_when_the_stream_recycles(self):
        self.service.comet.settings.recycle_bytes = 8192
        ann = yield self.browser()
        stream, _ = yield self.connect(ann, "ann", "xhrstream")
        yield stream.wait_opened()
        yield ann.post("/join", user="ann")
        for n in range(12):
            yield ann.post("/msg", user="ann", msg=f"{n} " + "x" * 1000)
        yield stream.closed
        types = [m["type"] for m in stream.messages]
        self.assertEqual(types[0], "open")
        self.assertEqual(types[-1], "reconnect")
        ids = [m["id"] for m in stream.events]
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertGreater(len(ids), 3)
