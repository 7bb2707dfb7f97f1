"""The Redis room without HTTP: two "daemons" (hub, backplane, room) in this process on a
real redis-server, to count what a room event and a membership change cost, and to check
who reads what."""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from cherrychat.hub import Hub, make_key
from cherrychat.redis_backplane import RedisBackplane
from cherrychat.redis_chat import RedisChatRoom
from cherrychat.validation import MAX_LABELS_PER_NICKNAME
from tests.integration.integration_support import wait_until
from tests.redis.redis_support import RedisServer
from tests.unit.unit_support import Recorder

CHAT = "/cherrychat"


class Node:
    """What one daemon runs for the chat: a hub, its Redis backplane and rooms."""

    def __init__(self, url: str, locations: tuple[str, ...] = (CHAT,)):
        self.hub = Hub(reactor)
        self.backplane = RedisBackplane(url, self.hub, reactor)
        self.rooms = {location: RedisChatRoom(self.hub, reactor, self.backplane, location=location, presence_timeout=30)
                      for location in locations}
        self.controls: list[dict[str, Any]] = []
        self.backplane.observe_control(self.controls.append)

    @property
    def room(self) -> RedisChatRoom:
        return self.rooms[CHAT]

    def stop(self):
        for room in self.rooms.values():
            room.stop()
        return self.backplane.stop()


class RedisRoomTestCase(TestCase):
    timeout = 60

    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        return self.redis.start()

    @inlineCallbacks
    def node(self, *locations: str):
        node = Node(self.redis.url, locations or (CHAT,))
        node.backplane.start()
        self.addCleanup(node.stop)
        yield wait_until(node.backplane.healthy, "the backplane to reach redis", timeout=10.0)
        return node

    @inlineCallbacks
    def redis_call(self, node: Node, *command: str):
        result = yield node.backplane.call(lambda redis: redis.execute_command(*command))
        return result


def commandstats(text: Any) -> dict[str, int]:
    """``INFO commandstats`` as command -> calls."""
    text = text.decode() if isinstance(text, bytes) else text
    calls = {}
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line.partition(":")
            calls[name[len("cmdstat_"):]] = int(fields.split(",")[0].split("=")[1])
    return calls


class RoomCostTests(RedisRoomTestCase):
    """A room event and a membership change cost the same in a room of 1 and of 200."""

    @inlineCallbacks
    def test_a_room_event_is_stored_and_sent_once_with_no_recipients_whatever_the_room_size(self):
        small, big = "/small", "/big"
        a = yield self.node(small, big)
        b = yield self.node(small, big)
        yield a.rooms[small].join("m000", "s000")
        for n in range(200):
            yield a.rooms[big].join(f"m{n:03d}", f"s{n:03d}")
        yield wait_until(lambda: b.hub.member_since(make_key("m199", "0", big)) is not None, "b to mirror the members")
        yield self.redis_call(a, "CONFIG", "RESETSTAT")
        ids = {}
        for location in (small, big):
            ids[location] = yield a.rooms[location].msg("m000", "s000" if location == small else "s000", "hello, all")
        stats = commandstats((yield self.redis_call(a, "INFO", "commandstats")))
        # Numbering and storing a message reads one member entry, never the whole hash.
        for scan in ("hgetall", "hkeys", "hvals", "hscan", "smembers"):
            self.assertNotIn(scan, stats)
        self.assertEqual(stats.get("hget"), 2)

        stored = {}
        for location in (small, big):
            texts = yield self.redis_call(a, "ZRANGEBYSCORE", f"cherrychat:history:{location}", ids[location], ids[location])
            stored[location] = texts[0].decode() if isinstance(texts[0], bytes) else texts[0]
            self.assertNotIn("recipients", json.loads(stored[location]))
        # The same text (what is stored, and what PUBLISH sends) in both rooms, but for the
        # id and the time, whose digits vary.
        shapes = {location: {k: v for k, v in json.loads(text).items() if k not in ("id", "time")}
                  for location, text in stored.items()}
        self.assertEqual(shapes[small], {**shapes[big], "location": small})
        self.assertLessEqual(abs(len(stored[small]) - len(stored[big])), 8)
        yield wait_until(lambda: b.hub.channel(big).last_id >= ids[big], "b to receive the message")
        retained = []
        for node in (a, b):
            for location in (small, big):
                event = [e for e in node.hub.channel(location).events if e.id == ids[location]][0]
                self.assertIsNone(event.recipients)
                retained.append(sys.getsizeof(event) + sys.getsizeof(event.payload) + sys.getsizeof(event.frames))
        # What each hub retains for the message is the same in a room of 1 and of 200.
        self.assertEqual(len(set(retained)), 1, retained)

    @inlineCallbacks
    def test_a_join_costs_the_same_however_many_members(self):
        a = yield self.node()
        b = yield self.node()
        yield self.redis_call(a, "CONFIG", "RESETSTAT")
        for n in range(150):
            yield a.room.join(f"m{n:03d}", f"s{n:03d}")
        # The sweep (every daemon, every few seconds) takes a range of deadlines, too.
        a.backplane.healthy_since = -1e9
        yield a.room.sweep()
        stats = commandstats((yield self.redis_call(a, "INFO", "commandstats")))
        self.assertEqual(stats.get("zrangebyscore"), 1)
        for scan in ("hgetall", "hkeys", "hvals", "hscan"):
            self.assertNotIn(scan, stats)
        yield wait_until(lambda: len(b.controls) >= 150, "b to hear of every join")
        sizes = [len(json.dumps(control)) for control in b.controls]
        # One change, one message of one size, whether the room has 1 member or 150 (but
        # for the digits of its stamp and ids).
        self.assertLessEqual(max(sizes) - min(sizes), 4, sizes)
        self.assertLessEqual(sizes[-1], sizes[0] + 4)
        # What each hub keeps per member: one key state, no copy of anything said.
        self.assertEqual(b.hub.key_count(), 150)

    @inlineCallbacks
    def test_scripts_go_by_sha1_and_are_sent_again_after_a_script_flush(self):
        a = yield self.node()
        yield self.redis_call(a, "CONFIG", "RESETSTAT")
        yield a.room.join("ann", "sa")
        for n in range(20):
            yield a.room.msg("ann", "sa", f"m{n}")
        stats = commandstats((yield self.redis_call(a, "INFO", "commandstats")))
        self.assertGreaterEqual(stats.get("evalsha", 0), 21)
        # the join, the msg and the notice's publish script, once each at most
        self.assertLessEqual(stats.get("eval", 0), 3)
        yield self.redis_call(a, "SCRIPT", "FLUSH")
        sent = a.backplane.scripts_sent
        event_id = yield a.room.msg("ann", "sa", "after the flush")
        self.assertGreater(event_id, 0)
        self.assertEqual(a.backplane.scripts_sent, sent + 1)


