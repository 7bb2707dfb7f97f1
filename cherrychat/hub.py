"""The hub: orbit keys, event ids, retention, and fan-out to listeners.

The hub is the in-process replacement of Orbited plus pyorbited's ``orbited.event``: code
calls :meth:`Hub.event` with a list of orbit keys (``"user, session, location"``) and a
payload, and every listener attached to one of those keys gets the event. Each location
numbers its events with increasing ids and keeps the recent ones, so that a listener that
reconnects with the last id it saw receives exactly what it missed.

Two kinds of event, so that a room costs the same per event however many people are in it:

- a *targeted* event (:meth:`Hub.event`) names its keys and keeps that set;
- a *room* event (:meth:`Hub.broadcast`) is stored once, with no recipients: whether a key
  may read it follows from the key's membership (:meth:`Hub.admit`), which records the id
  after which the key is a member.

Who may read a targeted event is tied to who held its key when it was published: a room
marks its location as held (:meth:`Hub.guard`) and tells the hub when a nickname's tenure
starts and ends (:meth:`Hub.hold`, :meth:`Hub.release`); a later holder of the same
nickname cannot read what was addressed to an earlier one.

An event is handed to listeners, and its Deferred fires, only once its :class:`Journal`
says it is stored (SQLite commits it; the in-memory journal at once). So every id a client
can have seen is stored, and a daemon that crashed continues above it.

The hub knows nothing of HTTP or of how events are framed on the wire; transports attach
objects that provide :class:`Listener`.
"""

from __future__ import annotations

import bisect
import heapq
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Iterator, Protocol, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from cherrychat.errors import Unavailable

KEY_SEPARATOR = ", "
#: messages each location retains (``--retain-events``)
DEFAULT_MAX_EVENTS = 1000
#: seconds after which a client can no longer resume from an event (``--retain-seconds``)
DEFAULT_MAX_AGE = 3600.0
#: presence notices (joins and leaves) each location keeps apart from its messages
DEFAULT_MAX_NOTICES = 100


class InvalidKey(ValueError):
    """An orbit key is not of the form ``"user, session, location"``."""


def parse_key(key: str) -> tuple[str, str, str]:
    """Split an orbit key into ``(user, session, location)``.

    @raise InvalidKey: when the key does not have three non-empty parts or the
        location does not start with ``/``.
    """
    parts = key.split(KEY_SEPARATOR)
    if len(parts) != 3 or not all(parts) or not parts[2].startswith("/"):
        raise InvalidKey(f"not an orbit key: {key!r}")
    return parts[0], parts[1], parts[2]


def make_key(user: str, session: str, location: str) -> str:
    """Build the orbit key ``"user, session, location"``."""
    return KEY_SEPARATOR.join((user, session, location))


@dataclass(eq=False, slots=True)
class Event:
    """One published event, as retained by its location and handed to listeners.

    ``recipients`` is ``None`` for a room event (every member of the location reads it)
    and the set of keys for a targeted one. ``presence`` is set on a presence notice:
    ``{"joined": [...], "left": [...], "joined_count": N, "left_count": M}``. ``frames``
    caches the event's encoding per transport, so that an event is framed once per
    transport, however many connections receive it.
    """

    id: int
    time: float
    payload: str
    location: str
    recipients: frozenset[str] | None = None
    presence: dict[str, Any] | None = None
    frames: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_notice(self) -> bool:
        """A presence notice, retained apart from the conversation."""
        return self.presence is not None


class Journal(Protocol):
    """Where events are stored before anyone sees them."""

    def record(self, events: list[Event]) -> Deferred:
        """Store ``events``; fires once they are durable, fails with
        :class:`~cherrychat.errors.Unavailable` when they cannot be stored."""


class MemoryJournal:
    """Keeps nothing: an event is "stored" once it is handed to the hub (``:memory:``)."""

    def record(self, events: list[Event]) -> Deferred:
        """Fire at once."""
        return succeed(None)


class Backplane(Protocol):
    """Where events are numbered and shared when several daemons form one chat (Redis)."""

    def publish(self, keys: list[str], payload: str) -> Deferred:
        """Number and store a targeted event, and make every daemon :meth:`Hub.receive` it.

        Fires with the new ids, one per location, once the event is stored.
        """

    def broadcast(self, location: str, payload: str, presence: dict[str, Any] | None) -> Deferred:
        """Number and store a room event; fires with its id once stored."""


