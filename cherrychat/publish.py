"""The publishing API for other processes: ``POST /event``, what pyorbited's ``event`` was.

A request carries form fields ``keys`` (repeatable, each an orbit key
``"user, session, location"``) and ``payload``, and ``Authorization: Bearer TOKEN``. The
token is the content of the file given with ``--publish-token-file`` (surrounding
whitespace stripped), compared in constant time. Without that option the route does not
exist (``404``).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from twisted.web.iweb import IRequest

from cherrychat.errors import BadRequest, Refused, TooLarge
from cherrychat.hub import InvalidKey, parse_key

DEFAULT_MAX_PAYLOAD_BYTES = 65536


class Unauthorized(Refused):
    """401: no valid bearer token; the answer names the scheme to use."""

    code = 401

    def __init__(self, reason: str):
        super().__init__(reason, headers={"WWW-Authenticate": 'Bearer realm="cherrychat"'})


class NotFound(Refused):
    """404: no such resource (``/event`` while publishing is not configured)."""

    code = 404


def read_token(path: str | Path) -> bytes:
    """The publishing token in ``path``.

    @raise ValueError: the file is empty or shorter than 16 characters.
    """
    token = Path(path).read_bytes().strip()
    if len(token) < 16:
        raise ValueError(f"the publish token in {path} is shorter than 16 characters")
    if any(byte <= 0x20 or byte >= 0x7F for byte in token):
        raise ValueError(f"the publish token in {path} must be printable ASCII without spaces")
    return token


class Publisher:
    """Checks ``POST /event`` requests: the token, the keys and the payload."""

    def __init__(self, token: bytes | None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES):
        self.token = token
        self.max_payload_bytes = max_payload_bytes

    @property
    def enabled(self) -> bool:
        """Whether a token is configured."""
        return self.token is not None

    def authorize(self, request: IRequest) -> None:
        """Check ``Authorization: Bearer TOKEN`` in constant time.

        @raise NotFound: publishing is not configured.
        @raise Unauthorized: the header is missing, malformed or names another token.
        """
        if self.token is None:
            raise NotFound("not found")
        header = request.getHeader(b"authorization")
        if header is None:
            raise Unauthorized("missing bearer token")
        scheme, _, presented = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            raise Unauthorized("use Authorization: Bearer TOKEN")
        if not hmac.compare_digest(presented.strip(), self.token):
            raise Unauthorized("invalid bearer token")

    def parse(self, request: IRequest) -> tuple[list[str], str]:
        """The orbit keys and the payload of an authorized request.

        @raise BadRequest: no keys, a malformed key, no payload, or invalid UTF-8.
        @raise TooLarge: the payload is larger than ``max_payload_bytes``.
        """
        raw_keys = request.args.get(b"keys") or []
        if not raw_keys:
            raise BadRequest("missing parameter: keys")
        keys = []
        for raw in raw_keys:
            try:
                key = raw.decode("utf-8")
                parse_key(key)
            except (UnicodeDecodeError, InvalidKey):
                raise BadRequest("invalid orbit key in keys; use \"user, session, /location\"") from None
            keys.append(key)
        payloads = request.args.get(b"payload")
        if not payloads:
            raise BadRequest("missing parameter: payload")
        if len(payloads[0]) > self.max_payload_bytes:
            raise TooLarge(f"payload larger than {self.max_payload_bytes} bytes")
        try:
            payload = payloads[0].decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("invalid UTF-8 in parameter: payload") from None
        return keys, payload
