"""The ``/history`` answer's bound in bytes: however large the events, one answer stays
small enough that a client that does not read it cannot make the daemon hold much."""

from __future__ import annotations

import json
from typing import Any

#: bytes of the events of one ``/history`` answer (its JSON); older events beyond it are
#: left out, and a client pages back to them with ``before=ID``
MAX_HISTORY_BYTES = 256 * 1024


def bounded_history(items: list[dict[str, Any]], max_bytes: int = MAX_HISTORY_BYTES) -> list[dict[str, Any]]:
    """The newest of ``items`` (oldest first) whose JSON fits in ``max_bytes``; always at
    least the newest one, which alone is at most a message's size."""
    kept = 0
    size = 0
    for item in reversed(items):
        size += len(json.dumps(item, ensure_ascii=True)) + 1
        if kept and size > max_bytes:
            break
        kept += 1
    return items[len(items) - kept:]
