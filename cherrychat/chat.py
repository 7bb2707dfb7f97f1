"""The one chat room of the tutorial: nicknames, members, join, msg and leave.

This is what the tutorial's ``ChatServer`` was, plus what it left out: a nickname belongs
to the browser session that took it, and a member whose connections have all been gone for
the presence timeout leaves, freeing the nickname.

The room costs the same per message and per membership change however big it is: a
message is one room event (:meth:`Hub.broadcast`), whose readers follow from each member's
join id kept by the hub, and joins and leaves are gathered into presence notices
(:mod:`cherrychat.presence`). Every operation returns a Deferred that fires once what it
did is stored (a ``200`` is a promise), or fails with a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any, Iterable, Protocol

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from cherrychat.errors import NotYours, Refused, Taken, Unavailable
from cherrychat.hub import Hub, InvalidKey, make_key, parse_key
from cherrychat.presence import PresenceBatcher
from cherrychat.validation import MAX_LABELS_PER_NICKNAME, too_many_labels
from cherrychat.validation import nickname_identity as identity

CHAT_LOCATION = "/cherrychat"
#: seconds after a member's last connection closed before the member leaves (``--presence-timeout``)
DEFAULT_PRESENCE_TIMEOUT = 10.0


def joined_payload(user: str) -> str:
    """The event every member gets when ``user`` joins: ``NAME joined``, escaped."""
    return f"{escape(user)} joined"


def message_payload(user: str, text: str) -> str:
    """A chat message as every member gets it: ``<b>NAME</b> TEXT``, both escaped."""
    return f"<b>{escape(user)}</b> {escape(text)}"


def left_payload(user: str) -> str:
    """The event every member gets when ``user`` leaves: ``NAME left``, escaped."""
    return f"{escape(user)} left"


def nickname_taken(user: str, refusal: type[NotYours] | type[Taken]) -> Refused:
    """The refusal of a nickname another session holds: 403 to use it, 409 to join."""
    return refusal(f"nickname {user} is taken")


def not_joined(user: str) -> NotYours:
    """The refusal of a message from a nickname that is not a member."""
    return NotYours(f"{user} has not joined")


def not_yours(user: str) -> NotYours:
    """The refusal of a message from another session's nickname."""
    return NotYours(f"{user} belongs to another session")


class Membership(Protocol):
    """Where a room records its members, so that they are still members after a restart."""

    def member_saved(self, location: str, user: str, session: str, labels: Iterable[str], since: int) -> Deferred:
        """``user``, held by ``session``, is a member since id ``since`` with these labels;
        fires once stored."""

    def member_removed(self, location: str, user: str) -> Deferred:
        """``user`` left; fires once stored."""


class Room(Protocol):
    """What the web layer asks of a chat room, whichever store is behind it (this
    process, or Redis shared by several daemons). Every answer is a Deferred."""

    location: str

    def claim(self, user: str, session: str) -> Deferred:
        """Reserve ``user`` for ``session``; fails with NotYours when held by another."""

    def join(self, user: str, session: str, label: str = "0") -> Deferred:
        """Join; fires with whether the nickname joined now, once stored."""

    def msg(self, user: str, session: str, text: str) -> Deferred:
        """Send a message to every member; fires with its id once stored."""

    def members(self) -> Deferred:
        """Fires with the members' nicknames, sorted."""

    def rename(self, old: str, new: str, session: str, label: str = "0") -> Deferred:
        """Rename a member of ``session``; fires with whether it was renamed now."""

    def keys_of(self, session: str) -> list[str]:
        """The keys ``session`` reads with (for the history's targeted events)."""

    def start(self) -> None:
        """Start the room's timers and connections, once the reactor runs."""

    def stop(self) -> None:
        """Stop the room's timers."""


@dataclass(eq=False)
class _Nickname:
    """A held nickname: who holds it, whether it joined, and its connected keys."""

    name: str
    session: str
    joined: bool = False
    labels: set[str] = field(default_factory=set)
    online_keys: set[str] = field(default_factory=set)
    expiry: IDelayedCall | None = None


