"""The WebSocket transport, on ``twisted.web.websocket``: one text frame per message.

The server pings every heartbeat period and drops a client that did not answer the
previous ping. Events are framed once per event: a server's frames are not masked, so the
same bytes go to every connection, written straight to the TCP transport.
"""

from __future__ import annotations

import struct

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from cherrychat.comet.core import Comet, QueueingProducer, release_channel
from cherrychat.comet.sending import OUTBOX, plain_tcp
from cherrychat.comet.messages import RECONNECT, event_message, open_message, reset_message
from cherrychat.hub import Event

NAME = "websocket"
_GOING_AWAY = 1001


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
    frame = event.frames.get(NAME)
    if frame is None:
        frame = event.frames[NAME] = text_frame(event_message(event))
    return frame


@implementer(IPushProducer)
class WebSocketStream(QueueingProducer):
    """One WebSocket connection for one orbit key: a hub listener and push producer."""

    transport_name = NAME

    def __init__(self, comet: Comet, key: str, last_event_id: int | None, epoch: str | None = None):
        super().__init__(comet)
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
        parts = [text_frame(open_message(subscription.cursor, self.comet.hub.epoch))]
        if subscription.gap:
            parts.append(text_frame(reset_message(subscription.cursor)))
        parts.extend(frame_event(event) for event in subscription.backlog)
        self._send_wire(b"".join(parts))

    def pongReceived(self, payload: bytes) -> None:
        """The client is alive."""
        self._awaiting_pong = False

    def textMessageReceived(self, message: str) -> None:
        """Clients send nothing the server needs; text is ignored."""

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        """Binary messages are ignored too."""

    def connectionLost(self, reason: Failure) -> None:
        """Forget the connection."""
        self._closed = True
        self._detach()

    # -- hub listener ----------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Write the event's frame, shared by every WebSocket connection."""
        frame = event.frames.get(NAME)
        self.comet.delivered += 1
        self._send_wire(frame if frame is not None else frame_event(event))

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


class _StreamFactory:
    """Builds the one :class:`WebSocketStream` of an upgrade request."""

    def __init__(self, stream: WebSocketStream):
        self.stream = stream

    def buildProtocol(self, request: IRequest) -> WebSocketStream:
        """Hand out the stream prepared for this request."""
        return self.stream


def websocket_resource(comet: Comet, key: str, last_event_id: int | None, epoch: str | None = None) -> IResource:
    """The upgrade resource for one WebSocket connection."""
    return WebSocketResource(_StreamFactory(WebSocketStream(comet, key, last_event_id, epoch)))
