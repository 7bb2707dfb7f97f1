"""The hub: orbit keys, event ids, retention, and fan-out to listeners.

The hub is the in-process replacement of Orbited plus pyorbited's ``orbited.event``: code
calls :meth:`Hub.event` with a list of orbit keys (``"user, session, location"``) and a
payload, and every listener attached to one of those keys gets the event. Each location
numbers its events with increasing ids and keeps the recent ones, so that a listener that
reconnects with the last id it saw receives exactly what it missed.

The hub knows nothing of HTTP or of how events are framed on the wire; transports attach
objects that provide :class:`Listener`.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

KEY_SEPARATOR = ", "


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

    ``frames`` caches the event's encoding per transport, so that an event is framed
    once per transport, however many connections receive it.
    """

    id: int
    time: float
    payload: str
    location: str
    recipients: frozenset[str]
    frames: dict[str, bytes] = field(default_factory=dict)


class Backplane(Protocol):
    """Where events are numbered and shared when several daemons form one chat (Redis)."""

    def publish(self, keys: list[str], payload: str) -> Deferred:
        """Number and store the event, and make every daemon :meth:`Hub.receive` it.

        Fires with the new ids, one per location, once the event is stored.
        """


class Listener(Protocol):
    """What a transport attaches to a key to receive its events."""

    def deliver(self, event: Event) -> None:
        """Receive one live event addressed to the listener's key."""


@dataclass(slots=True)
class Subscription:
    """The result of attaching a listener to a key.

    ``cursor`` is the id after which delivery continues; ``gap`` says that events after
    the requested id were no longer retained (the client must reload its history); and
    ``backlog`` holds the retained events after ``cursor`` that were addressed to the key,
    oldest first. Live events go to the listener from the moment of subscribing.
    """

    key: str
    cursor: int
    gap: bool
    backlog: list[Event]


@dataclass(eq=False, slots=True)
class _KeyState:
    """What the hub knows of one orbit key: its listeners and how far it has read."""

    location: str
    cursor: int
    listeners: list[Listener] = field(default_factory=list)
    idle_since: float = 0.0


class Channel:
    """The events of one location: the id sequence and the retained recent events."""

    def __init__(self, location: str, max_events: int, max_age: float, last_id: int = 0):
        self.location = location
        self.max_events = max_events
        self.max_age = max_age
        self.last_id = last_id
        self.events: deque[Event] = deque()

    def append(self, payload: str, recipients: frozenset[str], now: float) -> Event:
        """Number a new event, retain it, and drop what is past the count bound."""
        self.last_id += 1
        event = Event(self.last_id, now, payload, self.location, recipients)
        self.events.append(event)
        if len(self.events) > self.max_events:
            self.events.popleft()
        return event

    def restore(self, events: Iterable[Event], last_id: int) -> None:
        """Retain events loaded from storage (oldest first) and continue after ``last_id``."""
        self.events.extend(events)
        self.last_id = max(self.last_id, last_id)
        while len(self.events) > self.max_events:
            self.events.popleft()

    def first_resumable_id(self, now: float) -> int:
        """The oldest id a client may still resume from: retained and not too old.

        Events older than ``max_age`` stay in the history, but a client that missed them
        is told to reload the history rather than be sent a long replay.
        """
        horizon = now - self.max_age
        for event in self.events:
            if event.time >= horizon:
                return event.id
        return self.last_id + 1

    def after(self, event_id: int) -> Iterator[Event]:
        """Iterate the retained events with an id greater than ``event_id``."""
        first = self.events[0].id if self.events else self.last_id + 1
        return itertools.islice(self.events, max(0, event_id + 1 - first), None)

    def recent(self, limit: int) -> list[Event]:
        """The newest ``limit`` retained events, oldest first: the history."""
        return list(itertools.islice(self.events, max(0, len(self.events) - limit), None))

    def before(self, event_id: int, limit: int) -> list[Event]:
        """The newest ``limit`` retained events with an id below ``event_id``, oldest
        first: the page of history just before ``event_id``."""
        older: list[Event] = []
        for event in reversed(self.events):
            if len(older) >= limit:
                break
            if event.id < event_id:
                older.append(event)
        older.reverse()
        return older


PresenceObserver = Callable[[str, bool], None]
EventObserver = Callable[[Event], None]


