"""Cross-site requests, headers and the publishing API, over the real HTTP parser in memory."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from urllib.parse import quote

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

import cherrychat.publish
from cherrychat.origins import OriginPolicy, parse_origin
from cherrychat.tap import Options
from tests.security.security_support import TOKEN, Answer, MemoryDaemon, cookie_of

FORM = "application/x-www-form-urlencoded"
PAGE_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    b"form-action 'self'; frame-ancestors 'self'"
)
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
}


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.daemon = MemoryDaemon(self)
        self.ann = self.session()
        self.assertEqual(self.post("/join", "user=ann", self.ann).code, 200)

    def session(self) -> str:
        return cookie_of(self.daemon.request("GET", "/healthz"))

    def post(self, path: str, body: str, cookie: str | None = None, **headers: str) -> Answer:
        headers = {"Content-Type": FORM, **headers}
        if cookie:
            headers["Cookie"] = cookie
        return self.daemon.request("POST", path, {k.replace("_", "-"): v for k, v in headers.items()}, body.encode())

    def get(self, target: str, cookie: str | None = None, **headers: str) -> Answer:
        headers = dict(headers)
        if cookie:
            headers["Cookie"] = cookie
        return self.daemon.request("GET", target, {k.replace("_", "-"): v for k, v in headers.items()})


class CrossSiteTests(Base):
    """/join, /msg and POST /event from another site's page: 403, and nothing changes."""

    def test_other_origin_is_refused_on_every_state_changing_request(self) -> None:
        before = self.daemon.state()
        for origin in ("http://evil.example", "null", "https://cherrychat.test", "http://cherrychat.test.evil.example"):
            answers = [
                self.post("/msg", "user=ann&msg=pwned", self.ann, Origin=origin),
                self.get("/msg?user=ann&msg=pwned", self.ann, Origin=origin),
                self.post("/join", "user=eve", self.ann, Origin=origin),
                self.get("/join?user=eve", self.ann, Origin=origin),
                self.post("/event", "keys=ann,+0,+/cherrychat&payload=x", Origin=origin, Authorization="Bearer " + TOKEN.decode()),
            ]
            for answer in answers:
                self.assertEqual(answer.code, 403, (origin, answer.raw))
                self.assertEqual(answer.header(b"content-type"), b"text/plain; charset=utf-8")
                self.assertEqual(answer.body.count(b"\n"), 1, answer.body)
        self.assertEqual(self.daemon.state(), before)

    def test_other_referer_is_refused_when_there_is_no_origin(self) -> None:
        before = self.daemon.state()
        for referer in ("http://evil.example/page.html", "not a url", "ftp://cherrychat.test/"):
            self.assertEqual(self.post("/msg", "user=ann&msg=pwned", self.ann, Referer=referer).code, 403)
            self.assertEqual(self.get("/join?user=eve", self.ann, Referer=referer).code, 403)
        self.assertEqual(self.daemon.state(), before)

    def test_own_origin_no_header_and_forwarded_scheme_are_allowed(self) -> None:
        self.assertEqual(self.post("/msg", "user=ann&msg=1", self.ann, Origin="http://cherrychat.test").code, 200)
        self.assertEqual(self.post("/msg", "user=ann&msg=2", self.ann, Origin="http://cherrychat.test:4700").code, 200)
        self.assertEqual(self.get("/msg?user=ann&msg=3", self.ann, Referer="http://cherrychat.test/static/chat.html").code, 200)
        self.assertEqual(self.get("/msg?user=ann&msg=4", self.ann).code, 200)  # curl, the tutorial's XHR
        # Behind a TLS-terminating proxy the page's origin is https.
        self.assertEqual(self.post("/msg", "user=ann&msg=5", self.ann, Origin="https://cherrychat.test", X_Forwarded_Proto="https").code, 200)
        self.assertEqual(self.post("/msg", "user=ann&msg=6", self.ann, Origin="https://cherrychat.test").code, 403)
        self.assertEqual(len(self.daemon.state()["history"]), 6)  # the join and five messages

    def test_allowed_origin_option(self) -> None:
        self.daemon = MemoryDaemon(self, origins=("https://app.example:8443",))
        ann = self.session()
        self.assertEqual(self.post("/join", "user=ann", ann, Origin="https://app.example:8443").code, 200)
        self.assertEqual(self.post("/msg", "user=ann&msg=x", ann, Origin="https://app.example").code, 403)
        self.assertEqual(self.post("/msg", "user=ann&msg=x", ann, Origin="http://cherrychat.test").code, 200)

    def test_websocket_upgrade_from_another_origin_is_refused(self) -> None:
        before = self.daemon.state()
        answer = self.get("/cherrychat?user=ben&session=0&transport=websocket", Origin="http://evil.example", **{k.replace("-", "_"): v for k, v in WS_HEADERS.items()})
        self.assertEqual(answer.code, 403)
        self.assertEqual(self.daemon.state(), before)  # ben was not reserved
        self.assertEqual(len(self.daemon.comet.connections), 0)

    def test_websocket_upgrade_from_own_origin_is_accepted(self) -> None:
        connection = self.daemon.connect()
        head = "GET /cherrychat?user=ben&session=0&transport=websocket HTTP/1.1\r\nHost: cherrychat.test\r\nOrigin: http://cherrychat.test\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in WS_HEADERS.items())
        connection.send(head.encode() + b"\r\n")
        self.assertTrue(connection.received().startswith(b"HTTP/1.1 101 "), connection.received()[:200])
        self.assertEqual(len(self.daemon.comet.connections), 1)

    def test_origin_parsing(self) -> None:
        self.assertEqual(parse_origin("HTTPS://Chat.Example"), ("https", "chat.example", 443))
        self.assertEqual(parse_origin("http://[::1]:4700"), ("http", "::1", 4700))
        for text in ("null", "", "chat.example", "javascript:alert(1)", "http://x:99999"):
            self.assertIsNone(parse_origin(text), text)
        self.assertRaises(ValueError, OriginPolicy, ["not-an-origin"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--allowed-origin", "nope"])


class HeaderTests(Base):
    """Every response, stream and refusal: nosniff, Referrer-Policy, CSP, Server without a version."""

    def assert_headers(self, answer: Answer, name: str = "") -> None:
        self.assertIsNotNone(answer.code, (name, answer.raw[:200]))
        self.assertEqual(answer.headers.get(b"server"), [b"CherryChat"], answer.raw[:300])
        self.assertEqual(answer.header(b"x-content-type-options"), b"nosniff", answer.raw[:300])
        self.assertEqual(answer.header(b"referrer-policy"), b"same-origin", answer.raw[:300])
        self.assertNotIn(b"twisted", answer.raw.split(b"\r\n\r\n")[0].lower())

    def test_every_route_and_refusal(self) -> None:
        ben = self.session()
        self.get("/cherrychat?user=ann&session=0&transport=longpoll", self.ann)
        answers = {
            "root": self.get("/"),
            "page": self.get("/static/chat.html"),
            "script": self.get("/static/orbited.js"),
            "static 404": self.get("/static/nope.js"),
            "healthz": self.get("/healthz"),
            "who": self.get("/who"),
            "history": self.get("/history?limit=5"),
            "join": self.get("/join?user=ann", self.ann),
            "msg": self.post("/msg", "user=ann&msg=hi", self.ann),
            "not yours": self.post("/msg", "user=ann&msg=hi", ben),
            "taken": self.post("/join", "user=ann", ben),
            "bad param": self.get("/msg?user=&msg=x", self.ann),
            "404": self.get("/nowhere"),
            "405": self.daemon.request("DELETE", "/msg"),
            "event 401": self.post("/event", "keys=ann,+0,+/cherrychat&payload=x"),
            "event 200": self.post("/event", "keys=ann,+0,+/cherrychat&payload=x", Authorization="Bearer " + TOKEN.decode()),
            "cross-site": self.post("/msg", "user=ann&msg=x", self.ann, Origin="http://evil.example"),
            "414": self.get("/who?" + "x" * 20000),
            "413": self.daemon.exchange(b"POST /msg HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"),
            "bad utf-8 path": self.get("/%ff"),
            "bad transport": self.get("/cherrychat?user=zed&transport=carrier-pigeon"),
            "longpoll": self.get("/cherrychat?user=ann&session=0&transport=longpoll", self.ann),
        }
        for name, answer in answers.items():
            self.assert_headers(answer, name)
        self.assertEqual(answers["page"].header(b"content-security-policy"), PAGE_CSP)
        self.assertEqual(answers["414"].code, 414)
        self.assertEqual(answers["413"].code, 413)

    def test_streams(self) -> None:
        for transport in ("sse", "xhrstream", "iframe"):
            connection = self.daemon.connect()
            connection.send(f"GET /cherrychat?user=ann&session={transport}&transport={transport} HTTP/1.1\r\nHost: cherrychat.test\r\nCookie: {self.ann}\r\n\r\n".encode())
            answer = Answer(connection.received())
            self.assertEqual(answer.code, 200, answer.raw[:300])
            self.assert_headers(answer)
            if transport == "iframe":
                # The iframe document sets its own CSP; it must never be the page's own
                # "script-src 'self'" that would block its inline scripts.
                csp = answer.header(b"content-security-policy")
                self.assertIsNotNone(csp)
                self.assertNotEqual(csp, PAGE_CSP)

    def test_websocket_handshake_leaks_no_version(self) -> None:
        connection = self.daemon.connect()
        head = "GET /cherrychat?user=ann&session=ws&transport=websocket HTTP/1.1\r\nHost: cherrychat.test\r\nCookie: " + self.ann + "\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in WS_HEADERS.items())
        connection.send(head.encode() + b"\r\n")
        response = connection.received().split(b"\r\n\r\n")[0].lower()
        self.assertTrue(response.startswith(b"http/1.1 101"), response)
        self.assertNotIn(b"twisted", response)


class PublishTests(Base):
    """POST /event: bearer token in constant time, form keys and payload, JSON ids."""

    def auth(self, token: bytes = TOKEN) -> dict[str, str]:
        return {"Authorization": "Bearer " + token.decode()}

    def test_publishes_to_keys_and_answers_ids(self) -> None:
        connection = self.daemon.connect()
        connection.send(f"GET /cherrychat?user=ann&session=0&transport=xhrstream HTTP/1.1\r\nHost: x\r\nCookie: {self.ann}\r\n\r\n".encode())
        body = "keys=" + quote("ann, 0, /cherrychat") + "&keys=" + quote("bob, 0, /elsewhere") + "&payload=" + quote("<b>system</b> hello")
        answer = self.post("/event", body, **self.auth())
        self.assertEqual(answer.code, 200, answer.raw)
        self.assertEqual(answer.header(b"content-type"), b"application/json")
        ids = json.loads(answer.body)["ids"]
        self.assertEqual(ids, [2, 1])  # the join was event 1 of /cherrychat
        self.assertIn(b"\\u003cb\\u003esystem\\u003c/b\\u003e hello", connection.received())

    def test_refusals(self) -> None:
        before = self.daemon.state()
        good = "keys=" + quote("ann, 0, /cherrychat") + "&payload=x"
        missing = self.post("/event", good)
        self.assertEqual(missing.code, 401)
        self.assertEqual(missing.header(b"www-authenticate"), b'Bearer realm="cherrychat"')
        for header in ("Bearer wrong-token-wrong-token-0000", "Basic " + base64.b64encode(b"a:" + TOKEN).decode(), "Bearer", "Bearer " + TOKEN.decode()[:-1], TOKEN.decode()):
            answer = self.post("/event", good, Authorization=header)
            self.assertEqual(answer.code, 401, header)
            self.assertEqual(answer.header(b"www-authenticate"), b'Bearer realm="cherrychat"')
        self.assertEqual(self.post("/event", "payload=x", **self.auth()).code, 400)
        self.assertEqual(self.post("/event", "keys=ann&payload=x", **self.auth()).code, 400)
        self.assertEqual(self.post("/event", "keys=a,+0,+nolocation&payload=x", **self.auth()).code, 400)
        self.assertEqual(self.post("/event", "keys=%ff,+0,+/x&payload=x", **self.auth()).code, 400)
        self.assertEqual(self.post("/event", "keys=" + quote("ann, 0, /cherrychat"), **self.auth()).code, 400)
        self.assertEqual(self.post("/event", "keys=" + quote("ann, 0, /cherrychat") + "&payload=%ff", **self.auth()).code, 400)
        self.assertEqual(self.post("/event", "keys=" + quote("ann, 0, /cherrychat") + "&payload=" + "x" * 65537, **self.auth()).code, 413)
        self.assertEqual(self.get("/event?" + good, **self.auth()).code, 405)
        self.assertEqual(self.daemon.state(), before)

    def test_json_body_publishes_like_the_form(self) -> None:
        connection = self.daemon.connect()
        connection.send(f"GET /cherrychat?user=ann&session=0&transport=xhrstream HTTP/1.1\r\nHost: x\r\nCookie: {self.ann}\r\n\r\n".encode())
        body = json.dumps({"keys": ["ann, 0, /cherrychat", "bob, 0, /elsewhere"], "payload": "<i>json</i> é"})
        answer = self.post("/event", body, **self.auth(), **{"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(answer.code, 200, answer.raw)
        self.assertEqual(json.loads(answer.body)["ids"], [2, 1])
        self.assertIn(b"\\u003ci\\u003ejson\\u003c/i\\u003e \\u00e9", connection.received())

    def test_json_body_refusals_change_nothing(self) -> None:
        before = self.daemon.state()
        bad = [
            "not json", "[1, 2]", '"text"', "{}", '{"payload": "x"}', '{"keys": [], "payload": "x"}',
            '{"keys": "ann, 0, /cherrychat", "payload": "x"}', '{"keys": [1], "payload": "x"}',
            '{"keys": ["ann"], "payload": "x"}', '{"keys": ["ann, 0, /cherrychat"]}',
            '{"keys": ["ann, 0, /cherrychat"], "payload": 5}', '{"keys": ["ann, 0, /cherrychat"], "payload": "\\ud800"}',
            '{"keys": ["\\udfff, 0, /cherrychat"], "payload": "x"}',
        ]
        for body in bad:
            answer = self.post("/event", body, **self.auth(), **{"Content-Type": "application/json"})
            self.assertEqual(answer.code, 400, body)
        too_big = json.dumps({"keys": ["ann, 0, /cherrychat"], "payload": "x" * 65537})
        self.assertEqual(self.post("/event", too_big, **self.auth(), **{"Content-Type": "application/json"}).code, 413)
        self.assertEqual(self.daemon.state(), before)

    def test_token_is_compared_in_constant_time(self) -> None:
        calls = []
        real = cherrychat.publish.hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        self.patch(cherrychat.publish.hmac, "compare_digest", spy)
        self.post("/event", "keys=ann,+0,+/x&payload=x", Authorization="Bearer nope")
        self.assertEqual(calls, [(b"nope", TOKEN)])

    def test_without_a_token_file_the_route_is_404(self) -> None:
        self.daemon = MemoryDaemon(self, token=None)
        answer = self.post("/event", "keys=ann,+0,+/x&payload=x", **self.auth())
        self.assertEqual(answer.code, 404)
        self.assertEqual(self.daemon.hub.published, 0)

    def test_token_file_option(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "token")
        with open(path, "wb") as token_file:
            token_file.write(b"short\n")
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--publish-token-file", path])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--publish-token-file", path + ".missing"])
        with open(path, "wb") as token_file:
            token_file.write(TOKEN + b"\n")
        options = Options()
        options.parseOptions(["--publish-token-file", path])
        self.assertEqual(options["publish-token-file"], path)
