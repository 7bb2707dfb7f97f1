"""The Klein web resource: the tutorial's ``/join`` and ``/msg``, static files, the comet
location, and the JSON views.

Routes parse and check their input, then call the chat room; every refusal is a
:class:`cherrychat.errors.Refused` that becomes a 4xx with a one-line plain-text reason.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote_to_bytes

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site
from twisted.web.static import File
from werkzeug.exceptions import HTTPException

from cherrychat import validation
from cherrychat.chat import Room
from cherrychat.comet import Comet, Entrance, connection_resource
from cherrychat.fastpoll import FastPolls, address_caching_channels, fast_poll_requests
from cherrychat.cors import allow_listed_origin
from cherrychat.errors import BadRequest, Refused
from cherrychat.history import history_json
from cherrychat.hub import Event, InvalidKey, make_key
from cherrychat.httpframing import channel_factory, request_factory
from cherrychat.limits import Limits, LimitSettings
from cherrychat.origins import OriginPolicy
from cherrychat.publish import INVALID_KEYS, Publisher
from cherrychat.sessions import has_session, session_of

log = Logger()

CHAT_PAGE = b"/static/chat.html"
# The shipped page loads only its own scripts and styles and talks only to its origin.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    b"form-action 'self'; frame-ancestors 'self'"
)
DEFAULT_HEADERS = {
    b"server": b"CherryChat",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"content-security-policy": CONTENT_SECURITY_POLICY,
}


def argument(request: IRequest, name: str) -> str | None:
    """The first value of query or form field ``name``, decoded as UTF-8.

    @raise BadRequest: the value is not valid UTF-8.
    """
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"invalid UTF-8 in parameter: {name}") from None


def plain(request: IRequest, text: str, code: int = 200) -> bytes:
    """A one-line plain-text answer."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode("utf-8") + b"\n"


def as_json(request: IRequest, value: Any) -> bytes:
    """A JSON answer that no cache keeps."""
    return json_body(request, json.dumps(value, ensure_ascii=True).encode("ascii"))


def json_body(request: IRequest, body: bytes) -> bytes:
    """``body``, already JSON, as an answer that no cache keeps."""
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-cache, no-store")
    return body


def history_item(event: Event) -> dict[str, Any]:
    """One event as ``GET /history`` lists it."""
    item: dict[str, Any] = {"id": event.id, "time": event.time, "payload": event.payload}
    if event.presence is not None:
        item["presence"] = event.presence
    return item


class PlainRefusal(Resource):
    """Renders a refusal as the daemon's one plain-text line, for resources outside Klein."""

    isLeaf = True

    def __init__(self, code: int, reason: str):
        super().__init__()
        self.code = code
        self.reason = reason

    def render(self, request: IRequest) -> bytes:  # type: ignore[override]
        """The status and the one-line reason."""
        return plain(request, self.reason, self.code)


