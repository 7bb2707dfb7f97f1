"""The Orbit listener with ``--redis``: an event published through one daemon's
``--orbit-listen`` is numbered and stored in Redis and reaches a member on another daemon."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from cherrychat.pyorbited.simple import Client
from tests.redis.redis_support import RedisTestCase


class OrbitAcrossDaemonsTests(RedisTestCase):
    daemons = 1

    @inlineCallbacks
    def test_published_on_one_daemon_received_on_another(self):
        orbit_daemon, _ = yield self.start_daemon("--orbit-listen", "tcp:0")
        port = (yield orbit_daemon.listeners[-1].when_listening()).getHost().port
        reader = yield self.browser(self.bases[0])
        client = yield self.connect(reader, "ann", "sse")
        yield self.listening(self.services[0], "ann")
        publisher = Client("127.0.0.1", port, timeout=10)
        self.addCleanup(publisher.disconnect)
        for payload in ("one", "two"):
            reply = yield deferToThread(publisher.event, ["ann, 0, /cherrychat"], payload)
            self.assertTrue(reply.startswith("Success"), reply)
        yield client.wait_for_events(2)
        self.assertEqual(client.payloads, ["one", "two"])
        ids = [event["id"] for event in client.events]
        self.assertEqual(ids[1], ids[0] + 1)  # one id sequence, kept in Redis
