"""Presence notices that stay readable and cheap in a big room.

Joins and leaves within a short window go out as one notice carrying the changes: the
first change after a quiet window goes out at once (so one person joining reads
``ann joined`` straight away, in the tutorial's words), and what follows within the window
is gathered into the next notice, at the window's end. A room filling with thousands of
people so sends a few notices a second, not one per person to every member.
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: seconds over which joins and leaves are gathered into one notice
DEFAULT_WINDOW = 1.0
#: names a notice lists of each kind; the counts stay exact beyond it
MAX_NAMES = 100


def _names(names: list[str], total: int) -> str:
    shown = [escape(name) for name in names[:2]] if total > 3 else [escape(name) for name in names]
    others = total - len(shown)
    if others > 0:
        return f"{', '.join(shown)} and {others} other{'s' if others > 1 else ''}"
    if len(shown) == 1:
        return shown[0]
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def presence_payload(joined: list[str], left: list[str], joined_count: int, left_count: int) -> str:
    """The notice's text, names HTML-escaped: ``ann joined``, ``ann and ben left``,
    ``ann, ben and 37 others joined``, ``ann joined; ben left``."""
    parts = []
    if joined_count:
        parts.append(f"{_names(joined, joined_count)} joined")
    if left_count:
        parts.append(f"{_names(left, left_count)} left")
    return "; ".join(parts)


class PresenceBatcher:
    """Gathers a room's joins and leaves and publishes them as notices.

    @param publish: called with ``(payload, presence)`` for each notice; returns a Deferred
        that fires once the notice is stored.
    """

    def __init__(self, clock: IReactorTime, publish: Callable[[str, dict[str, Any]], Deferred],
                 window: float = DEFAULT_WINDOW):
        self.clock = clock
        self.publish = publish
        self.window = window
        # name -> True (joined) / False (left), in order of the change
        self._changes: dict[str, list[bool]] = {}
        self._last_sent = float("-inf")
        self._timer: IDelayedCall | None = None

    def joined(self, name: str) -> Deferred:
        """``name`` joined; fires once the notice that says so is stored when it went out
        now, at once when it is gathered for later."""
        return self._change(name, True)

    def left(self, name: str) -> Deferred:
        """``name`` left; as :meth:`joined`."""
        return self._change(name, False)

    def _change(self, name: str, joined: bool) -> Deferred:
        self._changes.setdefault(name, []).append(joined)
        if self._timer is not None:
            return succeed(None)
        wait = self._last_sent + self.window - self.clock.seconds()
        if wait <= 0:
            return self.flush()
        self._timer = self.clock.callLater(wait, self.flush)
        return succeed(None)

    def flush(self) -> Deferred:
        """Publish what has gathered now, as one notice (nothing when it cancels out)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        changes, self._changes = self._changes, {}
        joined: list[str] = []
        left: list[str] = []
        for name, steps in changes.items():
            # A first change "left" means a member before the window; a last change "joined"
            # a member after it. Joined then left within the window is never announced; left
            # then joined is both, and a page applies "left" before "joined".
            if steps[0] is False:
                left.append(name)
            if steps[-1] is True:
                joined.append(name)
        if not joined and not left:
            return succeed(None)
        self._last_sent = self.clock.seconds()
        presence = {
            "joined": joined[:MAX_NAMES], "left": left[:MAX_NAMES],
            "joined_count": len(joined), "left_count": len(left),
        }
        return self.publish(presence_payload(joined, left, len(joined), len(left)), presence)

    def flush_pending(self) -> None:
        """Publish gathered changes now, if any wait (a message is about to go out)."""
        if self._changes:
            self.flush()

    def stop(self) -> None:
        """Drop a pending notice, for a daemon that is stopping."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
