"""The publishing API for other processes: ``POST /event``, what pyorbited's ``event`` was.

A request carries form fields ``keys`` (repeatable, each an orbit key
``"user, session, location"``) and ``payload``, or the same as a JSON object
(``Content-Type: application/json``, ``{"keys": [...], "payload": "..."}``: cheaper to
build and to read for thousands of keys), and ``Authorization: Bearer TOKEN``. The
token is the content of the file given with ``--publish-token-file`` (surrounding
whitespace stripped), compared in constant time. Without that option the route does not
exist (``404``).
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from twisted.web.iweb import IRequest

from cherrychat.errors import BadRequest, Refused, TooLarge

DEFAULT_MAX_PAYLOAD_BYTES = 65536
#: the answer to a key that is not an orbit key (the hub checks the keys as it publishes)
INVALID_KEYS = "invalid orbit key in keys; use \"user, session, /location\""


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
        """The keys and the payload of an authorized request, form or JSON; whether each
        key is an orbit key is checked by the hub when it publishes.

        @raise BadRequest: no keys, no payload, invalid UTF-8 or JSON.
        @raise TooLarge: the payload is larger than ``max_payload_bytes``.
        """
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type == b"application/json":
            raw_keys, payload = _json_fields(request)
        else:
            raw_keys, payload = _form_fields(request)
        if not raw_keys:
            raise BadRequest("missing parameter: keys")
        if payload is None:
            raise BadRequest("missing parameter: payload")
        if len(payload.encode("utf-8")) > self.max_payload_bytes:
            raise TooLarge(f"payload larger than {self.max_payload_bytes} bytes")
        return raw_keys, payload


def _form_fields(request: IRequest) -> tuple[list[str], str | None]:
    try:
        keys = [raw.decode("utf-8") for raw in request.args.get(b"keys") or []]
    except UnicodeDecodeError:
        raise BadRequest(INVALID_KEYS) from None
    payloads = request.args.get(b"payload")
    if not payloads:
        return keys, None
    try:
        return keys, payloads[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("invalid UTF-8 in parameter: payload") from None


def _json_fields(request: IRequest) -> tuple[list[str], str | None]:
    request.content.seek(0)
    try:
        body: Any = json.loads(request.content.read())
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("invalid JSON body; send {\"keys\": [...], \"payload\": \"...\"}") from None
    if not isinstance(body, dict):
        raise BadRequest("the JSON body must be an object with keys and payload")
    keys = body.get("keys")
    if keys is None:
        keys = []
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise BadRequest("keys must be a list of orbit key strings")
    payload = body.get("payload")
    if payload is not None and not isinstance(payload, str):
        raise BadRequest("payload must be a string")
    try:
        # JSON escapes can spell lone surrogates, which are not text.
        for text in [*keys, payload or ""]:
            text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("invalid UTF-8 in keys or payload") from None
    return keys, payload
