"""``--proxy PATH=URL``: an application behind the daemon on one origin, as Orbited 0.3 did."""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.python import usage
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from cherrychat.tap import Options
from tests.integration.integration_support import DaemonTestCase


class Echo(Resource):
    """The proxied app: says what it was asked, and with which headers."""

    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({
            "method": request.method.decode(), "uri": request.uri.decode(),
            "connection": (request.getHeader(b"connection") or b"").decode(),
            "body": request.content.read().decode(),
        }).encode()


class ProxyTests(DaemonTestCase):
    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.app = reactor.listenTCP(0, Site(Echo()), interface="127.0.0.1")
        self.addCleanup(self.app.stopListening)
        app = f"http://127.0.0.1:{self.app.getHost().port}"
        self.service, base = yield self.start_daemon("--proxy", f"/={app}", "--proxy", f"/api={app}/v1")
        self.browser = self.add_browser(base)

    @inlineCallbacks
    def get(self, path: str):
        response = yield self.browser.http.get(self.browser.url(path))
        body = yield response.text()
        return response, body

    @inlineCallbacks
    def test_app_paths_are_forwarded_without_keep_alive(self):
        response, body = yield self.get("/join?user=ann&ie_nocache=2")
        self.assertEqual(json.loads(body), {"method": "GET", "uri": "/join?user=ann&ie_nocache=2", "connection": "close", "body": ""})
        self.assertIsNone(response.headers.getRawHeaders("content-security-policy"))  # the app's page, the app's rules
        _, body = yield self.get("/static/chat.html")
        self.assertEqual(json.loads(body)["uri"], "/static/chat.html")
        _, body = yield self.get("/api/items/7?x=1")
        self.assertEqual(json.loads(body)["uri"], "/v1/items/7?x=1")
        response = yield self.browser.http.post(self.browser.url("/msg"), data={"msg": "hi"})
        echoed = json.loads((yield response.text()))
        self.assertEqual((echoed["method"], echoed["body"]), ("POST", "msg=hi"))

    @inlineCallbacks
    def test_daemon_keeps_its_own_paths(self):
        for path in ("/static/orbited.js", "/_/orbited.js"):
            response, body = yield self.get(path)
            self.assertEqual(response.code, 200)
            self.assertIn("Orbited.connect", body)
        response, body = yield self.get("/cherrychat?user=ann&session=0&transport=longpoll")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)[0]["type"], "open")

    @inlineCallbacks
    def test_unreachable_app_is_503(self):
        yield self.app.stopListening()
        response, body = yield self.get("/join?user=ann")
        self.assertEqual((response.code, body), (503, "the proxied application is unreachable\n"))


class ProxyOptionTests(TestCase):
    def test_bad_specs_are_refused(self):
        for spec in ("nothing", "app=http://127.0.0.1:1", "/=ftp://host", "/=http://", "/=http://h:1/?q=1"):
            with self.assertRaises(usage.UsageError, msg=spec):
                Options().parseOptions(["--proxy", spec])
