"""Three daemons sharing one Redis form one chat: every transport, ids, nicknames, presence."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import settle
from tests.redis.redis_support import CHAT, RedisTestCase
from tests.support import wait_until


class ChatAcrossDaemonsTests(RedisTestCase):
    """Clients on three daemons, over all five transports, see one chat."""

    @inlineCallbacks
    def test_every_transport_on_three_daemons_gets_every_event_once_in_order(self):
        people = [("ann", "websocket", 0), ("ben", "sse", 1), ("cat", "xhrstream", 2), ("dan", "iframe", 0), ("eve", "longpoll", 1)]
        browsers, streams = {}, {}
        for user, transport, daemon in people:
            browsers[user] = yield self.browser(self.bases[daemon])
            streams[user] = yield self.connect(browsers[user], user, transport)
        for index, (user, _, daemon) in enumerate(people):
            yield self.listening(self.services[daemon], user)
            self.assertEqual((yield browsers[user].post("/join", user=user)), (200, "joined\n"))
            # A join soon after another on the same daemon is announced at the end of the
            # presence window: wait for it, so that the notices stay in join order.
            yield streams["ann"].wait_for_events(index + 1, timeout=5)
        for round_ in range(2):
            for user, _, _ in people:
                status = yield browsers[user].get("/msg", user=user, msg=f"<{round_}> from {user} & co")
                self.assertEqual(status, (200, "sent\n"))
        total = len(people) + 2 * len(people)
        for index, (user, _, _) in enumerate(people):
            # Each gets every event from its own join on.
            yield streams[user].wait_for_events(total - index, timeout=10)

        histories = []
        for base in self.bases:
            browser = self.add_browser(base)
            status, body = yield browser.get("/history", limit=100)
            histories.append([(e["id"], e["payload"]) for e in json.loads(body)["events"]])
        self.assertEqual(histories[0], histories[1])
        self.assertEqual(histories[0], histories[2])
        ids = [event_id for event_id, _ in histories[0]]
        self.assertEqual(ids, list(range(1, total + 1)))
        self.assertIn((total, "<b>eve</b> &lt;1&gt; from eve &amp; co"), histories[0])
        yield settle(browsers["ann"], "ann", streams.values())  # a duplicate would show up now
        for index, (user, _, _) in enumerate(people):
            got = [(e["id"], e["data"]) for e in streams[user].events]
            self.assertEqual(got, histories[0][index:], user)

    @inlineCallbacks
    def test_a_nickname_is_held_on_every_daemon(self):
        ann = yield self.browser(self.bases[0])
        mallory = yield self.browser(self.bases[1])
        self.assertEqual((yield ann.post("/join", user="ann")), (200, "joined\n"))
        self.assertEqual((yield ann.post("/join", user="ann")), (200, "already joined\n"))
        self.assertEqual((yield mallory.post("/join", user="ann")), (409, "nickname ann is taken\n"))
        self.assertEqual((yield mallory.get("/msg", user="ann", msg="forged"))[0], 403)
        self.assertEqual((yield mallory.get("/msg", user="mallory", msg="not joined"))[0], 403)
        at_third = self.move(mallory, self.bases[2])
        status, _ = yield at_third.get("/cherrychat", user="ann", session="0", transport="longpoll")
        self.assertEqual(status, 403)
        self.assertEqual(self.services[2].hub.listener_count(f"ann, 0, {CHAT}"), 0)
        status, body = yield at_third.get("/who")
        self.assertEqual(json.loads(body), {"members": ["ann"]})
        # Ann's own session may use her nickname through any daemon.
        ann_at_third = self.move(ann, self.bases[2])
        self.assertEqual((yield ann_at_third.get("/msg", user="ann", msg="hi")), (200, "sent\n"))
        status, body = yield mallory.get("/history")
        self.assertEqual([e["payload"] for e in json.loads(body)["events"]], ["ann joined", "<b>ann</b> hi"])

    @inlineCallbacks
    def test_resume_on_another_daemon_with_last_event_id(self):
        ann = yield self.browser(self.bases[0])
        ben = yield self.browser(self.bases[0])
        yield ann.post("/join", user="ann")
        first = yield self.connect(ben, "ben", "sse")
        yield ben.post("/join", user="ben")
        yield first.wait_for_events(1)
        last_seen = first.events[-1]["id"]
        first.disconnect()
        yield first.closed
        for n in range(3):
            self.assertEqual((yield ann.post("/msg", user="ann", msg=f"while away {n}"))[0], 200)
        ben_elsewhere = self.move(ben, self.bases[2])
        second = yield self.connect(ben_elsewhere, "ben", "xhrstream", last_event_id=last_seen)
        yield self.listening(self.services[2], "ben")
        yield ann.post("/msg", user="ann", msg="after")
        yield second.wait_for_events(4)
        yield settle(ann, "ann", [second])
        self.assertEqual(
            second.payloads, [f"<b>ann</b> while away {n}" for n in range(3)] + ["<b>ann</b> after"]
        )
        self.assertEqual([e["id"] for e in second.events], list(range(last_seen + 1, last_seen + 5)))


class PresenceAcrossDaemonsTests(RedisTestCase):
    """A member whose connections are gone leaves once, whichever daemon notices."""

    daemon_arguments = ("--presence-timeout", "1")

    def record_sweeps(self) -> list[list[float]]:
        """For each daemon, the start times of its presence sweeps whose answer came back.

        A sweep is the room asking Redis for the holders whose presence expired (the
        ``expired`` script); it then removes them, each with its ``NAME left``.
        """
        sweeps: list[list[float]] = []
        for service in self.services:
            done: list[float] = []

            def run(script, keys, args, run=service.backplane.run, done=done):
                started = reactor.seconds()
                answer = run(script, keys, args)
                if script.name == "expired":
                    answer.addCallback(lambda result: (done.append(started), result)[1])
                return answer

            self.patch(service.backplane, "run", run)
            sweeps.append(done)
        return sweeps

    def until_every_daemon_swept(self, sweeps: list[list[float]], after: float, what: str):
        """Wait until each daemon has finished a sweep that began after ``after``."""
        return wait_until(lambda: all(any(t > after for t in done) for done in sweeps), what, timeout=10.0)

    @inlineCallbacks
    def test_a_member_leaves_once_and_the_nickname_is_free_everywhere(self):
        ann = yield self.browser(self.bases[0])
        ben = yield self.browser(self.bases[1])
        carl = yield self.browser(self.bases[2])
        sweeps = self.record_sweeps()
        ann_stream = yield self.connect(ann, "ann", "websocket")
        ben_stream = yield self.connect(ben, "ben", "sse")
        yield ann.post("/join", user="ann")
        yield ben.post("/join", user="ben")
        yield ann_stream.wait_for_events(2)
        # Connected members stay, however long: their daemons refresh their presence. A
        # sweep on every daemon after their first presence timeout ran out has not
        # removed them.
        expired = reactor.seconds() + self.services[0].chat.presence_timeout
        yield self.until_every_daemon_swept(sweeps, expired, "a sweep after the presence timeout")
        self.assertEqual(json.loads((yield carl.get("/who"))[1]), {"members": ["ann", "ben"]})

        ben_stream.disconnect()
        yield ben_stream.closed
        yield ann_stream.wait_for_events(3, timeout=10)
        self.assertEqual(ann_stream.payloads[-1], "ben left")
        self.assertEqual(json.loads((yield carl.get("/who"))[1]), {"members": ["ann"]})
        self.assertEqual((yield carl.post("/join", user="ben")), (200, "joined\n"))
        # Connected, so that the new ben stays while his notice waits out the presence window.
        yield self.connect(carl, "ben", "sse")
        yield ann_stream.wait_for_events(4)
        # Every daemon sweeps again: a second "ben left" would be on its way now.
        yield self.until_every_daemon_swept(sweeps, reactor.seconds(), "every daemon to sweep again")
        yield settle(ann, "ann", [ann_stream])
        self.assertEqual(ann_stream.payloads, ["ann joined", "ben joined", "ben left", "ben joined"])


class MetricsAcrossDaemonsTests(RedisTestCase):
    """/metrics of each daemon counts the events it received and delivered."""

    daemons = 2
    daemon_arguments = ("--metrics-listen", "tcp:0:interface=127.0.0.1")

    @inlineCallbacks
    def scrape(self, service):
        port = yield service.listeners[1].when_listening()
        browser = self.add_browser(f"http://127.0.0.1:{port.getHost().port}")
        status, text = yield browser.get("/metrics")
        self.assertEqual(status, 200)
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    @inlineCallbacks
    def test_published_and_delivered_counts_on_two_daemons(self):
        ann = yield self.browser(self.bases[0])
        ben = yield self.browser(self.bases[1])
        ann_stream = yield self.connect(ann, "ann", "sse")
        ben_stream = yield self.connect(ben, "ben", "websocket")
        yield ann.post("/join", user="ann")
        yield ben.post("/join", user="ben")
        for n in range(3):
            yield ann.post("/msg", user="ann", msg=f"m{n}")
        yield ben.post("/msg", user="ann", msg="forged")
        yield ann_stream.wait_for_events(5)
        yield ben_stream.wait_for_events(4)
        first, second = (yield self.scrape(self.services[0])), (yield self.scrape(self.services[1]))
        for samples in (first, second):
            # Every daemon receives every event of the chat through Redis.
            self.assertEqual(samples[("cherrychat_events_published_total", ())], 5)
            self.assertEqual(samples[("cherrychat_history_events", (("location", CHAT),))], 5)
        self.assertEqual(first[("cherrychat_events_delivered_total", ())], 5)
        self.assertEqual(second[("cherrychat_events_delivered_total", ())], 4)
        self.assertEqual(first[("cherrychat_connections", (("transport", "sse"),))], 1)
        self.assertEqual(second[("cherrychat_connections", (("transport", "websocket"),))], 1)
        self.assertEqual(second[("cherrychat_requests_refused_total", (("code", "403"),))], 1)
        status, body = yield ann.get("/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
