"""Property: whatever the interleaving of publishes, disconnects and reconnects, every key
receives every event addressed to it exactly once and in order (within retention)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.hub import Event, Hub
from tests.unit.unit_support import publish as publish_events

KEYS = ["ann, 0, /room", "ben, 0, /room", "ann, 1, /room", "cat, 0, /other"]


class Reader:
    """A client of one key: what it received, over all its connections."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.connected = False

    def deliver(self, event: Event) -> None:
        self.received.append(event.id)


publish = st.tuples(st.just("publish"), st.sets(st.sampled_from(KEYS), min_size=1))
disconnect = st.tuples(st.just("disconnect"), st.sampled_from(KEYS))
reconnect = st.tuples(st.just("reconnect"), st.sampled_from(KEYS), st.booleans())
operations = st.lists(st.one_of(publish, disconnect, reconnect), max_size=60)


class HubExactlyOnceTests(SynchronousTestCase):
    """The hub's resume guarantee, for any order of operations."""

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(operations)
    def test_every_key_gets_every_event_once_in_order(self, steps):
        hub = Hub(Clock(), max_events=1000)
        # Each reader holds one connection object at a time, as a browser tab does.
        readers = {key: Reader() for key in KEYS}
        connections: dict[str, Reader] = {}
        addressed: dict[str, list[int]] = {key: [] for key in KEYS}

        def connect(key: str, pass_last_id: bool) -> None:
            reader = readers[key]
            listener = Reader()
            last = reader.received[-1] if (pass_last_id and reader.received) else None
            subscription = hub.subscribe(key, listener, last)
            self.assertFalse(subscription.gap)
            reader.received.extend(event.id for event in subscription.backlog)
            listener.received = reader.received  # live events go to the same record
            connections[key] = listener

        for key in KEYS:
            connect(key, False)
        for step in steps:
            if step[0] == "publish":
                for event in publish_events(hub, sorted(step[1]), "payload"):
                    for key in event.recipients:
                        addressed[key].append(event.id)
            elif step[0] == "disconnect" and step[1] in connections:
                hub.unsubscribe(step[1], connections.pop(step[1]))
            elif step[0] == "reconnect":
                key = step[1]
                if key in connections:
                    hub.unsubscribe(key, connections.pop(key))
                connect(key, step[2])
        for key in KEYS:
            if key not in connections:
                connect(key, True)
        for key in KEYS:
            self.assertEqual(readers[key].received, addressed[key], key)

    @given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=60))
    @settings(max_examples=100, deadline=None, derandomize=True)
    def test_a_reader_behind_retention_gets_a_gap_never_a_silent_loss(self, retained, published):
        hub = Hub(Clock(), max_events=retained)
        key = "ann, 0, /room"
        hub.subscribe(key, Reader())
        for _ in range(published):
            publish_events(hub, [key], "x")
        subscription = hub.subscribe(key, Reader(), last_event_id=0)
        backlog = [event.id for event in subscription.backlog]
        if published <= retained:
            self.assertFalse(subscription.gap)
            self.assertEqual(backlog, list(range(1, published + 1)))
        else:
            self.assertTrue(subscription.gap)
            self.assertEqual((subscription.cursor, backlog), (published, []))
