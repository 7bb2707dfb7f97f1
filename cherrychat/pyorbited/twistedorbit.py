"""The Twisted client, as ``pyorbited.twistedorbit``: ``OrbitClient().event(...)`` returns a
Deferred that fires with an :class:`OrbitReply` or fails with :class:`OrbitFailure`."""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

from cherrychat.pyorbited.wire import OrbitFailure, OrbitReply, ProtocolError, encode_body, encode_request, split_reply

__all__ = ["OrbitClient", "OrbitFailure", "OrbitReply"]


class OrbitProtocol(Protocol):
    """Sends events and matches the replies to them by id."""

    def __init__(self, factory: OrbitFactory | None = None) -> None:
        self.factory = factory
        self.buffer = b""
        self.requests: dict[str, Deferred] = {}
        self.id = 0

    def connectionMade(self) -> None:
        """Send the events that waited for the connection."""
        if self.factory is not None:
            self.factory.connected(self)

    def event(self, recipients: Iterable[Any], data: Any, jscript: bool = True) -> Deferred:
        """Send one event; the Deferred fires with its reply."""
        self.id += 1
        try:
            request = encode_request(self.id, recipients, encode_body(data, jscript))
        except ValueError:
            return fail()
        waiting: Deferred = Deferred()
        self.requests[str(self.id)] = waiting
        self.transport.write(request)  # type: ignore[union-attr]
        return waiting

    def dataReceived(self, data: bytes) -> None:
        """Hand every complete reply to the request it answers."""
        self.buffer += data
        try:
            while True:
                reply, self.buffer = split_reply(self.buffer)
                if reply is None:
                    return
                waiting = self.requests.pop(reply.id, None)
                if waiting is not None:
                    waiting.callback(reply) if reply.success else waiting.errback(OrbitFailure(reply))
        except ProtocolError:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        """Requests without a reply fail: whether they were published is unknown."""
        requests, self.requests = self.requests, {}
        for waiting in requests.values():
            waiting.errback(reason if reason is not None else Failure(ConnectionLost()))


class OrbitFactory(ClientFactory):
    """Makes the one connection of an :class:`OrbitClient`."""

    protocol = OrbitProtocol

    def __init__(self) -> None:
        self.client: OrbitProtocol | None = None
        #: events waiting for the connection
        self.waiting: list[Deferred] = []
        self.connecting = False

    def buildProtocol(self, addr: Any) -> OrbitProtocol:
        """The connection's protocol."""
        self.client = OrbitProtocol(self)
        return self.client

    def connected(self, protocol: OrbitProtocol) -> None:
        """The connection is up: send what waited for it."""
        self.connecting = False
        waiting, self.waiting = self.waiting, []
        for deferred in waiting:
            deferred.callback(protocol)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Events waiting for the connection fail."""
        self.connecting = False
        waiting, self.waiting = self.waiting, []
        for deferred in waiting:
            deferred.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """The next event connects again."""
        self.client = None
        self.connecting = False


class OrbitClient:
    """pyorbited's ``OrbitClient(addr, port)``: connects at once (and again after a loss);
    events sent before the connection is up wait for it instead of failing."""

    def __init__(self, addr: str = "localhost", port: int = 9000, reactor: Any = None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.addr = addr
        self.port = port
        self.factory = OrbitFactory()
        self._connect()

    def _connect(self) -> None:
        self.factory.connecting = True
        self.reactor.connectTCP(self.addr, self.port, self.factory)

    def event(self, recipients: Iterable[Any], event: Any, jscript: bool = True) -> Deferred:
        """Publish ``event`` to the orbit keys ``recipients``.

        Fires with the :class:`OrbitReply` on ``Success``; fails with :class:`OrbitFailure`
        on ``Failure``, or with the connection's error.
        """
        recipients = list(recipients)
        client = self.factory.client
        if client is not None and client.connected:
            return client.event(recipients, event, jscript)
        ready: Deferred = Deferred()
        self.factory.waiting.append(ready)
        if not self.factory.connecting:
            self._connect()
        return ready.addCallback(lambda protocol: protocol.event(recipients, event, jscript))
