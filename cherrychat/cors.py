"""CORS for the comet transports: pages of an ``--allowed-origin`` read the daemon's streams.

``orbited.js`` loaded by a page of another origin (the tutorial's app on its own port)
opens its XHR-streaming, long-poll and SSE connections to the daemon with credentials. A
browser hands such a response to the page only when it names the page's origin in
``Access-Control-Allow-Origin`` and says ``Access-Control-Allow-Credentials: true``; that
is granted to the origins listed with ``--allowed-origin`` and to no other. Requests of the
daemon's own origin need none of it. The comet requests are simple GETs, so no preflight
is needed and none is answered. (WebSockets are checked by their ``Origin`` instead, in
:mod:`cherrychat.origins`; the session cookie stays ``SameSite=Strict``, see
docs/SECURITY.md.)
"""

from __future__ import annotations

from twisted.web.iweb import IRequest

from cherrychat.origins import OriginPolicy, parse_origin


def allow_listed_origin(request: IRequest, origins: OriginPolicy) -> None:
    """Let a page of a listed origin read this response, with its cookies."""
    header = request.getHeader(b"origin")
    # The answer depends on Origin: a cache must not hand one origin's answer to another.
    request.setHeader(b"vary", b"Origin")
    if header is None:
        return
    origin = parse_origin(header.decode("latin-1"))
    if origin is None or origin not in origins.allowed:
        return
    request.setHeader(b"access-control-allow-origin", header)
    request.setHeader(b"access-control-allow-credentials", b"true")
