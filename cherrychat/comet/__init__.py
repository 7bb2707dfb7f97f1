"""The comet transports: how events reach a browser over a held connection.

Each transport is one module: ``iframe``, ``xhrstream`` and ``sse`` are framings over the
shared streaming core in :mod:`cherrychat.comet.core`; ``longpoll`` answers one request at a
time; ``websocket`` uses ``twisted.web.websocket``. Orbited 0.3's own names are served for
its ``orbited.js``: ``xhr_stream`` and ``server_sent_events`` (``orbited_*`` modules), and
``htmlfile`` as ``iframe``. :func:`connection_resource` picks one.
:mod:`cherrychat.comet.admission` counts every connection from admission to release.
"""

from __future__ import annotations

from typing import Callable

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from cherrychat.comet import iframe, orbited_sse, orbited_xhrstream, sse, xhrstream
from cherrychat.comet.admission import Entrance, TooMany
from cherrychat.comet.core import Comet, CometSettings, StreamResource
from cherrychat.comet.framing import Framing
from cherrychat.comet.longpoll import LongPollResource
from cherrychat.comet.websocket import check_handshake, websocket_resource
from cherrychat.errors import BadRequest

__all__ = ["Comet", "CometSettings", "Entrance", "TRANSPORTS", "TooMany", "connection_resource"]

ResourceMaker = Callable[[Comet, str, "int | None", "str | None", "Entrance | None"], IResource]


def _streaming(framing: Framing) -> ResourceMaker:
    return lambda comet, key, last_event_id, epoch, entrance: StreamResource(
        comet, framing, key, last_event_id, epoch, entrance
    )


_MAKERS: dict[str, ResourceMaker] = {
    "websocket": websocket_resource,
    "sse": _streaming(sse.FRAMING),
    "xhrstream": _streaming(xhrstream.FRAMING),
    "iframe": _streaming(iframe.FRAMING),
    "longpoll": LongPollResource,
    # Orbited 0.3's names, last: only its orbited.js asks for them.
    "xhr_stream": _streaming(orbited_xhrstream.FRAMING),
    "server_sent_events": _streaming(orbited_sse.FRAMING),
    "htmlfile": _streaming(iframe.FRAMING),
}

#: the transport names, best first
TRANSPORTS: tuple[str, ...] = tuple(_MAKERS)


def connection_resource(
    comet: Comet, request: IRequest, transport: str | None, key: str, last_event_id: int | None,
    epoch: str | None = None, entrance: Entrance | None = None,
) -> IResource:
    """The resource that serves one comet connection over ``transport``, resuming after
    ``last_event_id`` of ``epoch`` when given, and counted for ``entrance`` from when it
    renders until it ends.

    Everything that can be refused without counting is refused here, before the caller
    claims a nickname: the transport, the WebSocket handshake, and a cap already reached.

    @raise BadRequest: the transport is missing or unknown, or the handshake malformed.
    @raise Unavailable: the total cap is reached, or the daemon is stopping.
    @raise TooMany: the session's or the address's cap is reached.
    """
    maker = _MAKERS.get(transport or "")
    if maker is None:
        # The value itself is not echoed: it may hold line breaks or markup.
        raise BadRequest(f"unknown or missing transport; use one of {', '.join(TRANSPORTS)}")
    if transport == "websocket":
        check_handshake(request)
    if entrance is not None:
        comet.admission.check(entrance)
    return maker(comet, key, last_event_id, epoch, entrance)
