"""The JSON messages every transport carries, encoded once per event.

JSON text here is ASCII only, and ``<``, ``>`` and ``&`` are escaped, so that the same
bytes are safe inside an HTML document, a ``<script>`` element, an SSE field or a
WebSocket frame.
"""

from __future__ import annotations

import json

from typing import Callable

from cherrychat.hub import Event, Subscription

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


def cached(event: Event, name: str, build: Callable[[Event], bytes]) -> bytes:
    """``event``'s wire bytes called ``name``, built by ``build`` once per event and kept
    on it, so that one event costs one encoding per transport however many receive it.
    The only place that reads or fills an event's frame cache."""
    wire = event.frames.get(name)
    if wire is None:
        wire = event.frames[name] = build(event)
    return wire


def _event_json(event: Event) -> bytes:
    message: dict[str, object] = {"type": "event", "id": event.id, "time": event.time, "data": event.payload}
    if event.presence is not None:
        message["presence"] = event.presence
    return encode(message)


def event_message(event: Event) -> bytes:
    """The ``event`` message of ``event``, encoded once and cached on the event."""
    return cached(event, _JSON_KEY, _event_json)


def opening(subscription: Subscription, epoch: str, frame: Callable[[bytes], bytes],
            frame_event: Callable[[Event], bytes], announce: bool = True) -> list[bytes]:
    """What every connection starts with, in its transport's frames: ``open`` (unless
    ``announce`` is false: a long-poll that resumes), a ``reset`` when events were
    missed, then the backlog."""
    parts = [frame(open_message(subscription.cursor, epoch))] if announce else []
    if subscription.gap:
        parts.append(frame(reset_message(subscription.cursor)))
    parts.extend(frame_event(event) for event in subscription.backlog)
    return parts


def open_message(cursor: int, epoch: str) -> bytes:
    """First message of a connection: delivery continues after id ``cursor`` of ``epoch``."""
    return encode({"type": "open", "id": cursor, "epoch": epoch})


def reset_message(head: int) -> bytes:
    """Events were missed: reload the history, then continue after id ``head``."""
    return encode({"type": "reset", "id": head})


HEARTBEAT = encode({"type": "heartbeat"})
RECONNECT = encode({"type": "reconnect"})
