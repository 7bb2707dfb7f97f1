"""``/metrics`` on its own listener, in the Prometheus text format."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import inlineCallbacks

from tests.integration.integration_support import ChatTestCase


class MetricsTests(ChatTestCase):
    """The figures an operator watches, read after a short chat."""

    daemon_arguments = ("--metrics-listen", "tcp:0:interface=127.0.0.1")

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        port = yield self.service.listeners[1].when_listening()
        self.metrics = self.add_browser(f"http://127.0.0.1:{port.getHost().port}")

    @inlineCallbacks
    def scrape(self):
        status, text = yield self.metrics.get("/metrics")
        self.assertEqual(status, 200)
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    @inlineCallbacks
    def test_connections_events_bytes_and_refusals_are_counted(self):
        ann, ben = (yield self.browser()), (yield self.browser())
        stream, _ = yield self.connect(ben, "ben", "sse")
        yield stream.wait_opened()
        yield ann.post("/join", user="ann")
        yield ben.post("/join", user="ben")
        yield ann.post("/msg", user="ann", msg="hi")
        yield ben.post("/msg", user="ann", msg="forged")
        yield stream.wait_for_events(2)
        samples = yield self.scrape()
        self.assertEqual(samples[("cherrychat_connections", (("transport", "sse"),))], 1)
        self.assertEqual(samples[("cherrychat_connections", (("transport", "websocket"),))], 0)
        self.assertEqual(samples[("cherrychat_events_published_total", ())], 3)
        self.assertEqual(samples[("cherrychat_events_delivered_total", ())], 2)
        self.assertGreater(samples[("cherrychat_bytes_written_total", ())], 0)
        self.assertEqual(samples[("cherrychat_requests_refused_total", (("code", "403"),))], 1)
        self.assertEqual(samples[("cherrychat_history_events", (("location", "/cherrychat"),))], 3)
        self.assertEqual(samples[("cherrychat_slow_clients_dropped_total", ())], 0)

    @inlineCallbacks
    def test_the_public_port_does_not_serve_metrics(self):
        browser = yield self.browser()
        status, _ = yield browser.get("/metrics")
        self.assertEqual(status, 404)
