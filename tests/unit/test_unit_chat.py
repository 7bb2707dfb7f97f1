"""Unit tests of cherrychat.chat: join, msg, ownership of nicknames, presence and leave."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.chat import CHAT_LOCATION, ChatRoom
from cherrychat.errors import NotYours, Taken
from cherrychat.hub import Hub
from tests.unit.unit_support import Recorder

A = "session-a"
B = "session-b"
#: which session each test browser is
SESSIONS = {"ann": A, "ben": B, "<i>&": A}


def key(user: str, label: str = "0") -> str:
    return f"{user}, {label}, {CHAT_LOCATION}"


class ChatTestCase(SynchronousTestCase):
    timeout = 10.0

    def setUp(self):
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=self.timeout)

    def members(self) -> list[str]:
        return self.successResultOf(self.chat.members())

    def settle(self) -> None:
        """Let the presence window pass, so gathered joins and leaves go out."""
        self.clock.advance(self.chat._presence.window)

    def history(self) -> list[str]:
        return [event.payload for event in self.hub.channel(CHAT_LOCATION).recent(1000)]

    def connect(self, user: str, label: str = "0", session: str | None = None) -> Recorder:
        """A comet connection of ``user``, as web.py makes one: the session claims the
        nickname, then a transport attaches a listener to its key."""
        self.successResultOf(self.chat.claim(user, session or SESSIONS[user]))
        listener = Recorder()
        subscription = self.hub.subscribe(key(user, label), listener)
        listener.events.extend(subscription.backlog)
        return listener

    def disconnect(self, user: str, listener: Recorder, label: str = "0") -> None:
        self.hub.unsubscribe(key(user, label), listener)


class JoinTests(ChatTestCase):
    def test_join_publishes_joined_once(self):
        ann = self.connect("ann")
        self.assertTrue(self.successResultOf(self.chat.join("ann", A)))
        self.assertEqual(self.history(), ["ann joined"])
        self.assertEqual(ann.payloads, ["ann joined"])
        self.assertEqual(self.members(), ["ann"])

    def test_rejoin_is_harmless_and_silent(self):
        self.connect("ann")
        self.chat.join("ann", A)
        self.assertFalse(self.successResultOf(self.chat.join("ann", A)))
        self.assertFalse(self.successResultOf(self.chat.join("ann", A, "1")))  # another label of the same session
        self.assertEqual(self.history(), ["ann joined"])
        self.assertEqual(self.members(), ["ann"])

    def test_every_member_hears_of_a_join(self):
        ann, ben = self.connect("ann"), self.connect("ben")
        self.chat.join("ann", A)
        self.chat.join("ben", B)
        self.settle()
        self.assertEqual(ann.payloads, ["ann joined", "ben joined"])
        self.assertEqual(ben.payloads, ["ben joined"])

    def test_joined_is_escaped(self):
        self.connect("<i>&")
        self.chat.join("<i>&", A)
        self.assertEqual(self.history(), ["&lt;i&gt;&amp; joined"])

    def test_another_session_cannot_join_a_held_nickname(self):
        self.connect("ann")
        self.chat.join("ann", A)
        caught = self.failureResultOf(self.chat.join("ann", B), Taken)
        self.assertEqual(caught.value.code, 409)
        self.assertEqual(self.history(), ["ann joined"])
        self.assertEqual(self.chat.holder_of("ann"), A)

    def test_another_session_cannot_join_a_claimed_nickname(self):
        self.chat.claim("ann", A)
        self.failureResultOf(self.chat.join("ann", B), Taken)
        self.assertEqual(self.history(), [])
        self.assertEqual(self.members(), [])

    def test_claim_refuses_another_session(self):
        self.chat.join("ann", A)
        caught = self.failureResultOf(self.chat.claim("ann", B), NotYours)
        self.assertEqual(caught.value.code, 403)
        self.chat.claim("ann", A)  # the holder may claim again
        self.assertEqual(self.chat.holder_of("ann"), A)

    def test_members_and_member_keys(self):
        self.chat.claim("zed", A)  # claimed but not joined: not a member
        self.chat.join("ann", A)
        self.chat.join("ann", A, "tab2")
        self.chat.join("ben", B)
        self.assertEqual(self.members(), ["ann", "ben"])
        self.assertEqual(
            sorted(self.chat.member_keys()),
            sorted([key("ann"), key("ann", "tab2"), key("ben")]),
        )
        self.assertIsNone(self.chat.holder_of("nobody"))


class MsgTests(ChatTestCase):
    def test_msg_reaches_every_member(self):
        ann, ben = self.connect("ann"), self.connect("ben")
        self.chat.join("ann", A)
        self.chat.join("ben", B)
        self.settle()
        event_id = self.successResultOf(self.chat.msg("ann", A, "hello"))
        self.assertEqual(ann.payloads[-1], "<b>ann</b> hello")
        self.assertEqual(ben.payloads[-1], "<b>ann</b> hello")
        self.assertEqual(event_id, self.hub.channel(CHAT_LOCATION).last_id)
        self.assertEqual(event_id, 3)

    def test_msg_escapes_name_and_text(self):
        name = "<img src=x onerror=alert(1)>"
        self.chat.join(name, A)
        self.chat.msg(name, A, "<img src=x onerror=alert(1)> & \"q\" 'a' </b>")
        self.assertEqual(
            self.history()[-1],
            "<b>&lt;img src=x onerror=alert(1)&gt;</b> "
            "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#x27;a&#x27; &lt;/b&gt;",
        )

    def test_msg_of_another_sessions_nickname_is_not_yours(self):
        ann = self.connect("ann")
        self.chat.join("ann", A)
        caught = self.failureResultOf(self.chat.msg("ann", B, "I am ann"), NotYours)
        self.assertEqual(caught.value.code, 403)
        self.assertEqual(self.history(), ["ann joined"])
        self.assertEqual(ann.payloads, ["ann joined"])

    def test_msg_before_join_is_not_yours(self):
        self.chat.claim("ann", A)
        self.failureResultOf(self.chat.msg("ann", A, "hi"), NotYours)
        self.failureResultOf(self.chat.msg("nobody", A, "hi"), NotYours)
        self.assertEqual(self.history(), [])

    def test_msg_goes_to_members_only(self):
        outsider = self.connect("zed", session=B)
        self.chat.join("ann", A)
        self.chat.msg("ann", A, "members only")
        self.assertEqual(outsider.payloads, [])


class PresenceTests(ChatTestCase):
    def test_member_whose_connections_are_gone_leaves_after_the_timeout(self):
        ann, ben = self.connect("ann"), self.connect("ben")
        self.chat.join("ann", A)
        self.chat.join("ben", B)
        self.settle()
        self.disconnect("ann", ann)
        self.clock.advance(self.timeout - 0.1)
        self.assertEqual(self.members(), ["ann", "ben"])
        self.clock.advance(0.2)
        self.settle()
        self.assertEqual(self.members(), ["ben"])
        self.assertEqual(ben.payloads, ["ben joined", "ann left"])
        self.assertEqual(ann.payloads, ["ann joined", "ben joined"])  # ann hears nothing after
        self.assertEqual(self.history().count("ann left"), 1)
        # The nickname is free for another session, which starts afresh.
        self.assertIsNone(self.chat.holder_of("ann"))
        self.assertTrue(self.successResultOf(self.chat.join("ann", B)))
        self.assertEqual(self.chat.holder_of("ann"), B)
        newcomer = self.connect("ann", session=B)
        self.assertEqual(newcomer.payloads, ["ann joined"])

    def test_leave_needs_all_connections_gone(self):
        ben = self.connect("ben")
        self.chat.join("ben", B)
        first, second = self.connect("ann"), self.connect("ann", "1")
        self.chat.join("ann", A)
        self.disconnect("ann", first)
        self.clock.advance(self.timeout * 3)
        self.assertEqual(self.members(), ["ann", "ben"])
        self.disconnect("ann", second, "1")
        self.clock.advance(self.timeout + 1)
        self.assertEqual(self.members(), ["ben"])
        self.assertEqual(ben.payloads[-1], "ann left")

    def test_reconnect_inside_the_timeout_is_no_leave_and_no_join(self):
        ben = self.connect("ben")
        self.chat.join("ben", B)
        ann = self.connect("ann")
        self.chat.join("ann", A)
        self.disconnect("ann", ann)
        self.clock.advance(self.timeout / 2)
        ann = self.connect("ann")
        self.assertFalse(self.successResultOf(self.chat.join("ann", A)))  # the page rejoins after a reconnect
        self.clock.advance(self.timeout * 5)
        self.assertEqual(self.members(), ["ann", "ben"])
        self.assertEqual(ben.payloads, ["ben joined", "ann joined"])
        self.assertEqual(self.history(), ["ben joined", "ann joined"])

    def test_a_join_without_connection_expires(self):
        ben = self.connect("ben")
        self.chat.join("ben", B)
        self.chat.join("ann", A)
        self.clock.advance(self.timeout + 0.1)
        self.settle()
        self.assertEqual(self.members(), ["ben"])
        self.assertEqual(ben.payloads, ["ben joined", "ann joined", "ann left"])
        self.assertIsNone(self.chat.holder_of("ann"))

    def test_a_claim_without_connection_expires_silently(self):
        ben = self.connect("ben")
        self.chat.join("ben", B)
        self.chat.claim("ann", A)
        self.clock.advance(self.timeout + 0.1)
        self.assertIsNone(self.chat.holder_of("ann"))
        self.assertEqual(ben.payloads, ["ben joined"])
        self.chat.claim("ann", B)  # free again

    def test_the_last_member_leaving_publishes_nothing(self):
        ann = self.connect("ann")
        self.chat.join("ann", A)
        self.disconnect("ann", ann)
        self.clock.advance(self.timeout + 1)
        self.assertEqual(self.members(), [])
        self.assertEqual(self.history(), ["ann joined"])

    def test_connections_elsewhere_do_not_count(self):
        self.chat.join("ann", A)
        listener = Recorder()
        self.hub.subscribe("ann, 0, /elsewhere", listener)
        self.clock.advance(self.timeout + 1)
        self.assertEqual(self.members(), [])

    def test_stop_cancels_leave_timers(self):
        self.chat.join("ann", A)
        self.chat.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.members(), ["ann"])
