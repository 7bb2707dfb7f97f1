"""The iframe transport: an HTML document of ``<script>`` calls in a hidden iframe.

One document serves both clients that ask for ``transport=iframe``: CherryChat's
``orbited.js`` (``parent.Orbited._iframeMessage``) and Orbited 0.3.2's own, which asks for
``iframe`` for its ``htmlfile`` transport too and expects each payload handed to
``parent.Orbited.event_cb``; for that client a ``reconnect`` reloads the frame, which then
resumes from its key's queue.
"""

from __future__ import annotations

from cherrychat.comet.framing import Framing

_HEAD = (
    b"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>CherryChat stream</title>"
    b"<script>function m(x){var o=parent.Orbited;"
    b"if(o._iframeMessage){o._iframeMessage(frameElement,x)}"
    b"else if(x.type==='event'){o.event_cb(x.data)}"
    b"else if(x.type==='reconnect'){location.reload()}}</script>"
    b"</head><body>\n"
)
# Old browsers render nothing of a streamed document before about 1 KiB has arrived.
_PADDING = b"<!--" + b" " * 1024 + b"-->\n"


class IframeFraming(Framing):
    """``<script>m(MESSAGE)</script>`` per message, after a head and 1 KiB of padding."""

    name = "iframe"
    content_type = b"text/html; charset=utf-8"
    prelude = _HEAD + _PADDING
    recycles = True
    # The stream document is made of the server's own inline scripts, whose JSON is
    # HTML-safe; nothing else may load or run in it.
    headers = {b"content-security-policy": b"default-src 'none'; script-src 'unsafe-inline'"}

    def frame(self, message: bytes, event_id: int | None = None) -> bytes:
        """Wrap a message in a script element calling ``m``."""
        return b"<script>m(" + message + b")</script>\n"


FRAMING = IframeFraming()
