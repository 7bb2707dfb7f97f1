"""One client cannot hurt the others: deadlines, output bounds, the per-address connection
count, the WebSocket handshake and frame bounds, and the per-address session and join
buckets, through the real parser and routes in memory, timed by a ``task.Clock``."""

from __future__ import annotations

import json

from cherrychat.comet import CometSettings
from cherrychat.history import MAX_HISTORY_BYTES, bounded_history
from cherrychat.httpframing import OVER_CAP_GRACE
from cherrychat.limits import LimitSettings
from cherrychat.tap import ListenerService
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from wsproto.frame_protocol import FrameProtocol

from tests.security.security_support import TOKEN, Answer, MemoryDaemon, cookie_of

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(cookie: str, extra: str = "", host: str | None = "cherrychat.test", connection: str = "Upgrade") -> bytes:
    """A WebSocket upgrade request for ann's comet connection."""
    lines = ["GET /cherrychat?user=ann&session=w&transport=websocket HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += ["Upgrade: websocket", f"Connection: {connection}", "Sec-WebSocket-Version: 13",
              f"Sec-WebSocket-Key: {KEY}", f"Cookie: {cookie}"]
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class DeadlineTests(SynchronousTestCase):
    """A request arrives whole within --request-timeout; an idle connection closes after
    --idle-timeout (Twisted's own timeout)."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self, limits=LimitSettings(request_timeout=10, idle_timeout=30))

    def test_a_request_trickling_in_gets_408_at_its_deadline(self) -> None:
        connection = self.daemon.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\n")
        for n in range(9):  # one header line a second keeps Twisted's idle timer alive
            self.daemon.clock.advance(1)
            connection.send(b"X-Slow-%d: 1\r\n" % n)
        self.assertFalse(connection.transport.disconnecting)
        self.daemon.clock.advance(1)
        answer = Answer(connection.received())
        self.assertEqual(answer.code, 408)
        self.assertEqual(answer.body, b"request not received within 10 s\n")
        self.assertTrue(connection.transport.disconnecting)

    def test_a_slow_body_gets_408_too(self) -> None:
        connection = self.daemon.connect()
        connection.send(b"POST /msg HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nuser=")
        self.daemon.clock.advance(10)
        self.assertEqual(Answer(connection.received()).code, 408)

    def test_a_request_in_time_is_served_and_the_next_gets_its_own_deadline(self) -> None:
        connection = self.daemon.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        self.daemon.clock.advance(9)
        connection.send(b"\r\n")
        self.assertEqual(Answer(connection.received()).code, 200)
        self.daemon.clock.advance(9)
        connection.send(b"GET /healthz HTTP/1.1\r\n")
        self.daemon.clock.advance(9)
        self.assertFalse(connection.transport.disconnecting)
        self.daemon.clock.advance(1)
        self.assertIn(b" 408 ", connection.received())

    def test_an_idle_keep_alive_connection_closes(self) -> None:
        connection = self.daemon.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(Answer(connection.received()).code, 200)
        self.daemon.clock.advance(29)
        self.assertFalse(connection.transport.disconnecting)
        self.daemon.clock.advance(1)
        self.assertTrue(connection.transport.disconnecting)

    def test_a_connection_that_sends_nothing_closes(self) -> None:
        connection = self.daemon.connect()
        self.daemon.clock.advance(30)
        self.assertTrue(connection.transport.disconnecting)


class OutputBoundTests(SynchronousTestCase):
    """Answers a client does not read cannot pile up."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self, limits=LimitSettings(rate_burst=1000))
        self.ann = cookie_of(self.daemon.request("GET", "/healthz"))
        self.assertEqual(self.daemon.request("POST", "/join", {**FORM, "Cookie": self.ann}, b"user=ann").code, 200)

    def test_pipelined_requests_are_not_answered_while_answers_are_unread(self) -> None:
        connection = self.daemon.connect()
        # The socket's send buffer is full: the transport pauses its producer, the channel.
        connection.protocol.pauseProducing()
        connection.send(b"GET /history?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n" * 250)
        self.assertEqual(connection.received().count(b"HTTP/1.1 200 "), 1)
        self.assertTrue(connection.transport.disconnecting)
        # A client that does not read even that answer is aborted after Twisted's abort timeout.
        self.daemon.clock.advance(connection.protocol.abortTimeout)
        self.assertTrue(connection.transport.disconnected)  # StringTransport.abortConnection

    def test_pipelined_requests_of_a_reading_client_are_all_answered(self) -> None:
        connection = self.daemon.connect()
        connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        self.assertEqual(connection.received().count(b"HTTP/1.1 200 "), 5)
        self.assertFalse(connection.transport.disconnecting)

    def test_history_answers_are_bounded_in_bytes(self) -> None:
        for n in range(200):
            self.assertEqual(self.daemon.request("POST", "/msg", {**FORM, "Cookie": self.ann}, b"user=ann&msg=" + b"%d" % n + b"x" * 4000).code, 200)
        answer = self.daemon.request("GET", "/history?limit=1000")
        self.assertEqual(answer.code, 200)
        self.assertLessEqual(len(answer.body), MAX_HISTORY_BYTES + 1024)
        events = json.loads(answer.body)["events"]
        self.assertGreater(len(events), 30)
        self.assertTrue(events[-1]["payload"].startswith("<b>ann</b> 199x"))  # the newest kept
        ids = [e["id"] for e in events]
        self.assertEqual(ids, list(range(ids[0], ids[0] + len(ids))))

    def test_bounded_history_keeps_the_newest_and_at_least_one(self) -> None:
        items = [{"id": n, "payload": "x" * 100} for n in range(10)]
        self.assertEqual(bounded_history(items, 10**6), items)
        self.assertEqual([i["id"] for i in bounded_history(items, 300)], [8, 9])
        self.assertEqual([i["id"] for i in bounded_history(items, 1)], [9])
        self.assertEqual(bounded_history([], 1), [])


