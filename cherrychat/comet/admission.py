"""Admission: every connection's count, from the moment it is admitted to its release.

Three caps, all here (their options: ``--max-connections``, ``--max-connections-per-session``,
``--max-connections-per-address``):

- comet connections in all: more get ``503`` (``Unavailable``);
- comet connections of one browser session: more get ``429``;
- connections of one client address, *every* TCP connection counted, streaming or not,
  idle keep-alive or half-sent: more get ``429``. A connection from a ``--trusted-proxy``
  is not counted by its peer (that would be every client of the proxy); its comet
  connections count instead against the address the proxy forwarded.

A count is a :class:`Ticket`: taken once, released once, by whoever holds the connection
at its end (the HTTP channel, or the stream or WebSocket that took the socket over). A
refusal takes no ticket, so no refusal can leak a count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from twisted.web.iweb import IRequest

from cherrychat.errors import Refused, TooMany, Unavailable


@dataclass(frozen=True)
class Entrance:
    """Who asks for a comet connection: the browser session and the client address, and
    whether that address came through a trusted proxy (then the socket's peer is the
    proxy, and the address's count is kept here, per request)."""

    session: str
    address: str
    forwarded: bool = False


class Ticket:
    """One counted connection; :meth:`release` uncounts it, once, however often called.

    Thousands are held at once, one or two per connection: slots and a tuple only.
    """

    __slots__ = ("_names",)

    def __init__(self, *names: tuple[Counter[str], str]):
        self._names: tuple[tuple[Counter[str], str], ...] | None = names

    def release(self) -> None:
        """Uncount the connection (the first call only)."""
        names, self._names = self._names, None
        for counter, name in names or ():
            counter[name] -= 1
            if counter[name] <= 0:
                del counter[name]


class Admission:
    """The connection counts of one daemon and the three caps they are held to.

    ``comet`` is the :class:`cherrychat.comet.core.Comet` whose subscribed connections
    make the total and whose ``stopping`` flag refuses everything at shutdown.
    """

    def __init__(self, comet: Any, per_session: int, per_address: int):
        self.comet = comet
        self.per_session = per_session
        self.per_address = per_address
        #: comet connections per browser session
        self.sessions: Counter[str] = Counter()
        #: comet connections per client address forwarded by a trusted proxy
        self.addresses: Counter[str] = Counter()
        #: TCP connections per address of a direct peer, streaming or not
        self.sockets: Counter[str] = Counter()

    # -- the total cap -------------------------------------------------------------------

    def check_total(self) -> None:
        """Refuse a new comet connection at the total cap or once stopping.

        @raise Unavailable: the daemon holds ``max_connections`` already, or is stopping
            (a client told to reconnect must not be taken back by the daemon going away).
        """
        if self.comet.stopping:
            raise Unavailable("shutting down, reconnect shortly")
        if len(self.comet.connections) >= self.comet.settings.max_connections:
            raise Unavailable("too many connections, try again later")

    # -- comet connections -----------------------------------------------------------

    def check(self, entrance: Entrance) -> None:
        """Refuse one more comet connection past any cap; counts nothing.

        @raise Unavailable: the total cap (503).
        @raise TooMany: the session's or the forwarded address's cap (429).
        """
        self.check_total()
        if self.sessions[entrance.session] >= self.per_session:
            raise TooMany(f"too many connections from this browser session (at most {self.per_session})")
        if entrance.forwarded and self.addresses[entrance.address] >= self.per_address:
            raise TooMany(f"too many connections from this address (at most {self.per_address})")

    def open(self, entrance: Entrance) -> Ticket:
        """Count one comet connection of ``entrance``; checked first, as :meth:`check`."""
        self.check(entrance)
        self.sessions[entrance.session] += 1
        if not entrance.forwarded:
            return Ticket((self.sessions, entrance.session))
        self.addresses[entrance.address] += 1
        return Ticket((self.sessions, entrance.session), (self.addresses, entrance.address))

    # -- sockets -----------------------------------------------------------------------

    def open_socket(self, address: str) -> Ticket | None:
        """Count a new TCP connection of a direct peer; ``None`` past the address's cap
        (the caller refuses it with :meth:`socket_refusal`)."""
        if self.sockets[address] >= self.per_address:
            return None
        self.sockets[address] += 1
        return Ticket((self.sockets, address))

    def socket_refusal(self) -> TooMany:
        """The refusal of a connection past its address's cap."""
        return TooMany(f"too many connections from this address (at most {self.per_address})")


def render_refusal(request: IRequest, error: Refused) -> bytes:
    """Write ``error`` as the daemon's one plain-text line (for resources that refuse
    while rendering, outside the routes' error handling)."""
    request.setResponseCode(error.code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    for name, value in error.headers.items():
        request.setHeader(name.encode("ascii"), value.encode("ascii"))
    return error.reason.encode("utf-8") + b"\n"