class MembershipAcrossDaemonsTests(RedisRoomTestCase):
    """Each daemon decides from its mirror of the members who reads a room event."""

    @inlineCallbacks
    def test_a_member_joined_through_one_daemon_reads_from_its_join_on_the_other(self):
        a = yield self.node()
        b = yield self.node()
        yield a.room.join("ann", "sa")
        before = yield a.room.msg("ann", "sa", "before ben")
        ben = make_key("ben", "0", CHAT)
        listener = Recorder()
        subscription = b.hub.subscribe(ben, listener)
        self.assertEqual(subscription.backlog, [])
        self.assertTrue((yield a.room.join("ben", "sb")))
        yield wait_until(lambda: b.hub.member_since(ben) is not None, "b to mirror ben's join")
        self.assertEqual(b.hub.member_since(ben), before)
        after = yield a.room.msg("ann", "sa", "after ben")
        yield wait_until(lambda: "<b>ann</b> after ben" in listener.payloads, "ben to get the message on b")
        self.assertNotIn("<b>ann</b> before ben", listener.payloads)
        # Resuming from the start on a: only what came after ben's join.
        b.hub.unsubscribe(ben, listener)
        again = a.hub.subscribe(ben, Recorder(), last_event_id=0, epoch="redis")
        self.assertFalse(again.gap)
        self.assertNotIn(before, [event.id for event in again.backlog])
        self.assertIn(after, [event.id for event in again.backlog])
        self.assertEqual(a.room.keys_of("sb"), [ben])
        self.assertEqual(b.room.keys_of("sb"), [ben])

    @inlineCallbacks
    def test_a_nickname_is_one_whatever_its_case_and_has_a_bounded_number_of_labels(self):
        a = yield self.node()
        b = yield self.node()
        self.assertTrue((yield a.room.join("Ann", "sa")))
        failure = yield self.assertFailure(b.room.join("ann", "other"), Exception)
        self.assertEqual(failure.code, 409)
        self.assertFalse((yield b.room.join("ANN", "sa")))
        event_id = yield b.room.msg("aNN", "sa", "hi")
        yield wait_until(lambda: a.hub.channel(CHAT).last_id >= event_id, "a to receive the message")
        self.assertEqual(a.hub.channel(CHAT).events[-1].payload, "<b>Ann</b> hi")
        for label in range(1, MAX_LABELS_PER_NICKNAME):
            yield a.room.join("Ann", "sa", str(label))
        failure = yield self.assertFailure(a.room.join("Ann", "sa", str(MAX_LABELS_PER_NICKNAME)), Exception)
        self.assertEqual(failure.code, 429)
        self.assertEqual((yield b.room.members()), ["Ann"])

    @inlineCallbacks
    def test_a_targeted_event_is_tied_to_the_tenure_of_its_holder_on_every_daemon(self):
        a = yield self.node()
        b = yield self.node()
        yield a.room.join("carl", "first")
        carl = make_key("carl", "0", CHAT)
        ids = yield a.hub.event([carl], "for carl only")
        yield wait_until(lambda: b.hub.channel(CHAT).last_id >= ids[0], "b to receive the event")
        event = [e for e in b.hub.channel(CHAT).events if e.id == ids[0]][0]
        self.assertEqual(event.recipients, frozenset([carl]))
        self.assertTrue(b.hub.readable(event, b.room.keys_of("first")))
        self.assertFalse(b.hub.readable(event, b.room.keys_of("someone else")))
        # Carl's holder leaves (its presence ran out); another session takes the nickname.
        yield self.redis_call(a, "ZADD", f"cherrychat:presence:{CHAT}", "0", "carl")
        a.backplane.healthy_since = -1e9  # let this sweep run now
        yield a.room.sweep()
        yield wait_until(lambda: b.room.holder_of("carl") is None, "b to hear that carl left")
        self.assertTrue((yield b.room.join("carl", "second")))
        yield wait_until(lambda: a.room.holder_of("carl") == "second", "a to hear of the new carl")
        for node in (a, b):
            self.assertEqual(node.room.keys_of("second"), [carl])
            self.assertFalse(node.hub.readable(event, node.room.keys_of("second")))
            resumed = node.hub.subscribe(carl, Recorder(), last_event_id=0, epoch="redis")
            self.assertNotIn(ids[0], [e.id for e in resumed.backlog])


