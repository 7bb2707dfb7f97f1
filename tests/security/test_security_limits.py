"""Bounds: rates on a task.Clock, sizes and connection counts, in memory and over sockets."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.limits import LimitSettings, TokenBucket
from tests.integration.integration_support import DaemonTestCase
from tests.security.security_support import Answer, MemoryDaemon, cookie_of, raw_exchange
from tests.support import wait_until

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=2.0, burst=3, now=clock.seconds())
        for _ in range(3):
            self.assertEqual(bucket.wait(clock.seconds()), 0)
            bucket.take(clock.seconds())
        self.assertAlmostEqual(bucket.wait(clock.seconds()), 0.5)
        clock.advance(0.5)
        self.assertEqual(bucket.wait(clock.seconds()), 0)
        clock.advance(100)
        self.assertTrue(bucket.full(clock.seconds()))


class RateLimitTests(SynchronousTestCase):
    """/msg and /join per session and per address: 429 with Retry-After, by the clock."""

    def setUp(self) -> None:
        settings = LimitSettings(rate_limit=1.0, rate_burst=3, address_rate_limit=2.0, address_rate_burst=5)
        self.daemon = MemoryDaemon(self, limits=settings)

    def send(self, path: str, body: str, cookie: str, peer: str = "127.0.0.1") -> Answer:
        return self.daemon.request("POST", path, {**FORM, "Cookie": cookie}, body.encode(), peer=peer)

    def test_session_bucket(self) -> None:
        ann = cookie_of(self.daemon.request("GET", "/healthz"))
        self.assertEqual(self.send("/join", "user=ann", ann).code, 200)
        self.assertEqual(self.send("/msg", "user=ann&msg=1", ann).code, 200)
        self.assertEqual(self.send("/msg", "user=ann&msg=2", ann).code, 200)
        before = self.daemon.state()
        refused = self.send("/msg", "user=ann&msg=3", ann)
        self.assertEqual(refused.code, 429)
        self.assertEqual(refused.header(b"retry-after"), b"1")
        self.assertEqual(refused.body, b"too many requests, retry after 1 s\n")
        self.assertEqual(self.send("/join", "user=ann", ann).code, 429)
        self.assertEqual(self.daemon.state(), before)
        self.daemon.clock.advance(1.0)
        self.assertEqual(self.send("/msg", "user=ann&msg=3", ann).code, 200)

    def test_address_bucket_spans_sessions(self) -> None:
        cookies = [cookie_of(self.daemon.request("GET", "/healthz", peer="10.0.0.9")) for _ in range(6)]
        codes = [self.send("/join", f"user=u{n}", cookie, peer="10.0.0.9").code for n, cookie in enumerate(cookies)]
        self.assertEqual(codes, [200] * 5 + [429])
        # Another address has its own bucket.
        self.assertEqual(self.send("/join", "user=u5", cookies[5], peer="10.0.0.10").code, 200)
        self.daemon.clock.advance(3)
        self.assertEqual(self.send("/msg", "user=u0&msg=hi", cookies[0], peer="10.0.0.9").code, 200)


class TrustedProxyTests(SynchronousTestCase):
    def test_client_address_through_a_trusted_proxy_only(self) -> None:
        daemon = MemoryDaemon(self, limits=LimitSettings(trusted_proxies=frozenset({"127.0.0.1"}), address_rate_burst=1, rate_burst=100))
        limits = daemon.web.limits
        cookie = cookie_of(daemon.request("GET", "/healthz"))
        headers = {**FORM, "Cookie": cookie}
        # Behind the proxy, two clients are two addresses.
        self.assertEqual(daemon.request("POST", "/join", {**headers, "X-Forwarded-For": "198.51.100.1"}, b"user=ann").code, 200)
        self.assertEqual(daemon.request("POST", "/join", {**headers, "X-Forwarded-For": "203.0.113.5, 198.51.100.2"}, b"user=ann").code, 200)
        self.assertEqual(daemon.request("POST", "/join", {**headers, "X-Forwarded-For": "198.51.100.2"}, b"user=ann").code, 429)
        # A client that is not the proxy cannot pick its address.
        self.assertEqual(daemon.request("POST", "/join", {**headers, "X-Forwarded-For": "192.0.2.7"}, b"user=ann", peer="10.1.1.1").code, 200)
        self.assertEqual(daemon.request("POST", "/join", {**headers, "X-Forwarded-For": "192.0.2.8"}, b"user=ann", peer="10.1.1.1").code, 429)
        self.assertEqual(set(limits.address_rates.buckets), {"198.51.100.1", "198.51.100.2", "10.1.1.1"})


class SizeLimitTests(SynchronousTestCase):
    """URL and body bounds, refused before the route runs; nickname and message bounds."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self, limits=LimitSettings(max_url_bytes=2048, max_body_bytes=8192))
        self.ann = cookie_of(self.daemon.request("GET", "/healthz"))
        self.assertEqual(self.daemon.request("POST", "/join", {**FORM, "Cookie": self.ann}, b"user=ann").code, 200)

    def test_long_url_is_414(self) -> None:
        before = self.daemon.state()
        for length in (2049, 2900, 20000):  # beyond the bound, beyond the line bound
            answer = self.daemon.request("GET", "/msg?user=ann&msg=" + "x" * length, {"Cookie": self.ann})
            self.assertEqual(answer.code, 414, answer.raw[:200])
            self.assertEqual(answer.header(b"content-type"), b"text/plain; charset=utf-8")
        self.assertEqual(self.daemon.request("GET", "/msg?user=ann&msg=" + "x" * 1000, {"Cookie": self.ann}).code, 200)
        self.assertEqual(len(self.daemon.state()["history"]), len(before["history"]) + 1)

    def test_large_content_length_is_413_before_the_body(self) -> None:
        before = self.daemon.state()
        connection = self.daemon.connect()
        connection.send(b"POST /msg HTTP/1.1\r\nHost: x\r\nCookie: " + self.ann.encode() + b"\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 9000\r\n\r\n")
        answer = Answer(connection.received())
        self.assertEqual(answer.code, 413)
        self.assertEqual(answer.body, b"request body larger than 8192 bytes\n")
        self.assertNotIn(b"100 Continue", connection.received())
        self.assertTrue(connection.transport.disconnecting)
        connection.send(b"user=ann&msg=" + b"x" * 8987)  # the body, if the client sends it anyway
        self.assertEqual(self.daemon.state(), before)

    def test_large_chunked_body_is_413(self) -> None:
        before = self.daemon.state()
        chunk = b"user=ann&msg=" + b"x" * 4000
        answer = self.daemon.exchange(
            b"POST /msg HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3 + b"0\r\n\r\n"
        )
        self.assertEqual(answer.code, 413)
        self.assertEqual(self.daemon.state(), before)

    def test_long_header_is_431_and_broken_framing_400(self) -> None:
        answer = self.daemon.exchange(b"GET /who HTTP/1.1\r\nX-Big: " + b"y" * 40000 + b"\r\n\r\n")
        self.assertEqual(answer.code, 431)
        answer = self.daemon.exchange(b"GET /who HTTP/1.1\r\nContent-Length: banana\r\n\r\n")
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.body, b"malformed HTTP request\n")
        self.assertEqual(answer.header(b"server"), b"CherryChat")

    def test_nickname_and_message_bounds(self) -> None:
        before = self.daemon.state()
        ben = cookie_of(self.daemon.request("GET", "/healthz"))
        for body, code in [(b"user=" + b"b" * 33, 400), (b"user=b%0Ab", 400), (b"user=b,c", 400)]:
            self.assertEqual(self.daemon.request("POST", "/join", {**FORM, "Cookie": ben}, body).code, code)
        too_big = self.daemon.request("POST", "/msg", {**FORM, "Cookie": self.ann}, b"user=ann&msg=" + b"x" * 4097)
        self.assertEqual(too_big.code, 413)
        self.assertEqual(self.daemon.state(), before)


