"""Unit tests of the web resource, driven in memory by ``treq.testing.StubTreq``.

Each ``Browser`` keeps its own ``cherrychat_session`` cookie, as a browser does, and sends
it with every request. Static files are served by ``twisted.web.static.File``, which
streams through a cooperative task; the tests give that task a cooperator driven by a
``task.Clock`` so that everything runs synchronously.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from treq.testing import StubTreq

from cherrychat.chat import ChatRoom
from cherrychat.comet import Comet, CometSettings
from cherrychat.hub import Hub
from cherrychat.web import ChatWeb
from tests.support import STATIC, cooperate_on_clock, daemon_state

BASE = "http://cherrychat.test"
COOKIE = "cherrychat_session"
PAGE_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    b"form-action 'self'; frame-ancestors 'self'"
)


class Answer:
    """A finished response: status, headers and body."""

    def __init__(self, response, body: bytes):
        self.code = response.code
        self.headers = response.headers
        self.body = body

    def header(self, name: str) -> list[bytes]:
        return self.headers.getRawHeaders(name.encode("ascii"), [])

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)


class WebTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.chat = ChatRoom(self.hub, self.clock, presence_timeout=10)
        self.comet = Comet(self.hub, self.clock, CometSettings(heartbeat=25))
        self.web = ChatWeb(self.chat, self.comet, STATIC)
        self.resource = self.web.resource()
        self.cooperator_clock = cooperate_on_clock(self)

    def browser(self) -> "Browser":
        return Browser(StubTreq(self.resource))

    def settle(self, client, deferred):
        """Run the in-memory connection until ``deferred`` fires; return its result."""
        results = []
        deferred.addBoth(results.append)
        for _ in range(100):
            client.flush()
            self.cooperator_clock.advance(0)
            if results:
                break
        self.assertTrue(results, "no answer")
        result = results[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result

    def fetch(self, method, path, browser=None, **kwargs) -> Answer:
        """One request; without ``browser``, from a client that has no cookie at all."""
        browser = browser or self.browser()
        kwargs.setdefault("allow_redirects", False)
        response = self.settle(browser.client, browser.client.request(method, BASE + path, **kwargs))
        browser.remember(response)
        body = self.settle(browser.client, browser.client.content(response))
        return Answer(response, body)

    def open_stream(self, path, browser=None, **kwargs):
        """Start a comet response that does not end; return it and its received chunks."""
        browser = browser or self.browser()
        response = self.settle(browser.client, browser.client.request("GET", BASE + path, **kwargs))
        browser.remember(response)
        chunks: list[bytes] = []
        browser.client.collect(response, chunks.append)
        browser.client.flush()
        return response, chunks

    # -- what the daemon's state is, to show that a refusal changes nothing ----------

    def state(self):
        return daemon_state(self.hub, self.chat, self.comet)

    def history(self):
        return [e.payload for e in self.hub.channel(self.chat.location).recent(10**6)]

    def assertRefusal(self, answer: Answer, code: int):
        self.assertEqual(answer.code, code, answer.body)
        self.assertEqual(answer.header("content-type"), [b"text/plain; charset=utf-8"])
        self.assertTrue(answer.body.endswith(b"\n"), answer.body)
        self.assertEqual(answer.body.count(b"\n"), 1, answer.body)
        self.assertGreater(len(answer.body.strip()), 0)
        self.assertNotIn(b"<", answer.body)
        self.assertNotIn(b"Traceback", answer.body)

    def assertDaemonHeaders(self, answer: Answer):
        self.assertEqual(answer.header("x-content-type-options"), [b"nosniff"])
        self.assertEqual(answer.header("server"), [b"CherryChat"])


class Browser:
    """One browser: its own HTTP client, whose cookie jar keeps what the daemon set.

    (A ``StubTreq`` keeps one cookie jar for all its requests, so every browser needs
    its own.)
    """

    def __init__(self, client: StubTreq) -> None:
        self.client = client
        self.session: str | None = None
        self.set_cookies: list[bytes] = []

    def remember(self, response) -> None:
        for header in response.headers.getRawHeaders(b"set-cookie", []):
            self.set_cookies.append(header)
            name, _, rest = header.decode("ascii").partition("=")
            if name == COOKIE:
                self.session = rest.split(";", 1)[0]


class PageTests(WebTestCase):
    def test_root_redirects_to_the_chat_page(self):
        answer = self.fetch("GET", "/")
        self.assertIn(answer.code, (301, 302, 303, 307, 308))
        self.assertEqual(answer.header("location"), [b"/static/chat.html"])
        self.assertDaemonHeaders(answer)

    def test_root_redirect_keeps_the_query_that_picks_a_transport(self):
        answer = self.fetch("GET", "/?transport=sse")
        self.assertEqual(answer.header("location"), [b"/static/chat.html?transport=sse"])

    def test_static_files_are_served(self):
        for name, content_type in [
            ("orbited.js", b"text/javascript; charset=utf-8"),
            ("chat.js", b"text/javascript; charset=utf-8"),
            ("chat.css", b"text/css; charset=utf-8"),
            ("chat.html", b"text/html; charset=utf-8"),
        ]:
            answer = self.fetch("GET", f"/static/{name}")
            self.assertEqual(answer.code, 200, name)
            self.assertEqual(answer.header("content-type"), [content_type], name)
            self.assertEqual(answer.body, (STATIC / name).read_bytes(), name)
            self.assertDaemonHeaders(answer)
            self.assertEqual(answer.header("content-security-policy"), [PAGE_CSP])

    def test_missing_static_file_is_a_plain_404(self):
        self.assertRefusal(self.fetch("GET", "/static/nothere.js"), 404)

    def test_static_folder_is_not_listed(self):
        self.assertRefusal(self.fetch("GET", "/static/"), 404)

    def test_static_files_stay_inside_the_folder(self):
        for path in ["/static/../cherrychat/web.py", "/static/%2e%2e/cherrychat/web.py",
                     "/static/..%2fcherrychat%2fweb.py"]:
            answer = self.fetch("GET", path)
            self.assertEqual(answer.code, 404, path)
            self.assertNotIn(b"import", answer.body)

    def test_healthz(self):
        answer = self.fetch("GET", "/healthz")
        self.assertEqual((answer.code, answer.body), (200, b"ok\n"))
        self.assertEqual(answer.header("content-type"), [b"text/plain; charset=utf-8"])
        self.assertDaemonHeaders(answer)

    def test_unknown_path_is_a_plain_404(self):
        for path in ["/nothere", "/join/extra", "/cherrychat/x"]:
            answer = self.fetch("GET", path)
            self.assertRefusal(answer, 404)
            self.assertDaemonHeaders(answer)

    def test_static_without_slash_is_a_usable_redirect_or_a_404(self):
        answer = self.fetch("GET", "/static")
        if answer.code == 404:
            self.assertRefusal(answer, 404)
        else:
            self.assertIn(answer.code, (301, 302, 303, 307, 308))
            self.assertEqual(len(answer.header("location")), 1, "a redirect without Location")
            self.assertTrue(answer.header("location")[0].endswith((b"/static/", b"/static/chat.html")))

    def test_a_path_that_is_not_utf8_is_a_plain_400(self):
        for path in ["/%ff", "/static/%ff.js", "/join%ff"]:
            answer = self.fetch("GET", path)
            self.assertIn(answer.code, (400, 404), path)
            self.assertRefusal(answer, answer.code)
            self.assertDaemonHeaders(answer)

    def test_wrong_method_is_a_plain_405(self):
        before = self.state()
        for method, path in [("POST", "/who"), ("DELETE", "/join?user=ann"), ("PUT", "/msg"),
                             ("POST", "/cherrychat?user=ann&transport=sse"), ("POST", "/healthz")]:
            answer = self.fetch(method, path)
            self.assertRefusal(answer, 405)
            self.assertDaemonHeaders(answer)
        self.assertEqual(self.state(), before)

    def test_server_header_has_no_version(self):
        for path in ["/", "/healthz", "/who", "/nothere", "/join", "/static/chat.html"]:
            answer = self.fetch("GET", path)
            self.assertEqual(answer.header("server"), [b"CherryChat"], path)


class SessionCookieTests(WebTestCase):
    def test_first_response_sets_the_cookie_once(self):
        browser = self.browser()
        self.fetch("GET", "/join?user=ann", browser)
        self.assertEqual(len(browser.set_cookies), 1)
        attributes = [part.strip().lower() for part in browser.set_cookies[0].decode().split(";")]
        self.assertIn("httponly", attributes)
        self.assertIn("samesite=strict", attributes)
        self.assertIn("path=/", attributes)
        self.assertRegex(browser.session, r"\A[A-Za-z0-9_-]{43,}\Z")
        self.fetch("GET", "/msg?user=ann&msg=hi", browser)
        self.fetch("GET", "/static/chat.html", browser)
        self.assertEqual(len(browser.set_cookies), 1)  # a known cookie is not set again

    def test_a_malformed_cookie_is_replaced_and_grants_nothing(self):
        ann = self.browser()
        self.fetch("GET", "/join?user=ann", ann)
        forger = self.browser()
        answer = self.fetch("GET", "/msg?user=ann&msg=forged", forger, cookies={COOKIE: ann.session + "x"})
        self.assertRefusal(answer, 403)
        self.assertRegex(forger.session, r"\A[A-Za-z0-9_-]{43}\Z")
        self.assertNotIn(forger.session, (ann.session, ann.session + "x"))
        self.assertNotIn("<b>ann</b> forged", self.history())


class TutorialApiTests(WebTestCase):
    def test_join_and_msg_by_get_as_the_tutorial_calls_them(self):
        ann = self.browser()
        answer = self.fetch("GET", "/join?user=ann", ann)
        self.assertEqual((answer.code, answer.body), (200, b"joined\n"))
        self.assertEqual(answer.header("content-type"), [b"text/plain; charset=utf-8"])
        answer = self.fetch("GET", "/msg?ie_nocache=2&user=ann&msg=hello", ann)
        self.assertEqual((answer.code, answer.body), (200, b"sent\n"))
        answer = self.fetch("GET", "/msg?ie_nocache=3&user=ann&msg=again&session=0", ann)
        self.assertEqual(answer.code, 200)
        self.assertEqual(self.history(), ["ann joined", "<b>ann</b> hello", "<b>ann</b> again"])
        self.assertEqual(self.successResultOf(self.chat.members()), ["ann"])

    def test_join_again_is_harmless(self):
        ann = self.browser()
        self.fetch("GET", "/join?user=ann&session=0", ann)
        answer = self.fetch("GET", "/join?user=ann&session=0&ie_nocache=5", ann)
        self.assertEqual((answer.code, answer.body), (200, b"already joined\n"))
        self.assertEqual(self.history(), ["ann joined"])

    def test_join_and_msg_by_post_form(self):
        ann = self.browser()
        answer = self.fetch("POST", "/join", ann, data={"user": "ann", "session": "0"})
        self.assertEqual((answer.code, answer.body), (200, b"joined\n"))
        answer = self.fetch("POST", "/msg", ann, data={"user": "ann", "msg": "<img src=x onerror=alert(1)> & \"q\""})
        self.assertEqual((answer.code, answer.body), (200, b"sent\n"))
        self.assertEqual(
            self.history()[-1], "<b>ann</b> &lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;"
        )

    def test_percent_encoded_utf8_and_escaping(self):
        ann = self.browser()
        name = "<é&>"
        self.fetch("GET", "/join?user=" + quote(name), ann)
        answer = self.fetch("GET", "/msg?user=" + quote(name) + "&msg=" + quote("日本 <b>&"), ann)
        self.assertEqual(answer.code, 200)
        self.assertEqual(self.history(), ["&lt;é&amp;&gt; joined", "<b>&lt;é&amp;&gt;</b> 日本 &lt;b&gt;&amp;"])

    def test_bounds_are_accepted(self):
        ann = self.browser()
        name = "é" * 32
        self.assertEqual(self.fetch("GET", "/join?user=" + quote(name), ann).code, 200)
        text = "é" * 2048  # 4096 bytes
        self.assertEqual(self.fetch("POST", "/msg", ann, data={"user": name, "msg": text}).code, 200)
        self.assertEqual(self.history()[-1], f"<b>{name}</b> {text}")

    def test_who_and_history(self):
        ann, ben = self.browser(), self.browser()
        self.fetch("GET", "/join?user=ben", ben)
        self.fetch("GET", "/join?user=ann", ann)
        self.clock.advance(self.chat._presence.window)  # "ann joined" goes out
        for n in range(3):
            self.fetch("GET", f"/msg?user=ann&msg=m{n}", ann)
        who = self.fetch("GET", "/who")
        self.assertEqual(who.code, 200)
        self.assertEqual(who.header("content-type"), [b"application/json"])
        self.assertEqual(who.json(), {"members": ["ann", "ben"]})
        history = self.fetch("GET", "/history?limit=2")
        self.assertEqual(history.code, 200)
        self.assertEqual(history.header("content-type"), [b"application/json"])
        self.assertEqual(
            [(e["id"], e["payload"]) for e in history.json()["events"]],
            [(4, "<b>ann</b> m1"), (5, "<b>ann</b> m2")],
        )
        self.assertEqual(set(history.json()["events"][0]), {"id", "time", "payload"})
        everything = self.fetch("GET", "/history").json()["events"]
        self.assertEqual([e["id"] for e in everything], [1, 2, 3, 4, 5])

    def test_history_limit_zero_returns_at_most_zero_events(self):
        ann = self.browser()
        self.fetch("GET", "/join?user=ann", ann)
        answer = self.fetch("GET", "/history?limit=0")
        # "at most N": either no events, or a refusal of the non-positive limit.
        if answer.code == 200:
            self.assertEqual(answer.json()["events"], [])
        else:
            self.assertRefusal(answer, 400)

    def test_history_limit_is_capped(self):
        ann = self.browser()
        self.fetch("GET", "/join?user=ann", ann)
        events = self.fetch("GET", "/history?limit=999999").json()["events"]
        self.assertEqual([e["payload"] for e in events], ["ann joined"])

    def test_history_default_limit_is_50(self):
        ann = self.browser()
        self.fetch("GET", "/join?user=ann", ann)
        for n in range(60):
            self.chat.msg("ann", ann.session, f"m{n}")
        events = self.fetch("GET", "/history").json()["events"]
        self.assertEqual([e["id"] for e in events], list(range(12, 62)))


class ImpersonationTests(WebTestCase):
    def setUp(self):
        super().setUp()
        self.ann = self.browser()
        self.fetch("GET", "/join?user=ann&session=0", self.ann)
        self.mallory = self.browser()
        self.fetch("GET", "/", self.mallory)  # the page sets mallory's own cookie
        self.assertIsNotNone(self.ann.session)
        self.assertIsNotNone(self.mallory.session)
        self.assertNotEqual(self.ann.session, self.mallory.session)

    def test_another_session_cannot_msg_join_or_listen_as_a_held_nickname(self):
        before = self.state()
        self.assertRefusal(self.fetch("GET", "/msg?ie_nocache=2&user=ann&msg=pwned&session=0", self.mallory), 403)
        self.assertRefusal(self.fetch("POST", "/msg", self.mallory, data={"user": "ann", "msg": "pwned"}), 403)
        self.assertRefusal(self.fetch("GET", "/join?user=ann&session=0", self.mallory), 409)
        self.assertRefusal(self.fetch("GET", "/join?user=ann&session=1", self.mallory), 409)
        for transport in ["iframe", "xhrstream", "longpoll", "sse"]:
            answer = self.fetch("GET", f"/cherrychat?user=ann&session=0&transport={transport}", self.mallory)
            self.assertRefusal(answer, 403)
        answer = self.fetch("GET", "/cherrychat?user=ann&session=0&transport=websocket", self.mallory,
                            headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                     "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        self.assertRefusal(answer, 403)
        self.assertEqual(self.state(), before)
        self.assertEqual(self.hub.listener_count("ann, 0, /cherrychat"), 0)

    def test_the_session_parameter_never_grants_identity(self):
        before = self.state()
        answer = self.fetch("GET", "/msg?user=ann&msg=pwned&session=0", self.mallory)
        self.assertRefusal(answer, 403)
        # ann's token is no valid label (too long), and would grant nothing anyway
        answer = self.fetch("GET", f"/msg?user=ann&msg=pwned&session={self.ann.session}", self.mallory)
        self.assertIn(answer.code, (400, 403))
        answer = self.fetch("GET", f"/cherrychat?user=ann&session={self.ann.session[:32]}&transport=sse", self.mallory)
        self.assertRefusal(answer, 403)
        # A client with no cookie at all is a new session, whatever its URL says.
        answer = self.fetch("GET", f"/msg?user=ann&msg=pwned&session=0&{COOKIE}={self.ann.session}")
        self.assertRefusal(answer, 403)
        self.assertEqual(self.state(), before)

    def test_a_comet_connection_reserves_a_free_nickname(self):
        ben = self.browser()
        response, chunks = self.open_stream("/cherrychat?user=ben&session=0&transport=sse", ben)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.chat.holder_of("ben"), ben.session)
        self.assertRefusal(self.fetch("GET", "/join?user=ben", self.mallory), 409)
        self.assertEqual(self.fetch("GET", "/join?user=ben", ben).code, 200)


class RefusalTests(WebTestCase):
    """Every bad input gets its 4xx with a one-line plain-text reason and changes nothing."""

    def setUp(self):
        super().setUp()
        self.ann = self.browser()
        self.fetch("GET", "/join?user=ann", self.ann)
        self.fetch("GET", "/msg?user=ann&msg=first", self.ann)
        self.other = self.browser()
        self.fetch("GET", "/", self.other)
        self.before = self.state()

    def check(self, method, path, code, browser=None, **kwargs):
        answer = self.fetch(method, path, browser or self.ann, **kwargs)
        self.assertRefusal(answer, code)
        self.assertDaemonHeaders(answer)
        self.assertEqual(self.state(), self.before, f"{method} {path} changed the daemon's state")
        return answer

    def test_bad_join(self):
        for query in ["", "?user=", "?session=0", "?user=" + "a" * 33, "?user=zed%00", "?user=zed%0A",
                      "?user=z%1bed", "?user=zed%E2%80%A8", "?user=zed,0", "?user=%20zed", "?user=%ff",
                      "?user=z%C3", "?user=zed&session=a%20b", "?user=zed&session=" + "s" * 33,
                      "?user=zed&session=%ff"]:
            self.check("GET", "/join" + query, 400, self.other)
        self.check("POST", "/join", 400, self.other, data={"user": "a" * 33})
        self.check("POST", "/join", 400, self.other, data={"user": ""})

    def test_bad_msg(self):
        for query in ["?user=ann", "?user=ann&msg=", "?msg=hi", "?user=ann&msg=%ff%fe", "?user=ann&msg=a%00b",
                      "?user=ann&msg=a%0Db", "?user=ann&msg=%20", "?user=ann&msg=hi&session=a,b",
                      "?user=" + "a" * 33 + "&msg=hi"]:
            self.check("GET", "/msg" + query, 400)
        self.check("POST", "/msg", 400, data={"user": "ann", "msg": ""})

    def test_message_over_4_kib_is_413(self):
        self.check("POST", "/msg", 413, data={"user": "ann", "msg": "é" * 2048 + "x"})
        self.check("POST", "/msg", 413, data={"user": "ann", "msg": "x" * 4097})
        self.check("GET", "/msg?user=ann&msg=" + quote("é" * 2048 + "x"), 413)
        self.check("POST", "/msg", 413, data={"user": "ann", "msg": "x" * 100000})

    def test_bad_comet_requests(self):
        for query in [
            "user=zed&session=0&transport=carrier-pigeon",
            "user=zed&session=0",
            "user=zed&session=0&transport=",
            "session=0&transport=sse",
            "user=&transport=sse",
            "user=zed%ff&transport=sse",
            "user=zed&session=a%20b&transport=sse",
            "user=zed&transport=sse&last_event_id=abc",
            "user=zed&transport=longpoll&last_event_id=-1",
            "user=zed&transport=iframe&last_event_id=1.5",
            "user=zed&transport=xhrstream&last_event_id=99999999999999999",
            "user=zed&transport=longpoll&last_event_id=%ff",
            "user=zed&transport=websocket",
        ]:
            self.check("GET", "/cherrychat?" + query, 400, self.other)
        self.check("GET", "/cherrychat?user=zed&transport=sse", 400, self.other,
                   headers={"Last-Event-ID": "not-a-number"})
        self.assertIsNone(self.chat.holder_of("zed"))

    def test_an_unknown_transport_with_line_breaks_is_refused_in_one_line(self):
        # The reason must stay one line even when it names what the client sent.
        for transport in ["a%0Ab", "a%0D%0AX-Injected:%201", "%0A%0A<script>"]:
            self.check("GET", f"/cherrychat?user=zed&session=0&transport={transport}", 400, self.other)

    def test_a_refused_websocket_handshake_reserves_nothing(self):
        # An Upgrade header passes the route's own check, but the handshake itself is
        # incomplete (no Sec-WebSocket-Key or -Version) and twisted refuses it with a 400.
        answer = self.fetch("GET", "/cherrychat?user=zed&session=0&transport=websocket", self.other,
                            headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        self.assertEqual(answer.code, 400)
        self.assertIsNone(self.chat.holder_of("zed"))
        self.assertEqual(self.state(), self.before)
        # ... so another browser may still take the nickname.
        self.assertEqual(self.fetch("GET", "/join?user=zed", self.browser()).code, 200)

    def test_a_refused_websocket_handshake_is_a_plain_one_line_reason(self):
        self.check("GET", "/cherrychat?user=zed&session=0&transport=websocket", 400, self.other,
                   headers={"Upgrade": "websocket", "Connection": "Upgrade"})

    def test_bad_history_limit(self):
        for limit in ["abc", "-1", "1.5", "9" * 10]:
            self.check("GET", "/history?limit=" + limit, 400)

    def test_comet_at_the_connection_limit_is_503(self):
        self.comet.settings.max_connections = 0
        self.check("GET", "/cherrychat?user=zed&session=0&transport=sse", 503, self.other)
        self.assertIsNone(self.chat.holder_of("zed"))

    def test_refusals_are_counted(self):
        self.fetch("GET", "/join?user=", self.other)
        self.fetch("GET", "/join?user=ann", self.other)
        self.assertEqual(self.web.refusals[400], 1)
        self.assertEqual(self.web.refusals[409], 1)


class CometOverWebTests(WebTestCase):
    def test_sse_stream_carries_open_and_the_chat(self):
        ann = self.browser()
        response, chunks = self.open_stream("/cherrychat?user=ann&session=0&transport=sse", ann)
        self.assertEqual(response.code, 200)
        headers = response.headers
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-cache, no-store"])
        self.assertEqual(headers.getRawHeaders(b"x-accel-buffering"), [b"no"])
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        self.fetch("GET", "/join?user=ann", ann)
        self.fetch("GET", "/msg?user=ann&msg=" + quote("<b>hi</b> & bye"), ann)
        ann.client.flush()
        body = b"".join(chunks)
        self.assertTrue(body.startswith(b"retry: 2000\n\n"))
        messages = [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]
        self.assertEqual(
            [(m["type"], m.get("data")) for m in messages],
            [("open", None), ("event", "ann joined"), ("event", "<b>ann</b> &lt;b&gt;hi&lt;/b&gt; &amp; bye")],
        )
        self.assertIn(b"id: 2\ndata: ", body)
        self.assertNotIn(b"&lt;", body)  # the payload's own & is escaped as \u0026 in JSON
        self.assertEqual(self.successResultOf(self.chat.members()), ["ann"])
        self.assertEqual(self.hub.listener_count("ann, 0, /cherrychat"), 1)

    def test_iframe_stream_has_its_own_csp(self):
        response, chunks = self.open_stream("/cherrychat?user=ann&session=0&transport=iframe")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-security-policy"),
            [b"default-src 'none'; script-src 'unsafe-inline'"],
        )
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"])
        self.assertEqual(response.headers.getRawHeaders(b"server"), [b"CherryChat"])
        self.assertTrue(b"".join(chunks).startswith(b"<!DOCTYPE html>"))

    def test_xhrstream_content_type(self):
        response, chunks = self.open_stream("/cherrychat?user=ann&transport=xhrstream")
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"])
        self.assertTrue(b"".join(chunks).startswith(b" " * 2048 + b"\n"))

    def test_longpoll_answers_open_at_once(self):
        answer = self.fetch("GET", "/cherrychat?user=ann&session=0&transport=longpoll")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("content-type"), [b"application/json"])
        self.assertEqual(answer.header("cache-control"), [b"no-cache, no-store"])
        self.assertEqual(answer.json(), [{"type": "open", "id": 0, "epoch": self.hub.epoch}])

    def test_sse_resumes_from_the_last_event_id_header(self):
        ann = self.browser()
        self.fetch("GET", "/join?user=ann", ann)
        self.fetch("GET", "/msg?user=ann&msg=one", ann)
        self.fetch("GET", "/msg?user=ann&msg=two", ann)
        _, chunks = self.open_stream("/cherrychat?user=ann&transport=sse", ann, headers={"Last-Event-ID": "2"})
        body = b"".join(chunks)
        messages = [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]
        self.assertEqual([(m["type"], m["id"]) for m in messages], [("open", 2), ("event", 3)])
