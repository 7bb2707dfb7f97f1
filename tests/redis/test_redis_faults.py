"""Faults: Redis going away and coming back, and a daemon killed under its clients."""

from __future__ import annotations

import json
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import settle
from tests.redis.redis_support import CHAT, RedisTestCase, SourceTwistd
from tests.support import wait_until


class RedisOutageTests(RedisTestCase):
    """Daemons that lose Redis answer 503, keep their streams, and recover by themselves."""

    daemons = 2

    @inlineCallbacks
    def statuses(self, path: str, **params):
        codes = []
        for browser in self.probes:
            status, _ = yield browser.get(path, **params)
            codes.append(status)
        return codes

    @inlineCallbacks
    def test_redis_stopped_and_started_mid_chat_loses_nothing_acknowledged(self):
        self.probes = [self.add_browser(base) for base in self.bases]
        ann = yield self.browser(self.bases[0])
        ben = yield self.browser(self.bases[1])
        cat = yield self.browser(self.bases[1])
        ann_stream = yield self.connect(ann, "ann", "sse")
        ben_stream = yield self.connect(ben, "ben", "websocket")
        cat_poll = yield self.connect(cat, "cat", "longpoll")
        for count, (browser, user) in enumerate(((ann, "ann"), (ben, "ben"), (cat, "cat")), 1):
            self.assertEqual((yield browser.post("/join", user=user)), (200, "joined\n"))
            yield ann_stream.wait_for_events(count)  # a notice may wait for its presence window
        acknowledged = ["ann joined", "ben joined", "cat joined"]
        for n in range(3):
            self.assertEqual((yield ann.post("/msg", user="ann", msg=f"before {n}")), (200, "sent\n"))
            acknowledged.append(f"<b>ann</b> before {n}")
        yield ann_stream.wait_for_events(len(acknowledged))

        self.redis.kill()
        yield wait_until(lambda: self.statuses("/healthz").addCallback(lambda codes: codes == [503, 503]), "503 from /healthz", timeout=10.0)
        self.assertEqual((yield ann.post("/msg", user="ann", msg="lost")), (503, "chat backend unavailable, try again later\n"))
        self.assertEqual((yield ben.post("/msg", user="ben", msg="lost"))[0], 503)
        self.assertEqual((yield cat.post("/join", user="cat"))[0], 503)
        self.assertEqual((yield self.probes[1].get("/who"))[0], 503)
        # Streams stay open: nobody was disconnected.
        for client in (ann_stream, ben_stream):
            self.assertFalse(client.closed.called)
        self.assertEqual(self.services[1].hub.listener_count(f"ben, 0, {CHAT}"), 1)

        yield self.redis.start()
        yield wait_until(lambda: self.statuses("/healthz").addCallback(lambda codes: codes == [200, 200]), "recovery", timeout=15)
        for n in range(2):
            self.assertEqual((yield ben.post("/msg", user="ben", msg=f"after {n}")), (200, "sent\n"))
            acknowledged.append(f"<b>ben</b> after {n}")
        self.assertEqual((yield cat.get("/msg", user="cat", msg="me too")), (200, "sent\n"))
        acknowledged.append("<b>cat</b> me too")

        yield ann_stream.wait_for_events(len(acknowledged))
        yield ben_stream.wait_for_events(len(acknowledged) - 1)
        yield cat_poll.wait_for_events(len(acknowledged) - 2 - 1)
        for probe in self.probes:
            status, body = yield probe.get("/history", limit=100)
            self.assertEqual([e["payload"] for e in json.loads(body)["events"]], acknowledged)
        yield settle(ann, "ann", [ann_stream, ben_stream])  # a duplicate would show up now
        self.assertEqual(ann_stream.payloads, acknowledged)
        self.assertEqual(ben_stream.payloads, acknowledged[1:])
        self.assertEqual([e["id"] for e in ann_stream.events], list(range(1, len(acknowledged) + 1)))
        self.assertEqual(json.loads((yield self.probes[0].get("/who"))[1]), {"members": ["ann", "ben", "cat"]})


