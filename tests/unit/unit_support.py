"""Listeners the unit tests subscribe to a hub."""

from __future__ import annotations

from typing import Iterable

from cherrychat.hub import Event, Hub, parse_key


class Recorder:
    """A hub listener that records the events it is handed, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    @property
    def ids(self) -> list[int]:
        """The ids of the events delivered so far."""
        return [event.id for event in self.events]

    @property
    def payloads(self) -> list[str]:
        """The payloads of the events delivered so far."""
        return [event.payload for event in self.events]


class NullListener:
    """A hub listener that drops what it is handed."""

    def deliver(self, event: Event) -> None:
        pass


def publish(hub: Hub, keys: Iterable[str], payload: str) -> list[Event]:
    """``hub.event(keys, payload)`` with a journal that stores at once: the events made,
    one per location, in the order their locations first appear in ``keys``."""
    keys = list(keys)
    ids: list[int] = []
    hub.event(keys, payload).addCallback(ids.extend)
    locations = list(dict.fromkeys(parse_key(key)[2] for key in keys))
    return [next(e for e in hub.channel(location).events if e.id == i) for location, i in zip(locations, ids)]
