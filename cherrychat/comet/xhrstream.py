"""The XHR-streaming transport: a 2 KiB prelude, then one JSON message per line."""

from __future__ import annotations

from cherrychat.comet.framing import Framing


class XHRStreamFraming(Framing):
    """Newline-delimited JSON after 2048 bytes of padding."""

    name = "xhrstream"
    content_type = b"text/plain; charset=utf-8"
    # Some browsers hand a streamed XHR response to script only after its first 2 KiB.
    prelude = b" " * 2048 + b"\n"
    recycles = True

    def frame(self, message: bytes, event_id: int | None = None) -> bytes:
        """One message per line."""
        return message + b"\n"


FRAMING = XHRStreamFraming()
