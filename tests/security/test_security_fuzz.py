"""Hypothesis against every route and the HTTP framing, through the real parser in memory.

Every answer is a well-formed 2xx, 3xx (the page redirects), 101 (an accepted WebSocket) or
4xx; 503 never occurs here (the daemon in these tests is far from its connection cap); no
5xx and no traceback. A refused request changes no state, and a stream that was open all
along still receives. Examples are few and derandomized, with no example database, so a
run is repeatable and quick.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.security.security_support import TOKEN, Answer, MemoryDaemon, answered, cookie_of, raw_exchange
from tests.support import until_connections_closed

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ROUTES = ["/", "/static", "/static/", "/static/chat.html", "/static/orbited.js", "/static/../setup.cfg",
          "/healthz", "/join", "/msg", "/nick", "/cherrychat", "/who", "/history", "/event", "/nowhere", "//", "/%ff", "/static/%2e%2e/x"]
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "get", "BREW", "G\x01T"]
NAMES = ["user", "msg", "session", "transport", "last_event_id", "epoch", "limit", "before", "keys", "payload", "ie_nocache", "x"]
TRANSPORTS = ["websocket", "sse", "xhrstream", "iframe", "longpoll", "", "carrier"]


def _escape(data: bytes) -> str:
    return quote_from_bytes(data, safe="")


raw_values = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"ann", b"ben", b"0", b"-1", b"99999999999999999999", b"\xff\xfe", b"a,b", b"<script>", b"ann, 0, /cherrychat"]),
    st.sampled_from(TRANSPORTS).map(str.encode),
    st.integers(min_value=0, max_value=30000).map(lambda n: b"x" * n),
)
# Raw query parts: well-escaped, or broken percent-escapes and bytes as they come.
query_parts = st.lists(
    st.tuples(st.sampled_from(NAMES), raw_values, st.booleans()).map(
        lambda t: t[0] + "=" + (_escape(t[1]) if t[2] else t[1].decode("latin-1").replace(" ", "%").replace("\r", "").replace("\n", ""))
    ),
    max_size=6,
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "Origin": st.sampled_from(["http://cherrychat.test", "http://evil.example", "null", "garbage", "https://cherrychat.test"]),
        "Referer": st.sampled_from(["http://cherrychat.test/static/chat.html", "http://evil.example/", "::"]),
        "Content-Type": st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=xx", "text/plain", "multipart/form-data"]),
        "Authorization": st.sampled_from(["Bearer " + TOKEN.decode(), "Bearer x", "Basic eA==", ""]),
        "Upgrade": st.just("websocket"),
        "Connection": st.sampled_from(["Upgrade", "keep-alive, Upgrade", "close"]),
        "Sec-WebSocket-Version": st.sampled_from(["13", "8", "", "13, 8", "99999"]),
        "Sec-WebSocket-Key": st.sampled_from([base64.b64encode(b"0123456789abcdef").decode(), "short", "", "=" * 24, "dGhlIHNhbXBsZSBub25jZQ=="]),
        "Last-Event-ID": st.sampled_from(["1", "-1", "x", "9" * 30]),
        "Cookie": st.sampled_from(["cherrychat_session=" + "A" * 43, "cherrychat_session=", "a=b; c", "cherrychat_session=\x7f"]),
        "Expect": st.just("100-continue"),
    },
)


class RouteFuzzTests(SynchronousTestCase):
    """Random methods, routes, parameters, bodies and headers."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self)
        self.ann = cookie_of(self.daemon.request("GET", "/healthz"))
        self.assertEqual(self.daemon.request("POST", "/join", {"Content-Type": "application/x-www-form-urlencoded", "Cookie": self.ann}, b"user=ann").code, 200)
        # A stream that stays open through the whole run.
        self.watcher = self.daemon.connect()
        self.watcher.send(f"GET /cherrychat?user=ann&session=w&transport=xhrstream HTTP/1.1\r\nHost: cherrychat.test\r\nCookie: {self.ann}\r\n\r\n".encode())
        self.assertTrue(self.watcher.received().startswith(b"HTTP/1.1 200 "))

    def check(self, answer: Answer, before: dict) -> None:
        self.assertIsNotNone(answer.code, answer.raw[:300])
        assert answer.code is not None
        self.assertTrue(answer.code in (101, 301, 302) or 200 <= answer.code < 300 or 400 <= answer.code < 500, answer.raw[:300])
        self.assertNotIn(b"Traceback", answer.raw)
        self.assertNotIn(b"twisted", answer.raw.lower().split(b"\r\n\r\n")[0])
        if answer.code >= 400:
            self.assertEqual(answer.header(b"content-type"), b"text/plain; charset=utf-8", answer.raw[:300])
            if answer.header(b"transfer-encoding") != b"chunked" and answer.header(b"content-length"):
                self.assertEqual(answer.body.count(b"\n"), 1, answer.raw[:300])
            self.assertEqual(self.daemon.state(), before, answer.raw[:300])

    def after(self) -> None:
        # The watcher still receives.
        self.daemon.clock.advance(1)
        self.daemon.hub.event(["ann, w, /cherrychat"], "still here")
        self.assertIn(b"still here", self.watcher.received())
        self.assertFalse(self.watcher.transport.disconnecting)

    @FUZZ
    @given(method=st.sampled_from(METHODS), route=st.sampled_from(ROUTES), query=query_parts,
           headers=header_sets, body=st.one_of(st.none(), st.binary(max_size=300), query_parts.map(lambda q: "&".join(q).encode("latin-1"))),
           own_cookie=st.booleans())
    def test_routes(self, method, route, query, headers, body, own_cookie) -> None:
        target = route + ("?" + "&".join(query) if query else "")
        lines = [f"{method} {target} HTTP/1.1", "Host: cherrychat.test"]
        if own_cookie:
            headers = {**headers, "Cookie": self.ann}
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        raw = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b"")
        before = self.daemon.state()
        self.check(self.daemon.exchange(raw), before)
        self.after()

    @FUZZ
    @given(data=st.one_of(
        st.binary(max_size=400),
        st.lists(st.sampled_from([b"GET / HTTP/1.1", b"POST /msg HTTP/1.1", b"GET /who HTTP/1.0", b"Host: x", b"Content-Length: 5",
                                  b"Content-Length: -1", b"Content-Length: 99999999999999999999", b"Transfer-Encoding: chunked",
                                  b"Transfer-Encoding: gzip, chunked", b"5\r\nhello", b"zz", b"0", b"", b" folded", b"X: \x00\xff",
                                  b"GET  HTTP/1.1", b"\xff\xfe / HTTP/1.1", b"GET /who HTTP/9.9", b"GET /who", b"Content-Length: 5, 6"]),
                 max_size=10).map(lambda lines: b"\r\n".join(lines) + b"\r\n\r\n"),
    ))
    def test_broken_framing(self, data: bytes) -> None:
        before = self.daemon.state()
        connection = self.daemon.connect()
        connection.send(data)
        received = connection.received()
        connection.close()
        # Several pipelined requests may be answered; check each status line.
        for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received):
            self.assertTrue(int(code) in (101, 301, 302) or 200 <= int(code) < 300 or 400 <= int(code) < 500, received[:300])
        self.assertNotIn(b"Traceback", received)
        if not re.search(rb"HTTP/1\.[01] 2", received):
            self.assertEqual(self.daemon.state(), before)
        self.after()