class ChatRoom:
    """The chat room at ``location``, publishing through ``hub``.

    @param presence_timeout: seconds after a nickname's last connection went away
        before its member leaves and the nickname is free again.
    @param membership: where members are stored (the SQLite store), or nowhere.
    @param presence_window: seconds over which joins and leaves are gathered into one notice.
    """

    def __init__(
        self,
        hub: Hub,
        clock: IReactorTime,
        location: str = CHAT_LOCATION,
        presence_timeout: float = DEFAULT_PRESENCE_TIMEOUT,
        membership: Membership | None = None,
        presence_window: float = 1.0,
    ):
        self.hub = hub
        self.clock = clock
        self.location = location
        self.presence_timeout = presence_timeout
        self.membership = membership
        self._nicknames: dict[str, _Nickname] = {}
        self._presence = PresenceBatcher(clock, self._publish_presence, presence_window)
        hub.guard(location)
        hub.observe_presence(self._presence_changed)

    # -- the tutorial's API ----------------------------------------------------------

    def claim(self, user: str, session: str) -> Deferred:
        """Reserve ``user`` for ``session``, as a comet connection does before joining.

        Fails with :class:`NotYours` when the nickname is held by another session.
        """
        try:
            self._hold(user, session, NotYours)
        except Refused as refusal:
            return fail(refusal)
        return succeed(None)

    def join(self, user: str, session: str, label: str = "0") -> Deferred:
        """Make ``user`` a member with orbit key ``user, label, location``.

        Fires with ``True`` when the nickname joined now and ``False`` when it was already
        a member (joining again is harmless, so a page may rejoin after every reconnect),
        once the membership is stored. Fails with :class:`Taken` when the nickname is held
        by another session.
        """
        try:
            self.hub.check_open()
            holder = self._hold(user, session, Taken)
        except Refused as refusal:
            return fail(refusal)
        newly_joined = not holder.joined
        if label in holder.labels:
            return succeed(newly_joined)
        if len(holder.labels) >= MAX_LABELS_PER_NICKNAME:
            return fail(too_many_labels())
        holder.joined = True
        holder.labels.add(label)
        since = self.hub.admit(make_key(holder.name, label, self.location))
        if not holder.online_keys:
            self._start_expiry(holder)
        steps = [self._save(holder, since)]
        if newly_joined:
            steps.append(self._presence.joined(holder.name))

        def undo(failure: Any) -> Any:
            # Not stored: the join did not happen.
            if self._nicknames.get(identity(user)) is holder and label in holder.labels:
                holder.labels.discard(label)
                self.hub.expel(make_key(holder.name, label, self.location))
                if not holder.labels:
                    holder.joined = False
            return failure

        return _first_failure(steps).addCallbacks(lambda _: newly_joined, undo)

    def msg(self, user: str, session: str, text: str) -> Deferred:
        """Send ``<b>user</b> text`` (both escaped) to every member; fires with the event
        id once stored.

        Fails with :class:`NotYours` when ``user`` is not a member held by ``session``.
        """
        holder = self._nicknames.get(identity(user))
        if holder is None or not holder.joined:
            return fail(not_joined(user))
        if holder.session != session:
            return fail(not_yours(user))
        # Gathered joins and leaves go out first: nobody reads a message from a member
        # before reading that the member joined.
        self._presence.flush_pending()
        try:
            return self.hub.broadcast(self.location, message_payload(holder.name, text))
        except Unavailable as refusal:
            return fail(refusal)

    def members(self) -> Deferred:
        """Fires with the nicknames that joined and have not left, sorted."""
        return succeed(sorted(holder.name for holder in self._nicknames.values() if holder.joined))

    def rename(self, old: str, new: str, session: str, label: str = "0") -> Deferred:
        """Rename the member ``old`` of ``session`` to ``new`` in one step.

        The member keeps its membership (nobody is told it left or joined); ``old`` is free
        at once and every member is told ``OLD is now NEW`` (both escaped). The member's orbit keys
        become ``new, LABEL, location``, members since the same id: connections under the
        old name receive nothing more and should reconnect under the new one. Fires with
        ``True`` once stored, and with ``False`` when there is nothing to do because
        ``new`` is already this session's member (a repeated request).

        Fails with :class:`NotYours` when ``old`` is not a member held by ``session``, and
        with :class:`Taken` when ``new`` is held by another session or is another member.
        """
        try:
            self.hub.check_open()
        except Refused as refusal:
            return fail(refusal)
        holder = self._nicknames.get(identity(old))
        target = self._nicknames.get(identity(new))
        if holder is None or not holder.joined or holder.session != session:
            if target is not None and target is not holder and target.joined and target.session == session:
                return succeed(False)  # a retry of a rename that went through
            return fail(NotYours(f"{old} is not your member" if holder is None or holder.session != session
                                 else f"{old} has not joined"))
        if new == holder.name:
            return succeed(False)
        if target is not None and target is not holder and (target.session != session or target.joined):
            return fail(nickname_taken(new, Taken))
        # A reservation of ``new`` by this session (a connection opened under the new name
        # before renaming) is folded in: its connections are the renamed member's now.
        online = set(target.online_keys) if target is not None and target is not holder else set()
        for reservation in (holder, target):
            if reservation is not None and reservation.expiry is not None and reservation.expiry.active():
                reservation.expiry.cancel()
            if reservation is not None:
                reservation.expiry = None
        old_name = holder.name
        old_keys = [make_key(old_name, old_label, self.location) for old_label in holder.labels]
        since = min((s for s in map(self.hub.member_since, old_keys) if s is not None), default=None)
        for key in old_keys:
            self.hub.expel(key)
        self.hub.release(self.location, old_name)
        del self._nicknames[identity(old_name)]
        holder.name = new
        holder.online_keys = online
        holder.labels.add(label)
        self._nicknames[identity(new)] = holder
        self.hub.hold(self.location, new)
        for new_label in holder.labels:
            self.hub.admit(make_key(new, new_label, self.location), since)
        if not online:
            self._start_expiry(holder)
        steps = []
        if self.membership is not None:
            steps.append(self.membership.member_removed(self.location, old_name))
        steps.append(self._save(holder, since if since is not None else self.hub.channel(self.location).next_id))
        # Gathered joins and leaves first, then the rename, in order. It is said in the
        # conversation (pages read "OLD is now NEW" and ask /who), not as a presence notice.
        self._presence.flush_pending()
        steps.append(self.hub.broadcast(self.location, f"{escape(old_name)} is now {escape(new)}"))
        return _first_failure(steps).addCallback(lambda _: True)

    def holder_of(self, user: str) -> str | None:
        """The session holding ``user``, or ``None`` when the nickname is free."""
        holder = self._nicknames.get(identity(user))
        return holder.session if holder is not None else None

    def member_keys(self) -> list[str]:
        """The orbit keys of every member (one per session label)."""
        return [
            make_key(holder.name, label, self.location)
            for holder in self._nicknames.values() if holder.joined for label in holder.labels
        ]

    def keys_of(self, session: str) -> list[str]:
        """The orbit keys of the nicknames ``session`` holds: what it may read."""
        return [
            make_key(holder.name, label, self.location)
            for holder in self._nicknames.values()
            if holder.session == session
            for label in (holder.labels or {"0"})
        ]

    def restore(self, members: Iterable[Any]) -> None:
        """Take back the members of a previous run (:class:`cherrychat.store.StoredMember`).

        They are members again at once, from the id they joined at, so that what is said
        before their pages reconnect reaches them; one whose page does not come back
        within the presence timeout leaves.
        """
        for member in members:
            holder = _Nickname(member.user, member.session, joined=True, labels=set(member.labels))
            self._nicknames[identity(member.user)] = holder
            self.hub.hold(self.location, member.user, member.since)
            for label in holder.labels:
                self.hub.admit(make_key(member.user, label, self.location), member.since)
            self._start_expiry(holder)

    # -- internals -------------------------------------------------------------------

    def _hold(self, user: str, session: str, refusal: type[NotYours] | type[Taken]) -> _Nickname:
        holder = self._nicknames.get(identity(user))
        if holder is None:
            holder = self._nicknames[identity(user)] = _Nickname(user, session)
            self.hub.hold(self.location, user)
            self._start_expiry(holder)
        elif holder.session != session:
            raise nickname_taken(user, refusal)
        return holder

    def _save(self, holder: _Nickname, since: int) -> Deferred:
        if self.membership is None:
            return succeed(None)
        member_since = min(
            (s for s in (self.hub.member_since(make_key(holder.name, label, self.location)) for label in holder.labels)
             if s is not None),
            default=since,
        )
        return self.membership.member_saved(self.location, holder.name, holder.session, holder.labels, member_since)

    def _publish_presence(self, payload: str, presence: dict[str, Any]) -> Deferred:
        if not any(holder.joined for holder in self._nicknames.values()):
            return succeed(None)  # nobody left to tell
        try:
            publishing = self.hub.broadcast(self.location, payload, presence)
        except Unavailable:
            return succeed(None)  # stopping: members are kept, and nobody is told twice after the restart
        # A notice that cannot be stored is not worth failing anything else for.
        publishing.addErrback(lambda _: None)
        return publishing

    def _presence_changed(self, key: str, online: bool) -> None:
        try:
            user, _, location = parse_key(key)
        except InvalidKey:
            return
        holder = self._nicknames.get(identity(user))
        if location != self.location or holder is None or holder.name != user:
            return
        if online:
            holder.online_keys.add(key)
            if holder.expiry is not None and holder.expiry.active():
                holder.expiry.cancel()
            holder.expiry = None
        else:
            holder.online_keys.discard(key)
            if not holder.online_keys:
                self._start_expiry(holder)

    def _start_expiry(self, holder: _Nickname) -> None:
        if holder.expiry is None or not holder.expiry.active():
            holder.expiry = self.clock.callLater(self.presence_timeout, self._leave, holder)

    def _leave(self, holder: _Nickname) -> None:
        if self._nicknames.get(identity(holder.name)) is not holder or holder.online_keys:
            return
        del self._nicknames[identity(holder.name)]
        for label in holder.labels:
            self.hub.expel(make_key(holder.name, label, self.location))
        self.hub.release(self.location, holder.name)
        if holder.joined:
            if self.membership is not None:
                self.membership.member_removed(self.location, holder.name).addErrback(lambda _: None)
            self._presence.left(holder.name)

    def start(self) -> None:
        """Nothing to start: the room's timers are set as members come and go."""

    def stop(self) -> None:
        """Cancel pending leave timers and notices, for a daemon that is shutting down."""
        self._presence.stop()
        for holder in self._nicknames.values():
            if holder.expiry is not None and holder.expiry.active():
                holder.expiry.cancel()


def _first_failure(steps: list[Deferred]) -> Deferred:
    if len(steps) == 1:
        return steps[0]
    return gatherResults(steps, consumeErrors=True).addErrback(lambda failure: failure.value.subFailure)
