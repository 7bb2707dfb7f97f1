"""Refusals: a request that is refused gets a 4xx status and a one-line reason."""

from __future__ import annotations


class Refused(Exception):
    """A request refused with an HTTP status and a one-line plain-text reason.

    Raised anywhere below the web layer; the web layer turns it into the response.
    """

    code = 400

    def __init__(self, reason: str, code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(Refused):
    """400: a parameter is missing or invalid."""

    code = 400


class NotYours(Refused):
    """403: the nickname belongs to another browser session."""

    code = 403


class Taken(Refused):
    """409: the nickname is held by another browser session."""

    code = 409


class TooLarge(Refused):
    """413: a message or request is larger than allowed."""

    code = 413


class TooMany(Refused):
    """429: too many requests or connections from one session or address."""

    code = 429


class Unavailable(Refused):
    """503: the daemon cannot take this now (connection cap, lost backend, storage that
    cannot be written, stopping); ``retry_after`` seconds become a ``Retry-After`` header."""

    code = 503

    def __init__(self, reason: str, retry_after: int | None = None):
        super().__init__(reason, headers={"Retry-After": str(retry_after)} if retry_after else None)
