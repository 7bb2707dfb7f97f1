"""Unit tests of the long-poll and WebSocket transports."""

from __future__ import annotations

import json
import struct

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest
from wsproto.frame_protocol import FrameProtocol, Opcode
from wsproto.utilities import LocalProtocolError

from cherrychat.comet import Comet, CometSettings, messages
from cherrychat.comet.longpoll import LongPoll, LongPollResource
from cherrychat.comet.websocket import WebSocketStream, text_frame
from cherrychat.hub import Hub
from tests.unit.unit_support import NullListener, publish

KEY = "ann, 0, /cherrychat"
OTHER = "ben, 0, /cherrychat"
HOSTILE = "</script><b>&amp;</b> & \u2028 <img src=x onerror=alert(1)>"


class TransportTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.comet = Comet(self.hub, self.clock, CometSettings(heartbeat=25.0))


# -- long-poll ---------------------------------------------------------------------------


class LongPollTests(TransportTestCase):
    def poll(self, key=KEY, last_event_id=None, comet=None):
        request = DummyRequest([b""])
        poll = LongPoll(comet or self.comet, request, key)
        poll.start(last_event_id)
        return request, poll

    def answer(self, request):
        self.assertEqual(request.finished, 1)
        self.assertEqual(len(request.written), 1)
        return json.loads(request.written[0])

    def test_headers(self):
        request, _ = self.poll()
        headers = request.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-cache, no-store"])
        self.assertEqual(headers.getRawHeaders(b"x-accel-buffering"), [b"no"])

    def test_without_last_event_id_answers_at_once_with_open(self):
        self.hub.event([OTHER], "not ann's")
        request, _ = self.poll()
        self.assertEqual(self.answer(request), [{"type": "open", "id": 1, "epoch": self.hub.epoch}])
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_without_last_event_id_answers_with_the_queue(self):
        self.hub.event([KEY], "queued 1")
        self.hub.event([OTHER], "ben's")
        self.hub.event([KEY], "queued 2")
        request, _ = self.poll()
        self.assertEqual(
            self.answer(request),
            [
                {"type": "open", "id": 0, "epoch": self.hub.epoch},
                {"type": "event", "id": 1, "time": 0.0, "data": "queued 1"},
                {"type": "event", "id": 3, "time": 0.0, "data": "queued 2"},
            ],
        )

    def test_with_last_event_id_is_held_until_an_event(self):
        request, poll = self.poll(last_event_id=0)
        self.assertEqual((request.written, request.finished), ([], 0))
        self.assertEqual(self.comet.connections, {poll})
        self.assertEqual(self.hub.listener_count(KEY), 1)
        self.hub.event([OTHER], "not for ann")
        self.assertEqual((request.written, request.finished), ([], 0))
        self.clock.advance(10)
        self.hub.event([KEY], HOSTILE)
        self.assertEqual(
            self.answer(request), [{"type": "event", "id": 2, "time": 10.0, "data": HOSTILE}]
        )
        for raw in [b"<", b">", b"&", "\u2028".encode()]:
            self.assertNotIn(raw, request.written[0])
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.comet.delivered, 1)

    def test_with_last_event_id_is_held_until_the_heartbeat_then_empty(self):
        request, _ = self.poll(last_event_id=0)
        self.clock.advance(24.9)
        self.assertEqual(request.finished, 0)
        self.clock.advance(0.1)
        self.assertEqual(self.answer(request), [])
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)
        self.hub.event([KEY], "later")  # waits for the next poll; nothing more is written
        self.assertEqual(len(request.written), 1)

    def test_with_last_event_id_answers_retained_events_at_once(self):
        self.hub.subscribe(KEY, NullListener())
        for n in range(4):
            self.hub.event([KEY], f"e{n + 1}")
        request, _ = self.poll(last_event_id=2)
        self.assertEqual([m["id"] for m in self.answer(request)], [3, 4])

    def test_events_between_polls_wait_for_the_next_poll(self):
        first, _ = self.poll(last_event_id=0)
        self.hub.event([KEY], "one")
        self.hub.event([KEY], "two")  # arrives while no poll is held
        self.assertEqual([m["data"] for m in self.answer(first)], ["one"])
        second, _ = self.poll(last_event_id=1)
        self.assertEqual([m["data"] for m in self.answer(second)], ["two"])

    def test_gap_answers_reset(self):
        hub = Hub(self.clock, max_events=2)
        comet = Comet(hub, self.clock)
        hub.subscribe(KEY, NullListener())
        for n in range(5):
            hub.event([KEY], f"e{n + 1}")
        request, _ = self.poll(last_event_id=1, comet=comet)
        self.assertEqual(self.answer(request), [{"type": "reset", "id": 5}])

    def test_two_polls_of_one_key_are_both_answered(self):
        first, _ = self.poll(last_event_id=0)
        second, _ = self.poll(last_event_id=0)
        self.hub.event([KEY], "for both")
        self.assertEqual([m["data"] for m in self.answer(first)], ["for both"])
        self.assertEqual([m["data"] for m in self.answer(second)], ["for both"])

    def test_a_held_poll_is_forgotten_when_its_client_goes_away(self):
        request, _ = self.poll(last_event_id=0)
        request.processingFailed(Failure(ConnectionLost()))
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.hub.event([KEY], "after")
        self.assertEqual(request.written, [])

    def test_stop_answers_reconnect(self):
        request, _ = self.poll(last_event_id=0)
        self.comet.stop()
        self.assertEqual(self.answer(request), [{"type": "reconnect"}])
        self.assertEqual(self.comet.connections, set())

    def test_an_event_is_encoded_once_for_every_poll(self):
        calls = []
        original = messages.encode

        def counting(message):
            calls.append(message["type"])
            return original(message)

        self.patch(messages, "encode", counting)
        first, _ = self.poll(KEY, last_event_id=0)
        second, _ = self.poll(OTHER, last_event_id=0)
        (event,) = publish(self.hub, [KEY, OTHER], "both")
        self.assertEqual(calls, ["event"])
        self.assertEqual(first.written, second.written)
        self.assertIn(event.frames["json"], first.written[0])

    def test_on_close_runs_once_when_the_poll_answers(self):
        closed = []
        request = DummyRequest([b""])
        poll = LongPoll(self.comet, request, KEY, on_close=lambda: closed.append(1))
        poll.start(0)
        self.assertEqual(closed, [])
        self.hub.event([KEY], "wakes the poll")
        poll.close_for_restart()
        self.assertEqual(closed, [1])

    def test_resource_renders_not_done_yet(self):
        request = DummyRequest([b""])
        result = LongPollResource(self.comet, KEY, None).render(request)
        self.assertIs(result, NOT_DONE_YET)
        self.assertEqual(json.loads(request.written[0]), [{"type": "open", "id": 0, "epoch": self.hub.epoch}])


