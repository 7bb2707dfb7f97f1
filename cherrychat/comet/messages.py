"""The JSON messages every transport carries, encoded once per event.

JSON text here is ASCII only, and ``<``, ``>`` and ``&`` are escaped, so that the same
bytes are safe inside an HTML document, a ``<script>`` element, an SSE field or a
WebSocket frame.
"""

from __future__ import annotations

import json

from cherrychat.hub import Event

_JSON_KEY = "json"
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def encode(message: dict[str, object]) -> bytes:
    """Encode one message as HTML-safe ASCII JSON."""
    return _encoder.encode(message).translate(_HTML_SAFE).encode("ascii")


def encode_payload(payload: str) -> bytes:
    """A payload alone as an HTML-safe ASCII JSON string, for the Orbited 0.3 framings,
    whose client ``eval``s it (``\u2028`` and ``\u2029`` are escaped too)."""
    return _encoder.encode(payload).translate(_HTML_SAFE).encode("ascii")


def event_message(event: Event) -> bytes:
    """The ``event`` message of ``event``, encoded once and cached on the event."""
    encoded = event.frames.get(_JSON_KEY)
    if encoded is None:
        message: dict[str, object] = {"type": "event", "id": event.id, "time": event.time, "data": event.payload}
        if event.presence is not None:
            message["presence"] = event.presence
        encoded = event.frames[_JSON_KEY] = encode(message)
    return encoded


def open_message(cursor: int, epoch: str) -> bytes:
    """First message of a connection: delivery continues after id ``cursor`` of ``epoch``."""
    return encode({"type": "open", "id": cursor, "epoch": epoch})


def reset_message(head: int) -> bytes:
    """Events were missed: reload the history, then continue after id ``head``."""
    return encode({"type": "reset", "id": head})


HEARTBEAT = encode({"type": "heartbeat"})
RECONNECT = encode({"type": "reconnect"})
