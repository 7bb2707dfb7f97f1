"""Unit tests of the long-poll fast path (cherrychat/fastpoll.py).

Two daemons in memory, built alike over a ``task.Clock`` and spoken to with raw HTTP
bytes through ``StringTransport``: the daemon's own site (fast path in front) and the same
site with the regular request class only. What a client sees of a poll, and above all of a
refused poll, must be the same on both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from cherrychat.chat import ChatRoom
from cherrychat.comet import Comet, CometSettings
from cherrychat import fastpoll
from cherrychat.fastpoll import FastPolls, HeaderBlock
from cherrychat.hub import Hub
from cherrychat.httpframing import channel_factory, request_factory
from cherrychat.limits import LimitSettings
from cherrychat.sessions import new_token
from cherrychat.web import DEFAULT_HEADERS, ChatWeb

STATIC = Path(__file__).resolve().parents[2] / "static"
ANN = new_token()
BEN = new_token()


class Response:
    """The first HTTP response in ``raw``: status, headers (lower-case names), body."""

    def __init__(self, raw: bytes):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ")[1])
        self.headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers.append((name.strip().lower(), value.strip()))
        names = dict(self.headers)
        if names.get(b"transfer-encoding") == b"chunked":
            body = b""
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    rest = rest[2:]
                    break
                body, rest = body + rest[:size], rest[size + 2:]
            self.body, self.rest = body, rest
        else:
            length = int(names.get(b"content-length", b"0"))
            self.body, self.rest = rest[:length], rest[length:]

    def header(self, name: bytes) -> bytes | None:
        """The first value of ``name``."""
        return dict(self.headers).get(name)

    def comparable(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body, without what differs by design: the date, the
        framing of the body (chunked on the regular route, a length on the fast path) and
        a fresh cookie's value."""
        skip = {b"date", b"transfer-encoding", b"content-length"}
        headers = [(n, v.split(b"=")[0] if n == b"set-cookie" else v) for n, v in self.headers if n not in skip]
        return self.status, headers, self.body


