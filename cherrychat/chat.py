"""The one chat room of the tutorial: nicknames, members, join, msg and leave.

This is what the tutorial's ``ChatServer`` was, plus what it left out: a nickname belongs
to the browser session that took it, and a member whose connections have all been gone for
the presence timeout leaves, freeing the nickname.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Iterable, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from cherrychat.errors import NotYours, Taken
from cherrychat.hub import Hub, InvalidKey, make_key, parse_key

CHAT_LOCATION = "/cherrychat"


def joined_payload(user: str) -> str:
    """The event every member gets when ``user`` joins: ``NAME joined``, escaped."""
    return f"{escape(user)} joined"


def message_payload(user: str, text: str) -> str:
    """A chat message as every member gets it: ``<b>NAME</b> TEXT``, both escaped."""
    return f"<b>{escape(user)}</b> {escape(text)}"


def left_payload(user: str) -> str:
    """The event every member gets when ``user`` leaves: ``NAME left``, escaped."""
    return f"{escape(user)} left"


class Membership(Protocol):
    """Where a room records its members, so that they are still members after a restart."""

    def member_saved(self, location: str, user: str, session: str, labels: Iterable[str]) -> None:
        """``user``, held by ``session``, is a member with these session labels."""

    def member_removed(self, location: str, user: str) -> None:
        """``user`` left."""


@dataclass(eq=False)
class _Nickname:
    """A held nickname: who holds it, whether it joined, and its connected keys."""

    session: str
    joined: bool = False
    labels: set[str] = field(default_factory=set)
    online_keys: set[str] = field(default_factory=set)
    expiry: IDelayedCall | None = None


class ChatRoom:
    """The chat room at ``location``, publishing through ``hub``.

    @param presence_timeout: seconds after a nickname's last connection went away
        before its member leaves and the nickname is free again.
    """

    def __init__(
        self,
        hub: Hub,
        clock: IReactorTime,
        location: str = CHAT_LOCATION,
        presence_timeout: float = 10.0,
        membership: Membership | None = None,
    ):
        self.hub = hub
        self.clock = clock
        self.location = location
        self.presence_timeout = presence_timeout
        self.membership = membership
        self._nicknames: dict[str, _Nickname] = {}
        self._member_keys: frozenset[str] | None = None
        hub.observe_presence(self._presence_changed)

    # -- the tutorial's API ----------------------------------------------------------

    def claim(self, user: str, session: str) -> None:
        """Reserve ``user`` for ``session``, as a comet connection does before joining.

        @raise NotYours: the nickname is held by another session.
        """
        self._hold(user, session, NotYours)

    def join(self, user: str, session: str, label: str = "0") -> bool:
        """Make ``user`` a member with orbit key ``user, label, location``.

        Returns ``True`` when the nickname joined now and ``False`` when it was already a
        member (joining again is harmless, so a page may rejoin after every reconnect).

        @raise Taken: the nickname is held by another session.
        """
        holder = self._hold(user, session, Taken)
        newly_joined = not holder.joined
        if not newly_joined and label in holder.labels:
            return False
        holder.joined = True
        holder.labels.add(label)
        self._member_keys = None
        if self.membership is not None:
            self.membership.member_saved(self.location, user, holder.session, holder.labels)
        if not holder.online_keys:
            self._start_expiry(user, holder)
        if newly_joined:
            self._publish(joined_payload(user))
        return newly_joined

    def msg(self, user: str, session: str, text: str) -> int:
        """Send ``<b>user</b> text`` (both escaped) to every member; returns the event id.

        @raise NotYours: ``user`` is not a member held by ``session``.
        """
        holder = self._nicknames.get(user)
        if holder is None or not holder.joined:
            raise NotYours(f"{user} has not joined")
        if holder.session != session:
            raise NotYours(f"{user} belongs to another session")
        return self._publish(message_payload(user, text))

    def rename(self, old: str, new: str, session: str, label: str = "0") -> bool | Deferred:
        """Rename the member ``old`` of ``session`` to ``new`` in one step.

        The member keeps its membership (nobody is told it left or joined); ``old`` is free
        at once and every member is told ``OLD is now NEW`` (both escaped). The member's
        orbit keys become ``new, LABEL, location``: connections under the old name receive
        nothing more and should reconnect under the new one. Returns ``True`` once renamed
        (with a hub that stores events: a Deferred firing then), and ``False`` when there is
        nothing to do because ``new`` is already this session's member (a repeated request).

        @raise NotYours: ``old`` is not a member held by ``session``.
        @raise Taken: ``new`` is held by another session, or is already another member.
        """
        holder = self._nicknames.get(old)
        target = self._nicknames.get(new)
        if holder is None or not holder.joined or holder.session != session:
            if old != new and target is not None and target.joined and target.session == session:
                return False   # a retry of a rename that went through
            raise NotYours(f"{old} is not your member" if holder is None or holder.session != session
                           else f"{old} has not joined")
        if new == old:
            return False
        if target is not None and (target.session != session or target.joined):
            raise Taken(f"nickname {new} is taken")
        # A reservation of ``new`` by this session (a connection opened under the new name
        # before renaming) is folded in: its connections are the renamed member's now.
        online = set(target.online_keys) if target is not None else set()
        for reservation in (holder, target):
            if reservation is not None and reservation.expiry is not None and reservation.expiry.active():
                reservation.expiry.cancel()
        del self._nicknames[old]
        holder.expiry = None
        holder.online_keys = online
        holder.labels.add(label)
        self._nicknames[new] = holder
        self._member_keys = None
        for old_label in holder.labels:
            self.hub.forget(make_key(old, old_label, self.location))
        if self.membership is not None:
            self.membership.member_removed(self.location, old)
            self.membership.member_saved(self.location, new, holder.session, holder.labels)
        if not online:
            self._start_expiry(new, holder)
        published = self._publish(f"{escape(old)} is now {escape(new)}")
        if isinstance(published, Deferred):
            return published.addCallback(lambda _: True)
        return True

    def members(self) -> list[str]:
        """The nicknames that joined and have not left, sorted."""
        return sorted(user for user, holder in self._nicknames.items() if holder.joined)

    def holder_of(self, user: str) -> str | None:
        """The session holding ``user``, or ``None`` when the nickname is free."""
        holder = self._nicknames.get(user)
        return holder.session if holder is not None else None

    def restore(self, members: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        """Take back the members of a previous run: (user, session, labels).

        They are members again at once, so that what is said before their pages reconnect
        reaches them; one whose page does not come back within the presence timeout leaves.
        """
        for user, session, labels in members:
            holder = self._nicknames[user] = _Nickname(session, joined=True, labels=set(labels))
            self._start_expiry(user, holder)
        self._member_keys = None

    def member_keys(self) -> frozenset[str]:
        """The orbit keys of every member: where chat events go.

        One snapshot serves every event until membership changes, so retained events
        share it rather than each holding a copy of the member list.
        """
        if self._member_keys is None:
            self._member_keys = frozenset(
                make_key(user, label, self.location)
                for user, holder in self._nicknames.items()
                if holder.joined
                for label in holder.labels
            )
        return self._member_keys

    # -- internals -------------------------------------------------------------------

    def _hold(self, user: str, session: str, refusal: type[NotYours] | type[Taken]) -> _Nickname:
        holder = self._nicknames.get(user)
        if holder is None:
            holder = self._nicknames[user] = _Nickname(session)
            self._start_expiry(user, holder)
        elif holder.session != session:
            raise refusal(f"nickname {user} is taken")
        return holder

    def _publish(self, payload: str) -> int | Deferred:
        events = self.hub.event(self.member_keys(), payload)
        if isinstance(events, Deferred):
            # A hub with a backplane: the ids come once the backplane stored the event.
            return events.addCallback(lambda ids: ids[0] if ids else self.hub.channel(self.location).last_id)
        return events[0].id if events else self.hub.channel(self.location).last_id

    def _presence_changed(self, key: str, online: bool) -> None:
        try:
            user, _, location = parse_key(key)
        except InvalidKey:
            return
        holder = self._nicknames.get(user)
        if location != self.location or holder is None:
            return
        if online:
            holder.online_keys.add(key)
            if holder.expiry is not None and holder.expiry.active():
                holder.expiry.cancel()
            holder.expiry = None
        else:
            holder.online_keys.discard(key)
            if not holder.online_keys:
                self._start_expiry(user, holder)

    def _start_expiry(self, user: str, holder: _Nickname) -> None:
        if holder.expiry is None or not holder.expiry.active():
            holder.expiry = self.clock.callLater(self.presence_timeout, self._leave, user, holder)

    def _leave(self, user: str, holder: _Nickname) -> None:
        if self._nicknames.get(user) is not holder or holder.online_keys:
            return
        del self._nicknames[user]
        self._member_keys = None
        for label in holder.labels:
            self.hub.forget(make_key(user, label, self.location))
        if holder.joined:
            if self.membership is not None:
                self.membership.member_removed(self.location, user)
            self._publish(left_payload(user))

    def stop(self) -> None:
        """Cancel pending leave timers, for a daemon that is shutting down."""
        for holder in self._nicknames.values():
            if holder.expiry is not None and holder.expiry.active():
                holder.expiry.cancel()