class AddressCapTests(SynchronousTestCase):
    """Every connection, streaming or not, counts toward --max-connections-per-address."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(
            self, limits=LimitSettings(trusted_proxies=frozenset({"10.9.9.9"})),
            comet_settings=CometSettings(heartbeat=25, max_connections=50, max_connections_per_address=3),
        )
        self.admission = self.daemon.comet.admission

    def test_idle_and_half_sent_connections_count(self) -> None:
        idle = self.daemon.connect("10.0.0.1")
        idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        half = self.daemon.connect("10.0.0.1")
        half.send(b"GET /healthz HTTP/1.1\r\n")
        stream = self.daemon.connect("10.0.0.1")
        cookie = cookie_of(Answer(idle.received()))
        stream.send(f"GET /cherrychat?user=ann&transport=xhrstream HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
        self.assertIn(b"HTTP/1.1 200 ", stream.received())
        self.assertEqual(self.admission.sockets["10.0.0.1"], 3)
        refused = self.daemon.connect("10.0.0.1")
        refused.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = Answer(refused.received())
        self.assertEqual(answer.code, 429)
        self.assertEqual(answer.body, b"too many connections from this address (at most 3)\n")
        self.assertEqual(refused.received().count(b"HTTP/1.1 "), 1)  # the header line after it is not parsed
        self.assertTrue(refused.transport.disconnecting)
        refused.close()
        # Another address has its own count; a closed connection frees its place.
        self.assertEqual(self.daemon.request("GET", "/healthz", peer="10.0.0.2").code, 200)
        half.close()
        self.assertEqual(self.daemon.request("GET", "/healthz", peer="10.0.0.1").code, 200)
        for connection in (idle, stream):
            connection.close()
        self.assertEqual(dict(self.admission.sockets), {})
        self.assertEqual(dict(self.admission.sessions), {})

    def test_a_connection_past_the_cap_that_sends_nothing_is_closed_soon(self) -> None:
        held = [self.daemon.connect("10.0.0.1") for _ in range(3)]
        silent = self.daemon.connect("10.0.0.1")
        self.daemon.clock.advance(OVER_CAP_GRACE)
        self.assertEqual(Answer(silent.received()).code, 429)
        self.assertTrue(silent.transport.disconnecting)
        self.assertFalse(any(connection.transport.disconnecting for connection in held))

    def test_behind_a_trusted_proxy_comet_connections_count_by_forwarded_address(self) -> None:
        cookie = cookie_of(self.daemon.request("GET", "/healthz", peer="10.9.9.9"))
        streams = []
        for n in range(4):
            connection = self.daemon.connect("10.9.9.9")
            connection.send(f"GET /cherrychat?user=u{n}&transport=sse HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                            f"X-Forwarded-For: 198.51.100.7\r\n\r\n".encode())
            streams.append(connection)
        codes = [Answer(connection.received()).code for connection in streams]
        self.assertEqual(codes, [200, 200, 200, 429])
        self.assertEqual(dict(self.admission.sockets), {})  # the proxy's sockets are not counted
        self.assertEqual(self.admission.addresses["198.51.100.7"], 3)
        for connection in streams:
            connection.close()
        self.assertEqual(dict(self.admission.addresses), {})


class WebSocketHandshakeTests(SynchronousTestCase):
    """Every refused handshake is a 4xx with its reason, and none leaks a count."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self, comet_settings=CometSettings(heartbeat=25, max_connections=50, max_connections_per_session=2))
        self.ann = cookie_of(self.daemon.request("GET", "/healthz"))

    def test_refusals(self) -> None:
        cases = {
            "no host": (upgrade(self.ann, host=None), b"the WebSocket handshake needs a Host header\n"),
            "idna host": (upgrade(self.ann, host="xn--a"), b"invalid WebSocket handshake\n"),
            "x-upgrade": (upgrade(self.ann, connection="x-upgrade"), b"transport=websocket needs a WebSocket upgrade request\n"),
            "bad key": (upgrade(self.ann).replace(KEY.encode(), b"x" * 24), b"invalid Sec-WebSocket-Key\n"),
            "old version": (upgrade(self.ann).replace(b"Version: 13", b"Version: 8"), b"unsupported WebSocket version; use 13\n"),
        }
        before = self.daemon.state()
        for _ in range(5):  # more than the session's cap: a leak would lock the session out
            for name, (raw, reason) in cases.items():
                answer = self.daemon.exchange(raw)
                self.assertEqual((answer.code, answer.body), (400, reason), name)
                self.assertEqual(answer.header(b"content-type"), b"text/plain; charset=utf-8")
        self.assertEqual(self.daemon.state(), before)
        self.assertEqual(dict(self.daemon.comet.admission.sessions), {})
        self.assertEqual(dict(self.daemon.comet.admission.sockets), {})
        accepted = self.daemon.connect()
        accepted.send(upgrade(self.ann))
        self.assertTrue(accepted.received().startswith(b"HTTP/1.1 101 "))
        self.assertEqual(sum(self.daemon.comet.admission.sessions.values()), 1)
        accepted.close()
        self.assertEqual(dict(self.daemon.comet.admission.sessions), {})
        self.assertEqual(dict(self.daemon.comet.admission.sockets), {})


