"""Listeners the unit tests subscribe to a hub."""

from __future__ import annotations

from cherrychat.hub import Event


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
