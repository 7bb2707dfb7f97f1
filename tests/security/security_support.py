"""Helpers of the security tests.

- :class:`MemoryDaemon`: the daemon's web site over a ``task.Clock``, spoken to with raw
  HTTP bytes through ``StringTransport``: the real HTTP parser, the real request class
  with its bounds, the real routes, synchronously and without sockets.
- :func:`raw_exchange`: raw bytes to a real daemon over a loopback socket, until it
  closes the connection or (:func:`answered`) has answered.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from cherrychat.chat import ChatRoom
from cherrychat.comet import Comet, CometSettings
from cherrychat.hub import Hub
from cherrychat.limits import LimitSettings
from cherrychat.origins import OriginPolicy
from cherrychat.publish import Publisher
from cherrychat.web import ChatWeb
from tests.support import STATIC, cooperate_on_clock, daemon_state

TOKEN = b"s3cret-publishing-token-0123456789"
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


class Answer:
    """One raw HTTP response: status, headers (lower-case names) and body."""

    def __init__(self, raw: bytes):
        while raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):  # interim answers
            raw = raw[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        self.raw = raw
        match = _STATUS.match(raw)
        self.code = int(match.group(1)) if match else None
        head, _, self.body = raw.partition(b"\r\n\r\n")
        self.headers: dict[bytes, list[bytes]] = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        if self.header(b"transfer-encoding") == b"chunked":
            self.body = _dechunk(self.body)

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name``."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


def _dechunk(data: bytes) -> bytes:
    """The body of a chunked response, as far as it arrived."""
    body = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        body += rest[:size]
        data = rest[size + 2:]
    return body


class Connection:
    """One in-memory client connection to a :class:`MemoryDaemon`."""

    def __init__(self, daemon: "MemoryDaemon", peer: str):
        self.daemon = daemon
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000), hostAddress=IPv4Address("TCP", "127.0.0.1", 4700))
        self.protocol = daemon.site.buildProtocol(self.transport.getHost())
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        """Bytes from the client, then let the cooperator (static files) run."""
        self.protocol.dataReceived(data)
        for _ in range(50):
            self.daemon.cooperator_clock.advance(0)

    def received(self) -> bytes:
        """Everything the daemon wrote so far."""
        return self.transport.value()

    def close(self) -> None:
        """The client goes away."""
        if not self.transport.disconnected:
            self.transport.loseConnection()
        self.protocol.connectionLost(Failure(ConnectionDone()))


class MemoryDaemon:
    """The web side of one daemon, in memory, its timers on ``self.clock``."""

    def __init__(self, testcase: Any, limits: LimitSettings | None = None, origins: tuple[str, ...] = (), token: bytes | None = TOKEN,
                 comet_settings: CometSettings | None = None):
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=10)
        self.comet = Comet(self.hub, self.clock, comet_settings or CometSettings(heartbeat=25, max_connections=50))
        self.web = ChatWeb(self.chat, self.comet, STATIC, limits=limits, origins=OriginPolicy(origins), publisher=Publisher(token))
        self.site = self.web.site()
        # twisted.web.static.File streams through the global cooperator: run it on a Clock.
        self.cooperator_clock = cooperate_on_clock(testcase)
        self.open: list[Connection] = []
        testcase.addCleanup(self.close_all)

    def connect(self, peer: str = "127.0.0.1") -> Connection:
        """A new client connection, kept open until the test ends."""
        connection = Connection(self, peer)
        self.open.append(connection)
        return connection

    def exchange(self, data: bytes, peer: str = "127.0.0.1") -> Answer:
        """Send ``data`` on a new connection, close it, and parse what came back."""
        connection = Connection(self, peer)
        try:
            connection.send(data)
            return Answer(connection.received())
        finally:
            connection.close()

    def request(self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"", peer: str = "127.0.0.1") -> Answer:
        """One well-framed HTTP/1.1 request."""
        lines = [f"{method} {target} HTTP/1.1", "Host: cherrychat.test", "Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        return self.exchange("\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body, peer)

    def state(self) -> dict[str, Any]:
        """What a refused request must not change."""
        return daemon_state(self.hub, self.chat, self.comet)

    def close_all(self) -> None:
        """Close the connections a test left open."""
        for connection in self.open:
            connection.close()


def cookie_of(answer: Answer) -> str:
    """``cherrychat_session=TOKEN`` from an answer's Set-Cookie."""
    for value in answer.headers.get(b"set-cookie", []):
        match = re.match(rb"cherrychat_session=([^;]+)", value)
        if match:
            return "cherrychat_session=" + match.group(1).decode("ascii")
    raise AssertionError(f"no session cookie in {answer.raw[:300]!r}")


def answered(raw: bytes) -> bool:
    """Whether ``raw`` holds one whole HTTP response (after any interim 100 Continue):
    its headers, and a body of its Content-Length or ended by the last chunk."""
    while raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        raw = raw[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        return False
    answer = Answer(head + separator)
    length = answer.header(b"content-length")
    if length is not None:
        return len(body) >= int(length)
    if answer.header(b"transfer-encoding") == b"chunked":
        return body.startswith(b"0\r\n\r\n") or b"\r\n0\r\n\r\n" in body
    return False  # the body ends when the connection does


class _Collector(Protocol):
    def __init__(self, done: Deferred, until: Callable[[bytes], bool] | None):
        self.done = done
        self.until = until
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if self.until is not None and self.until(self.data) and self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if not self.done.called:
            self.done.callback(self.data)


def raw_exchange(reactor: Any, port: int, data: bytes, timeout: float = 5.0, until: Callable[[bytes], bool] | None = None) -> Deferred:
    """Send ``data`` to ``127.0.0.1:port``; fires with every byte received once the
    daemon closes the connection, or once ``until(received)`` holds (see :func:`answered`;
    the client then closes it), or after ``timeout`` seconds (the connection is then
    aborted)."""
    done: Deferred = Deferred()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    collector = _Collector(done, until)

    def connected(protocol: Protocol) -> None:
        assert protocol.transport is not None
        protocol.transport.write(data)
        timer = reactor.callLater(timeout, protocol.transport.abortConnection)
        done.addBoth(lambda result: (timer.active() and timer.cancel(), result)[1])

    endpoint.connect(Factory.forProtocol(lambda: collector)).addCallbacks(connected, done.errback)
    return done

