"""Comet requests from a page of an ``--allowed-origin``: CORS with credentials, and
``orbited.js`` where Orbited served it (``/_/orbited.js``)."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import ChatTestCase

APP = "http://localhost:4700"


class CrossOriginTests(ChatTestCase):
    daemon_arguments = ("--allowed-origin", APP)

    @inlineCallbacks
    def open(self, transport: str, origin: str | None, user: str = "ann"):
        browser = yield self.browser()
        client = self.add_client(browser, user, transport)
        headers = {"Origin": [origin]} if origin else None
        status = yield client.connect(headers=headers)
        return client, status

    @inlineCallbacks
    def get(self, origin: str, **params):
        """A single GET of the comet URL (a poll, or a refusal) with ``Origin``."""
        browser = yield self.browser()
        response = yield browser.http.get(browser.url("/cherrychat", **params), headers={"Origin": [origin]})
        yield response.content()
        return response

    def assertCors(self, headers, what: str):
        self.assertEqual(headers.getRawHeaders("access-control-allow-origin"), [APP], what)
        self.assertEqual(headers.getRawHeaders("access-control-allow-credentials"), ["true"], what)
        self.assertIn("Origin", headers.getRawHeaders("vary"), what)

    @inlineCallbacks
    def test_listed_origin_may_read_streams_and_polls(self):
        for transport in ("xhrstream", "sse", "iframe"):
            client, status = yield self.open(transport, APP, user=transport)
            self.assertEqual(status, 200)
            self.assertCors(client.headers, transport)
            client.disconnect()
        response = yield self.get(APP, user="ben", session="0", transport="longpoll")
        self.assertEqual(response.code, 200)
        self.assertCors(response.headers, "longpoll")

    @inlineCallbacks
    def test_other_origins_get_no_cors(self):
        client, status = yield self.open("xhrstream", "http://evil.example")
        self.assertEqual(status, 200)  # the browser hides it from that page
        self.assertIsNone(client.headers.getRawHeaders("access-control-allow-origin"))
        client.disconnect()

    @inlineCallbacks
    def test_refusals_are_readable_by_the_listed_origin(self):
        response = yield self.get(APP, user="ann", session="0", transport="nonsense")
        self.assertEqual(response.code, 400)
        self.assertCors(response.headers, "a refusal")

    @inlineCallbacks
    def test_orbited_js_also_at_underscore(self):
        browser = yield self.browser()
        status, old_place = yield browser.get("/_/orbited.js")
        self.assertEqual(status, 200)
        _, static = yield browser.get("/static/orbited.js")
        self.assertEqual(old_place, static)
        self.assertIn("ORBITED_PORT", static)