class WebSocketFrameTests(SynchronousTestCase):
    """What a client sends is dropped; a message too large or in too many pieces closes
    the connection with 1009."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self)
        self.ann = cookie_of(self.daemon.request("GET", "/healthz"))
        self.connection = self.daemon.connect()
        self.connection.send(upgrade(self.ann))
        self.assertTrue(self.connection.received().startswith(b"HTTP/1.1 101 "))
        self.frames = FrameProtocol(client=True, extensions=[])

    def closed_with(self, code: int) -> bool:
        wire = self.connection.received().partition(b"\r\n\r\n")[2]
        return b"\x88" in wire and code.to_bytes(2, "big") in wire.partition(b"\x88")[2][:4] and self.connection.transport.disconnecting

    def still_delivers(self) -> None:
        self.daemon.hub.event(["ann, w, /cherrychat"], "still here")
        self.assertIn(b"still here", self.connection.received())
        self.assertFalse(self.connection.transport.disconnecting)

    def test_small_messages_and_pings_are_fine(self) -> None:
        self.connection.send(self.frames.send_data("hello", fin=True))
        self.connection.send(self.frames.send_data(b"\x00" * 4000, fin=True))
        for _ in range(15):
            self.connection.send(self.frames.send_data("x", fin=False))
        self.connection.send(self.frames.send_data("x", fin=True))
        self.connection.send(self.frames.ping(b"hi"))
        self.assertIn(b"\x8a\x02hi", self.connection.received())  # the pong
        self.still_delivers()

    def test_a_message_that_never_ends_closes_with_1009(self) -> None:
        for _ in range(5):
            self.connection.send(self.frames.send_data("y" * 1000, fin=False))
        self.assertTrue(self.closed_with(1009))
        self.connection.send(self.frames.send_data("y" * 1000, fin=True))  # ignored now

    def test_one_huge_frame_closes_with_1009_before_it_ends(self) -> None:
        frame = self.frames.send_data(b"z" * 100000, fin=True)
        self.connection.send(frame[:8192])
        self.assertTrue(self.closed_with(1009))

    def test_too_many_fragments_close_with_1009(self) -> None:
        for _ in range(17):
            self.connection.send(self.frames.send_data("", fin=False))
        self.assertTrue(self.closed_with(1009))


class AddressBucketTests(SynchronousTestCase):
    """New sessions and joins per minute per client address."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self, limits=LimitSettings(address_sessions_per_minute=5, address_joins_per_minute=3))

    def test_new_sessions_per_minute(self) -> None:
        codes = [self.daemon.request("GET", "/healthz", peer="10.0.0.5").code for _ in range(6)]
        self.assertEqual(codes, [200] * 5 + [429])
        refused = self.daemon.request("GET", "/healthz", peer="10.0.0.5")
        self.assertEqual(refused.body, b"too many requests, retry after 12 s\n")
        self.assertEqual(refused.header(b"retry-after"), b"12")
        self.assertIsNone(refused.header(b"set-cookie"))
        # A client with its session is not a new one; another address has its own bucket.
        self.assertEqual(self.daemon.request("GET", "/healthz", peer="10.0.0.6").code, 200)
        # A publisher holds a token, not a session: not counted.
        publish = self.daemon.request("POST", "/event", {"Authorization": "Bearer " + TOKEN.decode(), "Content-Type": "application/x-www-form-urlencoded"},
                                      b"keys=ann%2C+0%2C+%2Fcherrychat&payload=hi", peer="10.0.0.5")
        self.assertEqual(publish.code, 200, publish.raw[:300])
        self.daemon.clock.advance(12)
        self.assertEqual(self.daemon.request("GET", "/healthz", peer="10.0.0.5").code, 200)

    def test_joins_per_minute(self) -> None:
        cookie = cookie_of(self.daemon.request("GET", "/healthz"))
        before = None
        codes = []
        for n in range(4):
            if n == 3:
                before = self.daemon.state()
            codes.append(self.daemon.request("POST", "/join", {**FORM, "Cookie": cookie}, b"user=u%d" % n).code)
        self.assertEqual(codes, [200, 200, 200, 429])
        self.assertEqual(self.daemon.state(), before)
        # /msg is not a join.
        self.assertEqual(self.daemon.request("POST", "/msg", {**FORM, "Cookie": cookie}, b"user=u0&msg=hi").code, 200)
        self.daemon.clock.advance(20)
        self.assertEqual(self.daemon.request("POST", "/join", {**FORM, "Cookie": cookie}, b"user=u3").code, 200)