class KilledDaemonTests(RedisTestCase):
    """A daemon killed with SIGKILL: its clients resume on the others, losing nothing."""

    daemons = 0

    def start_twistd(self) -> str:
        directory = tempfile.mkdtemp(prefix="cherrychat-daemon-")
        self.addCleanup(shutil.rmtree, directory, True)
        daemon = SourceTwistd("--listen", "tcp:0:interface=127.0.0.1", "--redis", self.redis.url, cwd=directory)
        self.addCleanup(daemon.stop)
        return daemon

    @inlineCallbacks
    def test_sigkill_then_clients_move_and_resume_without_loss_or_repeat(self):
        daemons = [self.start_twistd() for _ in range(3)]
        bases = [f"http://127.0.0.1:{daemon.wait_for_port()}" for daemon in daemons]
        probes = [self.add_browser(base) for base in bases]
        for probe in probes:
            yield wait_until(lambda probe=probe: probe.get("/healthz").addCallback(lambda r: r[0] == 200), "healthy daemons", timeout=10.0)

        ann = yield self.browser(bases[0])
        ben = yield self.browser(bases[0])
        cat = yield self.browser(bases[1])
        dan = yield self.browser(bases[2])
        streams = {
            "ann": (yield self.connect(ann, "ann", "sse")),
            "ben": (yield self.connect(ben, "ben", "iframe")),
            "cat": (yield self.connect(cat, "cat", "websocket")),
            "dan": (yield self.connect(dan, "dan", "longpoll")),
        }
        for count, (browser, user) in enumerate(((ann, "ann"), (ben, "ben"), (cat, "cat"), (dan, "dan")), 1):
            self.assertEqual((yield browser.post("/join", user=user)), (200, "joined\n"))
            yield streams["ann"].wait_for_events(count)  # a notice may wait for its presence window
        sent = []
        for n in range(3):
            self.assertEqual((yield ann.post("/msg", user="ann", msg=f"on the first {n}")), (200, "sent\n"))
            sent.append(f"<b>ann</b> on the first {n}")
        yield streams["ann"].wait_for_events(4 + len(sent))
        yield streams["ben"].wait_for_events(3 + len(sent))

        daemons[0].kill()
        yield streams["ann"].closed.addTimeout(10, reactor)
        yield streams["ben"].closed.addTimeout(10, reactor)
        last_seen = {user: streams[user].events[-1]["id"] for user in ("ann", "ben")}
        # The others chat on while ann and ben are away.
        for n in range(2):
            self.assertEqual((yield cat.post("/msg", user="cat", msg=f"meanwhile {n}")), (200, "sent\n"))
            sent.append(f"<b>cat</b> meanwhile {n}")

        ann_moved, ben_moved = self.move(ann, bases[1]), self.move(ben, bases[2])
        resumed = {
            "ann": (yield self.connect(ann_moved, "ann", "xhrstream", last_event_id=last_seen["ann"])),
            "ben": (yield self.connect(ben_moved, "ben", "websocket", last_event_id=last_seen["ben"])),
        }
        self.assertEqual((yield ann_moved.post("/msg", user="ann", msg="back")), (200, "sent\n"))
        sent.append("<b>ann</b> back")
        for user in ("ann", "ben"):
            yield resumed[user].wait_for_events(3)
        yield streams["dan"].wait_for_events(len(sent) + 1)
        yield settle(dan, "dan", [resumed["ann"], resumed["ben"], streams["dan"]])
        for user in ("ann", "ben"):
            events = streams[user].events + resumed[user].events
            ids = [event["id"] for event in events]
            self.assertEqual(ids, list(range(ids[0], ids[-1] + 1)), user)
            self.assertEqual([e["data"] for e in events if e["data"].startswith("<b>")], sent, user)
        self.assertEqual(streams["dan"].payloads, ["dan joined", *sent])
