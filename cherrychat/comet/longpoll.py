"""The long-poll transport: each request answers a JSON array of messages.

A poll without ``last_event_id`` answers at once with ``open`` (and what is queued for the
key). A poll with it is held until an event after that id arrives or the heartbeat period
passes, so that no proxy times it out; it then answers every retained event after the id.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.web.server import Request

from cherrychat.comet.core import Comet, CometResource, set_stream_headers
from cherrychat.comet.messages import RECONNECT, event_message, opening
from cherrychat.hub import Event

CONTENT_TYPE = b"application/json"


def as_is(message: bytes) -> bytes:
    """A long-poll's messages need no frame: the answer is their JSON array."""
    return message


class LongPoll:
    """One held poll: a hub listener until it answers."""

    __slots__ = ("comet", "request", "key", "on_close", "_pending", "_timer", "_answered")

    transport_name = "longpoll"

    def __init__(self, comet: Comet, request: Request, key: str, on_close: Callable[[], None] | None = None):
        self.comet = comet
        self.request = request
        self.key = key
        #: called once when the poll ends, however it ends
        self.on_close = on_close
        self._pending: list[bytes] = []
        self._timer: IDelayedCall | None = None
        self._answered = False

    def start(self, last_event_id: int | None, epoch: str | None = None) -> None:
        """Answer at once when there is something to say, else hold the request."""
        self._begin()
        subscription = self.comet.hub.subscribe(self.key, self, last_event_id, epoch)
        self.comet.add(self)
        self._watch()
        # A resuming poll carries no ``open``: the client has it from its first poll.
        self._pending = opening(subscription, self.comet.hub.epoch, as_is, event_message,
                                announce=last_event_id is None)
        if self._pending:
            self._answer()
        else:
            self._timer = self.comet.clock.callLater(self.comet.settings.heartbeat, self._answer)

    def _begin(self) -> None:
        set_stream_headers(self.request, CONTENT_TYPE)

    def _watch(self) -> None:
        self.request.notifyFinish().addBoth(lambda _: self._detach())

    def deliver(self, event: Event) -> None:
        """Answer with the event at once; the next poll collects any that follow it."""
        if self._answered:
            return
        self._pending.append(event_message(event))
        self.comet.delivered += 1
        self._answer()

    def tick(self) -> None:
        """Held polls need no heartbeat of their own: they answer at the heartbeat period."""

    def close_for_restart(self) -> None:
        """Answer with ``reconnect`` now."""
        if not self._answered:
            self._pending.append(RECONNECT)
            self._answer()

    def _answer(self) -> None:
        if self._answered:
            return
        self._detach()
        body = b"[" + b",".join(self._pending) + b"]"
        self.comet.bytes_written += len(body)
        self._respond(body)

    def _respond(self, body: bytes) -> None:
        self.request.write(body)
        self.request.finish()

    def _detach(self) -> None:
        self._answered = True
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self.comet.hub.unsubscribe(self.key, self)
        self.comet.remove(self)
        hook, self.on_close = self.on_close, None
        if hook is not None:
            hook()


class LongPollResource(CometResource):
    """Renders one poll."""

    def begin(self, request: Request, release: Callable[[], None] | None) -> None:
        """Start the poll; it answers later."""
        LongPoll(self.comet, request, self.key, release).start(self.last_event_id, self.epoch)