class RawSocketTests(TestCase):
    """A few broken requests over a real socket; the daemon answers and keeps serving."""

    timeout = 30

    @inlineCallbacks
    def test_broken_requests_over_a_socket(self):
        from tests.integration.daemon import start_daemon, stop_daemon

        service, base = yield start_daemon()
        self.addCleanup(stop_daemon, service)
        port = int(base.rsplit(":", 1)[1])
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET /who HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST /msg HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
            b"GET /who HTTP/1.1\r\nHost: h\r\n" + b"X-A: b\r\n" * 600 + b"\r\n",
            b"GET /cherrychat?user=ann&transport=websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n\r\n",
        ]
        for data in cases:
            # Until the answer is whole: a daemon may keep the connection open after it.
            received = yield raw_exchange(reactor, port, data, timeout=5, until=answered)
            answer = Answer(received)
            self.assertIsNotNone(answer.code, (data[:60], received[:200]))
            self.assertTrue(400 <= (answer.code or 0) < 500, (data[:60], received[:200]))
            self.assertNotIn(b"Traceback", received)
        received = yield raw_exchange(reactor, port, b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertEqual(Answer(received).code, 200)
        self.assertEqual(service.hub.published, 0)
        yield until_connections_closed()  # the aborted ones too, before trial looks


# -- WebSocket: handshakes and frames ----------------------------------------------------------

WS_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Host": st.one_of(st.sampled_from(["cherrychat.test", "xn--a", "xn--", "[::1]", "127.0.0.1:4700", "", "a b", "é.test", "x" * 300]),
                          st.text(max_size=20).map(lambda t: t.replace("\r", "").replace("\n", ""))),
        "Upgrade": st.sampled_from(["websocket", "WebSocket", "websocket, h2c", "h2c", "", "websocket2"]),
        "Connection": st.sampled_from(["Upgrade", "upgrade", "keep-alive, Upgrade", "x-upgrade", "Upgrade2", "", "close"]),
        "Sec-WebSocket-Version": st.sampled_from(["13", "8", "", "13, 8", "1" * 40]),
        "Sec-WebSocket-Key": st.one_of(st.sampled_from(["dGhlIHNhbXBsZSBub25jZQ==", "short", "", "=" * 24]),
                                       st.binary(min_size=0, max_size=20).map(lambda b: base64.b64encode(b).decode())),
        "Sec-WebSocket-Extensions": st.sampled_from(["permessage-deflate", "permessage-deflate; client_max_window_bits", "x;;", "\x7f"]),
        "Sec-WebSocket-Protocol": st.sampled_from(["chat", "", ",,", "a b"]),
        "Origin": st.sampled_from(["http://cherrychat.test", "http://evil.example", "null"]),
    },
)


