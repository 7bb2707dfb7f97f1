"""The rules for what clients may send: nicknames, messages, session labels, ids."""

from __future__ import annotations

import re
import unicodedata

from cherrychat.errors import BadRequest, TooLarge

MAX_NICKNAME_CHARS = 32
MAX_MESSAGE_BYTES = 4096
MAX_EVENT_ID = 2**53

_SESSION_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# Characters that would break a line, a log or an orbit key.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def _has_control_characters(text: str, allowed: str = "") -> bool:
    return any(
        unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in allowed for char in text
    )


def nickname(value: str | None) -> str:
    """Check a nickname: 1 to 32 characters, no control characters, no comma."""
    if not value:
        raise BadRequest("missing parameter: user")
    if len(value) > MAX_NICKNAME_CHARS:
        raise BadRequest(f"nickname longer than {MAX_NICKNAME_CHARS} characters")
    if _has_control_characters(value):
        raise BadRequest("nickname contains control characters")
    if "," in value:
        raise BadRequest("nickname contains a comma")
    if value != value.strip():
        raise BadRequest("nickname starts or ends with spaces")
    return value


def message(value: str | None) -> str:
    """Check a chat message: 1 byte to 4 KiB of UTF-8; tabs and newlines allowed."""
    if value is None or value == "":
        raise BadRequest("missing parameter: msg")
    if len(value.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise TooLarge(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    if _has_control_characters(value, allowed="\t\n"):
        raise BadRequest("message contains control characters")
    if not value.strip():
        raise BadRequest("message is empty")
    return value


def session_label(value: str | None) -> str:
    """Check the ``session`` label of an orbit key; the tutorial's ``0`` is the default."""
    if value is None or value == "":
        return "0"
    if not _SESSION_LABEL.fullmatch(value):
        raise BadRequest("invalid parameter: session")
    return value


def event_id(value: str | None, name: str = "last_event_id") -> int | None:
    """Check an optional event id parameter (``last_event_id``, ``before``): a
    non-negative integer."""
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise BadRequest(f"invalid parameter: {name}")
    number = int(value)
    if number > MAX_EVENT_ID:
        raise BadRequest(f"invalid parameter: {name}")
    return number


_EPOCH = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def epoch(value: str | None) -> str | None:
    """Check an optional ``epoch``: the history an id was counted in, from an ``open``."""
    if value is None or value == "":
        return None
    if not _EPOCH.fullmatch(value):
        raise BadRequest("invalid parameter: epoch")
    return value


def positive_int(value: str | None, name: str, default: int, maximum: int) -> int:
    """Check an optional positive integer parameter such as ``limit``; large ones are capped."""
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 9 or int(value) == 0:
        raise BadRequest(f"invalid parameter: {name}")
    return min(int(value), maximum)
