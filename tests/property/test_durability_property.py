"""Property: whatever the order of publishes, commits, crashes and reconnects, every event
a reader was shown or a publisher was promised is stored, no id is used twice, and a reader
that resumes gets every stored event after its last one exactly once, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.hub import Event, Hub

ROOM = "/room"
READERS = ["r1, 0, /room", "r2, 0, /room"]


class Disk:
    """A journal whose writes commit only when told to, and whose uncommitted writes a
    crash loses, as a database file's would."""

    def __init__(self) -> None:
        self.stored: list[Event] = []
        self.waiting: list[tuple[list[Event], Deferred]] = []

    def record(self, events: list[Event]) -> Deferred:
        done: Deferred = Deferred()
        self.waiting.append((events, done))
        return done

    def commit(self, batches: int) -> None:
        for _ in range(min(batches, len(self.waiting))):
            events, done = self.waiting.pop(0)
            self.stored.extend(events)
            done.callback(None)

    def crash(self) -> None:
        self.waiting = []


class Reader:
    """One client of a key: every (id, payload) it was shown, over all its connections."""

    def __init__(self) -> None:
        self.shown: list[tuple[int, str]] = []

    def deliver(self, event: Event) -> None:
        self.shown.append((event.id, event.payload))


def start(disk: Disk) -> Hub:
    """A daemon starting on ``disk``: what is stored comes back, ids continue after it."""
    hub = Hub(Clock(), max_events=10_000, journal=disk)
    stored = [e for e in disk.stored if e.location == ROOM]
    hub.channel(ROOM).restore([Event(e.id, e.time, e.payload, e.location, e.recipients) for e in stored],
                              max((e.id for e in stored), default=0))
    for key in READERS:
        hub.admit(key, since=0)
    return hub


steps = st.lists(
    st.one_of(
        st.tuples(st.just("say"), st.integers(0, 10**6)),
        st.tuples(st.just("tell"), st.sampled_from(READERS)),
        st.tuples(st.just("commit"), st.integers(1, 3)),
        st.tuples(st.just("crash")),
        st.tuples(st.just("reconnect"), st.sampled_from(READERS)),
    ),
    max_size=50,
)


class CrashPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(steps)
    def test_promises_survive_crashes_and_resumes_are_exact(self, plan) -> None:
        disk = Disk()
        hub = start(disk)
        readers = {key: Reader() for key in READERS}
        promised: list[int] = []
        highest_seen = 0

        def connect(key: str) -> None:
            reader = readers[key]
            last = reader.shown[-1][0] if reader.shown else 0
            subscription = hub.subscribe(key, reader, last_event_id=last, epoch=hub.epoch)
            self.assertFalse(subscription.gap)
            reader.shown.extend((e.id, e.payload) for e in subscription.backlog)

        for key in READERS:
            connect(key)
        for n, step in enumerate(plan):
            if step[0] == "say":
                hub.broadcast(ROOM, f"say {n}").addCallback(promised.append)
            elif step[0] == "tell":
                hub.event([step[1]], f"tell {n}").addCallback(promised.extend)
            elif step[0] == "commit":
                disk.commit(step[1])
            elif step[0] == "crash":
                disk.crash()
                highest_seen = max([highest_seen, *promised, *(i for r in readers.values() for i, _ in r.shown)])
                hub = start(disk)
                for key in READERS:
                    connect(key)
                # A restarted daemon numbers above every id anyone saw or was promised.
                self.assertGreater(hub.channel(ROOM).number(), highest_seen)
                hub.channel(ROOM).next_id -= 1  # give the probe's id back
            elif step[0] == "reconnect":
                hub.unsubscribe(step[1], readers[step[1]])
                connect(step[1])
        disk.commit(len(disk.waiting))
        stored = [(e.id, e.payload) for e in disk.stored]
        ids = [i for i, _ in stored]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertTrue(set(promised) <= set(ids))
        for key, reader in readers.items():
            readable = [(e.id, e.payload) for e in disk.stored if e.recipients is None or key in e.recipients]
            # Shown exactly the stored events it may read, once each, in order.
            self.assertEqual(reader.shown, readable, key)
