"""The rules for what clients may send: nicknames, messages, session labels, ids."""

from __future__ import annotations

import re
import unicodedata

from cherrychat.errors import BadRequest, Refused, TooLarge

MAX_NICKNAME_CHARS = 32
#: connection labels (``session=S``) one nickname may hold at once; the chat room refuses
#: one more with :func:`too_many_labels` (``429``)
MAX_LABELS_PER_NICKNAME = 16
MAX_MESSAGE_BYTES = 4096
MAX_EVENT_ID = 2**53

_SESSION_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# Characters that would break a line, a log or an orbit key.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# In a nickname, also what cannot be seen or changes how the text around it is shown:
# format characters (zero-width, bidi controls, soft hyphen: Cf), private use (Co),
# unassigned code points (Cn), and the invisible fillers Unicode classes as letters.
_INVISIBLE_CATEGORIES = _FORBIDDEN_CATEGORIES | {"Cf", "Co", "Cn"}
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180e")


def _has_control_characters(text: str, allowed: str = "") -> bool:
    return any(
        unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in allowed for char in text
    )


def _is_invisible(char: str) -> bool:
    return (
        unicodedata.category(char) in _INVISIBLE_CATEGORIES
        or char in _INVISIBLE_LETTERS
        or "\ufe00" <= char <= "\ufe0f"  # variation selectors
        or "\U000e0100" <= char <= "\U000e01ef"
    )


def nickname(value: str | None) -> str:
    """Check a nickname and return its NFKC form: 1 to 32 characters, no control, format,
    bidi or other invisible characters, no comma.

    Look-alikes that NFKC folds (full-width letters, ligatures) become one name; what it
    cannot fold and a reader cannot see is refused, so no two names differ invisibly and
    none reverses the text around it.
    """
    if not value:
        raise BadRequest("missing parameter: user")
    if len(value) > MAX_NICKNAME_CHARS:
        raise BadRequest(f"nickname longer than {MAX_NICKNAME_CHARS} characters")
    if _has_control_characters(value):
        raise BadRequest("nickname contains control characters")
    if any(_is_invisible(char) for char in value):
        raise BadRequest("nickname contains invisible or text-direction characters")
    value = unicodedata.normalize("NFKC", value)
    if len(value) > MAX_NICKNAME_CHARS:
        raise BadRequest(f"nickname longer than {MAX_NICKNAME_CHARS} characters")
    if _has_control_characters(value) or any(_is_invisible(char) for char in value):
        raise BadRequest("nickname contains invisible or text-direction characters")
    if "," in value:
        raise BadRequest("nickname contains a comma")
    if value != value.strip():
        raise BadRequest("nickname starts or ends with spaces")
    return value


def nickname_identity(name: str) -> str:
    """The key under which two nicknames are the same one: the case-folded NFKC form
    (``Ann``, ``ANN`` and the full-width ``Ａｎｎ`` are one nickname)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def too_many_labels() -> Refused:
    """The refusal of one more connection label for a nickname that holds
    :data:`MAX_LABELS_PER_NICKNAME` already."""
    return Refused(f"too many connection labels for this nickname (at most {MAX_LABELS_PER_NICKNAME})", code=429)


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


def host(value: bytes | None) -> None:
    """Check a request's ``Host`` header (when there is one) the way the router will use
    it: UTF-8, and a name that IDNA can encode.

    @raise BadRequest: it is not (the router would fail on it with a 500).
    """
    if value is None:
        return
    try:
        name = value.decode("utf-8")
        if not name.startswith("["):  # an IPv6 literal is not a name
            name.partition(":")[0].encode("idna")
    except UnicodeError:
        raise BadRequest("invalid Host header") from None

