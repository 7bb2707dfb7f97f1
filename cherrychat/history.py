"""The ``/history`` answer's bound in bytes: however large the events, one answer stays
small enough that a client that does not read it cannot make the daemon hold much."""

from __future__ import annotations

import json
from typing import Any

#: bytes of the events of one ``/history`` answer (its JSON); older events beyond it are
#: left out, and a client pages back to them with ``before=ID``
MAX_HISTORY_BYTES = 256 * 1024


def _encoded(items: list[dict[str, Any]], max_bytes: int) -> list[bytes]:
    # Newest first, each item encoded once, until the bound; always at least the newest.
    parts: list[bytes] = []
    size = 0
    for item in reversed(items):
        part = json.dumps(item, ensure_ascii=True).encode("ascii")
        size += len(part) + 1
        if parts and size > max_bytes:
            break
        parts.append(part)
    parts.reverse()
    return parts


def bounded_history(items: list[dict[str, Any]], max_bytes: int = MAX_HISTORY_BYTES) -> list[dict[str, Any]]:
    """The newest of ``items`` (oldest first) whose JSON fits in ``max_bytes``; always at
    least the newest one, which alone is at most a message's size."""
    return items[len(items) - len(_encoded(items, max_bytes)):]


def history_json(items: list[dict[str, Any]], max_bytes: int = MAX_HISTORY_BYTES) -> bytes:
    """The body of a ``/history`` answer, ``{"events": [...]}``, holding the newest of
    ``items`` that fit in ``max_bytes`` (see :func:`bounded_history`), each encoded once."""
    return b'{"events": [' + b", ".join(_encoded(items, max_bytes)) + b"]}"
