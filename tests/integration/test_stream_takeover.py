"""A held stream keeps only its socket: twisted.web's channel and request are let go.

Streams (sse, xhrstream, iframe) become their socket's protocol once the headers are out,
and a WebSocket's upgraded channel is replaced by the WebSocket protocol itself. These tests
show it over real loopback sockets: what the daemon holds per connection, that it still
delivers, notices the client leaving and uncounts it, and that the response tells clients
not to reuse the connection.
"""

from __future__ import annotations

import gc

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from cherrychat.comet.core import HTTPStream
from tests.integration.integration_support import ChatTestCase
from tests.support import wait_until

STREAMS = ("sse", "xhrstream", "iframe")


def live(kind: type) -> int:
    """How many objects of ``kind`` are alive after a full collection."""
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, kind))


class _Raw(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class TakeOverTests(ChatTestCase):
    def held(self, transport: str) -> list:
        return [c for c in self.service.comet.connections if c.transport_name == transport]

    @inlineCallbacks
    def test_streams_hold_no_request_or_channel(self):
        ann = yield self.browser()
        yield ann.get("/healthz")
        requests_before, channels_before = live(Request), live(HTTPChannel)
        for n, transport in enumerate(STREAMS * 3):
            client, status = yield self.connect(ann, f"u{n}", transport)
            self.assertEqual(status, 200)
            yield client.wait_opened()
        for transport in STREAMS:
            for stream in self.held(transport):
                self.assertIsInstance(stream, HTTPStream)
                self.assertIsNone(stream.request)
                self.assertIs(stream._socket.protocol, stream)
        # Nine streams open, and not one more request or channel alive than before.
        self.assertLessEqual(live(Request), requests_before)
        self.assertLessEqual(live(HTTPChannel), channels_before)

    @inlineCallbacks
    def test_websocket_holds_no_request_or_channel(self):
        ann = yield self.browser()
        requests_before, channels_before = live(Request), live(HTTPChannel)
        for n in range(3):
            client, status = yield self.connect(ann, f"w{n}", "websocket")
            self.assertEqual(status, 101)
            yield client.wait_opened()
        for stream in self.held("websocket"):
            self.assertNotIsInstance(stream._ws.transport.protocol, HTTPChannel)
        self.assertLessEqual(live(Request), requests_before)
        self.assertLessEqual(live(HTTPChannel), channels_before)

    @inlineCallbacks
    def test_taken_over_stream_delivers_and_is_forgotten_when_the_client_leaves(self):
        ann, ben = (yield self.browser()), (yield self.browser())
        yield ben.post("/join", user="ben")
        for transport in STREAMS:
            client, _ = yield self.connect(ann, "ann", transport)
            yield client.wait_opened()
            yield ann.post("/join", user="ann")
            yield ben.post("/msg", user="ben", msg=f"over {transport}")
            expected = f"<b>ben</b> over {transport}"
            yield client.wait_until(lambda c=client, e=expected: e in c.payloads)
            self.assertEqual(client.payloads.count(expected), 1)
            client.disconnect()
            yield client.finished()
            yield wait_until(lambda t=transport: not self.held(t), f"the {transport} stream to be let go")
        counts = self.service.comet.admission
        yield wait_until(lambda: not counts.sessions and not counts.addresses, "the connection counts to be released")

    @inlineCallbacks
    def test_bytes_a_client_sends_on_a_stream_are_ignored(self):
        ben = yield self.browser()
        yield ben.post("/join", user="ben")
        port = int(self.base.rsplit(":", 1)[1])
        raw = yield ClientCreator(reactor, _Raw).connectTCP("127.0.0.1", port)
        self.addCleanup(raw.transport.abortConnection)
        request = (b"GET /cherrychat?user=ben&session=0&transport=sse HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Cookie: " + ben.cookie_header() + b"\r\n\r\n")
        raw.transport.write(request)
        yield wait_until(lambda: b'"type":"open"' in raw.received, "the open message")
        # The stream ends by closing: no client may send another request on it.
        self.assertIn(b"\r\nconnection: close\r\n", raw.received.lower())
        # A pipelined request gets no answer on a stream, and does not disturb it.
        raw.transport.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3)
        yield ben.post("/msg", user="ben", msg="still here")
        yield wait_until(lambda: b"still here" in raw.received, "the message on the stream")
        self.assertEqual(raw.received.count(b"HTTP/1.1"), 1)
        self.assertEqual(len(self.held("sse")), 1)
