"""Unit tests of the streaming comet transports (iframe, xhrstream, sse) and of Comet.

Requests are ``DummyRequest``s with two honest additions: a push producer is recorded
rather than pulled in a loop (``DummyRequest.registerProducer`` only knows pull producers),
and the request has a ``channel`` whose ``transport`` records ``abortConnection`` and the
bytes a stream writes to it directly (it does, once the headers are out), in the order of
the request's own writes.
"""

from __future__ import annotations

import json
import re

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from cherrychat.comet import Comet, CometSettings, iframe, sse, xhrstream
from cherrychat.comet.core import HTTPStream
from cherrychat.errors import Unavailable
from cherrychat.hub import Hub
from tests.unit.unit_support import NullListener, publish

KEY = "ann, 0, /cherrychat"
OTHER = "ben, 0, /cherrychat"
HOSTILE = "</script><script>alert(1)</script> & <img src=x onerror=alert(1)> \u2028 \u2029 \"q\" 'a'\n"


class FakeSocket:
    """The TCP transport under an HTTP channel: records writes and aborts."""

    def __init__(self, written: list[bytes]) -> None:
        self.aborted = 0
        self.written = written

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abortConnection(self) -> None:
        self.aborted += 1


class FakeChannel:
    def __init__(self, written: list[bytes]) -> None:
        self.transport = FakeSocket(written)


class StreamRequest(DummyRequest):
    """A DummyRequest that a push producer can stream to."""

    def __init__(self) -> None:
        super().__init__([b""])
        self.channel = FakeChannel(self.written)
        self.producer = None
        self.streaming = None

    def registerProducer(self, producer, streaming):
        assert self.producer is None, "a producer is registered already"
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self):
        self.producer = None

    def body(self) -> bytes:
        return b"".join(self.written)

    def header(self, name: bytes) -> list[bytes]:
        return self.responseHeaders.getRawHeaders(name, [])

    def client_goes_away(self) -> None:
        self.processingFailed(Failure(ConnectionLost("client went away")))


def parse_iframe(body: bytes) -> list[tuple[None, dict]]:
    return [(None, json.loads(m)) for m in re.findall(rb"<script>m\((.*?)\)</script>\n", body)]


def parse_xhrstream(body: bytes) -> list[tuple[None, dict]]:
    body = body[len(xhrstream.FRAMING.prelude):]
    return [(None, json.loads(line)) for line in body.split(b"\n") if line.strip()]


def parse_sse(body: bytes) -> list[tuple[int | None, dict]]:
    messages = []
    for block in body.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if line)
        if b"data" in fields:
            event_id = int(fields[b"id"]) if b"id" in fields else None
            messages.append((event_id, json.loads(fields[b"data"])))
    return messages


