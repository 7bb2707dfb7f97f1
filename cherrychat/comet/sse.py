"""The Server-Sent Events transport: ``text/event-stream`` with an ``id:`` per event."""

from __future__ import annotations

from cherrychat.comet.framing import Framing

RETRY_MILLISECONDS = 2000


class SSEFraming(Framing):
    """``id: N`` and ``data: MESSAGE`` per event; other messages carry no id."""

    name = "sse"
    content_type = b"text/event-stream; charset=utf-8"
    prelude = b"retry: %d\n\n" % RETRY_MILLISECONDS

    def frame(self, message: bytes, event_id: int | None = None) -> bytes:
        """An SSE event; the id lets ``EventSource`` resend ``Last-Event-ID``."""
        if event_id is None:
            return b"data: " + message + b"\n\n"
        return b"id: %d\ndata: %s\n\n" % (event_id, message)


FRAMING = SSEFraming()