class PresenceNoticeTests(RedisRoomTestCase):
    """Joins gathered into notices that carry ``presence`` through Redis to every hub."""

    @inlineCallbacks
    def test_joins_within_the_window_are_one_notice_with_presence_on_every_daemon(self):
        a = yield self.node()
        b = yield self.node()
        yield a.room.join("ann", "sa")
        for name in ("ben", "cat", "dan", "eve"):
            yield a.room.join(name, f"s-{name}")
        # ben's message sends what was gathered first: nobody reads ben before "ben joined".
        said = yield a.room.msg("ben", "s-ben", "hello")
        yield wait_until(lambda: b.hub.channel(CHAT).last_id >= said, "b to receive the message")
        events = b.hub.channel(CHAT).events
        self.assertEqual([e.payload for e in events], ["ann joined", "ben, cat and 2 others joined", "<b>ben</b> hello"])
        self.assertEqual(events[0].presence, {"joined": ["ann"], "left": [], "joined_count": 1, "left_count": 0})
        self.assertEqual(events[1].presence,
                         {"joined": ["ben", "cat", "dan", "eve"], "left": [], "joined_count": 4, "left_count": 0})
        self.assertIsNone(events[2].presence)
        self.assertEqual([e.presence for e in a.hub.channel(CHAT).events], [e.presence for e in events])


class UpgradeTests(RedisRoomTestCase):
    """Members kept by the previous layout (no name, no ids, labels set to true)."""

    @inlineCallbacks
    def test_a_member_of_the_previous_layout_is_loaded_and_may_send(self):
        first = yield self.node()
        old = json.dumps({"session": "sa", "joined": True, "labels": {"0": True}})
        yield self.redis_call(first, "HSET", f"cherrychat:members:{CHAT}", "ann", old)
        yield first.stop()
        a = yield self.node()
        self.assertEqual(a.room.keys_of("sa"), [make_key("ann", "0", CHAT)])
        self.assertIsNotNone(a.hub.member_since(make_key("ann", "0", CHAT)))
        self.assertEqual((yield a.room.members()), ["ann"])
        event_id = yield a.room.msg("ann", "sa", "still here")
        self.assertGreater(event_id, 0)
        self.assertFalse((yield a.room.join("ann", "sa")))
        deadline = yield self.redis_call(a, "ZSCORE", f"cherrychat:presence:{CHAT}", "ann")
        self.assertIsNotNone(deadline)  # given one at load, so that it can expire