class StaticFiles(File):
    """The chat page's files, without directory listings; refusals in plain text."""

    contentTypes = {**File.contentTypes, ".js": "text/javascript; charset=utf-8",
                    ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8"}
    childNotFound = PlainRefusal(404, "not found")  # type: ignore[assignment]
    forbidden = PlainRefusal(403, "forbidden")  # type: ignore[assignment]

    def directoryListing(self) -> Resource:
        """Folders are not listed."""
        return self.childNotFound

    def render(self, request: IRequest) -> Any:  # type: ignore[override]
        """GET and HEAD only (methods are case-sensitive): anything else is a plain 405,
        not twisted.web's 501."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return plain(request, "method not allowed", 405)
        return super().render(request)


class ChatWeb:
    """The Klein application of one daemon: routes over a chat room and the comet core."""

    app = Klein()

    def __init__(
        self,
        chat: Room,
        comet: Comet,
        static_directory: Path,
        healthy: Callable[[], bool] = lambda: True,
        limits: LimitSettings | None = None,
        origins: OriginPolicy | None = None,
        publisher: Publisher | None = None,
    ):
        self.chat = chat
        self.healthy = healthy
        self.comet = comet
        self.static = StaticFiles(str(static_directory))
        #: the bounds per request, session and address; timed by the comet clock
        self.limits = Limits(limits or LimitSettings(), comet.clock)
        #: which pages may change state or open a WebSocket
        self.origins = origins or OriginPolicy()
        #: POST /event; without a token the route answers 404
        self.publisher = publisher or Publisher(None)
        #: refused requests by status code, for /metrics
        self.refusals: Counter[int] = Counter()

    def resource(self) -> IResource:
        """The root resource to serve, with the daemon's headers on every response."""
        return DefaultHeaders(self.app.resource(), self.limits)

    def site(self, access_log: bool = True, reactor: IReactorTime | None = None) -> Site:
        """The site to listen with: the resource, and channels and requests that enforce the
        size bounds, the deadlines (timed by ``reactor``, the comet clock by default) and the
        per-address connection count; without ``access_log``, no log line per request."""
        settings = self.limits.settings
        factory = request_factory(settings, DEFAULT_HEADERS, self._count_refusal)
        # Plain long polls are answered by the comet layer, the rest by the resource below.
        factory = fast_poll_requests(factory, FastPolls(self.chat, self.comet, self.limits, DEFAULT_HEADERS))
        site = (Site if access_log else QuietSite)(
            self.resource(), requestFactory=factory, timeout=settings.idle_timeout, reactor=reactor or self.comet.clock
        )
        channel = address_caching_channels(
            channel_factory(settings, DEFAULT_HEADERS, self._count_refusal, self.comet.admission)
        )
        site.protocol = channel  # type: ignore[assignment]
        site.displayTracebacks = False
        return site

    def _count_refusal(self, code: int) -> None:
        self.refusals[code] += 1

    # -- the page ------------------------------------------------------------------

    @app.route("/", methods=["GET"])
    def root(self, request: IRequest) -> bytes:
        """Send browsers to the chat page."""
        session_of(request)
        # The query goes along: http://host:4700/?transport=sse forces the page's transport.
        query = request.uri.partition(b"?")[2]
        request.redirect(CHAT_PAGE + (b"?" + query if query else b""))
        return b""

    @app.route("/static/", branch=True, methods=["GET"])
    def static_files(self, request: IRequest) -> IResource:
        """``chat.html``, ``chat.css``, ``chat.js`` and ``orbited.js``."""
        session_of(request)
        return self.static

    @app.route("/_/orbited.js", methods=["GET"])
    def orbited_js(self, request: IRequest) -> IResource:
        """``orbited.js`` where Orbited 0.3 served its own."""
        return self.static.getChild(b"orbited.js", request)

    @app.route("/static", methods=["GET"])
    def static_folder(self, request: IRequest) -> bytes:
        """The bare folder name leads to the chat page too."""
        return self.root(request)

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request: IRequest) -> bytes:
        """``200 ok`` while the daemon serves; ``503`` while a backend it needs is lost."""
        if not self.healthy():
            return plain(request, "unavailable: backend lost", 503)
        return plain(request, "ok")

    # -- the tutorial's API --------------------------------------------------------

    def _speaker(self, request: IRequest, joining: bool = False) -> tuple[str, str, str]:
        """What ``/join`` and ``/msg`` check first: the origin, the rates (and for a join,
        the address's joins per minute), the nickname and the label; the caller's session,
        nickname and label."""
        self.origins.check(request)
        session = session_of(request)
        (self.limits.check_join if joining else self.limits.check_rate)(request, session)
        user = validation.nickname(argument(request, "user"))
        label = validation.session_label(argument(request, "session"))
        return session, user, label

    @app.route("/join", methods=["GET", "POST"])
    def join(self, request: IRequest) -> Deferred:
        """Claim a nickname for the caller's session and join the room."""
        session, user, label = self._speaker(request, joining=True)
        joining = maybeDeferred(self.chat.join, user, session, label)
        return joining.addCallback(lambda joined: plain(request, "joined" if joined else "already joined"))

    @app.route("/msg", methods=["GET", "POST"])
    def msg(self, request: IRequest) -> Deferred:
        """Send a message to every member, as the caller's own nickname only."""
        session, user, _ = self._speaker(request)
        text = validation.message(argument(request, "msg"))
        # Answered once the event is stored.
        return maybeDeferred(self.chat.msg, user, session, text).addCallback(lambda _: plain(request, "sent"))

    @app.route("/nick", methods=["POST"])
    def nick(self, request: IRequest) -> Deferred:
        """Rename the caller's member ``user`` to ``new``: the old name is free at once."""
        session, user, label = self._speaker(request)
        if not argument(request, "new"):
            raise BadRequest("missing parameter: new")
        new = validation.nickname(argument(request, "new"))
        renaming = maybeDeferred(self.chat.rename, user, new, session, label)

        def renamed(done: Any) -> bytes:
            # Connections still open under the old name would hear nothing more, and the
            # name may go to someone else: send them away (a page reconnects as it wants).
            for connection in list(self.comet.connections):
                key = getattr(connection, "key", "")
                if key.startswith(user + ", ") and key.endswith(", " + self.chat.location):
                    connection.close_for_restart()
            return plain(request, "renamed" if done else "already renamed")

        return renaming.addCallback(renamed)

    @app.route("/cherrychat", methods=["GET"])
    def comet_connection(self, request: IRequest) -> Deferred:
        """The comet connection of orbit key ``user, session, /cherrychat``."""
        # First, so that a refusal, too, is readable by a page of an allowed origin.
        allow_listed_origin(request, self.origins)
        self.comet.admit()  # a daemon at its cap or stopping parses nothing
        session = session_of(request)
        user = validation.nickname(argument(request, "user"))
        label = validation.session_label(argument(request, "session"))
        transport = argument(request, "transport")
        last_event_id = validation.event_id(argument(request, "last_event_id"))
        header = request.getHeader(b"last-event-id") if transport == "sse" else None
        if header:
            # EventSource's own reconnect keeps the URL it started with, but sends the id
            # it saw last in this header: the header is the newer of the two.
            last_event_id = validation.event_id(header.decode("latin-1"))
        epoch = validation.epoch(argument(request, "epoch"))
        if transport == "websocket":
            self.origins.check_websocket(request)
        key = make_key(user, label, self.chat.location)
        # Refused before the claim, so that a refusal reserves no nickname; the resource
        # counts the connection (comet.admission) from when it renders until it ends.
        entrance = Entrance(session, *self.limits.client(request))
        resource = connection_resource(self.comet, request, transport, key, last_event_id, epoch, entrance)
        claiming = maybeDeferred(self.chat.claim, user, session)
        return claiming.addCallback(lambda _: resource)

    # -- publishing from other processes ------------------------------------------

    @app.route("/event", methods=["POST"])
    def event(self, request: IRequest) -> Deferred:
        """``hub.event(keys, payload)`` for a holder of the publishing token; answered
        once the event is stored."""
        self.publisher.authorize(request)
        self.origins.check(request)
        keys, payload = self.publisher.parse(request)
        try:
            # The hub checks every key before it publishes anything.
            published = self.comet.hub.event(keys, payload)
        except InvalidKey:
            raise BadRequest(INVALID_KEYS) from None
        return published.addCallback(lambda ids: as_json(request, {"ids": ids}))

    # -- JSON views ----------------------------------------------------------------

    @app.route("/who", methods=["GET"])
    def who(self, request: IRequest) -> Deferred:
        """The members online."""
        return maybeDeferred(self.chat.members).addCallback(lambda members: as_json(request, {"members": members}))

    @app.route("/history", methods=["GET"])
    def history(self, request: IRequest) -> bytes:
        """The room's recent events that the caller may read, oldest first; with
        ``before=ID``, those just before ID."""
        limit = validation.positive_int(argument(request, "limit"), "limit", 50, 1000)
        before = validation.positive_int(argument(request, "before"), "before", 0, validation.MAX_EVENT_ID)
        hub = self.comet.hub
        keys = self.chat.keys_of(session_of(request))
        readable = hub.channel(self.chat.location).recent(limit, before or None, lambda event: hub.readable(event, keys))
        # At most MAX_HISTORY_BYTES of events: an answer left unread costs little.
        return json_body(request, history_json([history_item(event) for event in readable]))

    # -- refusals ------------------------------------------------------------------

    @app.handle_errors(Refused)
    def refused(self, request: IRequest, failure: Failure) -> bytes:
        """A 4xx (or 503) with its one-line reason."""
        error: Refused = failure.value
        self.refusals[error.code] += 1
        for name, value in error.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("ascii"))
        return plain(request, error.reason, error.code)

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure: Failure) -> bytes:
        """Klein's routing refusals (404, 405) as one plain line, too."""
        error: HTTPException = failure.value
        new_url = getattr(error, "new_url", None)
        if new_url:  # werkzeug's redirects, e.g. to add a trailing slash
            request.setHeader(b"location", new_url.encode("utf-8"))
        return plain(request, (error.name or "error").lower(), error.code or 400)

    @app.handle_errors(Exception)
    def crashed(self, request: IRequest, failure: Failure) -> bytes:
        """A bug: logged in full here, a bare 500 for the client, never a traceback."""
        log.failure("request {uri} failed", failure, uri=request.uri)
        return plain(request, "internal error", 500)


