"""cherrychat.pyorbited, pyorbited's interface on Python 3, against a running ``--orbit-listen``."""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from cherrychat.pyorbited import OrbitFailure
from cherrychat.pyorbited.simple import Client
from cherrychat.pyorbited.twistedorbit import OrbitClient
from tests.integration.integration_support import DaemonTestCase, wait_until

KEY = "ann, 0, /cherrychat"


class ClientTestCase(DaemonTestCase):
    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.service, base = yield self.start_daemon("--orbit-listen", "tcp:0", "--max-payload-bytes", "100")
        port = yield self.service.listeners[-1].when_listening()
        self.port = port.getHost().port
        self.comet = self.add_client(self.add_browser(base), "ann", "xhrstream")
        yield self.comet.connect()
        yield wait_until(lambda: self.service.hub.listener_count(KEY), "ann's connection")

    def stored(self) -> list[str]:
        return [event.payload for event in self.service.hub.channel("/cherrychat").events]


class SimpleClientTests(ClientTestCase):
    def client(self) -> Client:
        client = Client("127.0.0.1", self.port, timeout=10)
        self.addCleanup(client.disconnect)
        return client

    @inlineCallbacks
    def test_publishes_and_returns_the_reply(self):
        client = self.client()
        yield deferToThread(client.connect)
        reply = yield deferToThread(client.event, [KEY], "<b>ann</b> hi")
        self.assertEqual(reply, "Success\r\nid: 1\r\n\r\n")
        reply = yield deferToThread(client.event, [], "to nobody")
        self.assertEqual(reply, "Success\r\nid: 2\r\n\r\n")
        yield self.comet.wait_for_events(1)
        self.assertEqual(self.comet.payloads, ["<b>ann</b> hi"])

    @inlineCallbacks
    def test_raises_on_failure(self):
        client = self.client()
        with self.assertRaises(OrbitFailure) as caught:
            yield deferToThread(client.event, ["not a key", KEY], "x")
        self.assertEqual(caught.exception.recipients, ["not a key"])
        self.assertIn("invalid orbit key", caught.exception.msg)
        with self.assertRaises(OrbitFailure) as caught:
            yield deferToThread(client.event, [KEY], "x" * 101)
        self.assertEqual(caught.exception.msg, "payload larger than 100 bytes")
        # The connection goes on after a refusal.
        reply = yield deferToThread(client.event, [KEY], "fine")
        self.assertTrue(reply.startswith("Success"))
        self.assertEqual(self.stored(), ["fine"])

    @inlineCallbacks
    def test_reconnects_once_when_the_connection_broke(self):
        client = self.client()
        yield deferToThread(client.connect)
        client.socket.shutdown(socket.SHUT_RDWR)
        reply = yield deferToThread(client.event, [KEY], "again")
        self.assertTrue(reply.startswith("Success"))
        self.assertEqual(self.stored(), ["again"])

    @inlineCallbacks
    def test_refused_connection_raises(self):
        client = Client("127.0.0.1", 1, timeout=5)
        with self.assertRaises(OSError):
            yield deferToThread(client.event, [KEY], "x")


class TwistedClientTests(ClientTestCase):
    @inlineCallbacks
    def test_events_before_and_after_connecting(self):
        client = OrbitClient("127.0.0.1", self.port, reactor=reactor)
        first = client.event([KEY], "one")  # sent once the connection is up
        second = client.event([KEY], "two")
        replies = [(yield first), (yield second)]
        self.assertEqual([(r.status, r.id) for r in replies], [("Success", "1"), ("Success", "2")])
        with self.assertRaises(OrbitFailure) as caught:
            yield client.event(["bad"], "x")
        self.assertEqual(caught.exception.recipients, ["bad"])
        reply = yield client.event([KEY], "three")
        self.assertTrue(reply.success)
        yield self.comet.wait_for_events(3)
        self.assertEqual(self.comet.payloads, ["one", "two", "three"])
        client.factory.client.transport.loseConnection()
        yield wait_until(lambda: client.factory.client is None, "the client to notice")
        reply = yield client.event([KEY], "after a loss")
        self.assertTrue(reply.success)
        client.factory.client.transport.loseConnection()
        yield wait_until(lambda: client.factory.client is None, "the client to close")
