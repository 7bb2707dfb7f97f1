"""Orbited 0.3's ``xhr_stream`` transport, for Orbited 0.3.2's own ``orbited.js``.

That client reads ``responseText`` from the first ``\\r\\n\\r\\n`` on, cuts it at each
``\\r\\n|O|\\r\\n`` boundary and ``eval``s what lies between: the payload as a JSON string.
So the stream is a 256-byte prelude of dots and a blank line (Safari once buffered the
start of a response), then ``JSON(payload)`` and the boundary per event. The client knows
no ids, opens, resets or reconnects; where CherryChat sends one of those, and as the
heartbeat, this framing sends a blank frame (a space, then the boundary), which the client
evaluates to nothing. (Orbited's own ping, ``boundary ping boundary``, would make that
client throw on ``ping`` or loop on the doubled boundary.) The client reconnects every
30 s by itself, without an id: it resumes from its key's queue.
"""

from __future__ import annotations

from cherrychat.comet.framing import Framing
from cherrychat.comet.messages import cached, encode_payload
from cherrychat.hub import Event

BOUNDARY = b"\r\n|O|\r\n"
BLANK = b" " + BOUNDARY


class OrbitedXHRStreamFraming(Framing):
    """``JSON(payload)`` and the ``|O|`` boundary per event, after Orbited's prelude."""

    name = "xhr_stream"
    content_type = b"application/x-orbited-event-stream"
    prelude = b"." * 256 + b"\r\n\r\n"
    recycles = True

    def frame(self, message: bytes, event_id: int | None = None) -> bytes:
        """Messages other than events mean nothing to this client: a blank frame."""
        return BLANK

    def frame_event(self, event: Event) -> bytes:
        """The payload as a JSON string, then the boundary; built once per event."""
        return cached(event, self.name, lambda e: encode_payload(e.payload) + BOUNDARY)


FRAMING = OrbitedXHRStreamFraming()
