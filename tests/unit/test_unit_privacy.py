"""An event addressed to some keys is readable, live, on resume and in the history, only by
the sessions that held one of those keys when it was published."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.chat import CHAT_LOCATION, ChatRoom
from cherrychat.hub import Hub, make_key
from tests.unit.unit_support import Recorder

CARL = make_key("carl", "0", CHAT_LOCATION)


class PrivacyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=10)

    def history_for(self, session: str) -> list[str]:
        keys = self.chat.keys_of(session)
        channel = self.hub.channel(CHAT_LOCATION)
        return [e.payload for e in channel.recent(100, readable=lambda e: self.hub.readable(e, keys))]

    def test_a_targeted_event_is_in_the_history_of_its_holder_only(self) -> None:
        self.successResultOf(self.chat.join("carl", "session-carl"))
        self.successResultOf(self.chat.join("ann", "session-ann"))
        self.successResultOf(self.hub.event([CARL], "for carl only"))
        self.assertIn("for carl only", self.history_for("session-carl"))
        self.assertNotIn("for carl only", self.history_for("session-ann"))
        self.assertNotIn("for carl only", self.history_for("no-session-at-all"))
        # Room events stay readable by anyone about to join.
        self.assertIn("carl joined", self.history_for("no-session-at-all"))

    def test_a_later_holder_of_the_nickname_does_not_inherit_its_events(self) -> None:
        self.successResultOf(self.chat.join("carl", "session-carl"))
        self.successResultOf(self.hub.event([CARL], "carl's secret"))
        self.clock.advance(10)  # carl never connected: carl leaves, the nickname is free
        self.assertIsNone(self.chat.holder_of("carl"))
        self.successResultOf(self.chat.claim("carl", "session-mallory"))
        self.successResultOf(self.chat.join("carl", "session-mallory"))
        listener = Recorder()
        subscription = self.hub.subscribe(CARL, listener, last_event_id=0)
        self.assertNotIn("carl's secret", [e.payload for e in subscription.backlog])
        self.assertNotIn("carl's secret", self.history_for("session-mallory"))

    def test_the_same_session_taking_the_nickname_back_reads_what_it_was_sent(self) -> None:
        self.successResultOf(self.chat.join("carl", "session-carl"))
        self.successResultOf(self.hub.event([CARL], "for carl"))
        listener = Recorder()
        subscription = self.hub.subscribe(CARL, listener, last_event_id=0)
        self.assertIn("for carl", [e.payload for e in subscription.backlog])

    def test_an_event_to_a_key_nobody_holds_is_read_by_nobody(self) -> None:
        self.successResultOf(self.hub.event([CARL], "to nobody yet"))
        self.successResultOf(self.chat.join("carl", "session-later"))
        subscription = self.hub.subscribe(CARL, Recorder(), last_event_id=0)
        self.assertNotIn("to nobody yet", [e.payload for e in subscription.backlog])
        self.assertNotIn("to nobody yet", self.history_for("session-later"))

    def test_a_live_targeted_event_reaches_its_holder(self) -> None:
        self.successResultOf(self.chat.claim("carl", "session-carl"))
        listener = Recorder()
        self.hub.subscribe(CARL, listener)
        self.successResultOf(self.hub.event([CARL], "live"))
        self.assertEqual(listener.payloads, ["live"])

    def test_room_events_reach_members_from_their_join_on(self) -> None:
        self.successResultOf(self.chat.join("ann", "session-ann"))
        self.successResultOf(self.chat.msg("ann", "session-ann", "before ben"))
        self.successResultOf(self.chat.join("ben", "session-ben"))
        self.clock.advance(1)
        self.successResultOf(self.chat.msg("ann", "session-ann", "after ben"))
        subscription = self.hub.subscribe(make_key("ben", "0", CHAT_LOCATION), Recorder(), last_event_id=0)
        self.assertEqual([e.payload for e in subscription.backlog], ["ben joined", "<b>ann</b> after ben"])
