"""The shared core of the comet transports: connections, heartbeats and backpressure.

:class:`Comet` holds what every transport needs (the hub, the clock, the settings) and
keeps the set of open connections: it counts them against the connection cap, sends the
heartbeat tick to all of them from one timer, and closes them at shutdown.

:class:`HTTPStream` is one streaming response (iframe, xhrstream, sse): it writes the
transport's prelude, the ``open`` message and the backlog, then each live event's frame. It
is a push producer on its connection, so when the client's socket does not keep up it stops
writing and queues, up to a bound; past the bound the client is disconnected and resumes
later with its last event id.

Once its headers are sent, a stream on a plain TCP connection takes the connection over
from twisted.web: it becomes the socket's protocol and producer, and the HTTP channel and
request, which a held response never needs again, are let go. That keeps an idle stream to
the socket, this object and its place in the hub, a few KiB less than a request per stream
(the memory figures in docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from cherrychat.comet.admission import Admission, Entrance, Ticket, render_refusal
from cherrychat.comet.framing import Framing
from cherrychat.comet.messages import RECONNECT, cached, opening
from cherrychat.comet.sending import OUTBOX, plain_tcp
from cherrychat.errors import Refused
from cherrychat.hub import Event, Hub, Subscription

log = Logger()


@dataclass
class CometSettings:
    """Tunables of the comet transports."""

    #: seconds of silence after which a stream gets a heartbeat and a long-poll returns
    heartbeat: float = 25.0
    #: bytes queued for one connection that cannot keep up before it is disconnected
    max_queued_bytes: int = 1024 * 1024
    #: bytes after which an iframe or xhrstream response is ended and reconnected
    recycle_bytes: int = 1024 * 1024
    #: open comet connections in all; more are refused with 503
    max_connections: int = 20000
    #: open comet connections of one browser session; more get 429
    max_connections_per_session: int = 20
    #: open connections (every TCP connection) of one client address; more get 429
    max_connections_per_address: int = 1000


def set_stream_headers(request: IRequest, content_type: bytes) -> None:
    """Headers of every comet response: its type, and no caching or proxy buffering."""
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", b"no-cache, no-store")
    request.setHeader(b"x-accel-buffering", b"no")


class Connection(Protocol):
    """What :class:`Comet` asks of every open connection."""

    @property
    def transport_name(self) -> str:
        """The transport's name, for the counts by transport."""

    def tick(self) -> None:
        """One heartbeat period passed: keep the connection alive, or drop it if dead."""

    def close_for_restart(self) -> None:
        """The daemon is stopping: tell the client to reconnect, then close."""


class Comet:
    """The comet side of the daemon: settings, the hub, and every open connection."""

    def __init__(self, hub: Hub, clock: IReactorTime, settings: CometSettings | None = None):
        self.hub = hub
        self.clock = clock
        self.settings = settings or CometSettings()
        self.connections: set[Connection] = set()
        self.counts: Counter[str] = Counter()
        self.slow_clients_dropped = 0
        #: events handed to connections, and bytes written to streams, since start
        self.delivered = 0
        self.bytes_written = 0
        self._ticker = LoopingCall(self.tick)
        self._ticker.clock = clock
        #: set once the daemon is shutting down: new connections are refused
        self.stopping = False
        #: every connection's count, from admission to release, and the three caps
        self.admission = Admission(
            self, self.settings.max_connections_per_session, self.settings.max_connections_per_address
        )

    def admit(self) -> None:
        """Refuse a new connection at the total cap or once stopping (see
        :meth:`Admission.check_total`)."""
        self.admission.check_total()

    def add(self, connection: Connection) -> None:
        """Count an open connection."""
        self.connections.add(connection)
        self.counts[connection.transport_name] += 1

    def remove(self, connection: Connection) -> None:
        """Forget a connection that closed; closing twice is harmless."""
        if connection in self.connections:
            self.connections.remove(connection)
            self.counts[connection.transport_name] -= 1

    def start(self) -> None:
        """Start the heartbeat timer."""
        if not self._ticker.running:
            self._ticker.start(self.settings.heartbeat, now=False)

    def stop(self) -> None:
        """Stop the heartbeat timer and ask every client to reconnect elsewhere or later."""
        self.stopping = True
        if self._ticker.running:
            self._ticker.stop()
        for connection in list(self.connections):
            connection.close_for_restart()

    def tick(self) -> None:
        """Give every connection its heartbeat tick."""
        for connection in list(self.connections):
            connection.tick()


