"""``/metrics`` in the Prometheus text format, served on its own listener.

The figures are read from the live objects when Prometheus scrapes, so the delivery path
only adds to plain integers and never touches a metrics library.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource

from cherrychat.comet import TRANSPORTS, Comet
from cherrychat.hub import Hub


class CherryChatCollector:
    """Collects the daemon's figures from its hub and comet core."""

    def __init__(self, hub: Hub, comet: Comet, refusals: dict[int, int], store: Any = None):
        self.hub = hub
        self.comet = comet
        self.refusals = refusals
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, read now."""
        connections = GaugeMetricFamily(
            "cherrychat_connections", "Open comet connections by transport.", labels=["transport"]
        )
        for transport in TRANSPORTS:
            connections.add_metric([transport], self.comet.counts[transport])
        yield connections
        yield CounterMetricFamily("cherrychat_events_published", "Events published.", value=self.hub.published)
        yield CounterMetricFamily(
            "cherrychat_events_delivered", "Events handed to connections.", value=self.comet.delivered
        )
        yield CounterMetricFamily(
            "cherrychat_bytes_written", "Bytes written to streaming connections.", value=self.comet.bytes_written
        )
        yield CounterMetricFamily(
            "cherrychat_slow_clients_dropped",
            "Connections dropped because their client could not keep up.",
            value=self.comet.slow_clients_dropped,
        )
        refused = CounterMetricFamily("cherrychat_requests_refused", "Requests refused, by status.", labels=["code"])
        for code, count in sorted(self.refusals.items()):
            refused.add_metric([str(code)], count)
        yield refused
        history = GaugeMetricFamily("cherrychat_history_events", "Events retained, by location.", labels=["location"])
        for location, channel in self.hub.channels().items():
            history.add_metric([location], len(channel.events))
        yield history
        if self.store is not None:
            yield GaugeMetricFamily("cherrychat_storage_healthy", "1 while the database takes writes, 0 while it cannot.",
                                    value=1 if self.store.healthy() else 0)
            yield CounterMetricFamily("cherrychat_storage_commits", "Transactions committed (group commits).",
                                      value=self.store.commits)
            yield CounterMetricFamily("cherrychat_storage_failures", "Batches of writes the database refused.",
                                      value=self.store.failures)
            yield GaugeMetricFamily("cherrychat_storage_queued", "Writes waiting for a commit.", value=self.store.queued())


def metrics_resource(hub: Hub, comet: Comet, refusals: dict[int, int], store: Any = None) -> Resource:
    """A root resource whose ``/metrics`` child serves the daemon's metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(CherryChatCollector(hub, comet, refusals, store))  # type: ignore[arg-type]
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry=registry))
    return root
