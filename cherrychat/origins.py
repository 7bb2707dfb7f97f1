"""Cross-site requests: which web pages may change state or open a WebSocket.

One job: compare the ``Origin`` (or, without it, the ``Referer``) a browser sends with the
origins this daemon allows, and refuse the request with ``403`` when it names another site.

- The daemon's own origin is always allowed: the request's scheme and ``Host`` header.
  Ports are not compared for it (``Host`` as a reverse proxy forwards it often has none),
  and the scheme is the one ``X-Forwarded-Proto`` names when a proxy sent it. A page
  cannot forge either header on a cross-site request: a browser sends no custom header
  cross-site without a CORS preflight, which this daemon never grants, and a WebSocket
  handshake carries none at all.
- Each ``--allowed-origin ORIGIN`` adds one origin, compared exactly (scheme, host, port).
- A request with neither ``Origin`` nor ``Referer`` (curl, scripts, old same-origin XHR
  GETs) is allowed: such a request did not come from another site's page, and the cookie
  is ``SameSite=Strict`` besides.
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest

from cherrychat.errors import Refused

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class CrossSite(Refused):
    """403: the request came from a page of another site."""

    code = 403


Origin = tuple[str, str, int]


def parse_origin(text: str) -> Origin | None:
    """``(scheme, host, port)`` of an origin or URL, or ``None`` when it names none."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _host_of(host_header: str) -> str:
    """The host name of a ``Host`` header, without its port."""
    host_header = host_header.strip().lower()
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class OriginPolicy:
    """The origins whose pages may send ``/join``, ``/msg``, ``/event`` and WebSockets."""

    def __init__(self, allowed: Iterable[str] = ()):
        self.allowed: set[Origin] = set()
        for origin in allowed:
            parsed = parse_origin(origin)
            if parsed is None:
                raise ValueError(f"not an origin: {origin!r} (use scheme://host[:port])")
            self.allowed.add(parsed)

    def is_allowed(self, request: IRequest, origin: Origin) -> bool:
        """Whether ``origin`` is the daemon's own or one of the allowed ones."""
        if origin in self.allowed:
            return True
        host = request.getHeader(b"host")
        if host is None:
            return False
        scheme = "https" if request.isSecure() else "http"
        forwarded = request.getHeader(b"x-forwarded-proto")
        if forwarded:
            scheme = forwarded.split(b",")[0].strip().lower().decode("latin-1")
        own_host = _host_of(host.decode("latin-1"))
        origin_host = f"[{origin[1]}]" if ":" in origin[1] else origin[1]
        return origin[0] in (scheme, {"http": "ws", "https": "wss"}.get(scheme)) and origin_host == own_host

    def check(self, request: IRequest) -> None:
        """Refuse a request whose ``Origin`` or ``Referer`` names another site.

        @raise CrossSite: it does; nothing has been changed.
        """
        header = request.getHeader(b"origin")
        name = "Origin"
        if header is None:
            header = request.getHeader(b"referer")
            name = "Referer"
            if header is None:
                return
        origin = parse_origin(header.decode("latin-1"))
        if origin is None or not self.is_allowed(request, origin):
            raise CrossSite(f"cross-site request refused ({name} is not an allowed origin)")

    def check_websocket(self, request: IRequest) -> None:
        """Refuse a WebSocket upgrade from a page of another site (``Origin``).

        @raise CrossSite: the ``Origin`` is not allowed.
        """
        self.check(request)