# -- WebSocket ---------------------------------------------------------------------------


def rfc6455_header(length: int) -> bytes:
    """The header of an unmasked final text frame, written out from RFC 6455, 5.2."""
    if length <= 125:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return bytes([0x81, 126, length >> 8, length & 0xFF])
    return bytes([0x81, 127]) + length.to_bytes(8, "big")


class TextFrameTests(SynchronousTestCase):
    def test_lengths_at_the_encoding_boundaries(self):
        for length in [0, 1, 125, 126, 127, 65535, 65536, 70000]:
            payload = b"a" * length
            frame = text_frame(payload)
            self.assertEqual(frame, rfc6455_header(length) + payload, length)
            # And what an independent implementation (wsproto, server side) builds.
            self.assertEqual(frame, FrameProtocol(client=False, extensions=[]).send_data(payload.decode(), fin=True))

    def test_explicit_bytes(self):
        self.assertEqual(text_frame(b""), b"\x81\x00")
        self.assertEqual(text_frame(b"x" * 125)[:2], b"\x81\x7d")
        self.assertEqual(text_frame(b"x" * 126)[:4], b"\x81\x7e\x00\x7e")
        self.assertEqual(text_frame(b"x" * 65535)[:4], b"\x81\x7e\xff\xff")
        self.assertEqual(text_frame(b"x" * 65536)[:10], b"\x81\x7f" + struct.pack("!Q", 65536))