class Listener(Protocol):
    """What a transport attaches to a key to receive its events."""

    def deliver(self, event: Event) -> None:
        """Receive one live event addressed to the listener's key."""


@dataclass(slots=True)
class Subscription:
    """The result of attaching a listener to a key.

    ``cursor`` is the id after which delivery continues; ``gap`` says that events after
    the requested id were no longer retained (the client must reload its history); and
    ``backlog`` holds the retained events after ``cursor`` that the key may read, oldest
    first. Live events go to the listener from the moment of subscribing.
    """

    key: str
    cursor: int
    gap: bool
    backlog: list[Event]


@dataclass(eq=False, slots=True)
class _KeyState:
    """What the hub knows of one orbit key: its listeners, how far it has read, and
    from which id on it is a member of its location's room (``None``: not a member)."""

    user: str
    location: str
    cursor: int
    listeners: list[Listener] = field(default_factory=list)
    idle_since: float = 0.0
    member_since: int | None = None


def _event_id(event: Event) -> int:
    return event.id


class Channel:
    """The events of one location: the id sequence and the retained recent events.

    Messages and presence notices are retained apart, each within its own count bound, so
    that no flood of joins and leaves pushes what people said out of the history.
    """

    def __init__(self, location: str, max_events: int, max_age: float, last_id: int = 0,
                 max_notices: int = DEFAULT_MAX_NOTICES):
        self.location = location
        self.max_events = max_events
        self.max_notices = max_notices
        self.max_age = max_age
        #: the newest id that is stored and visible
        self.last_id = last_id
        #: the newest id handed out (ahead of ``last_id`` while a write is in flight)
        self.next_id = last_id
        self.messages: deque[Event] = deque()
        self.notices: deque[Event] = deque()
        #: the newest message id no longer retained: resuming from before it is a gap
        self.dropped_through = 0

    def number(self) -> int:
        """Hand out the next id."""
        self.next_id = max(self.next_id, self.last_id) + 1
        return self.next_id

    def retain(self, event: Event) -> None:
        """Keep a stored event (ids in increasing order) and drop what is past the bounds."""
        self.last_id = max(self.last_id, event.id)
        self.next_id = max(self.next_id, self.last_id)
        if event.is_notice:
            self.notices.append(event)
            while len(self.notices) > self.max_notices:
                self.notices.popleft()
        else:
            self.messages.append(event)
            while len(self.messages) > self.max_events:
                self.dropped_through = self.messages.popleft().id

    def restore(self, events: Iterable[Event], last_id: int) -> None:
        """Retain events loaded from storage (oldest first) and continue after ``last_id``."""
        for event in events:
            self.retain(event)
        self.last_id = max(self.last_id, last_id)
        self.next_id = max(self.next_id, self.last_id)
        first = self.messages[0].id if self.messages else self.last_id + 1
        # What came before the oldest retained message is gone for good.
        self.dropped_through = max(self.dropped_through, min(first - 1, last_id))

    def restart(self, after: int) -> None:
        """Forget every retained event and continue after id ``after``: what came before
        is gone for good (a client behind it gets a reset)."""
        self.messages.clear()
        self.notices.clear()
        self.last_id = max(self.last_id, after)
        self.next_id = max(self.next_id, self.last_id)
        self.dropped_through = max(self.dropped_through, after)

    @property
    def events(self) -> list[Event]:
        """Every retained event, oldest first."""
        return list(self.after(0))

    def resumable(self, start: int, now: float) -> bool:
        """Can a client that saw everything up to ``start`` be sent exactly what it missed?

        Not when a message after ``start`` is no longer retained, nor when the first one
        it missed is older than ``max_age``: events that old stay in the history, but a
        client that far behind is told to reload it rather than be sent a long replay.
        """
        if start < self.dropped_through or start > self.last_id:
            return False
        missed = _tail(self.messages, start)
        return not missed or missed[0].time >= now - self.max_age

    def after(self, event_id: int) -> Iterator[Event]:
        """Iterate the retained events with an id greater than ``event_id``, in id order."""
        messages = _tail(self.messages, event_id)
        notices = _tail(self.notices, event_id)
        if not notices:
            return iter(messages)
        if not messages:
            return iter(notices)
        return heapq.merge(messages, notices, key=_event_id)

    def recent(self, limit: int, before: int | None = None,
               readable: Callable[[Event], bool] | None = None) -> list[Event]:
        """The newest ``limit`` retained events (older than ``before`` when given), oldest
        first, keeping only those ``readable`` accepts: the history."""
        chosen: list[Event] = []
        messages = _head(self.messages, before)
        notices = _head(self.notices, before)
        merged = heapq.merge(reversed(messages), reversed(notices), key=_event_id, reverse=True)
        for event in merged:
            if len(chosen) >= limit:
                break
            if readable is None or readable(event):
                chosen.append(event)
        chosen.reverse()
        return chosen


