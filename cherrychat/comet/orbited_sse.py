"""Orbited 0.3's ``server_sent_events`` transport: its event stream, one ``orbited`` event
per payload.

Orbited 0.3.2's ``orbited.js`` used it through Opera 9's ``<event-source>`` element,
listening for ``orbited`` events and ``eval``-ing their data: the payload as a JSON string.
Each event is ``Event: orbited`` and ``data: JSON(payload)``, and the heartbeat Orbited's
``Event: ping`` with ``data: \\o/``, as Orbited wrote them. Other CherryChat messages (open,
reset, reconnect) are sent as SSE comments, which every reader skips. The media type is
the standard ``text/event-stream`` (Orbited's ``application/x-dom-event-stream`` was
Opera's draft one), so that a present-day ``EventSource`` reads the stream as well: it gets
each payload's JSON in a ``message`` event.
"""

from __future__ import annotations

from cherrychat.comet.framing import Framing
from cherrychat.comet.messages import cached, encode_payload
from cherrychat.hub import Event

COMMENT = b":\n\n"


class OrbitedSSEFraming(Framing):
    """``Event: orbited`` / ``data: JSON(payload)`` per event."""

    name = "server_sent_events"
    content_type = b"text/event-stream; charset=utf-8"
    prelude = COMMENT

    def frame(self, message: bytes, event_id: int | None = None) -> bytes:
        """Messages other than events: a comment."""
        return COMMENT

    def frame_event(self, event: Event) -> bytes:
        """One ``orbited`` event; the JSON is one line (line breaks are escaped in it)."""
        return cached(event, self.name, lambda e: b"Event: orbited\ndata: " + encode_payload(e.payload) + b"\n\n")

    def heartbeat(self) -> bytes:
        """Orbited's ping event."""
        return b"Event: ping\ndata: \\o/\n\n"


FRAMING = OrbitedSSEFraming()
