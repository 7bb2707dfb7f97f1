"""The Orbit protocol listener on a StringTransport: wire forms, order, bounds, bad input."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from cherrychat.errors import Unavailable
from cherrychat.hub import Hub
from cherrychat.orbit import OrbitFactory, OrbitSettings, hub_publisher, loopback_default

KEY = "ann, 0, /cherrychat"


def request(payload: str = "hi", recipients: list[str] = (KEY,), request_id: str = "1", length_first: bool = False) -> bytes:  # type: ignore[assignment]
    """A request as pyorbited 0.2.2 writes it (its twisted client puts length first)."""
    body = json.dumps(payload).encode("utf-8")
    head = [b"Orbit 1.0", b"Event", b"id: " + request_id.encode()]
    recipient_lines = [b"recipient: " + key.encode("utf-8") for key in recipients]
    length = [b"length: %d" % len(body)]
    head += (length + recipient_lines) if length_first else (recipient_lines + length)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class OrbitTestCase(TestCase):
    def setUp(self):
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.connect()

    def connect(self, settings: OrbitSettings | None = None, publish=None):
        self.factory = OrbitFactory(publish or hub_publisher(self.hub), self.clock, settings)
        self.transport = StringTransport()
        self.protocol = self.factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def published(self) -> list[str]:
        return [event.payload for event in self.hub.channel("/cherrychat").events]

    def answers(self) -> bytes:
        return self.transport.value()


class WireTests(OrbitTestCase):
    def test_success_and_hub_event(self):
        self.protocol.dataReceived(request("<b>alice</b> hi", [KEY, "ben, 0, /cherrychat"]))
        self.assertEqual(self.answers(), b"Success\r\nid: 1\r\n\r\n")
        event = self.hub.channel("/cherrychat").events[-1]
        self.assertEqual(event.payload, "<b>alice</b> hi")
        self.assertEqual(event.recipients, frozenset([KEY, "ben, 0, /cherrychat"]))

    def test_length_before_recipients(self):
        self.protocol.dataReceived(request("x", length_first=True))
        self.assertEqual(self.answers(), b"Success\r\nid: 1\r\n\r\n")
        self.assertEqual(self.published(), ["x"])

    def test_zero_recipients_is_success_and_publishes_nothing(self):
        self.protocol.dataReceived(request("x", recipients=[]))
        self.assertEqual(self.answers(), b"Success\r\nid: 1\r\n\r\n")
        self.assertEqual(self.published(), [])

    def test_several_requests_in_one_write_and_byte_by_byte(self):
        data = request("a", request_id="1") + request("b", request_id="2")
        self.protocol.dataReceived(data[:5])
        for byte in range(5, len(data)):
            self.protocol.dataReceived(data[byte : byte + 1])
        self.protocol.dataReceived(request("c", request_id="3") + request("d", request_id="4"))
        self.assertEqual(self.answers(), b"".join(b"Success\r\nid: %d\r\n\r\n" % n for n in range(1, 5)))
        self.assertEqual(self.published(), ["a", "b", "c", "d"])
        self.assertTrue(self.transport.connected)

    def test_utf8_payload_counts_bytes(self):
        body = json.dumps("héllo ☃", ensure_ascii=False).encode("utf-8")
        self.protocol.dataReceived(b"Orbit 1.0\r\nEvent\r\nid: 7\r\nrecipient: %s\r\nlength: %d\r\n\r\n%s" % (KEY.encode(), len(body), body))
        self.assertEqual(self.answers(), b"Success\r\nid: 7\r\n\r\n")
        self.assertEqual(self.published(), ["héllo ☃"])

    def test_answers_keep_request_order(self):
        pending: list[Deferred] = []

        def publish(keys, payload):
            pending.append(Deferred())
            return pending[-1]

        self.connect(publish=publish)
        self.protocol.dataReceived(request("a", request_id="1") + request("b", request_id="2"))
        pending[1].callback([2])
        self.assertEqual(self.answers(), b"")
        pending[0].callback([1])
        self.assertEqual(self.answers(), b"Success\r\nid: 1\r\n\r\nSuccess\r\nid: 2\r\n\r\n")

    def test_unavailable_is_a_failure_with_the_reason(self):
        self.connect(publish=lambda keys, payload: fail(Unavailable("storage lost")))
        self.protocol.dataReceived(request("a"))
        self.assertEqual(self.answers(), b"Failure\r\nid: 1\r\nmsg: storage lost\r\n\r\n")
        self.assertTrue(self.transport.connected)

    def test_hub_returning_a_deferred_of_ids(self):
        calls = []

        class DeferredHub:
            def event(self, keys, payload):
                calls.append((keys, payload))
                return succeed([5])

        self.connect(publish=hub_publisher(DeferredHub()))
        self.protocol.dataReceived(request("a"))
        self.assertEqual(self.answers(), b"Success\r\nid: 1\r\n\r\n")
        self.assertEqual(calls, [([KEY], "a")])


class RefusalTests(OrbitTestCase):
    def assertRefusedAndGoesOn(self, data: bytes, reason: bytes):
        self.protocol.dataReceived(data)
        self.assertTrue(self.answers().startswith(b"Failure\r\nid: 1\r\nmsg: "), self.answers())
        self.assertIn(reason, self.answers())
        self.assertEqual(self.published(), [])
        self.assertTrue(self.transport.connected)
        self.transport.clear()
        self.protocol.dataReceived(request("after", request_id="2"))
        self.assertEqual(self.answers(), b"Success\r\nid: 2\r\n\r\n")
        self.assertEqual(self.published(), ["after"])

    def assertRefusedAndClosed(self, data: bytes, reason: bytes):
        self.protocol.dataReceived(data)
        self.assertTrue(self.answers().startswith(b"Failure\r\n"), self.answers())
        self.assertIn(reason, self.answers())
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.published(), [])

    def test_body_not_json(self):
        self.assertRefusedAndGoesOn(b"Orbit 1.0\r\nEvent\r\nid: 1\r\nrecipient: %s\r\nlength: 5\r\n\r\nhello" % KEY.encode(), b"JSON string")

    def test_body_json_but_not_a_string(self):
        self.assertRefusedAndGoesOn(b"Orbit 1.0\r\nEvent\r\nid: 1\r\nrecipient: %s\r\nlength: 2\r\n\r\n{}" % KEY.encode(), b"JSON string")

    def test_other_request_type(self):
        self.assertRefusedAndGoesOn(request("x").replace(b"Event", b"Query"), b"only Event")

    def test_bad_keys_are_named_and_nothing_published(self):
        bad = [f"nobody{n}" for n in range(1000)]
        self.protocol.dataReceived(request("x", [KEY, *bad]))
        answer = self.answers()
        self.assertIn(b"msg: 1000 invalid orbit keys", answer)
        self.assertEqual(answer.count(b"recipient: ("), 20)
        self.assertIn(b"recipient: (nobody0)\r\n", answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n"))
        self.assertEqual(self.published(), [])
        self.assertTrue(self.transport.connected)

    def test_payload_over_the_bound(self):
        self.connect(OrbitSettings(max_payload_bytes=10))
        self.assertRefusedAndGoesOn(request("x" * 11), b"payload larger than 10 bytes")

    def test_garbage_closes_the_connection(self):
        self.assertRefusedAndClosed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"not an Orbit request")

    def test_huge_length_closes_before_reading(self):
        self.assertRefusedAndClosed(b"Orbit 1.0\r\nEvent\r\nid: 1\r\nlength: 99999999999\r\n", b"payload larger than")

    def test_missing_length_closes(self):
        self.assertRefusedAndClosed(b"Orbit 1.0\r\nEvent\r\nid: 1\r\nrecipient: %s\r\n\r\n\"x\"" % KEY.encode(), b"missing length")

    def test_endless_line_closes(self):
        self.assertRefusedAndClosed(b"Orbit 1.0\r\n" + b"x" * 5000, b"line longer than 4096")

    def test_too_many_recipients_closes(self):
        self.connect(OrbitSettings(max_recipients=3))
        self.assertRefusedAndClosed(request("x", [KEY] * 4), b"more than 3 recipients")

    def test_answers_before_a_fatal_error_still_go_out(self):
        self.protocol.dataReceived(request("a") + b"garbage\r\n")
        self.assertEqual(self.answers(), b"Success\r\nid: 1\r\n\r\nFailure\r\nid: 0\r\nmsg: not an Orbit request; expected Orbit 1.0\r\n\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_half_request_times_out_but_idle_connection_stays(self):
        self.protocol.dataReceived(request("a"))
        self.clock.advance(3600)
        self.assertTrue(self.transport.connected and not self.transport.disconnecting)
        self.protocol.dataReceived(b"Orbit 1.0\r\nEvent\r\n")
        self.clock.advance(31)
        self.assertTrue(self.transport.disconnecting)
        self.assertIn(b"not finished in time", self.answers())

    def test_trickling_request_times_out_from_its_first_byte(self):
        data = request("slow")
        for offset in range(20):
            self.protocol.dataReceived(data[offset : offset + 1])
            self.clock.advance(2)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.published(), [])

    def test_pending_bound_pauses_reading(self):
        pending: list[Deferred] = []

        def publish(keys, payload):
            pending.append(Deferred())
            return pending[-1]

        self.connect(OrbitSettings(max_pending=2), publish=publish)
        self.protocol.dataReceived(b"".join(request(str(n), request_id=str(n)) for n in range(5)))
        self.assertEqual(len(pending), 2)
        self.assertEqual(self.transport.producerState, "paused")
        pending[0].callback([1])
        pending[1].callback([2])
        self.assertEqual(len(pending), 4)
        for deferred in pending[2:]:
            deferred.callback([3])
        self.assertEqual(len(pending), 5)
        pending[4].callback([4])
        self.assertEqual(self.answers().count(b"Success"), 5)
        self.assertEqual(self.transport.producerState, "producing")

    def test_connection_bound(self):
        self.connect(OrbitSettings(max_connections=1))
        second = self.factory.buildProtocol(None)
        transport = StringTransport()
        second.makeConnection(transport)
        self.assertIn(b"too many Orbit connections", transport.value())
        self.assertTrue(transport.disconnecting)


class LoopbackTests(TestCase):
    def test_defaults_to_loopback(self):
        self.assertEqual(loopback_default("9000"), "tcp:9000:interface=127.0.0.1")
        self.assertEqual(loopback_default("tcp:9000"), "tcp:9000:interface=127.0.0.1")
        self.assertEqual(loopback_default("tcp6:9000"), "tcp6:9000:interface=\\:\\:1")
        self.assertEqual(loopback_default("tcp:9000:interface=0.0.0.0"), "tcp:9000:interface=0.0.0.0")
        self.assertEqual(loopback_default("unix:/run/orbit.sock"), "unix:/run/orbit.sock")

    def test_option_is_off_by_default_and_coerced(self):
        from cherrychat.tap import Options

        options = Options()
        options.parseOptions([])
        self.assertIsNone(options["orbit-listen"])
        options = Options()
        options.parseOptions(["--orbit-listen", "tcp:0"])
        self.assertEqual(options["orbit-listen"], "tcp:0:interface=127.0.0.1")