class NicknameLookAlikeTests(SynchronousTestCase):
    def test_invisible_and_bidi_nicknames_are_400_and_change_nothing(self) -> None:
        daemon = MemoryDaemon(self)
        ann = cookie_of(daemon.request("GET", "/healthz"))
        self.assertEqual(daemon.request("POST", "/join", {**FORM, "Cookie": ann}, b"user=ann").code, 200)
        eve = cookie_of(daemon.request("GET", "/healthz"))
        before = daemon.state()
        for name in ["ann%E2%80%8B", "%E2%80%AEoob", "a%C2%ADnn", "%E2%81%A6ann%E2%81%A9", "ann%EF%B8%8F"]:
            answer = daemon.request("POST", "/join", {**FORM, "Cookie": eve}, b"user=" + name.encode())
            self.assertEqual(answer.code, 400, name)
            self.assertEqual(answer.body, b"nickname contains invisible or text-direction characters\n")
        self.assertEqual(daemon.state(), before)
        # A full-width look-alike is the same nickname once normalized: taken.
        self.assertEqual(daemon.request("POST", "/join", {**FORM, "Cookie": eve}, "user=ａｎｎ".encode()).code, 409)


class ListenerTests(SynchronousTestCase):
    def test_a_port_that_is_taken_exits_at_once_with_one_line(self) -> None:
        from twisted.internet import reactor
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        taken = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        listener = ListenerService(Clock(), f"tcp:{port}:interface=127.0.0.1", Site(Resource()))
        listener.reactor = reactor
        with self.assertRaises(SystemExit) as caught:
            listener.privilegedStartService()
        line = str(caught.exception.code)
        self.assertTrue(line.startswith(f"cherrychat: cannot listen on tcp:{port}:interface=127.0.0.1: "), line)
        self.assertIn("Address already in use", line)
        self.assertNotIn("\n", line)