class Hub:
    """Routes events to the listeners of orbit keys.

    @param clock: where the hub reads the time (the reactor, or a ``task.Clock`` in tests).
    @param max_events: how many events each location retains (its history).
    @param max_age: how many seconds after it was published a client may still resume
        from an event; a client that is further behind is sent a reset.
    """

    def __init__(self, clock: IReactorTime, max_events: int = 1000, max_age: float = 3600.0):
        self.clock = clock
        self.max_events = max_events
        self.max_age = max_age
        self._channels: dict[str, Channel] = {}
        self._keys: dict[str, _KeyState] = {}
        self._presence_observers: list[PresenceObserver] = []
        self._event_observers: list[EventObserver] = []
        #: events published since start, all locations
        self.published = 0
        #: set when daemons share events through a backplane; see :meth:`event`
        self.backplane: Backplane | None = None
        #: names this history: ids resume only within one epoch (a new one after a wipe)
        self.epoch = secrets.token_hex(8)
        self._grouped_keys: frozenset[str] | None = None
        self._grouped: dict[str, frozenset[str]] = {}

    # -- publishing ------------------------------------------------------------------

    def event(self, keys: Iterable[str], payload: str) -> Any:
        """Publish ``payload`` to every orbit key in ``keys``: pyorbited's ``event``.

        Keys may name several locations; each location numbers the event with its own
        next id. Keys with no listener keep the event queued (retained) until a listener
        attaches. Returns the created events, one per location; with a :attr:`backplane`,
        a Deferred that fires with their ids once the backplane has stored them (events
        then reach this daemon's listeners through :meth:`receive`, as on every daemon).

        @raise InvalidKey: when a key is malformed; nothing is published then.
        """
        if self.backplane is not None:
            keys = list(keys)
            for key in keys:
                parse_key(key)
            return self.backplane.publish(keys, payload)
        now = self.clock.seconds()
        published = []
        for location, location_keys in self._by_location(keys).items():
            event = self.channel(location).append(payload, location_keys, now)
            self.published += 1
            self._fan_out(event, now)
            for observer in self._event_observers:
                observer(event)
            published.append(event)
        return published

    def _by_location(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        # A caller that publishes to the same frozenset again (the chat room's member
        # snapshot) gets it grouped once, and every event it makes shares that one set
        # as its recipients, instead of a copy per event.
        if keys is self._grouped_keys:
            return self._grouped
        by_location: dict[str, list[str]] = {}
        for key in keys:
            state = self._keys.get(key)
            location = state.location if state is not None else parse_key(key)[2]
            by_location.setdefault(location, []).append(key)
        if isinstance(keys, frozenset) and len(by_location) == 1:
            grouped = {location: keys for location in by_location}
        else:
            grouped = {location: frozenset(group) for location, group in by_location.items()}
        if isinstance(keys, frozenset):
            self._grouped_keys, self._grouped = keys, grouped
        return grouped

    def receive(self, event: Event) -> bool:
        """Take an event numbered by the backplane: retain it and hand it to listeners.

        Events must come in id order per location; one whose id was seen already is
        ignored (returns ``False``), so a backplane may safely deliver twice.
        """
        channel = self.channel(event.location)
        if event.id <= channel.last_id:
            return False
        channel.restore([event], event.id)
        self.published += 1
        self._fan_out(event, self.clock.seconds())
        for observer in self._event_observers:
            observer(event)
        return True

    def _fan_out(self, event: Event, now: float) -> None:
        states = self._keys
        for key in event.recipients:
            state = states.get(key)
            if state is None:
                # The event waits in this key's queue until a listener attaches.
                states[key] = _KeyState(event.location, event.id - 1, idle_since=now)
                continue
            if state.listeners:
                state.cursor = event.id
                for listener in state.listeners:
                    listener.deliver(event)

    # -- listening -------------------------------------------------------------------

    def subscribe(
        self, key: str, listener: Listener, last_event_id: int | None = None, epoch: str | None = None
    ) -> Subscription:
        """Attach ``listener`` to ``key`` and say what it missed.

        With ``last_event_id``, delivery continues after that id; without it, after the
        key's own cursor (so events queued for the key come first) or, for a key the hub
        has not seen, after the newest event of its location. An ``epoch`` other than
        this hub's means the id was counted in a history that no longer exists: a gap.
        """
        location = parse_key(key)[2]
        channel = self.channel(location)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(location, channel.last_id)
        start = state.cursor if last_event_id is None else last_event_id
        # An id from before the retained events, or from a future this daemon never
        # reached (its history was wiped), cannot be resumed exactly: say so.
        gap = (
            start < channel.first_resumable_id(self.clock.seconds()) - 1
            or start > channel.last_id
            or (last_event_id is not None and epoch is not None and epoch != self.epoch)
        )
        if gap:
            start = channel.last_id
        backlog = [event for event in channel.after(start) if key in event.recipients]
        if backlog:
            state.cursor = max(state.cursor, backlog[-1].id)
        # Copy on write: a fan-out loop running over the old list is not disturbed.
        state.listeners = [*state.listeners, listener]
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
            self._tell_presence(key, False)

    def forget(self, key: str) -> None:
        """Drop a key's queue, for a member who left; its listeners stay attached."""
        state = self._keys.get(key)
        if state is not None and not state.listeners:
            del self._keys[key]

    def listener_count(self, key: str) -> int:
        """How many listeners ``key`` has now."""
        state = self._keys.get(key)
        return len(state.listeners) if state is not None else 0

    # -- locations and upkeep --------------------------------------------------------

    def channel(self, location: str) -> Channel:
        """The channel of ``location``, created on first use."""
        channel = self._channels.get(location)
        if channel is None:
            channel = self._channels[location] = Channel(location, self.max_events, self.max_age)
        return channel

    def channels(self) -> dict[str, Channel]:
        """Every location's channel, by location."""
        return dict(self._channels)

    def sweep(self) -> None:
        """Forget keys that have had no listener for longer than events stay resumable."""
        now = self.clock.seconds()
        horizon = now - self.max_age
        stale = [key for key, state in self._keys.items() if not state.listeners and state.idle_since < horizon]
        for key in stale:
            del self._keys[key]

    def observe_presence(self, observer: PresenceObserver) -> None:
        """Call ``observer(key, online)`` when a key gets its first or loses its last listener."""
        self._presence_observers.append(observer)

    def observe_events(self, observer: EventObserver) -> None:
        """Call ``observer(event)`` for every published event (the history store uses it)."""
        self._event_observers.append(observer)

    def _tell_presence(self, key: str, online: bool) -> None:
        for observer in self._presence_observers:
            observer(key, online)