def _tail(events: deque[Event], event_id: int) -> Sequence[Event]:
    if not events or events[-1].id <= event_id:
        return ()
    if events[0].id > event_id:
        return events
    start = bisect.bisect_right(events, event_id, key=_event_id)
    return [events[i] for i in range(start, len(events))]


def _head(events: deque[Event], before: int | None) -> Sequence[Event]:
    if before is None or not events or events[-1].id < before:
        return events
    end = bisect.bisect_left(events, before, key=_event_id)
    return [events[i] for i in range(end)]


PresenceObserver = Callable[[str, bool], None]
EventObserver = Callable[[Event], None]


class Hub:
    """Routes events to the listeners of orbit keys.

    @param clock: where the hub reads the time (the reactor, or a ``task.Clock`` in tests).
    @param max_events: how many messages each location retains (its history).
    @param max_age: how many seconds after it was published a client may still resume
        from an event; a client that is further behind is sent a reset.
    @param journal: where events are stored before they are delivered; by default
        nowhere (``:memory:``).
    @param max_notices: how many presence notices each location retains.
    """

    def __init__(self, clock: IReactorTime, max_events: int = DEFAULT_MAX_EVENTS, max_age: float = DEFAULT_MAX_AGE,
                 journal: Journal | None = None, max_notices: int = DEFAULT_MAX_NOTICES):
        self.clock = clock
        self.max_events = max_events
        self.max_notices = max_notices
        self.max_age = max_age
        self.journal: Journal = journal or MemoryJournal()
        self._channels: dict[str, Channel] = {}
        self._keys: dict[str, _KeyState] = {}
        # Keys with listeners and room membership, by location: who a room event goes to.
        self._online_members: dict[str, dict[str, _KeyState]] = {}
        # Held locations: (location, user) -> the id after which the current holder holds it.
        self._guarded: set[str] = set()
        self._tenure: dict[tuple[str, str], int] = {}
        self._presence_observers: list[PresenceObserver] = []
        self._event_observers: list[EventObserver] = []
        self._backplane: Backplane | None = None
        self._closed_reason: str | None = None
        #: events published since start, all locations
        self.published = 0
        #: names this history: ids resume only within one epoch (a new one after a wipe)
        self.epoch = secrets.token_hex(8)

    # -- configuration ---------------------------------------------------------------

    def use_backplane(self, backplane: Backplane, epoch: str) -> None:
        """Number and share events through ``backplane`` (several daemons, one chat)."""
        self._backplane = backplane
        self.epoch = epoch

    def use_epoch(self, epoch: str) -> None:
        """Continue the history named ``epoch`` (read back from storage)."""
        self.epoch = epoch

    def close(self, reason: str = "the daemon is stopping") -> None:
        """Refuse every publish from now on with a 503 (the daemon is stopping)."""
        self._closed_reason = reason

    # -- publishing ------------------------------------------------------------------

    def event(self, keys: Iterable[str], payload: str) -> Deferred:
        """Publish ``payload`` to every orbit key in ``keys``: pyorbited's ``event``.

        Keys may name several locations; each location numbers the event with its own
        next id. Keys with no listener keep the event (retained) until a listener
        attaches. Returns a Deferred that fires with the ids, one per location, once the
        events are stored and handed to the listeners.

        @raise InvalidKey: when a key is malformed; nothing is published then.
        @raise Unavailable: the daemon is stopping.
        """
        keys = list(keys)
        by_location: dict[str, set[str]] = {}
        for key in keys:
            by_location.setdefault(parse_key(key)[2], set()).add(key)
        self.check_open()
        if self._backplane is not None:
            return self._backplane.publish(keys, payload)
        now = self.clock.seconds()
        events = [
            Event(self.channel(location).number(), now, payload, location, frozenset(group))
            for location, group in by_location.items()
        ]
        return self._store(events).addCallback(lambda stored: [event.id for event in stored])

    def broadcast(self, location: str, payload: str, presence: dict[str, Any] | None = None) -> Deferred:
        """Publish a room event to every member of ``location``; fires with its id once
        stored and handed to the listeners. Costs the same however many members there are.

        @raise Unavailable: the daemon is stopping.
        """
        self.check_open()
        if self._backplane is not None:
            return self._backplane.broadcast(location, payload, presence)
        event = Event(self.channel(location).number(), self.clock.seconds(), payload, location, None, presence)
        return self._store([event]).addCallback(lambda stored: stored[0].id)

    def check_open(self) -> None:
        """Raise :class:`Unavailable` (503, ``Retry-After``) once the daemon is stopping."""
        if self._closed_reason is not None:
            raise Unavailable(self._closed_reason, retry_after=5)

    def _store(self, events: list[Event]) -> Deferred:
        def stored(_: object) -> list[Event]:
            for event in events:
                self._accept(event)
            return events

        return self.journal.record(events).addCallback(stored)

    def receive(self, event: Event) -> bool:
        """Take an event numbered and stored elsewhere (the backplane): retain it and hand
        it to listeners.

        Events must come in id order per location; one whose id was seen already is
        ignored (returns ``False``), so a backplane may safely deliver twice.
        """
        if event.id <= self.channel(event.location).last_id:
            return False
        self._accept(event)
        return True

    def _accept(self, event: Event) -> None:
        self.channel(event.location).retain(event)
        self.published += 1
        if event.recipients is None:
            self._fan_out_to_members(event)
        else:
            self._fan_out_to_keys(event, self.clock.seconds())
        for observer in self._event_observers:
            observer(event)

    def _fan_out_to_members(self, event: Event) -> None:
        online = self._online_members.get(event.location)
        if not online:
            return
        for state in list(online.values()):
            state.cursor = event.id
            for listener in state.listeners:
                listener.deliver(event)

    def _fan_out_to_keys(self, event: Event, now: float) -> None:
        states = self._keys
        guarded = event.location in self._guarded
        assert event.recipients is not None
        for key in event.recipients:
            state = states.get(key)
            if state is None:
                if not guarded:
                    # The event waits in this key's queue until a listener attaches.
                    user = key.partition(KEY_SEPARATOR)[0]
                    states[key] = _KeyState(user, event.location, event.id - 1, idle_since=now)
                continue
            if state.listeners and self._held_at(state, event.id):
                state.cursor = event.id
                for listener in state.listeners:
                    listener.deliver(event)

    # -- who may read what -----------------------------------------------------------

    def guard(self, location: str) -> None:
        """Tie targeted events at ``location`` to the holders of their keys' nicknames."""
        self._guarded.add(location)

    def hold(self, location: str, user: str, since: int | None = None) -> None:
        """A holder's tenure of ``user`` at ``location`` starts (after id ``since``, by
        default after the newest id handed out); one that already holds it keeps its start."""
        if (location, user) not in self._tenure:
            self._tenure[location, user] = self.channel(location).next_id if since is None else since

    def release(self, location: str, user: str) -> None:
        """The holder of ``user`` at ``location`` let it go: what was addressed to it
        stays unreadable to whoever takes the nickname next."""
        self._tenure.pop((location, user), None)

    def admit(self, key: str, since: int | None = None) -> int:
        """Make ``key`` a member of its location's room: it reads room events with ids
        above ``since`` (by default, from the next id on). Returns that id."""
        user, _, location = parse_key(key)
        channel = self.channel(location)
        state = self._state(key, user, location)
        if state.member_since is None:
            state.member_since = channel.next_id if since is None else since
            if state.listeners:
                self._online_members.setdefault(location, {})[key] = state
        return state.member_since

    def expel(self, key: str) -> None:
        """``key`` is no longer a member: it reads no more room events, and a key with no
        listener is forgotten (what it kept costs nothing once its member left)."""
        state = self._keys.get(key)
        if state is None:
            return
        state.member_since = None
        online = self._online_members.get(state.location)
        if online is not None:
            online.pop(key, None)
        if not state.listeners:
            del self._keys[key]

    def member_since(self, key: str) -> int | None:
        """The id after which ``key`` reads room events, or ``None`` when not a member."""
        state = self._keys.get(key)
        return state.member_since if state is not None else None

    def readable(self, event: Event, keys: Collection[str]) -> bool:
        """May the holder of ``keys`` (all at ``event``'s location) read ``event`` now?

        Room events are readable by anyone who looks at the room's history; a targeted
        event only by the holder of one of its keys, held since before it was published.
        """
        if event.recipients is None or event.location not in self._guarded:
            return True
        return any(key in event.recipients and self._may_read(key, event) for key in keys)

    def _may_read(self, key: str, event: Event) -> bool:
        if event.location not in self._guarded:
            return True
        user = key.partition(KEY_SEPARATOR)[0]
        since = self._tenure.get((event.location, user))
        return since is not None and since < event.id

    def _held_at(self, state: _KeyState, event_id: int) -> bool:
        if state.location not in self._guarded:
            return True
        since = self._tenure.get((state.location, state.user))
        return since is not None and since < event_id

    def _readable_by(self, key: str, state: _KeyState, event: Event) -> bool:
        if event.recipients is None:
            return state.member_since is not None and state.member_since < event.id
        return key in event.recipients and self._held_at(state, event.id)

    # -- listening -------------------------------------------------------------------

    def _state(self, key: str, user: str, location: str) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(user, location, self.channel(location).last_id,
                                                idle_since=self.clock.seconds())
        return state

    def subscribe(
        self, key: str, listener: Listener, last_event_id: int | None = None, epoch: str | None = None
    ) -> Subscription:
        """Attach ``listener`` to ``key`` and say what it missed.

        With ``last_event_id``, delivery continues after that id; without it, after the
        key's own cursor (so events kept for the key come first) or, for a key the hub
        has not seen, after the newest event of its location. An ``epoch`` other than
        this hub's means the id was counted in a history that no longer exists: a gap.
        """
        user, _, location = parse_key(key)
        channel = self.channel(location)
        state = self._state(key, user, location)
        start = state.cursor if last_event_id is None else last_event_id
        # An id from before the retained events, or from a future this daemon never
        # reached (its history was wiped), cannot be resumed exactly: say so.
        gap = not channel.resumable(start, self.clock.seconds()) or (
            last_event_id is not None and epoch is not None and epoch != self.epoch
        )
        if gap:
            start = channel.last_id
        backlog = [event for event in channel.after(start) if self._readable_by(key, state, event)]
        if backlog:
            state.cursor = max(state.cursor, backlog[-1].id)
        # Copy on write: a fan-out loop running over the old list is not disturbed.
        state.listeners = [*state.listeners, listener]
        if state.member_since is not None:
            self._online_members.setdefault(location, {})[key] = state
        if len(state.listeners) == 1:
            self._tell_presence(key, True)
        return Subscription(key, start, gap, backlog)

    def unsubscribe(self, key: str, listener: Listener) -> None:
        """Detach ``listener`` from ``key``; unknown listeners are ignored."""
        state = self._keys.get(key)
        if state is None or listener not in state.listeners:
            return
        state.listeners = [other for other in state.listeners if other is not listener]
        if not state.listeners:
            state.idle_since = self.clock.seconds()
            online = self._online_members.get(state.location)
            if online is not None:
                online.pop(key, None)
            self._tell_presence(key, False)

    def forget(self, key: str) -> None:
        """Drop a key's queue, for a member who left; its listeners stay attached."""
        state = self._keys.get(key)
        if state is not None and not state.listeners and state.member_since is None:
            del self._keys[key]

    def listener_count(self, key: str) -> int:
        """How many listeners ``key`` has now."""
        state = self._keys.get(key)
        return len(state.listeners) if state is not None else 0

    def key_count(self) -> int:
        """How many keys the hub keeps state for (listeners, members or queues)."""
        return len(self._keys)

    # -- locations and upkeep --------------------------------------------------------

    def channel(self, location: str) -> Channel:
        """The channel of ``location``, created on first use."""
        channel = self._channels.get(location)
        if channel is None:
            channel = self._channels[location] = Channel(location, self.max_events, self.max_age,
                                                         max_notices=self.max_notices)
        return channel

    def channels(self) -> dict[str, Channel]:
        """Every location's channel, by location."""
        return dict(self._channels)

    def sweep(self) -> None:
        """Forget non-member keys that have had no listener for longer than events stay
        resumable."""
        horizon = self.clock.seconds() - self.max_age
        stale = [
            key for key, state in self._keys.items()
            if not state.listeners and state.member_since is None and state.idle_since < horizon
        ]
        for key in stale:
            del self._keys[key]

    def observe_presence(self, observer: PresenceObserver) -> None:
        """Call ``observer(key, online)`` when a key gets its first or loses its last listener."""
        self._presence_observers.append(observer)

    def observe_events(self, observer: EventObserver) -> None:
        """Call ``observer(event)`` for every event, once stored and delivered."""
        self._event_observers.append(observer)

    def _tell_presence(self, key: str, online: bool) -> None:
        for observer in self._presence_observers:
            observer(key, online)

