"""The Orbit protocol listener: what Orbited's port 9000 was, for pyorbited 0.2 clients.

A client sends one request per event, any number of them on one connection::

    Orbit 1.0\\r\\n
    Event\\r\\n
    id: 1\\r\\n
    recipient: ann, 0, /cherrychat\\r\\n        (repeated; in any order with the others)
    length: 17\\r\\n
    \\r\\n
    "<b>alice</b> hi"                           (``length`` bytes: the payload as a JSON string)

and gets, in the order of its requests, ``Success\\r\\nid: 1\\r\\n\\r\\n`` once the event is
published through :meth:`cherrychat.hub.Hub.event` (stored durably where the hub stores), or
``Failure\\r\\nid: 1\\r\\nmsg: REASON\\r\\n[recipient: (KEY)\\r\\n...]\\r\\n``. Orbited answered
``Failure`` for recipients without a connection; here an event for a key that is not
connected waits in the key's queue, so that is a ``Success``, and so is a request with no
recipient at all (Orbited never answered one, which hung its caller).

Bounds: a request line longer than ``max_line_bytes``, a head longer than
``max_head_bytes``, more than ``max_recipients`` recipients or a ``length`` larger than a
JSON string of ``max_payload_bytes`` can be gets a ``Failure`` and the connection is
closed, as is anything that is not the Orbit protocol at all: where the next request
starts is no longer known then. A request that is well framed but wrong (another type than
``Event``, a body that is not a JSON string, a malformed key, a payload over
``max_payload_bytes``) gets a ``Failure`` with the reason, publishes nothing, and the
connection goes on. A request not complete ``idle_timeout`` seconds after its first byte is dropped.
At most ``max_pending`` requests of one connection are published at once; past that the
listener stops reading that connection until answers have been written.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from cherrychat.errors import Refused
from cherrychat.hub import InvalidKey, parse_key
from cherrychat.publish import DEFAULT_MAX_PAYLOAD_BYTES

log = Logger()

#: the hub's ``event``: fires with the event ids, or fails (InvalidKey, Unavailable)
Publish = Callable[[list[str], str], Deferred]

_CRLF = b"\r\n"
#: at most this many refused recipients are named in one ``Failure``
_LISTED_RECIPIENTS = 20


def hub_publisher(hub: Any) -> Publish:
    """``hub.event`` as a function that always returns a Deferred of the event ids, firing
    once they are stored: a malformed key fails the Deferred instead of raising."""

    def publish(keys: list[str], payload: str) -> Deferred:
        return maybeDeferred(hub.event, keys, payload)

    return publish


def loopback_default(description: str) -> str:
    """The endpoint description ``description``, on the loopback interface when it names
    no interface: a bare port number or a ``tcp:``/``tcp6:`` endpoint without
    ``interface=``. Other kinds (``unix:``, ``ssl:`` with one) are left as they are."""
    if description.isdigit():
        return f"tcp:{description}:interface=127.0.0.1"
    kind = description.split(":", 1)[0]
    if kind in ("tcp", "tcp6", "ssl") and "interface=" not in description:
        loopback = "\\:\\:1" if kind == "tcp6" else "127.0.0.1"
        return f"{description}:interface={loopback}"
    return description


@dataclass
class OrbitSettings:
    """The bounds of the Orbit listener (see the module's docstring)."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_recipients: int = 10000
    max_line_bytes: int = 4096
    max_head_bytes: int = 1024 * 1024
    max_pending: int = 64
    max_connections: int = 256
    idle_timeout: float = 30.0

    @property
    def max_length(self) -> int:
        """The largest ``length`` a payload of ``max_payload_bytes`` can take as JSON:
        each byte may be one ``\\u00XX`` escape, plus the quotes."""
        return 6 * self.max_payload_bytes + 2


class Malformed(Exception):
    """The stream is not the Orbit protocol, or over a bound: answer and close."""


@dataclass
class _Request:
    """One request as it is read."""

    type: bytes = b""
    id: str = "0"
    recipients: list[str] = field(default_factory=list)
    length: int | None = None
    #: why the request is refused although it is well framed
    problem: str | None = None
    head_bytes: int = 0


def success(request_id: str) -> bytes:
    """The answer to a published event."""
    return b"Success\r\nid: %s\r\n\r\n" % request_id.encode("ascii")


def failure(request_id: str, reason: str, recipients: list[str] = ()) -> bytes:  # type: ignore[assignment]
    """The answer to a refused request: its id, the reason and the recipients at fault."""
    lines = [b"Failure", b"id: " + request_id.encode("ascii"), b"msg: " + _field(reason)]
    lines.extend(b"recipient: (" + _field(key) + b")" for key in recipients[:_LISTED_RECIPIENTS])
    return _CRLF.join(lines) + _CRLF + _CRLF


def _field(text: str) -> bytes:
    # A value in an answer stays on its line, and ": " inside it would break the clients'
    # ``line.split(': ')``.
    cleaned = "".join(char if char.isprintable() else "?" for char in text).replace(": ", ":")
    return cleaned.encode("utf-8", "replace")


def _request_id(value: str) -> str:
    if 0 < len(value) <= 32 and value.isascii() and value.isprintable() and ": " not in value:
        return value
    raise Malformed("invalid id header")


class OrbitProtocol(Protocol, TimeoutMixin):
    """One Orbit protocol connection: reads requests, publishes, answers in order."""

    def __init__(self, factory: OrbitFactory):
        self.factory = factory
        self.settings = factory.settings
        self._buffer = b""
        self._request: _Request | None = None
        self._state = "version"
        #: answers in request order: bytes once known, a Deferred until then
        self._answers: deque[list[bytes | None]] = deque()
        self._paused = False
        #: set once the connection is to be closed: nothing more is read
        self._closing = False
        self._closed = False

    def callLater(self, delay: float, function: Callable[..., Any], *args: Any) -> Any:  # type: ignore[override]
        """Timeouts run on the factory's clock (a ``task.Clock`` in tests)."""
        return self.factory.clock.callLater(delay, function, *args)

    def connectionMade(self) -> None:
        """Count the connection; refuse it past ``max_connections``."""
        self.factory.open += 1
        if self.factory.open > self.settings.max_connections:
            self.transport.write(failure("0", "too many Orbit connections"))  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            self._closed = True

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Forget the connection; events already handed to the hub stay published."""
        self.factory.open -= 1
        self._closed = True
        self.setTimeout(None)

    def timeoutConnection(self) -> None:
        """A request was left unfinished too long."""
        self._abandon("request not finished in time")

    def dataReceived(self, data: bytes) -> None:
        """Read as many complete requests as the buffer holds."""
        if self._closed or self._closing:
            return
        self._buffer += data
        self._parse()

    # -- reading ---------------------------------------------------------------------

    def _parse(self) -> None:
        try:
            while not (self._closed or self._closing or self._paused) and self._step():
                pass
        except Malformed as error:
            self._abandon(str(error))
            return
        # A request must be complete within the timeout of its first byte, however slowly
        # it trickles in; between requests the connection may stay open and quiet
        # (pyorbited connects once and keeps it).
        if not (self._buffer or self._state != "version"):
            self.setTimeout(None)
        elif self.timeOut is None:
            self.setTimeout(self.settings.idle_timeout)

    def _step(self) -> bool:
        """Consume one line or one body; ``False`` when more bytes are needed."""
        if self._state == "body":
            request = self._request
            assert request is not None and request.length is not None
            if len(self._buffer) < request.length:
                return False
            body, self._buffer = self._buffer[: request.length], self._buffer[request.length :]
            self._request, self._state = None, "version"
            self.setTimeout(None)  # the next request gets its own deadline
            self._dispatch(request, body)
            return True
        end = self._buffer.find(_CRLF)
        if end < 0:
            if len(self._buffer) > self.settings.max_line_bytes:
                raise Malformed(f"line longer than {self.settings.max_line_bytes} bytes")
            return False
        if end > self.settings.max_line_bytes:
            raise Malformed(f"line longer than {self.settings.max_line_bytes} bytes")
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        getattr(self, "_line_" + self._state)(line)
        return True

    def _line_version(self, line: bytes) -> None:
        if not line:
            return  # a blank line between requests is harmless
        if not line.startswith(b"Orbit "):
            raise Malformed("not an Orbit request; expected Orbit 1.0")
        self._request = _Request(head_bytes=len(line))
        self._state = "type"

    def _line_type(self, line: bytes) -> None:
        assert self._request is not None
        self._request.type = line
        self._request.head_bytes += len(line)
        if line != b"Event":
            self._request.problem = "unsupported request type; only Event"
        self._state = "headers"

    def _line_headers(self, line: bytes) -> None:
        request = self._request
        assert request is not None
        request.head_bytes += len(line) + 2
        if request.head_bytes > self.settings.max_head_bytes:
            raise Malformed(f"request head larger than {self.settings.max_head_bytes} bytes")
        if not line:
            if request.length is None:
                raise Malformed("missing length header")
            self._state = "body"
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            request.problem = request.problem or "invalid UTF-8 in a header"
            return
        name, separator, value = text.partition(": ")
        name = name.lower()
        if not separator:
            request.problem = request.problem or "malformed header line"
        elif name == "id":
            request.id = _request_id(value)
        elif name == "recipient":
            if len(request.recipients) >= self.settings.max_recipients:
                raise Malformed(f"more than {self.settings.max_recipients} recipients")
            request.recipients.append(value)
        elif name == "length":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise Malformed("invalid length header")
            request.length = int(value)
            if request.length > self.settings.max_length:
                raise Malformed(f"payload larger than {self.settings.max_payload_bytes} bytes")
        # Other headers are ignored, as Orbited did.

    # -- publishing --------------------------------------------------------------------

    def _dispatch(self, request: _Request, body: bytes) -> None:
        try:
            payload = self._check(request, body)
        except Refused as refusal:
            self._answer(failure(request.id, refusal.reason, getattr(refusal, "recipients", [])))
            return
        if not request.recipients:
            self._answer(success(request.id))
            return
        publishing = self.factory.publish(request.recipients, payload)
        publishing.addCallbacks(lambda _: success(request.id), lambda reason: self._refused(request, reason))
        self._answer(publishing)

    def _check(self, request: _Request, body: bytes) -> str:
        if request.problem:
            raise Refused(request.problem)
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, str):
            raise Refused("the body must be the payload as a JSON string")
        try:
            size = len(payload.encode("utf-8"))
        except UnicodeEncodeError:
            raise Refused("invalid UTF-8 in the payload") from None
        if size > self.settings.max_payload_bytes:
            raise Refused(f"payload larger than {self.settings.max_payload_bytes} bytes")
        bad = []
        for key in request.recipients:
            try:
                parse_key(key)
            except InvalidKey:
                bad.append(key)
        if bad:
            refusal = Refused(f"{len(bad)} invalid orbit keys; use user, session, /location")
            refusal.recipients = bad  # type: ignore[attr-defined]
            raise refusal
        return payload

    def _refused(self, request: _Request, reason: Failure) -> bytes:
        if reason.check(Refused):
            return failure(request.id, reason.value.reason)
        if reason.check(InvalidKey):
            return failure(request.id, "invalid orbit key; use user, session, /location")
        log.failure("Orbit request {id} failed", reason, id=request.id)
        return failure(request.id, "internal error")

    # -- answering in order ------------------------------------------------------------

    def _answer(self, answer: bytes | Deferred) -> None:
        # Each request has a slot in ``_answers``, filled with its answer's bytes once
        # known; answers are written in request order.
        slot: list[bytes | None] = [None]
        self._answers.append(slot)
        if isinstance(answer, Deferred):
            answer.addCallback(self._fill, slot)
        else:
            slot[0] = answer
        self._flush()
        if len(self._answers) >= self.settings.max_pending and not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def _fill(self, answer: bytes, slot: list[bytes | None]) -> None:
        slot[0] = answer
        self._flush()

    def _flush(self) -> None:
        while self._answers and self._answers[0][0] is not None:
            answer = self._answers.popleft()[0]
            if not self._closed and self.transport is not None:
                self.transport.write(answer)  # type: ignore[arg-type]
        if self._closing:
            if not self._answers and not self._closed:
                self._closed = True
                self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if self._paused and len(self._answers) < self.settings.max_pending:
            self._paused = False
            if not self._closed:
                self.transport.resumeProducing()  # type: ignore[union-attr]
                self._parse()

    def _abandon(self, reason: str) -> None:
        # Answers to the requests before this one go first; nothing after it is read,
        # and the connection closes once they are written.
        request_id = self._request.id if self._request is not None else "0"
        self._closing = True
        self._buffer = b""
        self.setTimeout(None)
        self._answer(failure(request_id, reason))


class OrbitFactory(Factory):
    """Builds :class:`OrbitProtocol` connections that publish with ``publish``."""

    def __init__(self, publish: Publish, clock: IReactorTime, settings: OrbitSettings | None = None):
        self.publish = publish
        self.clock = clock
        self.settings = settings or OrbitSettings()
        #: open connections, for the bound
        self.open = 0

    def buildProtocol(self, addr: IAddress | None) -> OrbitProtocol:
        """One protocol per connection."""
        return OrbitProtocol(self)
