"""Comet clients for the integration tests: one per transport, over real sockets.

Each client plays one browser: it keeps the ``cherrychat_session`` cookie, opens the comet
connection of its orbit key, parses the transport's framing into messages, and lets a test
wait until a given number of events has arrived.
"""

from __future__ import annotations

import json
import re
from http.cookiejar import CookieJar
from typing import Any, Callable
from urllib.parse import urlencode

import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import Agent, HTTPConnectionPool
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from tests.support import wait_until

Message = dict[str, Any]


class Browser:
    """One browser: a cookie jar and an HTTP client sharing it."""

    def __init__(self, reactor: Any, base: str):
        self.reactor = reactor
        self.base = base
        self.cookies = CookieJar()
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.http = HTTPClient(Agent(reactor, pool=self.pool), cookiejar=self.cookies)

    def url(self, path: str, **params: Any) -> str:
        """An absolute URL on the daemon."""
        return self.base + path + ("?" + urlencode(params) if params else "")

    @inlineCallbacks
    def get(self, path: str, **params: Any):
        """GET and return ``(status, body text)``."""
        response = yield self.http.get(self.url(path, **params))
        body = yield response.text()
        return response.code, body

    @inlineCallbacks
    def post(self, path: str, **fields: Any):
        """POST a form and return ``(status, body text)``."""
        response = yield self.http.post(self.url(path), data=fields)
        body = yield response.text()
        return response.code, body

    def cookie_header(self) -> bytes:
        """The Cookie header this browser would send."""
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies).encode("ascii")

    def close(self) -> Deferred:
        """Close pooled connections."""
        return self.pool.closeCachedConnections()


class CometClient:
    """Collects the messages of one comet connection and wakes tests waiting for events."""

    def __init__(self, browser: Browser, user: str, transport: str, session: str = "0"):
        self.browser = browser
        self.user = user
        self.transport = transport
        self.session = session
        self.messages: list[Message] = []
        self.status: int | None = None
        self.closed = Deferred()

    def finished(self) -> Deferred:
        """Fires when the client has stopped all its network activity."""
        return self.closed

    @property
    def events(self) -> list[Message]:
        """The ``event`` messages received so far, in order."""
        return [m for m in self.messages if m.get("type") == "event"]

    @property
    def payloads(self) -> list[str]:
        """The payloads of the events received so far."""
        return [m["data"] for m in self.events]

    def params(self, last_event_id: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"user": self.user, "session": self.session, "transport": self.transport}
        if last_event_id is not None:
            params["last_event_id"] = last_event_id
        return params

    def received(self, message: Message) -> None:
        """Record a message."""
        self.messages.append(message)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "a condition") -> Deferred:
        """A Deferred that fires with this client when ``condition()`` holds; the test
        fails after ``timeout`` seconds (see :func:`tests.support.wait_until`)."""
        waiting = wait_until(condition, f"{what} on {self.user}'s {self.transport} connection", timeout)
        return waiting.addCallback(lambda _: self)

    def wait_for_events(self, count: int, timeout: float = 10.0) -> Deferred:
        """Wait until at least ``count`` events have arrived."""
        return self.wait_until(lambda: len(self.events) >= count, timeout, f"{count} events")

    def wait_opened(self, timeout: float = 10.0) -> Deferred:
        """Wait for the ``open`` message."""
        return self.wait_until(lambda: any(m.get("type") == "open" for m in self.messages), timeout, "the open message")