class ConnectionLimitTests(DaemonTestCase):
    """Per-session, per-address and total bounds on comet connections, over real sockets;
    every transport counts, the WebSocket's count ends when its connection does."""

    @inlineCallbacks
    def start(self, *arguments: str):
        """Start this test's daemon."""
        self.service, self.base = yield self.start_daemon(*arguments)

    @inlineCallbacks
    def browser(self):
        browser = self.add_browser(self.base)
        status, _ = yield browser.get("/healthz")
        self.assertEqual(status, 200)
        return browser

    @inlineCallbacks
    def connect(self, browser, user: str, transport: str, session: str = "0"):
        client = self.add_client(browser, user, transport, session=session)
        status = yield client.connect()
        if status in (101, 200):
            yield client.wait_opened()
        return client

    @inlineCallbacks
    def test_per_session_bound_and_release(self):
        yield self.start("--max-connections-per-session", "2")
        counts = self.service.comet.admission
        ann = yield self.browser()
        first = yield self.connect(ann, "ann", "websocket", session="a")
        second = yield self.connect(ann, "ann", "sse", session="b")
        self.assertEqual((first.status, second.status), (101, 200))
        for transport in ("websocket", "xhrstream", "iframe", "longpoll", "sse"):
            refused = yield self.connect(ann, "ann", transport, session="c")
            self.assertEqual(refused.status, 429, transport)
        # Another session is not bound by ann's count.
        ben = yield self.browser()
        other = yield self.connect(ben, "ben", "websocket")
        self.assertEqual(other.status, 101)
        # The WebSocket's request never finishes after the upgrade: its count ends with
        # the WebSocket connection itself.
        first.disconnect()
        yield first.finished()
        yield wait_until(lambda: sum(counts.sessions.values()) == 2, "two counted connections")
        again = yield self.connect(ann, "ann", "xhrstream", session="d")
        self.assertEqual(again.status, 200)
        second.disconnect()
        yield wait_until(lambda: sum(counts.sessions.values()) == 2, "two counted connections")

    @inlineCallbacks
    def test_per_address_bound(self):
        yield self.start("--max-connections-per-address", "3")
        # Every connection counts, the browsers' idle keep-alive ones too: each browser
        # gets its cookie first and closes that connection.
        browsers = []
        for _ in range(4):
            browser = yield self.browser()
            yield browser.close()
            browsers.append(browser)
        yield wait_until(lambda: not self.service.comet.admission.sockets, "the idle connections to close")
        streams = []
        for n in range(3):
            streams.append((yield self.connect(browsers[n], f"u{n}", "sse")))
        self.assertEqual([s.status for s in streams], [200] * 3)
        refused = yield self.connect(browsers[3], "u3", "websocket")
        self.assertEqual(refused.status, 429)
        self.assertIsNone(self.service.chat.holder_of("u3"))  # the refusal reserved nothing

    @inlineCallbacks
    def test_total_cap_is_503(self):
        yield self.start("--max-connections", "2")
        for n in range(2):
            browser = yield self.browser()
            yield self.connect(browser, f"u{n}", "xhrstream")
        browser = yield self.browser()
        refused = yield self.connect(browser, "u2", "sse")
        self.assertEqual(refused.status, 503)
        self.assertEqual(refused.body, "too many connections, try again later\n")

    @inlineCallbacks
    def test_raw_socket_oversized_content_length(self):
        yield self.start("--max-body-bytes", "1000")
        port = int(self.base.rsplit(":", 1)[1])
        received = yield raw_exchange(reactor, port, b"POST /msg HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n")
        answer = Answer(received)
        self.assertEqual(answer.code, 413)
        self.assertEqual(answer.body, b"request body larger than 1000 bytes\n")