def socket_ticket(channel: Any) -> Ticket | None:
    """The count of the socket under an HTTP ``channel``; whoever ends up holding the
    socket releases it when the connection ends (see :mod:`cherrychat.comet.admission`)."""
    return getattr(channel, "ticket", None)


def release_channel(socket: Any, channel: Any, protocol: object) -> None:
    """Make ``protocol`` the protocol of ``socket`` in place of its HTTP ``channel``, and let
    the channel and its requests go: a held connection needs neither once its response (or
    WebSocket upgrade) has started. The new protocol releases the socket's count (see
    :func:`socket_ticket`), the channel never hearing of the connection's end."""
    channel.requests = []
    socket.protocol = protocol


class QueueingProducer:
    """The push-producer half that streams and WebSockets share.

    While the client's socket is full (paused), wire bytes wait in a list made on first
    need; past ``max_queued_bytes`` the client is dropped as too slow, and resumes later
    with its last event id. Subclasses write with :meth:`_send_wire` and drop with
    :meth:`abort`. It also holds what the connection releases when it ends, once:
    ``on_close`` (its comet count) and its socket's count (:meth:`_release`).
    """

    __slots__ = ("comet", "_paused", "_queue", "_queued_bytes", "on_close", "_socket_ticket")

    def __init__(self, comet: Comet, on_close: Callable[[], None] | None = None,
                 socket_ticket: Ticket | None = None):
        self.comet = comet
        self._paused = False
        self._queue: list[bytes] | None = None
        self._queued_bytes = 0
        #: called once when the connection ends, however it ends (uncounts it)
        self.on_close = on_close
        #: the socket's count, once the connection has taken the socket over from its
        #: HTTP channel (which then never hears the connection end)
        self._socket_ticket = socket_ticket

    def _release(self) -> None:
        """Run ``on_close`` and release the socket's count, each at most once."""
        hook, self.on_close = self.on_close, None
        ticket, self._socket_ticket = self._socket_ticket, None
        try:
            if hook is not None:
                hook()
        finally:
            if ticket is not None:
                ticket.release()

    def _hold(self, data: bytes) -> None:
        # Called instead of writing while paused.
        if self._queue is None:
            self._queue = []
        self._queue.append(data)
        self._queued_bytes += len(data)
        if self._queued_bytes > self.comet.settings.max_queued_bytes:
            self.comet.slow_clients_dropped += 1
            self.abort()

    @property
    def paused(self) -> bool:
        """Whether the client's socket is full (the client is not reading)."""
        return self._paused

    def pauseProducing(self) -> None:
        """The client's socket is full: queue instead of writing."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The client's socket drained: write what was queued."""
        self._paused = False
        if self._queue:
            data = b"".join(self._queue)
            self._queue = None
            self._queued_bytes = 0
            self._send_wire(data)

    def _send_wire(self, data: bytes) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection at once, discarding what is queued."""
        raise NotImplementedError


@implementer(IPushProducer)
class HTTPStream(QueueingProducer):
    """One streaming HTTP response for one orbit key; a hub listener and push producer."""

    # Thousands of these are held at once: no per-instance dict.
    __slots__ = (
        "framing", "request", "key", "_written", "_active", "_stalled_ticks", "_closed",
        "_chunked", "_wire_key", "_socket",
    )

    def __init__(
        self, comet: Comet, framing: Framing, request: Request, key: str,
        on_close: Callable[[], None] | None = None,
    ):
        super().__init__(comet, on_close)
        self.framing = framing
        #: the request until the stream takes its socket over (see :meth:`_take_over`)
        self.request: Request | None = request
        self.key = key
        self._written = 0
        self._active = False
        self._stalled_ticks = 0
        self._closed = False
        self._chunked = False
        self._wire_key = framing.name
        self._socket: Any = None

    @property
    def transport_name(self) -> str:
        """The framing's name: ``sse``, ``xhrstream`` or ``iframe``."""
        return self.framing.name

    def start(self, last_event_id: int | None, epoch: str | None = None) -> None:
        """Send headers, prelude, ``open`` and the backlog, then stay subscribed."""
        request = self.request
        assert request is not None
        set_stream_headers(request, self.framing.content_type)
        for name, value in self.framing.headers.items():
            request.setHeader(name, value)
        channel: Any = getattr(request, "channel", None)
        self._socket = getattr(channel, "transport", None)
        if self._socket is None:
            # The client left before the stream began.
            self._closed = True
            self._release()
            return
        take_over = plain_tcp(self._socket) and self._socket.protocol is channel
        if take_over:
            # The stream closes the connection when it ends: no client may reuse it.
            request.setHeader(b"connection", b"close")
        # Send the headers now; from here on frames go straight to the connection's
        # transport, already in the response's transfer coding, so that an event's wire
        # bytes are built once for every stream of this transport.
        request.write(b"")
        self._chunked = bool(getattr(request, "chunked", False))
        self._wire_key = self.framing.name + ("/chunked" if self._chunked else "")
        subscription = self.comet.hub.subscribe(self.key, self, last_event_id, epoch)
        self.comet.add(self)
        if take_over:
            self._take_over(request, channel)
        else:
            request.registerProducer(self, True)
            request.notifyFinish().addBoth(self._finished)
        self._send(self.framing.prelude + self._opening(subscription))

    def _take_over(self, request: Request, channel: Any) -> None:
        # The stream becomes the socket's protocol and producer. The channel had stopped
        # its idle timer for the request and reads on only to buffer; nothing else of the
        # request is needed, so the access log gets its line now and both are let go.
        socket = self._socket
        socket.unregisterProducer()
        # The channel will not hear the connection end: the stream releases its count.
        self._socket_ticket = socket_ticket(channel)
        release_channel(socket, channel, self)
        socket.registerProducer(self, True)
        channel.factory.log(request)
        self.request = None

    def _opening(self, subscription: Subscription) -> bytes:
        return b"".join(opening(subscription, self.comet.hub.epoch, self.framing.frame, self.framing.frame_event))

    # -- hub listener ----------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Write one live event, its wire bytes built once for all streams of this transport."""
        wire = cached(event, self._wire_key, lambda e: self._wire(self.framing.frame_event(e)))
        self.comet.delivered += 1
        self._send_wire(wire)

    def _wire(self, body: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(body), body) if self._chunked else body

    def _send(self, body: bytes) -> None:
        self._send_wire(self._wire(body))

    def _send_wire(self, data: bytes) -> None:
        if self._closed:
            return
        if self._paused:
            self._hold(data)
            return
        OUTBOX.write(self._socket, data)
        self._written += len(data)
        self.comet.bytes_written += len(data)
        self._active = True
        if self.framing.recycles and self._written >= self.comet.settings.recycle_bytes:
            self._recycle()

    def _recycle(self) -> None:
        # The client's buffer (responseText, the iframe's DOM) grows with the stream; end
        # it so the client reconnects, resuming from its last event id.
        self._end(self.framing.frame(RECONNECT))

    # -- the socket's protocol, once taken over ----------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """A client sends nothing on a stream (a pipelined request waits for no answer)."""

    def connectionLost(self, reason: Failure | None = None) -> None:
        """The client went away, or the stream closed the connection."""
        self._finished(reason)

    # -- push producer ---------------------------------------------------------------

    def resumeProducing(self) -> None:
        """The client's socket drained: it is not stalled; write what was queued."""
        self._stalled_ticks = 0
        super().resumeProducing()

    def stopProducing(self) -> None:
        """The connection is going away; :meth:`_finished` cleans up."""
        self._closed = True

    # -- life cycle ------------------------------------------------------------------

    def tick(self) -> None:
        """Heartbeat an idle stream; drop one whose socket stayed full for two periods."""
        if self._paused:
            self._stalled_ticks += 1
            if self._stalled_ticks >= 2:
                self.comet.slow_clients_dropped += 1
                self.abort()
            return
        if not self._active:
            self._send(self.framing.heartbeat())
        self._active = False

    def close_for_restart(self) -> None:
        """End the response with a ``reconnect`` message; the client comes back."""
        if self._closed:
            return
        if self._paused:
            # The client is not reading; what is queued would only be dropped later.
            self.abort()
            return
        self._end(self.framing.frame(RECONNECT))

    def _end(self, last_frame: bytes) -> None:
        # What the outbox holds for this connection goes first, then the last frame and
        # the end of the response.
        socket = self._socket
        OUTBOX.flush_one(socket)
        self._closed = True
        self._detach()
        request = self.request
        if request is None:
            # The stream owns the socket (see _take_over): the response ends with its last
            # chunk, or unchunked, with the connection.
            socket.write(self._wire(last_frame) + (b"0\r\n\r\n" if self._chunked else b""))
            socket.unregisterProducer()
            socket.loseConnection()
            return
        request.write(last_frame)
        request.unregisterProducer()
        request.finish()

    def abort(self) -> None:
        """Drop the connection at once, discarding what is queued (a slow or dead client)."""
        self._closed = True
        self._queue = None
        self._detach()
        socket = self._socket
        if socket is not None:
            OUTBOX.discard(socket)
            socket.abortConnection()

    def _finished(self, result: object) -> None:
        # Fired with None when we finished the response, or a Failure when the client
        # went away; either way the stream is over and nothing is to be logged.
        self._closed = True
        self._detach()

    def _detach(self) -> None:
        self.comet.hub.unsubscribe(self.key, self)
        self.comet.remove(self)
        self._release()


