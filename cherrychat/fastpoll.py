"""The long-poll fast path: a poll answered by the comet layer, without Klein.

A poller re-requests after every event it receives, so at a thousand pollers the daemon
serves thousands of requests a second, and for each of them the regular route costs far
more than the poll itself: twisted.web's resource lookup and default headers, the
daemon's ``DefaultHeaders``, Klein's routing (werkzeug) and its Deferreds, and on answer
the response headers built from a ``Headers`` object (the profile in bench/analysis.md).

:func:`fast_poll_requests` makes a request class whose ``process`` first offers the
request to :class:`FastPolls`. A plain poll (``GET /cherrychat`` over HTTP/1.1 with
``transport=longpoll`` and a valid session cookie) is checked here exactly as the comet
route checks it (connection cap, nickname, session label, ids, per-session and
per-address connection bounds, the room's claim of the nickname), counted, and held by a
:class:`FastLongPoll`, which answers with a pre-built header block and a
``Content-Length`` body. Anything else, and every request one of those checks would
refuse, goes on to the regular route, which then answers (or refuses) it as always: the
checks change nothing, so the regular route sees the request as if the fast path had not
looked at it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import datetimeToString
from twisted.web.server import Request

from cherrychat import validation
from cherrychat.chat import Room
from cherrychat.comet.core import Comet
from cherrychat.comet.admission import Entrance
from cherrychat.comet.longpoll import LongPoll
from cherrychat.comet.sending import send_now
from cherrychat.errors import Refused
from cherrychat.hub import make_key
from cherrychat.limits import Limits
from cherrychat.sessions import COOKIE_NAME, session_of

log = Logger()

COMET_PATH = b"/cherrychat"
CONTENT_TYPE = b"application/json"
#: nicknames remembered as valid; the table is emptied when it holds this many
MAX_REMEMBERED_NICKNAMES = 100_000


def _canonical(name: bytes) -> bytes:
    # As twisted.web writes header names: Content-Type, X-Accel-Buffering.
    return b"-".join(part.capitalize() for part in name.split(b"-"))


class HeaderBlock:
    """The status line and headers of a poll's answer, built once; only the date (per
    second) and the length change from one answer to the next."""

    def __init__(self, default_headers: Mapping[bytes, bytes], clock: Any):
        self.clock = clock
        # The order twisted.web's regular route writes them in: Server and Date (set by
        # Request.process), the daemon's defaults, then the comet headers.
        self._before_date = b"HTTP/1.1 200 OK\r\nServer: " + default_headers.get(b"server", b"CherryChat") + b"\r\n"
        after = [(name, value) for name, value in default_headers.items() if name != b"server"]
        # The comet route's answer depends on Origin (CORS, cherrychat.cors); polls that
        # carry one take the regular route, the others still say so to caches.
        after += [(b"vary", b"Origin"), (b"content-type", CONTENT_TYPE), (b"cache-control", b"no-cache, no-store"),
                  (b"x-accel-buffering", b"no")]
        self._after_date = b"".join(_canonical(name) + b": " + value + b"\r\n" for name, value in after)
        self._second = -1
        self._head = b""

    def head(self) -> bytes:
        """Everything up to the date header's end, the date of this second."""
        second = int(self.clock.seconds())
        if second != self._second:
            self._second = second
            self._head = self._before_date + b"Date: " + datetimeToString(second) + b"\r\n" + self._after_date
        return self._head

    def response(self, body: bytes, close: bool) -> bytes:
        """The whole answer: headers, ``Content-Length`` and ``body``."""
        tail = b"Connection: close\r\n\r\n" if close else b"\r\n"
        return self.head() + b"Content-Length: %d\r\n" % len(body) + tail + body