def _frame(fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes, mask: bytes, declared: int | None) -> bytes:
    """One raw frame, possibly malformed: any opcode and RSV bits, masked or not, and a
    declared length that may differ from the payload sent."""
    length = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + length.to_bytes(8, "big")
    if masked:
        head += mask
        payload = bytes(byte ^ mask[n % 4] for n, byte in enumerate(payload))
    return head + payload


frames = st.builds(
    _frame,
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 1, 4, 7]),
    opcode=st.sampled_from([0x0, 0x1, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB]),
    masked=st.sampled_from([True, True, True, False]),
    payload=st.one_of(st.binary(max_size=200), st.text(max_size=50).map(lambda t: t.encode("utf-8", "surrogatepass")),
                      st.integers(min_value=0, max_value=9000).map(lambda n: b"a" * n)),
    mask=st.binary(min_size=4, max_size=4),
    declared=st.one_of(st.none(), st.none(), st.sampled_from([0, 125, 126, 65535, 65536, 2**40, 2**63 - 1])),
)


class WebSocketFuzzTests(SynchronousTestCase):
    """Hypothesis against the WebSocket handshake and, after an accepted one, the frames a
    client sends: never a 5xx or an exception, every refusal a plain one-line 4xx, no
    count left behind once the connection is gone, and the watcher still receives."""

    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self)
        self.ann = cookie_of(self.daemon.request("GET", "/healthz"))
        self.watcher = self.daemon.connect()
        self.watcher.send(f"GET /cherrychat?user=ann&session=w&transport=xhrstream HTTP/1.1\r\nHost: cherrychat.test\r\nCookie: {self.ann}\r\n\r\n".encode())
        self.assertTrue(self.watcher.received().startswith(b"HTTP/1.1 200 "))

    def counts_are_only_the_watchers(self) -> None:
        admission = self.daemon.comet.admission
        self.assertEqual(dict(admission.sessions), {self.ann.split("=", 1)[1]: 1})
        self.assertEqual(dict(admission.sockets), {"127.0.0.1": 1})

    def after(self) -> None:
        self.counts_are_only_the_watchers()
        self.daemon.hub.event(["ann, w, /cherrychat"], "still here")
        self.assertIn(b"still here", self.watcher.received())
        self.assertFalse(self.watcher.transport.disconnecting)

    @FUZZ
    @given(headers=WS_HEADERS, user=st.sampled_from(["ann", "ben", "", "a,b"]))
    def test_handshakes(self, headers, user) -> None:
        lines = [f"GET /cherrychat?user={user}&session=s&transport=websocket HTTP/1.1", f"Cookie: {self.ann}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        raw = "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n\r\n"
        connection = self.daemon.connect()
        connection.send(raw)
        answer = Answer(connection.received())
        self.assertIsNotNone(answer.code, answer.raw[:300])
        assert answer.code is not None
        self.assertTrue(answer.code == 101 or 400 <= answer.code < 500, answer.raw[:300])
        self.assertNotIn(b"Traceback", answer.raw)
        if answer.code != 101:
            self.assertEqual(answer.header(b"content-type"), b"text/plain; charset=utf-8", answer.raw[:300])
            self.assertEqual(answer.body.count(b"\n"), 1, answer.raw[:300])
        connection.close()
        self.daemon.open.remove(connection)
        self.after()

    @FUZZ
    @given(sequence=st.lists(st.one_of(frames, st.binary(max_size=64)), max_size=12))
    def test_frames(self, sequence) -> None:
        connection = self.daemon.connect()
        connection.send(f"GET /cherrychat?user=ann&session=f&transport=websocket HTTP/1.1\r\nHost: cherrychat.test\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Cookie: {self.ann}\r\n\r\n".encode())
        self.assertTrue(connection.received().startswith(b"HTTP/1.1 101 "))
        for data in sequence:
            connection.send(data)  # raises if the daemon does
        wire = connection.received().partition(b"\r\n\r\n")[2]
        self.assertNotIn(b"Traceback", wire)
        if not connection.transport.disconnecting:
            # Still open: it still gets events.
            self.daemon.hub.event(["ann, f, /cherrychat"], "to the fuzzer")
            self.assertIn(b"to the fuzzer", connection.received())
        connection.close()
        self.daemon.open.remove(connection)
        self.after()
