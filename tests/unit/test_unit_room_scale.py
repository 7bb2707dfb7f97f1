"""A room costs the same per message and per membership change however many people are in
it: what is retained is measured (objects and bytes), never timed."""

from __future__ import annotations

import tracemalloc

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.chat import CHAT_LOCATION, ChatRoom
from cherrychat.hub import Hub, make_key
from tests.unit.unit_support import Recorder


def room_of(size: int) -> tuple[Clock, Hub, ChatRoom]:
    """A room with ``size`` members who joined and never connected, notices sent."""
    clock = Clock()
    hub = Hub(clock, max_events=10_000)
    chat = ChatRoom(hub, clock, presence_timeout=3600)
    for n in range(size):
        chat.join(f"u{n}", f"session-{n}")
    clock.advance(chat._presence.window)
    return clock, hub, chat


def retained_bytes(action) -> int:
    """Bytes still allocated after ``action()`` ran, as tracemalloc counts them."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        keep = action()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del keep
    return after - before


class RoomEventTests(SynchronousTestCase):
    def test_a_message_is_retained_once_with_no_recipient_list(self) -> None:
        _, hub, chat = room_of(50)
        chat.msg("u0", "session-0", "hello")
        event = hub.channel(CHAT_LOCATION).messages[-1]
        self.assertIsNone(event.recipients)
        self.assertEqual(event.payload, "<b>u0</b> hello")

    def test_retained_bytes_per_message_do_not_grow_with_the_room(self) -> None:
        sizes = {}
        for members in (10, 3000):
            _, hub, chat = room_of(members)

            def say_100() -> list:
                for n in range(100):
                    chat.msg("u0", "session-0", f"message {n:03}")
                return list(hub.channel(CHAT_LOCATION).messages)

            sizes[members] = retained_bytes(say_100)
        # The same 100 messages cost the same whether 10 or 3,000 people may read them.
        self.assertLess(abs(sizes[3000] - sizes[10]), 0.1 * sizes[10], sizes)

    def test_a_member_who_never_connects_keeps_no_queue(self) -> None:
        _, hub, chat = room_of(200)
        keys_before = hub.key_count()
        for n in range(300):
            chat.msg("u1", "session-1", f"m{n}")
        self.assertEqual(hub.key_count(), keys_before)
        # When the page finally connects, its backlog is what the room retains, no more.
        listener = Recorder()
        subscription = hub.subscribe(make_key("u7", "0", CHAT_LOCATION), listener)
        self.assertEqual(len(subscription.backlog), 301)  # the notice of the joins, and every message
        self.assertEqual(subscription.backlog[-1].payload, "<b>u1</b> m299")


class MembershipChangeTests(SynchronousTestCase):
    def test_retained_bytes_per_join_do_not_grow_with_the_room(self) -> None:
        sizes = {}
        for members in (10, 3000):
            clock, hub, chat = room_of(members)

            def join_50() -> None:
                for n in range(50):
                    chat.join(f"new{n}", f"new-session-{n}")
                clock.advance(chat._presence.window)

            sizes[members] = retained_bytes(join_50)
        self.assertLess(abs(sizes[3000] - sizes[10]), 0.1 * sizes[10], sizes)

    def test_a_join_adds_one_key_and_one_notice(self) -> None:
        clock, hub, chat = room_of(1000)
        keys, notices = hub.key_count(), len(hub.channel(CHAT_LOCATION).notices)
        chat.join("newcomer", "session-new")
        clock.advance(chat._presence.window)
        self.assertEqual(hub.key_count(), keys + 1)
        self.assertEqual(len(hub.channel(CHAT_LOCATION).notices), notices + 1)

    def test_a_departed_member_leaves_nothing_behind(self) -> None:
        clock, hub, chat = room_of(100)
        keys = hub.key_count()
        clock.advance(3600 + 1)  # nobody connected: everyone leaves
        self.assertEqual(self.successResultOf(chat.members()), [])
        self.assertEqual(hub.key_count(), 0)
        self.assertEqual(chat._nicknames, {})
        self.assertLess(hub.key_count(), keys)


class PresenceNoiseTests(SynchronousTestCase):
    def test_a_storm_of_joins_and_leaves_cannot_push_the_conversation_out_of_the_history(self) -> None:
        clock = Clock()
        hub = Hub(clock, max_events=50)
        chat = ChatRoom(hub, clock, presence_timeout=10)
        chat.join("ann", "session-ann")
        hub.subscribe(make_key("ann", "0", CHAT_LOCATION), Recorder())
        said = [f"<b>ann</b> line {n}" for n in range(50)]
        for n in range(50):
            chat.msg("ann", "session-ann", f"line {n}")
        for n in range(2000):  # fresh sessions that join and never connect, so they leave
            chat.join(f"storm{n}", f"storm-session-{n}")
            clock.advance(0.01)
        clock.advance(11)
        channel = hub.channel(CHAT_LOCATION)
        messages = [e.payload for e in channel.recent(1000) if e.presence is None]
        self.assertEqual(messages, said)
        self.assertLessEqual(len(channel.notices), channel.max_notices)
        # The storm's thousands of changes went out as a few dozen notices, not 4,000.
        self.assertLess(hub.published - 51, 60)
        self.assertEqual(self.successResultOf(chat.members()), ["ann"])