class FastPolls:
    """The fast path's view of one daemon: its room, comet core and bounds."""

    def __init__(self, chat: Room, comet: Comet, limits: Limits, default_headers: Mapping[bytes, bytes]):
        self.chat = chat
        self.comet = comet
        self.limits = limits
        self.default_headers = dict(default_headers)
        self.headers = HeaderBlock(default_headers, comet.clock)
        self._valid_nicknames: set[str] = set()
        #: polls answered by the fast path, and polls it passed on to the route, since start
        self.served = 0
        self.passed = 0

    def offer(self, request: Any, regular: Callable[[], None]) -> None:
        """Serve ``request`` here when it is a plain poll that the comet route would
        accept; else call ``regular`` (the regular route)."""
        if request.path != COMET_PATH or _first(request.args, b"transport") != b"longpoll":
            regular()
            return
        params = self._plain_poll(request)
        if params is None:
            self.passed += 1
            regular()
            return
        session, user, key, last_event_id, epoch, entrance = params

        # Every room answers a claim it can decide alone at once (the in-process room
        # always, Redis's for a nickname its mirror shows held): then this runs now.
        def claimed(result: object) -> None:
            if request._disconnected:
                return  # the client left while the claim was asked (a backplane's round trip)
            if isinstance(result, Failure):
                # Refused (another session holds the nickname) or failed: the regular
                # route asks again and answers as it always does.
                self.passed += 1
                regular()
                return
            self._serve(request, regular, key, last_event_id, epoch, entrance)

        self.chat.claim(user, session).addBoth(claimed)

    def _serve(self, request: Any, regular: Callable[[], None], key: str,
               last_event_id: int | None, epoch: str | None, entrance: Entrance) -> None:
        try:
            release = self.comet.admission.open(entrance).release
        except Refused:
            self.passed += 1
            regular()
            return
        self.served += 1
        poll = FastLongPoll(self, request, key, release)
        request.fast_poll = poll
        try:
            poll.start(last_event_id, epoch)
        except Exception:  # noqa: BLE001 - a bug: logged, a bare 500 as the route's
            log.failure("long poll {uri} failed", uri=request.uri)
            poll.fail()

    def _nickname(self, value: str | None) -> str:
        # A poller sends the same nickname with every poll: checked once, remembered
        # (a bounded table, emptied when full).
        if value is not None and value in self._valid_nicknames:
            return value
        user = validation.nickname(value)
        if len(self._valid_nicknames) >= MAX_REMEMBERED_NICKNAMES:
            self._valid_nicknames.clear()
        self._valid_nicknames.add(user)
        return user

    def _plain_poll(self, request: Any) -> tuple[str, str, str, int | None, str | None, Entrance] | None:
        """What the comet route would make of poll ``request``, when it would accept it
        (before the claim) and it needs nothing the fast path does not do; else ``None``."""
        # HTTP/1.1 only: the answer is written as HTTP/1.1 bytes on the connection
        # (HTTP/1.0 closes after each answer, HTTP/2 frames its own; HEAD has no body).
        if request.method != b"GET" or request.clientproto != b"HTTP/1.1":
            return None
        # A page of another origin needs the route's CORS answer.
        if request.requestHeaders.hasHeader(b"origin"):
            return None
        args = request.args
        presented = request.getCookie(COOKIE_NAME)
        if presented is None:
            return None
        try:
            self.comet.admit()
            session = session_of(request)
            if request.cookies:
                return None  # the cookie was not a token: the regular route sets a new one
            user = self._nickname(_text(args, b"user"))
            label = validation.session_label(_text(args, b"session"))
            last_event_id = validation.event_id(_text(args, b"last_event_id"))
            epoch = validation.epoch(_text(args, b"epoch"))
            key = make_key(user, label, self.chat.location)
            entrance = Entrance(session, *self.limits.client(request))
            self.comet.admission.check(entrance)
        except (Refused, UnicodeDecodeError):
            return None
        return session, user, key, last_event_id, epoch, entrance


def _first(args: Mapping[bytes, list[bytes]], name: bytes) -> bytes | None:
    values = args.get(name)
    return values[0] if values else None


