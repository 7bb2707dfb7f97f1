"""Orbited 0.3's transport names on the comet URL, byte for byte: ``xhr_stream``,
``server_sent_events``, and ``iframe``/``htmlfile`` for Orbited 0.3.2's own client."""

from __future__ import annotations

import json

from twisted.internet.defer import inlineCallbacks

from tests.integration.clients import StreamingClient
from tests.integration.integration_support import ChatTestCase, wait_until

KEY = "ann, 0, /cherrychat"
PAYLOAD = '<b>ann</b> says "hi"\u2028ok'


class RawClient(StreamingClient):
    """Keeps the raw bytes; every arrival counts as a message for the waits."""

    def _parse(self):
        return [{"type": "data"}]

    @property
    def text(self) -> str:
        return self._buffer.decode("utf-8")


class OrbitedTransportTests(ChatTestCase):
    @inlineCallbacks
    def stream(self, transport: str) -> RawClient:
        # One browser (one session) per test: ann's nickname is its.
        if not hasattr(self, "ann"):
            self.ann = yield self.browser()
        browser = self.ann
        client = RawClient(browser, "ann", transport)
        self.clients.append(client)
        status = yield client.connect()
        self.assertEqual(status, 200)
        yield self.until_listening(KEY)
        return client

    @inlineCallbacks
    def publish_and_wait(self, client: RawClient, marker: bytes, count: int = 1):
        for _ in range(count):
            self.service.hub.event([KEY], PAYLOAD)
        yield wait_until(lambda: client._buffer.count(marker) >= count, "the events")

    @inlineCallbacks
    def test_xhr_stream(self):
        client = yield self.stream("xhr_stream")
        self.assertEqual(client.headers.getRawHeaders("content-type"), ["application/x-orbited-event-stream"])
        yield self.publish_and_wait(client, b'ok"\r\n|O|\r\n', 2)
        text = client.text
        self.assertTrue(text.startswith("." * 256 + "\r\n\r\n"))
        # What Orbited 0.3.2's client does: from the first blank line, cut at boundaries, eval.
        parts = text[text.index("\r\n\r\n") :].split("\r\n|O|\r\n")
        payloads = [json.loads(part) for part in parts if part.strip()]
        self.assertEqual(payloads, [PAYLOAD, PAYLOAD])
        self.assertNotIn("\u2028", text)  # eval of a raw U+2028 breaks old engines
        self.assertNotIn("<", text)
        # A heartbeat is a blank frame, never Orbited's "ping" (which that client evals).
        client._buffer = b""
        self.service.comet.tick()  # the first tick after traffic only notes it
        self.service.comet.tick()
        yield wait_until(lambda: client._buffer, "the heartbeat")
        self.assertEqual(client._buffer, b" \r\n|O|\r\n")

    @inlineCallbacks
    def test_server_sent_events(self):
        client = yield self.stream("server_sent_events")
        self.assertEqual(client.headers.getRawHeaders("content-type"), ["text/event-stream; charset=utf-8"])
        yield self.publish_and_wait(client, b"Event: orbited\n")
        events = [block for block in client.text.split("\n\n") if block.startswith("Event: orbited")]
        self.assertEqual(len(events), 1)
        name, data = events[0].split("\n")
        self.assertEqual(json.loads(data.removeprefix("data: ")), PAYLOAD)
        client._buffer = b""
        self.service.comet.tick()  # the first tick after traffic only notes it
        self.service.comet.tick()
        yield wait_until(lambda: client._buffer, "the heartbeat")
        self.assertEqual(client._buffer, b"Event: ping\ndata: \\o/\n\n")

    @inlineCallbacks
    def test_iframe_and_htmlfile_serve_both_clients(self):
        for transport in ("iframe", "htmlfile"):
            client = yield self.stream(transport)
            yield self.publish_and_wait(client, b"<script>m(")
            head = client.text.split("</script>")[0]
            self.assertIn("o._iframeMessage(frameElement,x)", head)  # CherryChat's orbited.js
            self.assertIn("o.event_cb(x.data)", head)  # Orbited 0.3.2's
            client.disconnect()
            yield wait_until(lambda: not self.service.hub.listener_count(KEY), "the stream to close")

    @inlineCallbacks
    def test_resumes_from_the_queue_after_the_client_aborts(self):
        # Orbited 0.3.2's xhr_stream client aborts and reconnects every 30 s, without an id.
        client = yield self.stream("xhr_stream")
        client.disconnect()
        yield wait_until(lambda: not self.service.hub.listener_count(KEY), "the stream to close")
        self.service.hub.event([KEY], "while away")
        again = yield self.stream("xhr_stream")
        yield wait_until(lambda: b'"while away"\r\n|O|\r\n' in again._buffer, "the queued event")
