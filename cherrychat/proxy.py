"""``--proxy PATH=URL``: Orbited 0.3's proxy role, the app behind the daemon on one origin.

The old two-process layout (an app such as the tutorial's CherryPy ``chat.py``, and Orbited
for the comet connections) needed both on one origin, or a page could not reach Orbited.
Orbited 0.3 put the app behind itself; so does this: a request whose path is ``PATH`` or
lies under it is forwarded to ``URL`` with twisted.web's reverse proxy (one connection per
request, ``Connection: close``, which the tutorial's single-threaded CherryPy needs), and
the app's answer goes back as it is, without the daemon's headers. The daemon keeps its
comet location, ``/_/`` and ``/static/orbited.js``, whatever the mounts say; every other
path that no mount covers is the daemon's as before.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import urlsplit

from twisted.python import usage
from twisted.web import proxy
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

#: paths the daemon answers itself, even under a mount
DAEMON_PATHS = (b"/_/", b"/static/orbited.js")


class Mount:
    """One ``PATH=URL``: where requests under ``path`` go."""

    def __init__(self, spec: str):
        path, separator, url = spec.partition("=")
        parts = urlsplit(url)
        if not separator or not path.startswith("/"):
            raise ValueError(f"--proxy {spec!r}: use PATH=URL, PATH starting with /")
        if parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"--proxy {spec!r}: the URL must be http://HOST[:PORT][/PATH]")
        self.path = path.rstrip("/").encode("utf-8")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.target = parts.path.rstrip("/").encode("utf-8")

    def covers(self, path: bytes) -> bool:
        """Whether ``path`` is this mount's path or lies under it."""
        return not self.path or path == self.path or path.startswith(self.path + b"/")

    def resource(self, request: IRequest, reactor: Any) -> IResource:
        """A reverse proxy resource for this request's path under the target."""
        # The path as the request line spelled it (still percent-encoded), under the target.
        rest = request.path[len(self.path) :] or b"/"
        target = self.target + (rest if rest.startswith(b"/") else b"/" + rest)
        forward = proxy.ReverseProxyResource(self.host, self.port, target, reactor)
        forward.proxyClientFactoryClass = _Unreachable503
        return forward


class _Unreachable503(proxy.ProxyClientFactory):
    """Twisted answers an unreachable app with a 501 HTML page; the daemon says 503."""

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        """The app did not accept the connection."""
        self.father.setResponseCode(503)
        self.father.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
        self.father.write(b"the proxied application is unreachable\n")
        self.father.finish()


class ProxyRoot(Resource):
    """The site's root: mounted paths go to their app, everything else to ``wrapped``."""

    isLeaf = True

    def __init__(self, wrapped: IResource, mounts: Sequence[Mount], reactor: Any, daemon_paths: Sequence[bytes] = ()):
        super().__init__()
        self.wrapped = wrapped
        # The longest path first, so that /app/api can go elsewhere than /app.
        self.mounts = sorted(mounts, key=lambda mount: len(mount.path), reverse=True)
        self.reactor = reactor
        self.daemon_paths = tuple(daemon_paths) + DAEMON_PATHS

    def render(self, request: IRequest) -> Any:  # type: ignore[override]
        """Forward the request, or let the daemon answer it."""
        path = request.path
        if not any(path == kept.rstrip(b"/") or path.startswith(kept.rstrip(b"/") + b"/") for kept in self.daemon_paths):
            for mount in self.mounts:
                if mount.covers(path):
                    return mount.resource(request, self.reactor).render(request)
        return self.wrapped.render(request)


def opt_proxy(options: usage.Options, spec: str) -> None:
    """Serve an application behind the daemon, as Orbited 0.3's [proxy]: PATH=URL, e.g.
    /=http://127.0.0.1:4700 (repeatable). The daemon keeps its comet location, /_/ and
    /static/orbited.js."""
    try:
        options.setdefault("proxy", []).append(Mount(spec))
    except ValueError as error:
        raise usage.UsageError(str(error)) from None
