"""Members survive a restart: the room records joins and leaves, and takes them back."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cherrychat.chat import CHAT_LOCATION, ChatRoom
from cherrychat.errors import NotYours, Taken
from cherrychat.hub import Hub
from cherrychat.store import HistoryStore, StoredMember
from tests.unit.unit_support import Recorder

A, B = "session-a", "session-b"


class RecordingMembership:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def member_saved(self, location, user, session, labels, since):
        self.calls.append(("saved", location, user, session, sorted(labels)))
        return succeed(None)

    def member_removed(self, location, user):
        self.calls.append(("removed", location, user))
        return succeed(None)


class RoomMembershipTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.membership = RecordingMembership()
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=10.0, membership=self.membership)

    def test_joins_and_leaves_are_recorded(self) -> None:
        self.chat.join("ann", A)
        self.chat.join("ann", A)  # already a member with that label: nothing new
        self.chat.join("ann", A, "1")
        self.clock.advance(10.0)
        self.assertEqual(self.membership.calls, [
            ("saved", CHAT_LOCATION, "ann", A, ["0"]),
            ("saved", CHAT_LOCATION, "ann", A, ["0", "1"]),
            ("removed", CHAT_LOCATION, "ann"),
        ])

    def test_a_claimed_nickname_that_never_joined_is_not_recorded(self) -> None:
        self.chat.claim("ann", A)
        self.clock.advance(10.0)
        self.assertEqual(self.membership.calls, [])

    def test_restored_members_hear_what_is_said_before_they_reconnect(self) -> None:
        self.chat.restore([StoredMember("ann", A, ["0"], 0), StoredMember("ben", B, ["0"], 0)])
        self.assertEqual(self.successResultOf(self.chat.members()), ["ann", "ben"])
        self.chat.msg("ann", A, "anyone there?")
        # Ben's page comes back a moment later and finds the message queued for its key.
        listener = Recorder()
        subscription = self.hub.subscribe(f"ben, 0, {CHAT_LOCATION}", listener)
        self.assertEqual([e.payload for e in subscription.backlog], ["<b>ann</b> anyone there?"])
        # The nicknames still belong to their sessions; rejoining announces nothing.
        self.failureResultOf(self.chat.msg("ben", A, "not mine"), NotYours)
        self.failureResultOf(self.chat.join("ben", A), Taken)
        self.assertFalse(self.successResultOf(self.chat.join("ben", B)))
        self.assertEqual(len(self.hub.channel(CHAT_LOCATION).recent(10)), 1)

    def test_a_restored_member_who_does_not_come_back_leaves_after_the_timeout(self) -> None:
        self.chat.restore([StoredMember("ann", A, ["0"], 0), StoredMember("ben", B, ["0"], 0)])
        ann = Recorder()
        self.chat.claim("ann", A)
        self.hub.subscribe(f"ann, 0, {CHAT_LOCATION}", ann)
        self.clock.advance(9.9)
        self.assertEqual(self.successResultOf(self.chat.members()), ["ann", "ben"])
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(self.chat.members()), ["ann"])
        self.assertEqual(ann.payloads, ["ben left"])
        self.assertEqual(self.membership.calls, [("removed", CHAT_LOCATION, "ben")])


class StoreMembershipTests(TestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = os.path.join(self.directory, "chat.sqlite3")

    @inlineCallbacks
    def test_members_are_written_in_order_and_read_back(self) -> None:
        clock = Clock()
        store = HistoryStore(self.path, reactor)
        hub = Hub(clock, journal=store)
        store.load_into(hub)
        store.start()
        chat = ChatRoom(hub, clock, presence_timeout=10.0, membership=store)
        yield chat.join("ann", A)
        yield chat.join("ben", B)
        yield chat.join("ben", B, "1")
        yield chat.join("cat", A)
        clock.advance(10.0)  # nobody is connected: all three leave
        rejoined = chat.join("ann", A)
        yield rejoined
        since = hub.member_since(f"ann, 0, {CHAT_LOCATION}")
        yield store.stop()
        self.assertEqual(HistoryStore(self.path, reactor).load_members(CHAT_LOCATION), [StoredMember("ann", A, ["0"], since)])
        self.assertEqual(HistoryStore(self.path, reactor).load_members("/elsewhere"), [])
