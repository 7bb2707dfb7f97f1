"""The WebSocket transport, on ``twisted.web.websocket``: one text frame per message.

The server pings every heartbeat period and drops a client that did not answer the
previous ping. Events are framed once per event: a server's frames are not masked, so the
same bytes go to every connection, written straight to the TCP transport.

The handshake is checked here, in full, before anything is counted or claimed
(:func:`check_handshake`): every malformed one is a ``400`` with its reason, never a 500.
A client sends nothing the daemon needs, so what it sends is counted and dropped, never
buffered: a message past :data:`MAX_MESSAGE_BYTES` or :data:`MAX_FRAGMENTS` frames closes
the connection with ``1009`` (message too big).
"""

from __future__ import annotations

import re
import struct
from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web._websocket_impl import _handleEvent, _WebSocketWireProtocol, serverBootstrap
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from twisted.web.resource import IResource
from twisted.web.websocket import WebSocketTransport
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, BytesMessage, Ping, TextMessage
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from cherrychat.comet.admission import Entrance, Ticket, render_refusal
from cherrychat.comet.core import Comet, CometResource, QueueingProducer, release_channel, socket_ticket
from cherrychat.comet.messages import RECONNECT, cached, event_message, opening
from cherrychat.comet.sending import OUTBOX, plain_tcp
from cherrychat.errors import BadRequest, Refused
from cherrychat.hub import Event

NAME = "websocket"
_GOING_AWAY = 1001
_MESSAGE_TOO_BIG = 1009
#: bytes of one message a client may send (it is dropped unread: clients send nothing
#: the daemon needs; browsers send none at all)
MAX_MESSAGE_BYTES = 4096
#: frames (fragments) of one message a client may send
MAX_FRAGMENTS = 16
_WEBSOCKET_KEY = re.compile(rb"[A-Za-z0-9+/]{22}==")


def _tokens(value: bytes | None) -> set[bytes]:
    return {token.strip().lower() for token in (value or b"").split(b",")}


def check_handshake(request: IRequest) -> H11Handshake:
    """Check a WebSocket upgrade request in full (RFC 6455, 4.2.1) before it reserves
    anything; the handshake, ready to accept.

    @raise BadRequest: a header of the handshake is missing or wrong.
    """
    if _tokens(request.getHeader(b"upgrade")) != {b"websocket"} or b"upgrade" not in _tokens(request.getHeader(b"connection")):
        raise BadRequest("transport=websocket needs a WebSocket upgrade request")
    if request.getHeader(b"sec-websocket-version") != b"13":
        raise BadRequest("unsupported WebSocket version; use 13")
    if not _WEBSOCKET_KEY.fullmatch(request.getHeader(b"sec-websocket-key") or b""):
        raise BadRequest("invalid Sec-WebSocket-Key")
    if not request.getHeader(b"host"):
        raise BadRequest("the WebSocket handshake needs a Host header")
    handshake = H11Handshake(ConnectionType.SERVER)
    headers = [(name, value) for name, values in request.requestHeaders.getAllRawHeaders() for value in values]
    try:
        handshake.initiate_upgrade_connection(headers, request.path)
    except Exception:  # h11 and wsproto refuse in several ways (bad Host, bad header)
        raise BadRequest("invalid WebSocket handshake") from None
    return handshake


def text_frame(message: bytes) -> bytes:
    """An unmasked, unfragmented RFC 6455 text frame holding ``message``."""
    length = len(message)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + message


def frame_event(event: Event) -> bytes:
    """The text frame of ``event``, built once per event and cached."""
    return cached(event, NAME, lambda e: text_frame(event_message(e)))