class StreamTestsMixin:
    """Tests every streaming framing must pass; subclasses name the framing."""

    framing = None
    parse = None
    content_type = b""

    def setUp(self):
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.comet = Comet(self.hub, self.clock, CometSettings(heartbeat=25.0))

    def open_stream(self, key=KEY, last_event_id=None, comet=None):
        comet = comet or self.comet
        request = StreamRequest()
        stream = HTTPStream(comet, self.framing, request, key)
        stream.start(last_event_id)
        return request, stream

    def messages(self, request):
        return [message for _, message in type(self).parse(request.body())]

    def types(self, request):
        return [message["type"] for message in self.messages(request)]

    # -- headers and framing --------------------------------------------------------

    def test_headers(self):
        request, _ = self.open_stream()
        self.assertEqual(request.header(b"content-type"), [self.content_type])
        self.assertEqual(request.header(b"cache-control"), [b"no-cache, no-store"])
        self.assertEqual(request.header(b"x-accel-buffering"), [b"no"])
        self.assertEqual(request.finished, 0)
        self.assertTrue(request.streaming)
        self.assertIsNotNone(request.producer)

    def test_open_then_backlog_then_live_events(self):
        self.hub.subscribe(OTHER, NullListener())
        self.hub.event([OTHER], "before, not ann's")
        self.hub.event([KEY], "queued for ann")
        request, _ = self.open_stream()
        self.hub.event([KEY, OTHER], "live")
        self.hub.event([OTHER], "ben only")
        self.assertEqual(
            self.messages(request),
            [
                {"type": "open", "id": 1, "epoch": self.hub.epoch},
                {"type": "event", "id": 2, "time": 0.0, "data": "queued for ann"},
                {"type": "event", "id": 3, "time": 0.0, "data": "live"},
            ],
        )

    def test_resume_after_last_event_id(self):
        self.hub.subscribe(KEY, NullListener())
        for n in range(5):
            self.hub.event([KEY], f"e{n + 1}")
        request, _ = self.open_stream(last_event_id=3)
        self.assertEqual(
            [(m["type"], m["id"]) for m in self.messages(request)],
            [("open", 3), ("event", 4), ("event", 5)],
        )

    def test_gap_sends_reset(self):
        hub = Hub(self.clock, max_events=2)
        comet = Comet(hub, self.clock)
        hub.subscribe(KEY, NullListener())
        for n in range(5):
            hub.event([KEY], f"e{n + 1}")
        request, _ = self.open_stream(last_event_id=1, comet=comet)
        self.assertEqual(self.messages(request), [{"type": "open", "id": 5, "epoch": hub.epoch}, {"type": "reset", "id": 5}])

    def test_messages_are_html_safe(self):
        request, _ = self.open_stream()
        self.hub.event([KEY], HOSTILE)
        body = request.body()
        stripped = body[len(self.framing.prelude):]
        for message_bytes in self.raw_messages(stripped):
            for raw in [b"<", b">", b"&", "\u2028".encode(), "\u2029".encode()]:
                self.assertNotIn(raw, message_bytes)
            message_bytes.decode("ascii")
        self.assertEqual(self.messages(request)[-1]["data"], HOSTILE)

    def raw_messages(self, stripped: bytes) -> list[bytes]:
        raise NotImplementedError

    # -- encoding once --------------------------------------------------------------

    def test_an_event_is_framed_once_however_many_streams_get_it(self):
        calls = []
        original = self.framing.frame

        def counting(message, event_id=None):
            calls.append(event_id)
            return original(message, event_id)

        self.patch(self.framing, "frame", counting)
        requests = [self.open_stream(key)[0] for key in (KEY, OTHER, KEY)]
        before = [len(r.written) for r in requests]
        calls.clear()
        (event,) = publish(self.hub, [KEY, OTHER], "to everyone")
        self.assertEqual(calls, [event.id])
        written = [r.written[n] for r, n in zip(requests, before)]
        self.assertIs(written[0], event.frames[self.framing.name])
        self.assertIs(written[1], written[0])
        self.assertIs(written[2], written[0])
        self.assertEqual(self.comet.delivered, 3)

    # -- heartbeats -----------------------------------------------------------------

    def test_heartbeat_on_an_idle_stream_none_on_a_busy_one(self):
        idle, _ = self.open_stream(KEY)
        busy, _ = self.open_stream(OTHER)
        self.comet.tick()  # both streams wrote their opening in this period
        self.assertNotIn("heartbeat", self.types(idle))
        self.hub.event([OTHER], "keeps ben busy")
        self.comet.tick()
        self.assertEqual(self.types(idle).count("heartbeat"), 1)
        self.assertNotIn("heartbeat", self.types(busy))
        self.comet.tick()
        self.assertEqual(self.types(idle).count("heartbeat"), 2)
        self.assertEqual(self.types(busy).count("heartbeat"), 1)

    def test_comet_start_ticks_on_the_clock(self):
        request, _ = self.open_stream()
        self.comet.start()
        self.clock.advance(25)
        self.assertNotIn("heartbeat", self.types(request))
        self.clock.advance(25)
        self.assertEqual(self.types(request).count("heartbeat"), 1)
        self.comet.stop()
        self.assertFalse(self.comet._ticker.running)

    # -- life cycle -----------------------------------------------------------------

    def test_a_connection_is_forgotten_when_its_client_goes_away(self):
        request, stream = self.open_stream()
        self.assertEqual(self.hub.listener_count(KEY), 1)
        self.assertEqual(self.comet.connections, {stream})
        self.assertEqual(self.comet.counts[self.framing.name], 1)
        request.client_goes_away()
        self.assertEqual(self.hub.listener_count(KEY), 0)
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.comet.counts[self.framing.name], 0)
        written = len(request.written)
        self.hub.event([KEY], "after")
        self.comet.tick()
        self.assertEqual(len(request.written), written)

    def test_on_close_runs_once_however_the_stream_ends(self):
        for end in ("client", "abort", "restart"):
            closed = []
            request = StreamRequest()
            stream = HTTPStream(self.comet, self.framing, request, KEY, on_close=lambda: closed.append(1))
            stream.start(None)
            self.assertEqual(closed, [])
            if end == "client":
                request.client_goes_away()
            elif end == "abort":
                stream.abort()
            else:
                stream.close_for_restart()
            stream.abort()
            self.assertEqual(closed, [1], end)

    def test_stop_sends_reconnect_and_ends_every_stream(self):
        first, _ = self.open_stream(KEY)
        second, _ = self.open_stream(OTHER)
        self.comet.stop()
        for request in (first, second):
            self.assertEqual(self.messages(request)[-1], {"type": "reconnect"})
            self.assertEqual(request.finished, 1)
            self.assertIsNone(request.producer)
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)

    # -- backpressure ---------------------------------------------------------------

    def test_paused_stream_queues_and_resumes_in_order(self):
        request, stream = self.open_stream()
        written = len(request.written)
        stream.pauseProducing()
        for n in range(3):
            self.hub.event([KEY], f"queued {n}")
        self.assertEqual(len(request.written), written)
        stream.resumeProducing()
        self.assertEqual(
            [m.get("data") for m in self.messages(request)[1:]], ["queued 0", "queued 1", "queued 2"]
        )
        self.hub.event([KEY], "after")
        self.assertEqual(self.messages(request)[-1]["data"], "after")
        self.assertEqual(request.channel.transport.aborted, 0)

    def test_a_client_past_max_queued_bytes_is_dropped(self):
        comet = Comet(self.hub, self.clock, CometSettings(max_queued_bytes=1000))
        request, stream = self.open_stream(comet=comet)
        stream.pauseProducing()
        written = len(request.written)
        self.hub.event([KEY], "x" * 400)
        self.hub.event([KEY], "x" * 400)
        self.assertEqual(request.channel.transport.aborted, 0)
        self.hub.event([KEY], "x" * 400)
        self.assertEqual(request.channel.transport.aborted, 1)
        self.assertEqual(comet.slow_clients_dropped, 1)
        self.assertEqual(comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)
        stream.resumeProducing()  # nothing of the dropped queue is written
        self.assertEqual(len(request.written), written)

    def test_a_stream_paused_for_two_ticks_is_dropped(self):
        request, stream = self.open_stream()
        stream.pauseProducing()
        self.comet.tick()
        self.assertEqual(request.channel.transport.aborted, 0)
        self.assertEqual(self.comet.connections, {stream})
        self.comet.tick()
        self.assertEqual(request.channel.transport.aborted, 1)
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)

    def test_a_stream_that_resumes_between_ticks_is_kept(self):
        request, stream = self.open_stream()
        stream.pauseProducing()
        self.comet.tick()
        stream.resumeProducing()
        stream.pauseProducing()
        self.comet.tick()
        self.assertEqual(request.channel.transport.aborted, 0)
        self.assertEqual(self.comet.connections, {stream})

    def test_stop_aborts_a_paused_stream(self):
        request, stream = self.open_stream()
        stream.pauseProducing()
        self.comet.stop()
        self.assertEqual(request.channel.transport.aborted, 1)
        self.assertEqual(self.comet.connections, set())

    def test_admit_refuses_at_max_connections(self):
        comet = Comet(self.hub, self.clock, CometSettings(max_connections=2))
        comet.admit()
        self.open_stream(KEY, comet=comet)
        comet.admit()
        self.open_stream(OTHER, comet=comet)
        with self.assertRaises(Unavailable) as caught:
            comet.admit()
        self.assertEqual(caught.exception.code, 503)


