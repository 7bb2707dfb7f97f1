"""Chat events share one member snapshot until membership changes."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.chat import ChatRoom
from cherrychat.hub import Hub


class MemberSnapshotTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.chat = ChatRoom(self.hub, self.clock)
        for name in ("ann", "ben", "cat"):
            self.chat.join(name, f"session-{name}")

    def recipients(self):
        return [event.recipients for event in self.hub.channel("/cherrychat").events]

    def test_messages_between_membership_changes_share_one_recipient_set(self) -> None:
        for n in range(5):
            self.chat.msg("ann", "session-ann", f"m{n}")
        shared = self.recipients()[-5:]
        self.assertTrue(all(r is shared[0] for r in shared))
        self.assertEqual(shared[0], {"ann, 0, /cherrychat", "ben, 0, /cherrychat", "cat, 0, /cherrychat"})

    def test_a_join_makes_a_new_snapshot_and_leaves_old_events_alone(self) -> None:
        self.chat.msg("ann", "session-ann", "before")
        before = self.recipients()[-1]
        self.chat.join("dan", "session-dan")
        self.chat.msg("ann", "session-ann", "after")
        after = self.recipients()[-1]
        self.assertNotIn("dan, 0, /cherrychat", before)
        self.assertIn("dan, 0, /cherrychat", after)

    def test_a_leave_makes_a_new_snapshot(self) -> None:
        self.clock.advance(self.chat.presence_timeout + 1)  # nobody is connected: all leave
        self.assertEqual(self.chat.member_keys(), frozenset())