@implementer(IPushProducer)
class WebSocketStream(QueueingProducer):
    """One WebSocket connection for one orbit key: a hub listener and push producer."""

    transport_name = NAME

    def __init__(
        self, comet: Comet, key: str, last_event_id: int | None, epoch: str | None = None,
        on_close: Callable[[], None] | None = None, socket_ticket: Ticket | None = None,
    ):
        super().__init__(comet, on_close, socket_ticket)
        self.key = key
        self.last_event_id = last_event_id
        self.epoch = epoch
        self._ws: WebSocketTransport | None = None
        self._awaiting_pong = False
        self._closed = False
        self._subscribed = False

    # -- twisted.web.websocket.WebSocketProtocol -------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Keep the transport; nothing is sent until the handshake completes."""
        self._ws = transport

    def negotiationFinished(self) -> None:
        """Subscribe and send ``open``, a ``reset`` if events were missed, and the backlog."""
        assert self._ws is not None
        subscription = self.comet.hub.subscribe(self.key, self, self.last_event_id, self.epoch)
        self._subscribed = True
        self.comet.add(self)
        # After the upgrade the HTTP channel is still the socket's producer; it no longer
        # reads or writes, so hand that role to this stream for backpressure.
        socket = self._ws.transport  # type: ignore[attr-defined]
        if getattr(socket, "producer", None) is not None:
            socket.unregisterProducer()
        self._ws.attachProducer(self)
        channel = getattr(socket, "protocol", None)
        if plain_tcp(socket) and channel is not None and channel is not self._ws:
            # The upgraded channel only forwards to the WebSocket protocol now (a few KiB
            # per connection, see docs/BENCHMARKS.md).
            release_channel(socket, channel, self._ws)
        self._send_wire(b"".join(opening(subscription, self.comet.hub.epoch, text_frame, frame_event)))

    def pongReceived(self, payload: bytes) -> None:
        """The client is alive."""
        self._awaiting_pong = False

    def textMessageReceived(self, message: str) -> None:
        """Clients send nothing the server needs; text is ignored."""

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        """Binary messages are ignored too."""

    def connectionLost(self, reason: Failure) -> None:
        """Forget the connection and release its counts."""
        self._closed = True
        self._detach()
        self._release()

    # -- hub listener ----------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Write the event's frame, shared by every WebSocket connection."""
        self.comet.delivered += 1
        self._send_wire(frame_event(event))

    def _send_wire(self, frame: bytes) -> None:
        if self._closed or self._ws is None:
            return
        if self._paused:
            self._hold(frame)
            return
        # Server frames carry no mask and no per-connection state, so the bytes built
        # once per event are written as they are.
        OUTBOX.write(self._ws.transport, frame)  # type: ignore[attr-defined]
        self.comet.bytes_written += len(frame)

    # -- push producer (pausing and resuming: QueueingProducer) -----------------------

    def stopProducing(self) -> None:
        """The connection is going away."""
        self._closed = True

    # -- life cycle ------------------------------------------------------------------

    def tick(self) -> None:
        """Ping; a client that did not answer the last ping is dead."""
        if self._ws is None or self._closed:
            return
        if self._awaiting_pong:
            self.abort()
            return
        self._awaiting_pong = True
        OUTBOX.flush_one(self._ws.transport)  # type: ignore[attr-defined]
        self._ws.ping(b"cherrychat")

    def close_for_restart(self) -> None:
        """Send ``reconnect`` and close with 1001 (going away)."""
        if self._closed or self._ws is None:
            return
        self._send_wire(text_frame(RECONNECT))
        self._closed = True
        self._detach()
        OUTBOX.flush_one(self._ws.transport)  # type: ignore[attr-defined]
        try:
            self._ws.loseConnection(_GOING_AWAY)
        except LocalProtocolError:
            # The client closed first (its close frame is in, the socket not yet gone):
            # no close frame may follow, only the socket's end.
            self._ws.transport.loseConnection()  # type: ignore[attr-defined]

    def abort(self) -> None:
        """Drop the connection at once (a slow or dead client), discarding what is queued."""
        self._closed = True
        self._queue = None
        self._detach()
        if self._ws is not None:
            OUTBOX.discard(self._ws.transport)  # type: ignore[attr-defined]
            self._ws.transport.abortConnection()  # type: ignore[attr-defined]

    def _detach(self) -> None:
        if self._subscribed:
            self._subscribed = False
            self.comet.hub.unsubscribe(self.key, self)
            self.comet.remove(self)


class BoundedWire(_WebSocketWireProtocol):
    """Twisted's WebSocket wire protocol, with what a client sends counted and dropped.

    Twisted buffers a message until it ends, without bound; this daemon reads nothing
    from its clients, so message data is never kept. A message longer than
    :data:`MAX_MESSAGE_BYTES` or in more than :data:`MAX_FRAGMENTS` frames closes the
    connection with 1009. Pings are answered, but not while the client is not reading
    (they would only grow the unsent buffer).
    """

    _message_bytes = 0
    _fragments = 0
    _refused = False

    def dataReceived(self, data: bytes) -> None:
        """Parse frames, count messages, hand the rest to Twisted's handlers."""
        if self._refused:
            return
        self._wsconn.receive_data(data)
        for event in self._wsconn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                payload = event.data
                self._message_bytes += len(payload.encode("utf-8") if isinstance(payload, str) else payload)
                self._fragments += 1 if event.frame_finished else 0
                if self._message_bytes > MAX_MESSAGE_BYTES or self._fragments > MAX_FRAGMENTS:
                    self._refused = True
                    self.loseConnection(_MESSAGE_TOO_BIG, "message too big")
                    return
                if event.message_finished:
                    self._message_bytes = self._fragments = 0
            elif isinstance(event, Ping) and getattr(self._wsp, "paused", False):
                continue  # a pong would only grow what the client does not read
            else:
                _handleEvent(event, self)


class WebSocketResource(CometResource):
    """The upgrade of one WebSocket connection: checked, admitted, then handed to a
    :class:`WebSocketStream` that releases the connection's counts when it is lost."""

    def render(self, request: Request) -> bytes | int:  # type: ignore[override]
        """Refuse a malformed handshake (400) before anything is counted; else admit."""
        try:
            self._handshake = check_handshake(request)
        except Refused as error:
            return render_refusal(request, error)
        return super().render(request)

    def begin(self, request: Request, release: Callable[[], None] | None) -> None:
        """Accept the upgrade and hand the socket to the stream."""
        channel: Any = request.channel  # type: ignore[attr-defined]
        stream = WebSocketStream(self.comet, self.key, self.last_event_id, self.epoch, release, socket_ticket(channel))
        handshake = self._handshake
        accept = handshake.send(AcceptConnection())
        assert handshake.connection is not None
        wire = BoundedWire(handshake.connection, serverBootstrap, stream)
        channel._protocolUpgradeForWebsockets(wire)
        channel.transport.write(accept)
        stream.negotiationFinished()


def websocket_resource(
    comet: Comet, key: str, last_event_id: int | None, epoch: str | None = None, entrance: Entrance | None = None,
) -> IResource:
    """The upgrade resource for one WebSocket connection."""
    return WebSocketResource(comet, key, last_event_id, epoch, entrance)