class Daemon:
    """The web side of one daemon, with or without the fast path."""

    def __init__(self, fast: bool, limits: LimitSettings | None = None, max_connections: int = 50,
                 room: Any = None, **caps: int):
        self.clock = Clock()
        self.clock.advance(1_764_000_000)
        self.hub = Hub(self.clock)
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=10)
        self.comet = Comet(self.hub, self.clock, CometSettings(heartbeat=25, max_connections=max_connections, **caps))
        self.web = ChatWeb(room(self.chat) if room else self.chat, self.comet, STATIC, limits=limits)
        if fast:
            self.site = self.web.site()
        else:
            settings = self.web.limits.settings
            self.site = Site(self.web.resource(), requestFactory=request_factory(settings, DEFAULT_HEADERS))
            self.site.protocol = channel_factory(settings, DEFAULT_HEADERS, None, self.comet.admission)  # type: ignore[assignment]
        self.site.timeOut = None
        self.connections: list[Any] = []

    @property
    def polls(self) -> FastPolls | None:
        """The fast path's counters, on the daemon that has one."""
        return getattr(self.site.requestFactory, "fast_polls", None)

    def connect(self, peer: str = "127.0.0.1") -> tuple[Any, StringTransport]:
        transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000),
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 4700))
        protocol = self.site.buildProtocol(transport.getHost())
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return protocol, transport

    def send(self, protocol: Any, target: str, cookie: str | None = None, extra: str = "") -> None:
        lines = [f"GET {target} HTTP/1.1", "Host: cherrychat.test"]
        if cookie is not None:
            lines.append(f"Cookie: cherrychat_session={cookie}")
        protocol.dataReceived(("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("utf-8"))

    def get(self, target: str, cookie: str | None = None, peer: str = "127.0.0.1", extra: str = "") -> Response:
        """One request on a fresh connection; its answer (which must be complete)."""
        protocol, transport = self.connect(peer)
        self.send(protocol, target, cookie, extra)
        return Response(transport.value())

    def head(self) -> int:
        """The newest event id of the room: a poll after it is held."""
        return self.hub.channel(self.chat.location).last_id

    def join(self, user: str, cookie: str) -> None:
        answer = self.get(f"/join?user={user}", cookie)
        assert answer.body == b"joined\n", answer.body

    def close(self) -> None:
        for protocol, transport in self.connections:
            if not transport.disconnected:
                transport.loseConnection()
                protocol.connectionLost(Failure(ConnectionDone()))
        self.chat.stop()


def poll_timers(d: Daemon) -> list[Any]:
    """The heartbeat timers of held fast-path polls."""
    return [call for call in d.clock.getDelayedCalls() if "FastLongPoll" in getattr(call.func, "__qualname__", "")]


def poll_url(user: str = "ann", last_event_id: int | None = None, extra: str = "") -> str:
    url = f"/cherrychat?user={user}&session=0&transport=longpoll"
    if last_event_id is not None:
        url += f"&last_event_id={last_event_id}"
    return url + extra


class FastPathTestCase(SynchronousTestCase):
    def daemon(self, fast: bool = True, **options: Any) -> Daemon:
        daemon = Daemon(fast, **options)
        self.addCleanup(daemon.close)
        return daemon

    def test_a_plain_poll_is_held_and_answered_once_by_the_fast_path(self):
        d = self.daemon()
        d.join("ann", ANN)
        head = d.head()
        protocol, transport = d.connect()
        d.send(protocol, poll_url(last_event_id=head), ANN)
        self.assertEqual(transport.value(), b"")
        self.assertEqual((d.polls.served, d.polls.passed), (1, 0))  # /join is no poll
        self.assertEqual(d.comet.counts["longpoll"], 1)
        self.assertEqual(d.web.comet.admission.sessions[ANN], 1)

        d.chat.msg("ann", ANN, "<one>")
        d.chat.msg("ann", ANN, "two")
        answer = Response(transport.value())
        self.assertEqual(answer.status, 200)
        messages = json.loads(answer.body)
        self.assertEqual([m["data"] for m in messages], ["<b>ann</b> &lt;one&gt;"])
        self.assertEqual(messages[0]["id"], head + 1)
        self.assertEqual(answer.rest, b"")  # one answer, and nothing after it
        self.assertNotIn(b"<one>", answer.body)
        # The poll is over: uncounted, detached, its timer gone.
        self.assertEqual(d.comet.counts["longpoll"], 0)
        self.assertEqual(d.hub.listener_count("ann, 0, /cherrychat"), 0)
        self.assertEqual(d.web.comet.admission.sessions[ANN], 0)
        self.assertEqual(poll_timers(d), [])
        self.assertEqual(d.comet.delivered, 1)

        # The next poll on the same (kept-alive) connection collects what followed.
        transport.clear()
        d.send(protocol, poll_url(last_event_id=head + 1), ANN)
        again = Response(transport.value())
        self.assertEqual([m["data"] for m in json.loads(again.body)], ["<b>ann</b> two"])
        self.assertEqual(d.polls.served, 2)

    def test_a_held_poll_answers_empty_at_the_heartbeat(self):
        d = self.daemon()
        d.join("ann", ANN)
        protocol, transport = d.connect()
        d.send(protocol, poll_url(last_event_id=0), ANN)
        self.assertIn(b"ann joined", transport.value())  # the join notice came at once (after id 0)
        transport.clear()
        d.send(protocol, poll_url(last_event_id=d.head()), ANN)
        d.clock.advance(24.9)
        self.assertEqual(transport.value(), b"")
        d.clock.advance(0.1)
        self.assertEqual(Response(transport.value()).body, b"[]")

    def test_answers_match_the_regular_route(self):
        """The same polls on both daemons: the same statuses, headers and bodies."""
        answers = []
        for fast in (True, False):
            d = self.daemon(fast)
            d.join("ann", ANN)
            first = d.get(poll_url(), ANN)  # open and the join notice
            head = d.head()
            protocol, transport = d.connect()
            d.send(protocol, poll_url(last_event_id=head), ANN)
            d.chat.msg("ann", ANN, "hello & <b>")
            live = Response(transport.value())
            protocol, transport = d.connect()
            d.send(protocol, poll_url(last_event_id=head + 1, extra="&epoch=" + d.hub.epoch), ANN)
            d.clock.advance(25)
            empty = Response(transport.value())
            gap = d.get(poll_url(last_event_id=0, extra="&epoch=elsewhere"), ANN)  # a reset
            answers.append([(a.comparable(), a.header(b"date") is not None)
                            for a in (first, live, empty, gap)])
            # Bodies carry the epoch, which differs between the two daemons.
            epoch = d.hub.epoch.encode("ascii")
            answers[-1] = [((s, h, b.replace(epoch, b"EPOCH")), dated) for (s, h, b), dated in answers[-1]]
            if fast:
                self.assertEqual(d.polls.served, 4)
        self.assertEqual(answers[0], answers[1])
        bodies = [json.loads(body) for (_, _, body), _ in answers[0]]
        self.assertEqual([[m["type"] for m in body] for body in bodies],
                         [["open", "event"], ["event"], [], ["reset"]])

    def refusals(self, setup, target: str, cookie: str | None, peer: str = "127.0.0.1", served: int = 0,
                 **options: Any):
        """``target`` asked of both daemons after ``setup(daemon)``: both answers, and
        the fast path's counters."""
        out = []
        for fast in (True, False):
            d = self.daemon(fast, **options)
            setup(d)
            before = (d.chat.holder_of("ann"), d.chat.holder_of("ben"), d.comet.counts["longpoll"])
            answer = d.get(target, cookie, peer)
            after = (d.chat.holder_of("ann"), d.chat.holder_of("ben"), d.comet.counts["longpoll"])
            self.assertEqual(before, after, f"{target}: a refusal changed something")
            out.append(answer)
            if fast:
                self.assertEqual(d.polls.served, served, target)
        fast_answer, regular_answer = out
        self.assertEqual(fast_answer.comparable(), regular_answer.comparable())
        return fast_answer

    def test_refusals_are_the_regular_routes(self):
        def ann_joined(d: Daemon) -> None:
            d.join("ann", ANN)

        cases = [
            # Another session's nickname: refused, ownership kept.
            (poll_url(last_event_id=0), BEN, 403, b"nickname ann is taken\n"),
            (poll_url(last_event_id=0), None, 403, b"nickname ann is taken\n"),
            (poll_url(last_event_id=0), "not-a-token", 403, b"nickname ann is taken\n"),
            (poll_url(last_event_id="x"), ANN, 400, b"invalid parameter: last_event_id\n"),
            (poll_url(last_event_id=-1), ANN, 400, b"invalid parameter: last_event_id\n"),
            (poll_url(last_event_id=2**60), ANN, 400, b"invalid parameter: last_event_id\n"),
            (poll_url(user="", last_event_id=0), ANN, 400, b"missing parameter: user\n"),
            (poll_url(user="a%2Cb", last_event_id=0), ANN, 400, b"nickname contains a comma\n"),
            (poll_url(user="a%0Ab", last_event_id=0), ANN, 400, b"nickname contains control characters\n"),
            (poll_url(user="%FF", last_event_id=0), ANN, 400, b"invalid UTF-8 in parameter: user\n"),
            ("/cherrychat?user=ann&session=a%20b&transport=longpoll&last_event_id=0", ANN, 400,
             b"invalid parameter: session\n"),
            (poll_url(last_event_id=0, extra="&epoch=%3Cx%3E"), ANN, 400, b"invalid parameter: epoch\n"),
            ("/cherrychat?user=ann&transport=longpol&last_event_id=0", ANN, 400, None),
        ]
        for target, cookie, status, body in cases:
            answer = self.refusals(ann_joined, target, cookie)
            self.assertEqual(answer.status, status, target)
            if body is not None:
                self.assertEqual(answer.body, body, target)

    def test_connection_bounds_and_the_cap_are_the_regular_routes(self):
        def two_held(d: Daemon) -> None:
            d.join("ann", ANN)
            for _ in range(2):
                protocol, _ = d.connect()
                d.send(protocol, poll_url(last_event_id=d.head()), ANN)
            assert d.comet.counts["longpoll"] == 2

        answer = self.refusals(two_held, poll_url(last_event_id=0), ANN, served=2, max_connections_per_session=2)
        self.assertEqual(answer.status, 429)
        self.assertIn(b"browser session", answer.body)
        # Every connection of the address counts: the join's, the two polls', then this one.
        answer = self.refusals(two_held, poll_url(last_event_id=0), ANN, served=2, max_connections_per_address=3)
        self.assertEqual(answer.status, 429)
        self.assertIn(b"address", answer.body)
        answer = self.refusals(two_held, poll_url(last_event_id=0), ANN, served=2, max_connections=2)
        self.assertEqual(answer.status, 503)

        def stopping(d: Daemon) -> None:
            d.join("ann", ANN)
            d.comet.stop()

        self.assertEqual(self.refusals(stopping, poll_url(last_event_id=0), ANN).status, 503)

    def test_unusual_requests_take_the_regular_route(self):
        d = self.daemon()
        d.join("ann", ANN)
        regular = [
            d.get(poll_url(last_event_id=0), None),  # no cookie: the route sets one
            d.get("/cherrychat/?user=ann&transport=longpoll&last_event_id=0", ANN),
            d.get("/cherrychat?user=ann&transport=sse&last_event_id=0", ANN, extra="Connection: close\r\n"),
        ]
        self.assertEqual([a.status for a in regular], [403, 404, 200])
        self.assertEqual(d.polls.served, 0)
        head_only = d.connect()
        head_only[0].dataReceived(b"HEAD " + poll_url(last_event_id=0).encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                  b"Cookie: cherrychat_session=" + ANN.encode() + b"\r\n\r\n")
        http10 = d.connect()
        http10[0].dataReceived(b"GET " + poll_url().encode() + b" HTTP/1.0\r\nHost: x\r\n"
                               b"Cookie: cherrychat_session=" + ANN.encode() + b"\r\n\r\n")
        self.assertTrue(http10[1].value().startswith(b"HTTP/1.0 200 OK"))
        self.assertEqual(d.polls.served, 0)

    def test_connection_close_is_honoured(self):
        d = self.daemon()
        d.join("ann", ANN)
        protocol, transport = d.connect()
        d.send(protocol, poll_url(), ANN, extra="Connection: close\r\n")
        answer = Response(transport.value())
        self.assertEqual(answer.header(b"connection"), b"close")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(d.polls.served, 1)

    def test_a_client_that_leaves_is_detached_and_uncounted(self):
        d = self.daemon()
        d.join("ann", ANN)
        protocol, transport = d.connect()
        d.send(protocol, poll_url(last_event_id=d.head()), ANN)
        self.assertEqual(d.hub.listener_count("ann, 0, /cherrychat"), 1)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(d.hub.listener_count("ann, 0, /cherrychat"), 0)
        self.assertEqual(d.comet.connections, set())
        self.assertEqual(d.web.comet.admission.sessions[ANN], 0)
        self.assertEqual(poll_timers(d), [])
        d.chat.msg("ann", ANN, "after")  # nothing is written to the gone connection
        self.assertEqual(transport.value(), b"")

    def test_the_daemon_stopping_answers_reconnect(self):
        d = self.daemon()
        d.join("ann", ANN)
        protocol, transport = d.connect()
        d.send(protocol, poll_url(last_event_id=d.head()), ANN)
        d.comet.stop()
        self.assertEqual(json.loads(Response(transport.value()).body), [{"type": "reconnect"}])

    def test_ownership_follows_the_room_after_the_nickname_is_freed(self):
        d = self.daemon()
        d.join("ann", ANN)
        d.clock.advance(11)  # never connected: ann leaves after the presence timeout
        self.assertIsNone(d.chat.holder_of("ann"))
        answer = d.get(poll_url(), BEN)
        self.assertEqual(answer.status, 200)  # a free nickname is claimed by the poller
        self.assertEqual(d.chat.holder_of("ann"), BEN)
        self.assertEqual(d.get(poll_url(), ANN).status, 403)
        self.assertEqual(d.polls.served, 1)


class SlowClaims:
    """A room whose claims answer later, as a room shared over Redis does."""

    def __init__(self, room: ChatRoom):
        self.room = room
        self.location = room.location
        self.pending: list[tuple[Deferred, str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.room, name)

    def claim(self, user: str, session: str) -> Deferred:
        waiting: Deferred = Deferred()
        self.pending.append((waiting, user, session))
        return waiting

    def answer(self) -> None:
        pending, self.pending = self.pending, []
        for waiting, user, session in pending:
            self.room.claim(user, session).chainDeferred(waiting)


class SlowClaimTests(SynchronousTestCase):
    def test_a_poll_waits_for_the_claim_then_is_served_or_refused(self):
        d = Daemon(fast=True, room=SlowClaims)
        self.addCleanup(d.close)
        room = d.web.chat
        d.chat.join("ann", ANN)
        protocol, transport = d.connect()
        d.send(protocol, poll_url(), ANN)
        self.assertEqual((transport.value(), d.polls.served), (b"", 0))
        room.answer()
        self.assertEqual(Response(transport.value()).status, 200)
        self.assertEqual(d.polls.served, 1)
        # Another session: the claim fails later, and the regular route refuses (its own
        # claim answers later too).
        protocol, transport = d.connect()
        d.send(protocol, poll_url(), BEN)
        room.answer()
        self.assertEqual(transport.value(), b"")
        self.assertEqual(d.polls.passed, 1)
        room.answer()
        answer = Response(transport.value())
        self.assertEqual((answer.status, answer.body), (403, b"nickname ann is taken\n"))

    def test_a_client_that_left_during_the_claim_is_not_served(self):
        d = Daemon(fast=True, room=SlowClaims)
        self.addCleanup(d.close)
        d.chat.join("ann", ANN)
        protocol, transport = d.connect()
        d.send(protocol, poll_url(last_event_id=d.head()), ANN)
        protocol.connectionLost(Failure(ConnectionDone()))
        d.web.chat.answer()
        self.assertEqual((d.polls.served, d.comet.connections, d.hub.listener_count("ann, 0, /cherrychat")),
                         (0, set(), 0))
        self.assertEqual(d.web.comet.admission.sessions, {})


class HeaderBlockTests(SynchronousTestCase):
    def test_date_follows_the_clock_by_the_second(self):
        clock = Clock()
        block = HeaderBlock(DEFAULT_HEADERS, clock)
        first = block.response(b"[]", close=False)
        self.assertIn(b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", first)
        self.assertTrue(first.endswith(b"Content-Length: 2\r\n\r\n[]"))
        clock.advance(61)
        self.assertIn(b"Date: Thu, 01 Jan 1970 00:01:01 GMT\r\n", block.response(b"[]", close=True))
        self.assertTrue(block.response(b"[1]", close=True).endswith(b"Connection: close\r\n\r\n[1]"))


class CachesTests(SynchronousTestCase):
    def test_a_channel_asks_its_transport_for_addresses_once(self):
        d = Daemon(fast=True)
        self.addCleanup(d.close)
        protocol, transport = d.connect(peer="127.0.0.9")
        asked = []
        original = transport.getPeer
        transport.getPeer = lambda: asked.append(1) or original()  # type: ignore[method-assign]
        d.join("ann", ANN)  # another connection
        for _ in range(3):
            d.send(protocol, poll_url(), ANN)
        self.assertEqual(asked, [1])
        self.assertEqual(protocol.getPeer().host, "127.0.0.9")
        self.assertEqual(d.polls.served, 3)

    def test_remembered_nicknames_are_bounded(self):
        d = Daemon(fast=True)
        self.addCleanup(d.close)
        self.patch(fastpoll, "MAX_REMEMBERED_NICKNAMES", 3)
        for n in range(7):
            d.get(poll_url(user=f"u{n}"), new_token())
            self.assertLessEqual(len(d.polls._valid_nicknames), 3)
        self.assertEqual(d.polls.served, 7)
        # A remembered nickname is still checked against its holder.
        self.assertEqual(d.get(poll_url(user="u6"), ANN).status, 403)