class CometResource(Resource):
    """What every comet transport's resource shares: it serves one orbit key, resuming
    after ``last_event_id`` of ``epoch``, and when rendered takes its connection's count
    (:class:`Admission`) for ``entrance``, which the connection releases when it ends.

    Subclasses start their connection in :meth:`begin`. Without an ``entrance`` nothing is
    counted (unit tests that render a transport directly).
    """

    isLeaf = True

    def __init__(
        self, comet: Comet, key: str, last_event_id: int | None, epoch: str | None = None,
        entrance: Entrance | None = None,
    ):
        super().__init__()
        self.comet = comet
        self.key = key
        self.last_event_id = last_event_id
        self.epoch = epoch
        self.entrance = entrance

    def admit(self, request: IRequest) -> Callable[[], None] | None:
        """Take the connection's count; the hook that releases it.

        @raise Refused: a cap was reached since the route checked it.
        """
        if self.entrance is None:
            return None
        return self.comet.admission.open(self.entrance).release

    def render(self, request: Request) -> bytes | int:  # type: ignore[override]
        """Admit the connection and start it; a cap reached meanwhile is refused."""
        try:
            release = self.admit(request)
        except Refused as error:
            return render_refusal(request, error)
        try:
            self.begin(request, release)
        except BaseException:
            if release is not None:
                release()
            raise
        return NOT_DONE_YET

    def begin(self, request: Request, release: Callable[[], None] | None) -> None:
        """Start the connection; it calls ``release`` once when it ends."""
        raise NotImplementedError


class StreamResource(CometResource):
    """Renders one streaming response with a given framing."""

    def __init__(
        self, comet: Comet, framing: Framing, key: str, last_event_id: int | None, epoch: str | None = None,
        entrance: Entrance | None = None,
    ):
        super().__init__(comet, key, last_event_id, epoch, entrance)
        self.framing = framing

    def begin(self, request: Request, release: Callable[[], None] | None) -> None:
        """Start the stream; it ends when the client goes away or the daemon stops."""
        HTTPStream(self.comet, self.framing, request, self.key, release).start(self.last_event_id, self.epoch)