class QuietSite(Site):
    """A site that writes no access log line (``--no-access-log``)."""

    def log(self, request: http.Request) -> None:
        """Log nothing for ``request``."""


class DefaultHeaders(Resource):
    """Sets the daemon's headers on every response, then lets ``wrapped`` render."""

    isLeaf = True

    def __init__(self, wrapped: IResource, limits: Limits | None = None):
        super().__init__()
        self.wrapped = wrapped
        #: bounds the new sessions one address may start
        self.limits = limits

    def render(self, request: IRequest) -> Any:  # type: ignore[override]
        """Set the defaults and the session cookie; a route may still replace any of them."""
        for name, value in DEFAULT_HEADERS.items():
            request.setHeader(name, value)
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            return plain(request, "invalid UTF-8 in the path", 400)
        try:
            validation.host(request.getHeader(b"host"))
        except Refused as error:
            return plain(request, error.reason, error.code)
        # Publishers (POST /event, token-guarded) need no session: they are not counted.
        if self.limits is not None and request.path != b"/event" and not has_session(request):
            try:
                self.limits.check_new_session(request)
            except Refused as error:
                for header, text in error.headers.items():
                    request.setHeader(header.encode("ascii"), text.encode("ascii"))
                return plain(request, error.reason, error.code)
        session_of(request)
        return self.wrapped.render(request)
