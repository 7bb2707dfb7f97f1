"""Renaming a member in one step: ChatRoom.rename, driven by a task.Clock."""

from __future__ import annotations

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.chat import CHAT_LOCATION, ChatRoom
from cherrychat.errors import NotYours, Taken
from cherrychat.hub import Hub
from tests.unit.unit_support import Recorder

A = "session-a"
B = "session-b"
TIMEOUT = 10.0


def key(user: str, label: str = "0") -> str:
    return f"{user}, {label}, {CHAT_LOCATION}"


class RecordingMembership:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def member_saved(self, location, user, session, labels, since):
        self.calls.append(("saved", user, session, sorted(labels)))
        return succeed(None)

    def member_removed(self, location, user):
        self.calls.append(("removed", user))
        return succeed(None)


class RenameTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.membership = RecordingMembership()
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=TIMEOUT, membership=self.membership)

    def members(self) -> list[str]:
        return self.successResultOf(self.chat.members())

    def rename(self, old: str, new: str, session: str, label: str = "0"):
        return self.successResultOf(self.chat.rename(old, new, session, label))

    def history(self) -> list[str]:
        return [event.payload for event in self.hub.channel(CHAT_LOCATION).recent(1000)]

    def connect(self, user: str, session: str, label: str = "0") -> Recorder:
        self.chat.claim(user, session)
        listener = Recorder()
        self.hub.subscribe(key(user, label), listener)
        return listener

    def member(self, user: str, session: str) -> Recorder:
        listener = self.connect(user, session)
        self.successResultOf(self.chat.join(user, session))
        self.clock.advance(1)  # the presence window: the join notice goes out
        return listener

    def test_rename_tells_the_room_and_keeps_membership(self) -> None:
        self.member("ann", A)
        ben = self.member("ben", B)
        self.assertIs(self.rename("ann", "anna", A, "0"), True)
        self.assertEqual(self.history(), ["ann joined", "ben joined", "ann is now anna"])
        self.assertEqual(ben.payloads[-1], "ann is now anna")
        self.assertEqual(self.members(), ["anna", "ben"])
        self.assertEqual(self.chat.holder_of("anna"), A)
        # The renamed member speaks under the new name at once; the old name is no one's.
        self.chat.msg("anna", A, "hello")
        self.assertEqual(self.history()[-1], "<b>anna</b> hello")
        self.failureResultOf(self.chat.msg("ann", A, "as the old name"), NotYours)
        self.assertEqual(self.membership.calls[-2:], [("removed", "ann"), ("saved", "anna", A, ["0"])])

    def test_the_old_name_is_free_at_once(self) -> None:
        self.member("ann", A)
        self.rename("ann", "anna", A)
        self.assertIsNone(self.chat.holder_of("ann"))
        self.assertTrue(self.successResultOf(self.chat.join("ann", B)))   # no wait for the presence timeout
        self.assertEqual(self.members(), ["ann", "anna"])

    def test_events_after_the_rename_go_to_the_new_keys(self) -> None:
        old = self.member("ann", A)
        self.member("ben", B)
        self.rename("ann", "anna", A)
        self.assertIn(key("anna"), self.chat.member_keys())
        self.assertNotIn(key("ann"), self.chat.member_keys())
        seen = len(old.events)
        self.chat.msg("ben", B, "after")
        self.assertEqual(len(old.events), seen)   # the old key hears nothing more
        new = self.connect("anna", A)
        self.assertEqual(new.payloads, [])
        self.chat.msg("ben", B, "to anna")
        self.assertEqual(new.payloads, ["<b>ben</b> to anna"])

    def test_names_are_escaped(self) -> None:
        self.member("<i>", A)
        self.rename("<i>", "&b", A)
        self.assertEqual(self.history()[-1], "&lt;i&gt; is now &amp;b")

    def test_a_name_held_by_another_session_is_refused(self) -> None:
        self.member("ann", A)
        self.member("ben", B)
        before = self.history()
        self.failureResultOf(self.chat.rename("ann", "ben", A), Taken)
        self.connect("zed", B)   # reserved by B's connection, not joined
        self.failureResultOf(self.chat.rename("ann", "zed", A), Taken)
        self.assertEqual(self.history(), before)
        self.assertEqual(self.members(), ["ann", "ben"])

    def test_only_the_holder_renames(self) -> None:
        self.member("ann", A)
        before = self.history()
        self.failureResultOf(self.chat.rename("ann", "anna", B), NotYours)
        self.failureResultOf(self.chat.rename("nobody", "anna", B), NotYours)
        self.connect("kim", B)   # claimed but not joined
        self.failureResultOf(self.chat.rename("kim", "kimberly", B), NotYours)
        self.assertEqual(self.history(), before)
        self.assertEqual(self.chat.holder_of("ann"), A)

    def test_renaming_to_another_own_member_is_refused(self) -> None:
        self.member("ann", A)
        self.member("ann2", A)
        self.failureResultOf(self.chat.rename("ann", "ann2", A), Taken)
        self.assertEqual(self.members(), ["ann", "ann2"])

    def test_a_repeated_rename_changes_nothing(self) -> None:
        self.member("ann", A)
        self.rename("ann", "anna", A)
        before = self.history()
        self.assertIs(self.rename("ann", "anna", A), False)   # the answer was lost
        self.assertIs(self.rename("anna", "anna", A), False)
        self.assertEqual(self.history(), before)

    def test_own_reservation_of_the_new_name_is_folded_in(self) -> None:
        old = self.member("ann", A)
        new = self.connect("anna", A)        # the page connected under the new name first
        self.hub.unsubscribe(key("ann"), old)
        self.assertTrue(self.rename("ann", "anna", A))
        self.clock.advance(TIMEOUT * 3)
        self.assertEqual(self.members(), ["anna"])   # online under the new name: stays
        self.assertIn("ann is now anna", new.payloads)

    def test_renamed_member_without_a_connection_leaves_after_the_timeout(self) -> None:
        self.member("ben", B)                   # someone to be told
        old = self.member("ann", A)
        self.rename("ann", "anna", A)
        self.hub.unsubscribe(key("ann"), old)   # the page closes its old connection ...
        self.clock.advance(TIMEOUT - 1)
        self.assertEqual(self.members(), ["anna", "ben"])
        self.clock.advance(2)                   # ... and never comes back as anna
        self.assertEqual(self.members(), ["ben"])
        self.assertEqual(self.history()[-1], "anna left")
        self.assertEqual(self.history().count("ann left"), 0)

    def test_renamed_member_who_reconnects_stays(self) -> None:
        old = self.member("ann", A)
        self.rename("ann", "anna", A)
        self.hub.unsubscribe(key("ann"), old)
        self.connect("anna", A)
        self.clock.advance(TIMEOUT * 5)
        self.assertEqual(self.members(), ["anna"])
        self.assertNotIn("anna left", self.history())

    def test_the_old_names_leave_timer_does_not_fire(self) -> None:
        old = self.member("ann", A)
        self.hub.unsubscribe(key("ann"), old)   # ann's leave timer starts
        self.clock.advance(TIMEOUT / 2)
        self.rename("ann", "anna", A)
        self.connect("anna", A)
        self.chat.join("ann", B)                # someone else takes the old name
        self.clock.advance(TIMEOUT * 2)
        self.assertEqual(self.members(), ["anna"])   # ben's "ann" never connected
        self.assertNotIn("anna left", self.history())