class StreamingClient(CometClient):
    """iframe, xhrstream and sse: one long response, parsed as it arrives."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._buffer = b""
        self._response: Any = None

    @inlineCallbacks
    def connect(self, last_event_id: int | None = None, headers: dict | None = None):
        """Open the stream; fires with the response status once headers arrived."""
        response = yield self.browser.http.get(
            self.browser.url("/cherrychat", **self.params(last_event_id)), unbuffered=True, headers=headers
        )
        self.status = response.code
        self.headers = response.headers
        self._response = response
        if response.code != 200:
            self.body = (yield response.text())
            return response.code
        done = treq.collect(response, self._data)
        done.addBoth(lambda _: self.closed.callback(self) if not self.closed.called else None)
        return response.code

    def disconnect(self) -> None:
        """Drop the connection, as a closed browser tab does."""
        if self._response is not None and self.status == 200 and not self.closed.called:
            # The response's transport is a proxy; abort the TCP connection under it.
            self._response.original._transport._producer.abortConnection()

    def _data(self, data: bytes) -> None:
        self._buffer += data
        for message in self._parse():
            self.received(message)

    def _parse(self) -> list[Message]:
        raise NotImplementedError


class XHRStreamClient(StreamingClient):
    """Newline-delimited JSON after whitespace padding."""

    def _parse(self) -> list[Message]:
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


class SSEClient(StreamingClient):
    """``text/event-stream``: blocks separated by a blank line."""

    def _parse(self) -> list[Message]:
        *blocks, self._buffer = self._buffer.split(b"\n\n")
        messages = []
        for block in blocks:
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            if b"data" in fields:
                message = json.loads(fields[b"data"])
                if b"id" in fields:
                    message["sse_id"] = int(fields[b"id"])
                messages.append(message)
        return messages


class IframeClient(StreamingClient):
    """An HTML document of ``<script>m(MESSAGE)</script>`` elements."""

    _SCRIPT = re.compile(rb"<script>m\((.*?)\)</script>")

    def _parse(self) -> list[Message]:
        messages = []
        end = 0
        for match in self._SCRIPT.finditer(self._buffer):
            messages.append(json.loads(match.group(1)))
            end = match.end()
        self._buffer = self._buffer[end:]
        return messages


class LongPollClient(CometClient):
    """Polls in a loop, each poll passing the last event id it saw."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_event_id: int | None = None
        self.polls = 0
        self._stopped = False
        self._loop_done: Deferred = Deferred()

    def finished(self) -> Deferred:
        """Fires when the polling loop has ended."""
        return self._loop_done

    def connect(self, last_event_id: int | None = None, headers: dict | None = None) -> Deferred:
        """Start polling in the background.

        Without ``last_event_id`` the first poll answers at once, and this fires with its
        status; a resuming poll is held by the server, so this fires at once and the test
        waits for the server to hold it.
        """
        self.last_event_id = last_event_id
        self._first_answer: Deferred = Deferred()
        self._loop()
        return self._first_answer if last_event_id is None else succeed(200)

    @inlineCallbacks
    def _poll(self):
        self._in_flight = self.browser.http.get(self.browser.url("/cherrychat", **self.params(self.last_event_id)))
        response = yield self._in_flight
        self.status = response.code
        self.headers = response.headers
        body = yield response.content()
        self.polls += 1
        if not self._first_answer.called:
            self._first_answer.callback(response.code)
        if response.code != 200:
            self.body = body.decode()
            return response.code
        for message in json.loads(body):
            if message.get("type") in ("open", "reset"):
                self.last_event_id = message["id"]
            elif message.get("type") == "event":
                self.last_event_id = message["id"]
            self.received(message)
        return response.code

    @inlineCallbacks
    def _loop(self):
        while not self._stopped:
            try:
                status = yield self._poll()
            except Exception as reason:  # the poll was cancelled or the daemon went away
                if not self._first_answer.called:
                    self._first_answer.errback(reason)
                break
            if status != 200:
                break
        if not self.closed.called:
            self.closed.callback(self)
        self._loop_done.callback(None)

    def disconnect(self) -> None:
        """Stop polling, dropping the poll in flight as a closed tab does."""
        self._stopped = True
        # Not ``if not called``: a request waiting on its chained Deferred counts as
        # called, and would be left held; cancel() is a no-op once it has a result.
        if getattr(self, "_in_flight", None) is not None:
            self._in_flight.cancel()
        # The tab is gone now; a poll that was already answering ends the loop by itself.
        if not self.closed.called:
            self.closed.callback(self)


class _WebSocketWire(Protocol):
    """wsproto over a TCP connection, sending the browser's cookie with the upgrade."""

    def __init__(self, client: "WebSocketClient", host: str, target: str, cookie: bytes):
        self.client = client
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.request = Request(host=host, target=target, extra_headers=[(b"cookie", cookie)])
        self.accepted: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.ws.send(self.request))

    def dataReceived(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted.callback(101)
            elif isinstance(event, TextMessage):
                self.client.received(json.loads(event.data))
            elif isinstance(event, Ping):
                self.transport.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.transport.loseConnection()
            elif hasattr(event, "status_code") and not self.accepted.called:
                self.accepted.callback(event.status_code)

    def connectionLost(self, reason: Any) -> None:
        if not self.accepted.called:
            self.accepted.callback(None)
        if not self.client.closed.called:
            self.client.closed.callback(self.client)


class WebSocketClient(CometClient):
    """A WebSocket connection to the comet URL."""

    @inlineCallbacks
    def connect(self, last_event_id: int | None = None, headers: dict | None = None):
        """Upgrade; fires with 101 or the refusal's status."""
        host, port = self.browser.base.split("//")[1].split(":")
        target = "/cherrychat?" + urlencode(self.params(last_event_id))
        endpoint = TCP4ClientEndpoint(self.browser.reactor, host, int(port))
        factory = Factory.forProtocol(lambda: _WebSocketWire(self, f"{host}:{port}", target, self.browser.cookie_header()))
        self.wire = yield endpoint.connect(factory)
        self.status = yield self.wire.accepted
        return self.status

    def disconnect(self) -> None:
        """Drop the TCP connection."""
        if not self.closed.called:
            self.wire.transport.abortConnection()


CLIENTS = {
    "xhrstream": XHRStreamClient,
    "iframe": IframeClient,
    "longpoll": LongPollClient,
    "sse": SSEClient,
    "websocket": WebSocketClient,
}
