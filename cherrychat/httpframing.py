"""The HTTP/1.1 framing of the daemon's connections: size bounds, deadlines, output bounds
and the per-address connection count, applied where Twisted parses requests.

:class:`LimitedChannel` (``Site.protocol``) and :class:`LimitedRequest`
(``Site(requestFactory=...)``) take their numbers from
:class:`cherrychat.limits.LimitSettings`:

- an over-long request line is a ``414``, an over-long header a ``431``, broken framing a
  ``400``: each the daemon's one plain-text line, not Twisted's bare status line;
- a request must arrive whole, headers and body, within ``request_timeout`` seconds of its
  first byte (``408``) however slowly it trickles in; Twisted's own idle timeout
  (``Site(timeout=idle_timeout)``) closes a connection silent for longer between requests;
- a client that pipelines requests while not reading the answers is closed once the
  socket's send buffer is full (Twisted stops reading then, but would still answer every
  request it had read ahead), and aborted if it does not read even the last answer;
- every TCP connection of a direct peer counts against its address's cap
  (:meth:`cherrychat.comet.admission.Admission.open_socket`); one past the cap is answered
  ``429`` and closed.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.server import Request

from cherrychat.comet.admission import Admission, Ticket
from cherrychat.limits import LimitSettings


# Reason phrases Twisted's table lacks.
_REASONS = {429: b"Too Many Requests", 431: b"Request Header Fields Too Large"}


def raw_refusal(code: int, reason: str, default_headers: dict[bytes, bytes]) -> bytes:
    """A whole HTTP/1.1 refusal that closes the connection: status, headers, one line."""
    body = reason.encode("ascii") + b"\n"
    headers = {
        **default_headers,
        b"content-type": b"text/plain; charset=utf-8",
        b"content-length": str(len(body)).encode("ascii"),
        b"connection": b"close",
    }
    head = b"HTTP/1.1 %d %s\r\n" % (code, RESPONSES.get(code) or _REASONS.get(code, b"Refused"))
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers.items())
    return head + b"\r\n" + body


_REQUEST_LINE_START = re.compile(rb"[!-9;-~]+ ")
#: seconds a connection past its address's cap may take to send its request line before
#: it is closed without one
OVER_CAP_GRACE = 1.0


class LimitedChannel(HTTPChannel):
    """An HTTP/1.1 channel with the daemon's bounds (see the module's docstring)."""

    default_headers: dict[bytes, bytes] = {}
    on_refusal: Callable[[int], None] = staticmethod(lambda code: None)
    #: the daemon's connection counts; ``None``: no per-address cap (tests of the parser)
    admission: Admission | None = None
    #: peers not counted per address: their requests are counted by the forwarded address
    trusted_proxies: frozenset[str] = frozenset()
    request_timeout: float | None = LimitSettings.request_timeout

    ticket: Ticket | None = None
    _deadline: IDelayedCall | None = None
    _abort_call: IDelayedCall | None = None
    _over_cap = False
    _refused = False

    def connectionMade(self) -> None:
        """Count the connection against its address; past the cap, refuse it as soon as
        its request line arrives (so the client reads the 429), or after a short grace."""
        super().connectionMade()
        if self.admission is None:
            return
        transport: Any = self.transport
        host = getattr(transport.getPeer(), "host", None) or "unknown"
        if host in self.trusted_proxies:
            return
        self.ticket = self.admission.open_socket(host)
        if self.ticket is None:
            self._over_cap = True
            self._deadline = self.callLater(OVER_CAP_GRACE, self._refuse_over_cap)

    def lineReceived(self, line: bytes) -> None:
        """Start the request's deadline on its first line; refuse one past the cap."""
        if self._refused:
            return  # the rest of what was read with the refused line
        if self._over_cap:
            self._refuse_over_cap()
            return
        if self._deadline is None and not self._handlingRequest and self.request_timeout:
            self._deadline = self.callLater(self.request_timeout, self._too_slow)
        super().lineReceived(line)

    def allContentReceived(self) -> None:
        """The request arrived in time: its deadline ends."""
        self._cancel_deadline()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        """Close a connection whose client pipelines requests without reading the answers.

        Twisted stops reading once the send buffer is full, but answers every request it
        read ahead; with answers unread that would buffer without bound.
        """
        # Requests read ahead wait in the parser's buffer (answered synchronously) or in
        # the channel's (answered later).
        if self._waitingForTransport and (self._dataBuffer or self._buffer):
            self._dataBuffer = []
            self._buffer = b""
            self.persistent = False
            self._abort_later()
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Release the connection's count and timers."""
        self._cancel_deadline()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        if self.ticket is not None:
            self.ticket.release()
        super().connectionLost(reason)

    def lineLengthExceeded(self, line: bytes) -> None:
        """An over-long request line is a 414, an over-long header a 431."""
        if _REQUEST_LINE_START.match(line):
            self._refuse(414, "URL too long")
        else:
            self._refuse(431, "request header too large")

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's answer to broken framing (bad request line, bad header, bad chunk,
        # too many or too large headers).
        self._refuse(400, "malformed HTTP request")

    def _too_slow(self) -> None:
        self._deadline = None
        self._refuse(408, f"request not received within {self.request_timeout:g} s")

    def _refuse_over_cap(self) -> None:
        assert self.admission is not None
        self._over_cap = False
        self._refuse(429, self.admission.socket_refusal().reason)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _abort_later(self) -> None:
        # A client that reads nothing would keep the closing socket and its unsent
        # answers forever: give it Twisted's abort timeout to read, then abort.
        transport: Any = self.transport
        if self._abort_call is None and transport is not None:
            self._abort_call = self.callLater(self.abortTimeout, transport.abortConnection)

    def rawDataReceived(self, data: bytes) -> None:
        """Nothing more is read once refused."""
        if not self._refused:
            super().rawDataReceived(data)

    def _refuse(self, code: int, reason: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.on_refusal(code)
        if self.transport is not None:
            self.transport.write(raw_refusal(code, reason, self.default_headers))
        self.persistent = False
        self.loseConnection()
        self._abort_later()
        # Nothing more from this client is read.
        self.dataReceived = lambda data: None  # type: ignore[method-assign]


class _Discard:
    """A request body sink that keeps nothing: the body of a refused request."""

    def write(self, data: bytes) -> None:
        """Drop ``data``."""

    def seek(self, offset: int, whence: int = 0) -> int:
        """Nothing to move in."""
        return 0

    def tell(self) -> int:
        """Always empty."""
        return 0

    def read(self, size: int = -1) -> bytes:
        """Always empty."""
        return b""

    def close(self) -> None:
        """Nothing to close."""


class LimitedRequest(Request):
    """A request that refuses an over-long URL (414) and an over-large body (413).

    The body's bound is checked when the headers are complete, from ``Content-Length``,
    before any of the body is read: the refusal is written at once and the connection
    closed, so a client cannot make the daemon read or store a large body. A chunked body
    is counted as it arrives and cut off the same way.

    :func:`request_factory` makes a subclass that knows the bounds and the headers that
    every response carries.
    """

    max_url_bytes = LimitSettings.max_url_bytes
    max_body_bytes = LimitSettings.max_body_bytes
    default_headers: dict[bytes, bytes] = {}
    on_refusal: Callable[[int], None] = staticmethod(lambda code: None)

    _refused_early = False
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:
        """Refuse a declared body over the bound before reading any of it."""
        if length is not None and length > self.max_body_bytes:
            self._refuse_early(413, f"request body larger than {self.max_body_bytes} bytes")
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Count the body as it arrives; past the bound (chunked bodies), refuse."""
        if self._refused_early:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body_bytes:
            self._refuse_early(413, f"request body larger than {self.max_body_bytes} bytes")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Nothing more to do for a request refused while its body came in."""
        if self._refused_early:
            return
        super().requestReceived(command, path, version)

    def process(self) -> None:
        """Refuse an over-long URL; else serve as usual."""
        if len(self.uri) > self.max_url_bytes:
            for name, value in self.default_headers.items():
                self.setHeader(name, value)
            self.setResponseCode(414)
            self.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self.setHeader(b"connection", b"close")
            self.on_refusal(414)
            self.write(f"URL longer than {self.max_url_bytes} bytes\n".encode("ascii"))
            self.finish()
            return
        super().process()

    def _refuse_early(self, code: int, reason: str) -> None:
        # The request line and headers are in, the body is not: answer on the raw
        # transport and close, without reading the body and without "100 Continue".
        self._refused_early = True
        self.content = _Discard()  # type: ignore[assignment]
        self.requestHeaders.removeHeader(b"expect")
        self.on_refusal(code)
        channel: Any = self.channel
        transport = channel.transport
        if transport is not None:
            transport.write(raw_refusal(code, reason, self.default_headers))
            channel.persistent = False
            transport.loseConnection()


def channel_factory(
    settings: LimitSettings,
    default_headers: dict[bytes, bytes],
    on_refusal: Callable[[int], None] | None = None,
    admission: Admission | None = None,
) -> type[LimitedChannel]:
    """A :class:`LimitedChannel` class for ``Site.protocol``: lines may hold a URL of
    ``max_url_bytes`` (so that a longer one gets the request's own ``414``); requests
    arrive within ``request_timeout``; with ``admission``, every connection is counted
    against its address."""
    attributes: dict[str, Any] = {
        "MAX_LENGTH": max(16384, settings.max_url_bytes + 1024),
        "totalHeadersSize": max(16384, settings.max_url_bytes + 16384),
        "default_headers": dict(default_headers),
        "admission": admission,
        "trusted_proxies": settings.trusted_proxies,
        "request_timeout": settings.request_timeout,
    }
    if on_refusal is not None:
        attributes["on_refusal"] = staticmethod(on_refusal)
    return type("CherryChatChannel", (LimitedChannel,), attributes)


def request_factory(
    settings: LimitSettings,
    default_headers: dict[bytes, bytes],
    on_refusal: Callable[[int], None] | None = None,
) -> type[LimitedRequest]:
    """A :class:`LimitedRequest` class for ``Site(requestFactory=...)`` with these bounds."""
    attributes: dict[str, Any] = {
        "max_url_bytes": settings.max_url_bytes,
        "max_body_bytes": settings.max_body_bytes,
        "default_headers": dict(default_headers),
    }
    if on_refusal is not None:
        attributes["on_refusal"] = staticmethod(on_refusal)
    return type("CherryChatRequest", (LimitedRequest,), attributes)