def _text(args: Mapping[bytes, list[bytes]], name: bytes) -> str | None:
    # As the route's argument(): the first value as UTF-8 (UnicodeDecodeError: refused).
    value = _first(args, name)
    return None if value is None else value.decode("utf-8")


class FastLongPoll(LongPoll):
    """One held poll of the fast path: :class:`cherrychat.comet.longpoll.LongPoll`, its
    answer written with the pre-built header block straight to the connection."""

    __slots__ = ("polls",)

    def __init__(self, polls: FastPolls, request: Any, key: str, on_close: Callable[[], None] | None = None):
        super().__init__(polls.comet, request, key, on_close)
        self.polls = polls

    def _begin(self) -> None:
        """No headers on the request: the answer carries its own block."""

    def _watch(self) -> None:
        """The request tells :meth:`connection_lost` itself (see :func:`fast_poll_requests`)."""

    def fail(self) -> None:
        """A bug stopped the poll: detach, and answer ``500 internal error`` if nothing
        was sent yet."""
        answered, self._answered = self._answered, True
        self._detach()
        request = self.request
        if not answered and not request._disconnected and not request.startedWriting:
            body = b"internal error\n"
            request.setResponseCode(500)
            for name, value in self.polls.default_headers.items():
                request.setHeader(name, value)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

    def connection_lost(self) -> None:
        """The client went away while the poll was held."""
        self._detach()

    def _respond(self, body: bytes) -> None:
        request = self.request
        if request._disconnected:
            return
        close = request.responseHeaders.hasHeader(b"connection")  # Connection: close asked for
        data = self.polls.headers.response(body, close)
        # Sent now when the socket takes it (in order: nothing of this connection is
        # waiting), else through the transport's buffer; then the channel goes on with
        # the connection's next request, as after any response.
        request.startedWriting = 1
        request.sentLength = len(body)
        send_now(request.channel.transport, data)
        request.finish()


RequestClass = TypeVar("RequestClass", bound=Request)
ChannelClass = TypeVar("ChannelClass")


def address_caching_channels(base: type[ChannelClass]) -> type[ChannelClass]:
    """A subclass of the site's channel class ``base`` that asks its transport for the
    peer's and its own address once, not for every request (twisted.web asks both when
    each request arrives, and a poller sends one request per event)."""

    parent: Any = base

    class AddressCachingChannel(parent):  # type: ignore[valid-type, misc]
        _peer_address: Any = None
        _host_address: Any = None

        def getPeer(self) -> Any:
            if self._peer_address is None:
                self._peer_address = parent.getPeer(self)
            return self._peer_address

        def getHost(self) -> Any:
            if self._host_address is None:
                self._host_address = parent.getHost(self)
            return self._host_address

    AddressCachingChannel.__name__ = AddressCachingChannel.__qualname__ = parent.__name__
    return AddressCachingChannel  # type: ignore[return-value]


def fast_poll_requests(base: type[RequestClass], polls: FastPolls) -> type[RequestClass]:
    """A subclass of the site's request class ``base`` whose plain polls ``polls`` serves."""

    class FastPollRequest(base):  # type: ignore[valid-type, misc]
        #: the fast path (its counters say how many polls it served)
        fast_polls = polls
        fast_poll: FastLongPoll | None = None

        def process(self) -> None:
            # An over-long URL is the regular request's 414.
            if len(self.uri) > getattr(self, "max_url_bytes", len(self.uri)):
                base.process(self)
                return
            polls.offer(self, lambda: base.process(self))

        def connectionLost(self, reason: Failure) -> None:
            poll = self.fast_poll
            if poll is not None:
                self.fast_poll = None
                poll.connection_lost()
            base.connectionLost(self, reason)

    FastPollRequest.__name__ = FastPollRequest.__qualname__ = f"FastPoll{base.__name__}"
    return FastPollRequest
