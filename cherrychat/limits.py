"""Bounds on what one client may take: request sizes, open connections and request rates.

Every bound has a ``twistd cherrychat`` option and a default (:class:`LimitSettings`):

- the request URL (``--max-url-bytes``): longer ones get ``414``;
- the request body (``--max-body-bytes``): a larger ``Content-Length`` gets ``413`` as soon
  as the headers are in, before any of the body is read, and the connection is closed; a
  chunked body is cut off the same way once it passes the bound;
- open comet connections per browser session and per client address
  (``--max-connections-per-session``, ``--max-connections-per-address``): more get ``429``;
- ``/join`` and ``/msg`` per session and per address, each a token bucket
  (``--rate-limit``/``--rate-burst``, ``--address-rate-limit``/``--address-rate-burst``):
  an empty bucket answers ``429`` with ``Retry-After``. Buckets read the clock they are
  given, so tests drive them with a ``task.Clock``.

The client address is the peer's IP, or, when the peer is one of ``--trusted-proxy``, the
last address of its ``X-Forwarded-For`` header (the one that proxy added).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from cherrychat.errors import Refused


class TooMany(Refused):
    """429: too many requests or connections from one session or address."""

    code = 429


@dataclass
class LimitSettings:
    """The bounds; every one has a ``twistd cherrychat`` option of the same name."""

    #: bytes of the request target (path and query string); more get 414
    max_url_bytes: int = 14336
    #: bytes of a request body; more get 413 before the body is read
    max_body_bytes: int = 1048576
    #: open comet connections of one browser session; more get 429
    max_connections_per_session: int = 20
    #: open comet connections from one client address; more get 429
    max_connections_per_address: int = 1000
    #: /join and /msg per second per session (sustained), and the bucket's size
    rate_limit: float = 10.0
    rate_burst: int = 30
    #: /join and /msg per second per client address (sustained), and the bucket's size
    address_rate_limit: float = 50.0
    address_rate_burst: int = 2000
    #: peers whose X-Forwarded-For names the client (a reverse proxy in front)
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each request takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there; ``0`` when one is there now."""
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Take one token (the caller checked :meth:`wait` first)."""
        self._refill(now)
        self.tokens -= 1.0

    def full(self, now: float) -> bool:
        """Whether the bucket refilled completely: it then holds no information."""
        self._refill(now)
        return self.tokens >= self.burst


class RateLimiter:
    """One token bucket per name (a session or an address), read from ``clock``.

    Full buckets are forgotten now and then, so the table stays as large as the set of
    clients that were busy lately.
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: int, prune_at: int = 10000):
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.prune_at = prune_at
        self.buckets: dict[str, TokenBucket] = {}

    def bucket(self, name: str) -> TokenBucket:
        """The bucket of ``name``, made full the first time."""
        bucket = self.buckets.get(name)
        if bucket is None:
            if len(self.buckets) >= self.prune_at:
                self.prune()
            bucket = self.buckets[name] = TokenBucket(self.rate, self.burst, self.clock.seconds())
        return bucket

    def prune(self) -> None:
        """Forget the buckets that are full again."""
        now = self.clock.seconds()
        for name in [name for name, bucket in self.buckets.items() if bucket.full(now)]:
            del self.buckets[name]


class ConnectionCounts:
    """Open comet connections per session and per address."""

    def __init__(self, per_session: int, per_address: int):
        self.per_session = per_session
        self.per_address = per_address
        self.sessions: Counter[str] = Counter()
        self.addresses: Counter[str] = Counter()

    def check(self, session: str, address: str) -> None:
        """Refuse one more connection past either bound.

        @raise TooMany: the session or the address holds its maximum already.
        """
        if self.sessions[session] >= self.per_session:
            raise TooMany(f"too many connections from this browser session (at most {self.per_session})")
        if self.addresses[address] >= self.per_address:
            raise TooMany(f"too many connections from this address (at most {self.per_address})")

    def open(self, session: str, address: str) -> Callable[[], None]:
        """Count one connection; returns the function that uncounts it (once)."""
        self.check(session, address)
        self.sessions[session] += 1
        self.addresses[address] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            for counter, name in ((self.sessions, session), (self.addresses, address)):
                counter[name] -= 1
                if counter[name] <= 0:
                    del counter[name]

        return release


class Limits:
    """The daemon's bounds for one web application, over one clock."""

    def __init__(self, settings: LimitSettings, clock: IReactorTime):
        self.settings = settings
        self.clock = clock
        self.session_rates = RateLimiter(clock, settings.rate_limit, settings.rate_burst)
        self.address_rates = RateLimiter(clock, settings.address_rate_limit, settings.address_rate_burst)
        self.connections = ConnectionCounts(settings.max_connections_per_session, settings.max_connections_per_address)

    def client_address(self, request: IRequest) -> str:
        """The client's IP address, seen through a trusted proxy when there is one."""
        peer = request.getClientAddress()
        host = getattr(peer, "host", None) or "unknown"
        if host in self.settings.trusted_proxies:
            forwarded = request.getHeader(b"x-forwarded-for")
            if forwarded:
                last = forwarded.split(b",")[-1].strip().decode("latin-1")
                if last:
                    return last
        return host

    def check_rate(self, request: IRequest, session: str) -> None:
        """Take a token from the session's and the address's buckets, or take none.

        @raise TooMany: a bucket is empty; ``Retry-After`` says when to try again.
        """
        now = self.clock.seconds()
        session_bucket = self.session_rates.bucket(session)
        address_bucket = self.address_rates.bucket(self.client_address(request))
        wait = max(session_bucket.wait(now), address_bucket.wait(now))
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TooMany(f"too many requests, retry after {retry} s", headers={"Retry-After": str(retry)})
        session_bucket.take(now)
        address_bucket.take(now)


def raw_refusal(code: int, reason: str, default_headers: dict[bytes, bytes]) -> bytes:
    """A whole HTTP/1.1 refusal that closes the connection: status, headers, one line."""
    body = reason.encode("ascii") + b"\n"
    headers = {
        **default_headers,
        b"content-type": b"text/plain; charset=utf-8",
        b"content-length": str(len(body)).encode("ascii"),
        b"connection": b"close",
    }
    head = b"HTTP/1.1 %d %s\r\n" % (code, RESPONSES.get(code, b"Refused"))
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers.items())
    return head + b"\r\n" + body


_REQUEST_LINE_START = re.compile(rb"[!-9;-~]+ ")


class LimitedChannel(HTTPChannel):
    """An HTTP/1.1 channel whose line bounds follow the URL bound, and whose framing
    refusals are the daemon's one-line plain-text answers rather than a bare status line
    (or, for an over-long line, a silent close)."""

    default_headers: dict[bytes, bytes] = {}
    on_refusal: Callable[[int], None] = staticmethod(lambda code: None)

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

    def _refuse(self, code: int, reason: str) -> None:
        self.on_refusal(code)
        if self.transport is not None:
            self.transport.write(raw_refusal(code, reason, self.default_headers))
        self.persistent = False
        self.loseConnection()
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
) -> type[LimitedChannel]:
    """A :class:`LimitedChannel` class for ``Site.protocol``: lines may hold a URL of
    ``max_url_bytes`` (so that a longer one gets the request's own ``414``)."""
    attributes: dict[str, Any] = {
        "MAX_LENGTH": max(16384, settings.max_url_bytes + 1024),
        "totalHeadersSize": max(16384, settings.max_url_bytes + 16384),
        "default_headers": dict(default_headers),
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