class RecyclingMixin:
    """iframe and xhrstream end their response after recycle_bytes."""

    def test_recycle_after_recycle_bytes_with_reconnect(self):
        comet = Comet(self.hub, self.clock, CometSettings(recycle_bytes=len(self.framing.prelude) + 1000))
        request, stream = self.open_stream(comet=comet)
        n = 0
        while not request.finished:
            n += 1
            self.hub.event([KEY], "y" * 100)
            self.assertLess(n, 20)
        self.assertGreaterEqual(len(request.body()), len(self.framing.prelude) + 1000)
        self.assertEqual(self.messages(request)[-1], {"type": "reconnect"})
        self.assertEqual([m["id"] for m in self.messages(request)[1:-1]], list(range(1, n + 1)))
        self.assertEqual(request.finished, 1)
        self.assertEqual(comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)
        self.assertIsNone(request.producer)
        self.hub.event([KEY], "after")  # queued for the next connection, not written here
        self.assertNotIn(b"after", request.body())


class IframeTests(StreamTestsMixin, RecyclingMixin, SynchronousTestCase):
    framing = iframe.FRAMING
    parse = parse_iframe
    content_type = b"text/html; charset=utf-8"

    def raw_messages(self, stripped):
        return re.findall(rb"<script>m\((.*?)\)</script>", stripped)

    def test_document_padding_and_scripts(self):
        request, _ = self.open_stream()
        self.hub.event([KEY], "hi")
        body = request.body()
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"))
        head, first_script, _ = body.partition(b"<script>m(")
        self.assertTrue(first_script)
        self.assertIn(b"function m(x)", head)
        self.assertIn(b"var o=parent.Orbited;if(o._iframeMessage){o._iframeMessage(frameElement,x)}", head)
        self.assertGreaterEqual(head.count(b" "), 1024)
        self.assertGreaterEqual(len(head) - head.index(b"<body>"), 1024)
        # Everything after the prelude is one <script>m(...)</script> per message.
        rest = body[len(self.framing.prelude):]
        self.assertEqual(
            re.sub(rb"<script>m\(\{[^<>]*\}\)</script>\n", b"", rest), b""
        )
        self.assertEqual(len(self.messages(request)), 2)

    def test_own_content_security_policy(self):
        request, _ = self.open_stream()
        self.assertEqual(
            request.header(b"content-security-policy"),
            [b"default-src 'none'; script-src 'unsafe-inline'"],
        )


