"""How a streaming transport wraps messages: the part that differs per transport."""

from __future__ import annotations

from cherrychat.comet.messages import HEARTBEAT, cached, event_message
from cherrychat.hub import Event


class Framing:
    """The framing of one streaming transport over HTTP.

    Subclasses set the class attributes and may override :meth:`frame`.
    """

    #: the transport's name, as in ``?transport=``; also its key in an event's frame cache
    name: str = ""
    content_type: bytes = b"application/octet-stream"
    #: bytes sent before the first message (padding for browsers that buffer)
    prelude: bytes = b""
    #: whether the stream is ended after ``recycle_bytes`` so the client's buffer stays small
    recycles: bool = False
    #: headers that replace the daemon's defaults on this transport's responses
    headers: dict[bytes, bytes] = {}

    def frame(self, message: bytes, event_id: int | None = None) -> bytes:
        """Wrap one encoded message; ``event_id`` is given for events only."""
        raise NotImplementedError

    def frame_event(self, event: Event) -> bytes:
        """The frame of ``event``, built once per event and transport, then cached."""
        return cached(event, self.name, lambda e: self.frame(event_message(e), e.id))

    def heartbeat(self) -> bytes:
        """The frame sent on an idle stream."""
        return self.frame(HEARTBEAT)
