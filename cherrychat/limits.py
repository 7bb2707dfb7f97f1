"""Bounds on what one client may ask for: request sizes, request rates and deadlines.

Every bound has a ``twistd cherrychat`` option and a default (:class:`LimitSettings`):

- the request URL (``--max-url-bytes``): longer ones get ``414``;
- the request body (``--max-body-bytes``): a larger ``Content-Length`` gets ``413`` as soon
  as the headers are in, before any of the body is read, and the connection is closed; a
  chunked body is cut off the same way once it passes the bound;
- the time a request may take to arrive (``--request-timeout``): ``408``, and the time a
  keep-alive connection may stay idle (``--idle-timeout``): closed;
- ``/join`` and ``/msg`` per session and per address, each a token bucket
  (``--rate-limit``/``--rate-burst``, ``--address-rate-limit``/``--address-rate-burst``),
  and per address per minute, new browser sessions (``--address-sessions-per-minute``)
  and joins (``--address-joins-per-minute``): an empty bucket answers ``429`` with
  ``Retry-After``. Buckets read the clock they are given, so tests drive them with a
  ``task.Clock``.

These are policies; :mod:`cherrychat.httpframing` applies the size bounds and deadlines
to the HTTP parser, and :mod:`cherrychat.comet.admission` holds the connection caps.

The client address is the peer's IP, or, when the peer is one of ``--trusted-proxy``, the
last address of its ``X-Forwarded-For`` header (the one that proxy added).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from cherrychat.errors import TooMany

__all__ = ["LimitSettings", "Limits", "RateLimiter", "TokenBucket", "TooMany"]


@dataclass
class LimitSettings:
    """The bounds; every one has a ``twistd cherrychat`` option of the same name."""

    #: bytes of the request target (path and query string); more get 414
    max_url_bytes: int = 14336
    #: bytes of a request body; more get 413 before the body is read
    max_body_bytes: int = 1048576
    #: seconds from a request's first byte to its last (headers and body); later: 408
    request_timeout: float = 15.0
    #: seconds a connection may stay silent between requests before it is closed
    idle_timeout: float = 30.0
    #: /join and /msg per second per session (sustained), and the bucket's size
    rate_limit: float = 10.0
    rate_burst: int = 30
    #: /join and /msg per second per client address (sustained), and the bucket's size
    address_rate_limit: float = 50.0
    address_rate_burst: int = 2000
    #: new browser sessions (cookies handed out) per minute per client address
    address_sessions_per_minute: int = 300
    #: /join per minute per client address
    address_joins_per_minute: int = 60
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


class Limits:
    """The daemon's request bounds for one web application, over one clock."""

    def __init__(self, settings: LimitSettings, clock: IReactorTime):
        self.settings = settings
        self.clock = clock
        self.session_rates = RateLimiter(clock, settings.rate_limit, settings.rate_burst)
        self.address_rates = RateLimiter(clock, settings.address_rate_limit, settings.address_rate_burst)
        self.new_sessions = RateLimiter(
            clock, settings.address_sessions_per_minute / 60.0, settings.address_sessions_per_minute
        )
        self.joins = RateLimiter(clock, settings.address_joins_per_minute / 60.0, settings.address_joins_per_minute)

    def client(self, request: IRequest) -> tuple[str, bool]:
        """The client's IP address, seen through a trusted proxy when there is one, and
        whether it was (then the request's socket is the proxy's, not the client's)."""
        peer = request.getClientAddress()
        host = getattr(peer, "host", None) or "unknown"
        if host in self.settings.trusted_proxies:
            forwarded = request.getHeader(b"x-forwarded-for")
            if forwarded:
                last = forwarded.split(b",")[-1].strip().decode("latin-1")
                if last:
                    return last, True
        return host, False

    def prune(self) -> None:
        """Forget every bucket that is full again: a storm of sessions leaves no state
        behind once it is over (the daemon's sweep calls this)."""
        for limiter in (self.session_rates, self.address_rates, self.new_sessions, self.joins):
            limiter.prune()
    def client_address(self, request: IRequest) -> str:
        """The client's IP address, seen through a trusted proxy when there is one."""
        return self.client(request)[0]

    def check_rate(self, request: IRequest, session: str) -> None:
        """Take a token from the session's and the address's buckets, or take none.

        @raise TooMany: a bucket is empty; ``Retry-After`` says when to try again.
        """
        self._take(self.clock.seconds(), self.session_rates.bucket(session),
                   self.address_rates.bucket(self.client_address(request)))

    def check_join(self, request: IRequest, session: str) -> None:
        """:meth:`check_rate`, and the address's bucket of joins per minute: all or none.

        @raise TooMany: a bucket is empty.
        """
        address = self.client_address(request)
        self._take(self.clock.seconds(), self.session_rates.bucket(session),
                   self.address_rates.bucket(address), self.joins.bucket(address))

    def check_new_session(self, request: IRequest) -> None:
        """Take a token from the address's bucket of new browser sessions.

        @raise TooMany: the address started too many sessions this past minute.
        """
        self._take(self.clock.seconds(), self.new_sessions.bucket(self.client_address(request)))

    @staticmethod
    def _take(now: float, *buckets: TokenBucket) -> None:
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TooMany(f"too many requests, retry after {retry} s", headers={"Retry-After": str(retry)})
        for bucket in buckets:
            bucket.take(now)