class HostHeaderTests(SynchronousTestCase):
    def test_a_host_the_router_cannot_encode_is_400_not_500(self) -> None:
        daemon = MemoryDaemon(self)
        for host in [b"a..b", b"x" * 300, b"\xc2\x88", b"\x88", b"\xff.test"]:
            answer = daemon.exchange(b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.assertEqual((answer.code, answer.body), (400, b"invalid Host header\n"), host)
            self.assertEqual(answer.header(b"content-type"), b"text/plain; charset=utf-8")
        for host in [b"cherrychat.test", "é.test".encode(), b"[::1]:4700", b"127.0.0.1:4700", b"xn--a"]:
            self.assertEqual(daemon.exchange(b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n").code, 200, host)


class RenderTimeAdmissionTests(SynchronousTestCase):
    """A cap reached between the route's check and the resource's render (the nickname
    claim may wait on Redis) is refused by the resource itself, plainly, counting nothing."""

    def test_the_resource_refuses_at_render_and_counts_nothing(self) -> None:
        from cherrychat.comet import Entrance, connection_resource
        from twisted.web.test.requesthelper import DummyRequest

        daemon = MemoryDaemon(self, comet_settings=CometSettings(heartbeat=25, max_connections=50, max_connections_per_session=1))
        admission = daemon.comet.admission
        entrance = Entrance("s" * 43, "10.0.0.1")
        request = DummyRequest([b""])
        resources = [connection_resource(daemon.comet, request, transport, "ann, 0, /cherrychat", None, None, entrance)
                     for transport in ("sse", "longpoll", "xhrstream")]
        held = admission.open(entrance)  # another connection got there first
        for resource in resources:
            request = DummyRequest([b""])
            body = resource.render(request)
            self.assertEqual((request.responseCode, body), (429, b"too many connections from this browser session (at most 1)\n"))
        self.assertEqual(dict(admission.sessions), {"s" * 43: 1})
        held.release()
        held.release()  # once only
        self.assertEqual(dict(admission.sessions), {})


class PausedWebSocketTests(SynchronousTestCase):
    def test_pings_are_not_answered_while_the_client_is_not_reading(self) -> None:
        daemon = MemoryDaemon(self)
        ann = cookie_of(daemon.request("GET", "/healthz"))
        connection = daemon.connect()
        connection.send(upgrade(ann))
        (stream,) = list(daemon.comet.connections)
        frames = FrameProtocol(client=True, extensions=[])
        stream.pauseProducing()  # the socket's send buffer is full
        connection.send(frames.ping(b"p1") * 100)
        self.assertNotIn(b"\x8a\x02p1", connection.received())
        stream.resumeProducing()
        connection.send(frames.ping(b"p2"))
        self.assertIn(b"\x8a\x02p2", connection.received())
