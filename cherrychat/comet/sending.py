"""Writing frames to connections: gathered per reactor turn, sent with one ``send`` each.

Twisted's TCP transport never sends inside ``write``: it buffers, asks epoll to watch the
socket for writability, and sends on a later reactor turn, then stops watching. For a
push server that writes small frames to thousands of idle sockets per event, that is two
``epoll_ctl`` calls and a dispatch per connection on top of the ``send`` itself (the
profile in docs/BENCHMARKS.md). The :class:`Outbox` instead gathers what one reactor turn
writes to each plain TCP connection and, at the end of the turn, sends it with one
``send`` when the transport has nothing buffered, as asyncio's transports do. What the
kernel does not take, and everything for a transport that has data waiting or speaks TLS,
goes through ``transport.write``, so order and backpressure stay Twisted's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def plain_tcp(transport: Any) -> bool:
    """Whether ``transport`` is a TCP connection without TLS (its socket is ours to send on)."""
    return isinstance(transport, tcp.Connection) and not transport.TLS


def _idle(transport: Any) -> bool:
    return (
        transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and len(transport.dataBuffer) == transport.offset
    )


def send_now(transport: Any, data: bytes) -> None:
    """Write ``data`` to ``transport``, with a direct ``send`` when nothing is waiting."""
    if plain_tcp(transport) and _idle(transport):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # A broken connection: Twisted's own write path notices and reports it.
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


class Outbox:
    """Frames written during this reactor turn, by connection, sent at its end."""

    def __init__(self) -> None:
        self._pending: dict[Any, list[bytes]] = {}

    def write(self, transport: Any, data: bytes) -> None:
        """Queue ``data`` for ``transport``; transports that are not plain TCP get it now."""
        if not plain_tcp(transport):
            transport.write(data)
            return
        if not self._pending:
            transport.reactor.callLater(0, self.flush)
        chunks = self._pending.get(transport)
        if chunks is None:
            self._pending[transport] = [data]
        else:
            chunks.append(data)

    def flush_one(self, transport: Any) -> None:
        """Send what is queued for ``transport`` now, before it is written another way."""
        chunks = self._pending.pop(transport, None)
        if chunks:
            send_now(transport, b"".join(chunks))

    def discard(self, transport: Any) -> None:
        """Forget what is queued for a connection that is being dropped."""
        self._pending.pop(transport, None)

    def flush(self) -> None:
        """Send everything queued this turn."""
        pending, self._pending = self._pending, {}
        for transport, chunks in pending.items():
            send_now(transport, chunks[0] if len(chunks) == 1 else b"".join(chunks))


#: the daemon's one outbox (all connections live on one reactor)
OUTBOX = Outbox()