class FakeTCP:
    """The socket under an upgraded connection."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = 0
        self.producer = object()  # the HTTP channel, still registered after the upgrade

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abortConnection(self) -> None:
        self.aborted += 1

    def loseConnection(self) -> None:
        self.lost = getattr(self, "lost", 0) + 1

    def unregisterProducer(self) -> None:
        self.producer = None


class FakeWebSocketTransport:
    """What twisted.web.websocket hands a WebSocketProtocol, with its socket exposed."""

    def __init__(self) -> None:
        self.transport = FakeTCP()
        self.producer = None
        self.pings: list[bytes] = []
        self.closed_with: int | None = None

    def attachProducer(self, producer) -> None:
        self.producer = producer

    def detachProducer(self) -> None:
        self.producer = None

    def ping(self, payload: bytes = b"") -> None:
        self.pings.append(payload)

    def loseConnection(self, code: int = 1000) -> None:
        self.closed_with = code


def decode_frames(data: bytes) -> list[dict]:
    """Decode server frames as a browser would (wsproto, client side)."""
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(data)
    decoded = []
    for frame in client.received_frames():
        assert frame.opcode is Opcode.TEXT and frame.frame_finished and frame.message_finished
        decoded.append(json.loads(frame.payload))
    return decoded


class WebSocketStreamTests(TransportTestCase):
    def connect(self, key=KEY, last_event_id=None, comet=None):
        stream = WebSocketStream(comet or self.comet, key, last_event_id)
        ws = FakeWebSocketTransport()
        stream.negotiationStarted(ws)
        self.assertEqual(ws.transport.written, [])
        stream.negotiationFinished()
        return stream, ws

    def received(self, ws):
        return decode_frames(b"".join(ws.transport.written))

    def test_open_backlog_and_live_events_as_text_frames(self):
        self.hub.event([KEY], "queued")
        stream, ws = self.connect()
        self.hub.event([KEY], HOSTILE)
        self.assertEqual(
            self.received(ws),
            [
                {"type": "open", "id": 0, "epoch": self.hub.epoch},
                {"type": "event", "id": 1, "time": 0.0, "data": "queued"},
                {"type": "event", "id": 2, "time": 0.0, "data": HOSTILE},
            ],
        )
        raw = b"".join(ws.transport.written)
        for char in [b"<", b">", b"&", "\u2028".encode()]:
            self.assertNotIn(char, raw)
        self.assertEqual(self.comet.connections, {stream})
        self.assertIsNone(ws.transport.producer)
        self.assertIs(ws.producer, stream)

    def test_resume_and_gap(self):
        self.hub.subscribe(KEY, NullListener())
        for n in range(3):
            self.hub.event([KEY], f"e{n + 1}")
        _, ws = self.connect(last_event_id=1)
        self.assertEqual([(m["type"], m["id"]) for m in self.received(ws)], [("open", 1), ("event", 2), ("event", 3)])
        _, ws = self.connect(last_event_id=99)
        self.assertEqual(self.received(ws), [{"type": "open", "id": 3, "epoch": self.hub.epoch}, {"type": "reset", "id": 3}])

    def test_an_event_is_framed_once_for_every_connection(self):
        _, first = self.connect(KEY)
        _, second = self.connect(OTHER)
        (event,) = publish(self.hub, [KEY, OTHER], "both")
        self.assertIs(first.transport.written[-1], event.frames["websocket"])
        self.assertIs(second.transport.written[-1], event.frames["websocket"])

    def test_ping_each_tick_and_drop_a_client_that_never_pongs(self):
        stream, ws = self.connect()
        self.comet.tick()
        self.assertEqual(len(ws.pings), 1)
        stream.pongReceived(ws.pings[0])
        self.comet.tick()
        self.assertEqual(len(ws.pings), 2)
        self.assertEqual(ws.transport.aborted, 0)
        self.comet.tick()  # no pong for the second ping
        self.assertEqual(ws.transport.aborted, 1)
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)

    def test_backpressure_queues_then_resumes_in_order(self):
        stream, ws = self.connect()
        written = len(ws.transport.written)
        stream.pauseProducing()
        for n in range(3):
            self.hub.event([KEY], f"q{n}")
        self.assertEqual(len(ws.transport.written), written)
        stream.resumeProducing()
        self.assertEqual([m.get("data") for m in self.received(ws)[1:]], ["q0", "q1", "q2"])

    def test_a_client_past_max_queued_bytes_is_dropped(self):
        comet = Comet(self.hub, self.clock, CometSettings(max_queued_bytes=500))
        stream, ws = self.connect(comet=comet)
        stream.pauseProducing()
        self.hub.event([KEY], "x" * 200)
        self.hub.event([KEY], "x" * 200)
        self.assertEqual(ws.transport.aborted, 0)
        self.hub.event([KEY], "x" * 200)
        self.assertEqual(ws.transport.aborted, 1)
        self.assertEqual(comet.slow_clients_dropped, 1)
        self.assertEqual(comet.connections, set())
        self.assertEqual(self.hub.listener_count(KEY), 0)

    def test_connection_lost_forgets_the_connection(self):
        stream, ws = self.connect()
        stream.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.comet.connections, set())
        self.assertEqual(self.comet.counts["websocket"], 0)
        self.assertEqual(self.hub.listener_count(KEY), 0)
        written = len(ws.transport.written)
        self.hub.event([KEY], "after")
        self.assertEqual(len(ws.transport.written), written)

    def test_stop_sends_reconnect_and_closes_going_away(self):
        _, ws = self.connect()
        self.comet.stop()
        self.assertEqual(self.received(ws)[-1], {"type": "reconnect"})
        self.assertEqual(ws.closed_with, 1001)
        self.assertEqual(self.comet.connections, set())

    def test_closing_after_the_client_closed_first(self):
        # The client's close frame is in, its socket not yet gone: wsproto refuses a
        # second close frame, and the stream ends the socket instead of raising.
        stream, ws = self.connect()

        def closed_already(code: int = 1000) -> None:
            raise LocalProtocolError("Event CloseConnection cannot be sent in state ConnectionState.CLOSED.")

        ws.loseConnection = closed_already  # type: ignore[method-assign]
        stream.close_for_restart()
        self.assertEqual(ws.transport.lost, 1)
        self.assertEqual(self.comet.connections, set())

    def test_client_text_is_ignored(self):
        stream, ws = self.connect()
        written = list(ws.transport.written)
        stream.textMessageReceived("hello")
        stream.bytesMessageReceived(b"hello")
        self.assertEqual(ws.transport.written, written)
        self.assertEqual(self.hub.channel("/cherrychat").last_id, 0)


class CometMixTests(TransportTestCase):
    def test_stop_reaches_every_kind_of_connection(self):
        request = DummyRequest([b""])
        LongPoll(self.comet, request, OTHER).start(0)
        stream = WebSocketStream(self.comet, KEY, None)
        ws = FakeWebSocketTransport()
        stream.negotiationStarted(ws)
        stream.negotiationFinished()
        self.assertEqual(len(self.comet.connections), 2)
        self.assertEqual(self.comet.counts["longpoll"], 1)
        self.assertEqual(self.comet.counts["websocket"], 1)
        self.comet.stop()
        self.assertEqual(json.loads(request.written[0]), [{"type": "reconnect"}])
        self.assertEqual(decode_frames(b"".join(ws.transport.written))[-1], {"type": "reconnect"})
        self.assertEqual(self.comet.connections, set())