class XHRStreamTests(StreamTestsMixin, RecyclingMixin, SynchronousTestCase):
    framing = xhrstream.FRAMING
    parse = parse_xhrstream
    content_type = b"text/plain; charset=utf-8"

    def raw_messages(self, stripped):
        return [line for line in stripped.split(b"\n") if line.strip()]

    def test_prelude_then_one_json_line_per_message(self):
        request, _ = self.open_stream()
        self.hub.event([KEY], "line one\nline two")
        body = request.body()
        self.assertGreaterEqual(len(body.split(b"\n", 1)[0]), 2048)
        self.assertEqual(body[:2049], b" " * 2048 + b"\n")
        lines = body[2049:].split(b"\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual([json.loads(line)["type"] for line in lines[:-1]], ["open", "event"])
        self.assertEqual(json.loads(lines[1])["data"], "line one\nline two")


class SSETests(StreamTestsMixin, SynchronousTestCase):
    framing = sse.FRAMING
    parse = parse_sse
    content_type = b"text/event-stream; charset=utf-8"

    def raw_messages(self, stripped):
        return re.findall(rb"^data: (.*)$", stripped, re.M)

    def test_retry_then_ids_on_events_only(self):
        request, _ = self.open_stream()
        self.hub.event([KEY], "hi")
        self.comet.tick()
        self.comet.tick()
        body = request.body()
        self.assertTrue(body.startswith(b"retry: 2000\n\n"))
        parsed = parse_sse(body)
        self.assertEqual(
            [(event_id, message["type"]) for event_id, message in parsed],
            [(None, "open"), (1, "event"), (None, "heartbeat")],
        )
        self.assertIn(b"id: 1\ndata: {", body)
        # Every field line is "name: value"; blocks end with a blank line.
        self.assertTrue(body.endswith(b"\n\n"))
        for line in body.split(b"\n"):
            self.assertTrue(line == b"" or re.match(rb"^(retry|id|data): ", line), line)

    def test_sse_does_not_recycle(self):
        comet = Comet(self.hub, self.clock, CometSettings(recycle_bytes=100))
        request, _ = self.open_stream(comet=comet)
        for _ in range(5):
            self.hub.event([KEY], "z" * 100)
        self.assertEqual(request.finished, 0)
        self.assertNotIn({"type": "reconnect"}, self.messages(request))
