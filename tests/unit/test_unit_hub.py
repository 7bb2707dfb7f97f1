"""Unit tests of cherrychat.hub: ids, fan-out, queues, resume, gaps, retention, presence."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.hub import Event, Hub, InvalidKey, make_key, parse_key
from tests.unit.unit_support import Recorder, publish

ANN = "ann, 0, /room"
BEN = "ben, 0, /room"
CAT = "cat, 0, /other"


class KeyTests(SynchronousTestCase):
    def test_parse_and_make_are_inverse(self):
        self.assertEqual(parse_key("ann, 0, /cherrychat"), ("ann", "0", "/cherrychat"))
        self.assertEqual(make_key("ann", "0", "/cherrychat"), "ann, 0, /cherrychat")

    def test_malformed_keys_raise_invalid_key(self):
        for key in ["", "ann", "ann, 0", "ann, 0, room", ", 0, /room", "ann, , /room",
                    "ann, 0, ", "ann, 0, /room, extra", "ann,0,/room"]:
            with self.assertRaises(InvalidKey, msg=repr(key)):
                parse_key(key)

    def test_event_with_an_invalid_key_publishes_nothing(self):
        hub = Hub(Clock())
        listener = Recorder()
        hub.subscribe(ANN, listener)
        with self.assertRaises(InvalidKey):
            publish(hub, [ANN, "not a key"], "x")
        self.assertEqual(listener.events, [])
        self.assertEqual(hub.channel("/room").last_id, 0)
        self.assertEqual(hub.published, 0)

    def test_subscribe_with_an_invalid_key_raises(self):
        hub = Hub(Clock())
        with self.assertRaises(InvalidKey):
            hub.subscribe("ann, 0", Recorder())
        self.assertEqual(hub.channels(), {})


class IdTests(SynchronousTestCase):
    def test_ids_increase_by_one_per_location(self):
        hub = Hub(Clock())
        ids = []
        for _ in range(3):
            (event,) = publish(hub, [ANN], "x")
            ids.append((event.location, event.id))
        (other,) = publish(hub, [CAT], "y")
        (again,) = publish(hub, [BEN], "z")
        self.assertEqual(ids, [("/room", 1), ("/room", 2), ("/room", 3)])
        self.assertEqual((other.location, other.id), ("/other", 1))
        self.assertEqual((again.location, again.id), ("/room", 4))

    def test_one_event_per_location_for_keys_in_several_locations(self):
        hub = Hub(Clock())
        publish(hub, [ANN], "first")
        events = publish(hub, [ANN, BEN, CAT], "both")
        by_location = {event.location: event for event in events}
        self.assertEqual(sorted(by_location), ["/other", "/room"])
        self.assertEqual(by_location["/room"].id, 2)
        self.assertEqual(by_location["/room"].recipients, frozenset({ANN, BEN}))
        self.assertEqual(by_location["/other"].id, 1)
        self.assertEqual(by_location["/other"].recipients, frozenset({CAT}))
        self.assertEqual(hub.published, 3)

    def test_event_time_comes_from_the_clock(self):
        clock = Clock()
        clock.advance(1234.5)
        (event,) = publish(Hub(clock), [ANN], "x")
        self.assertEqual(event.time, 1234.5)


class FanOutTests(SynchronousTestCase):
    def test_every_listener_of_every_key_gets_the_event_once_and_nothing_else(self):
        hub = Hub(Clock())
        ann1, ann2, ben, cat, dan = Recorder(), Recorder(), Recorder(), Recorder(), Recorder()
        hub.subscribe(ANN, ann1)
        hub.subscribe(ANN, ann2)
        hub.subscribe(BEN, ben)
        hub.subscribe(CAT, cat)
        hub.subscribe("dan, 0, /room", dan)
        # A key named twice is still one recipient.
        publish(hub, [ANN, BEN, ANN], "to ann and ben")
        publish(hub, [CAT], "to cat")
        self.assertEqual(ann1.payloads, ["to ann and ben"])
        self.assertEqual(ann2.payloads, ["to ann and ben"])
        self.assertEqual(ben.payloads, ["to ann and ben"])
        self.assertEqual(cat.payloads, ["to cat"])
        self.assertEqual(dan.payloads, [])
        # The very same event object, not copies.
        self.assertIs(ann1.events[0], ben.events[0])

    def test_a_listener_that_leaves_during_delivery_does_not_rob_the_next_one(self):
        # A long-poll answers (and unsubscribes) inside deliver(); a stream that recycles
        # or drops a slow client does the same.  The other listeners of the key must still
        # get the event.
        hub = Hub(Clock())

        class LeavesOnDelivery(Recorder):
            def deliver(self, event: Event) -> None:
                super().deliver(event)
                hub.unsubscribe(ANN, self)

        first, second = LeavesOnDelivery(), Recorder()
        hub.subscribe(ANN, first)
        hub.subscribe(ANN, second)
        publish(hub, [ANN], "hello")
        self.assertEqual(first.payloads, ["hello"])
        self.assertEqual(second.payloads, ["hello"])

    def test_unsubscribed_listener_gets_nothing_more(self):
        hub = Hub(Clock())
        listener = Recorder()
        hub.subscribe(ANN, listener)
        publish(hub, [ANN], "one")
        hub.unsubscribe(ANN, listener)
        publish(hub, [ANN], "two")
        self.assertEqual(listener.payloads, ["one"])
        # Unsubscribing an unknown listener or key is harmless.
        hub.unsubscribe(ANN, Recorder())
        hub.unsubscribe("zed, 0, /room", Recorder())

    def test_event_observers_see_every_event(self):
        hub = Hub(Clock())
        seen = []
        hub.observe_events(seen.append)
        events = publish(hub, [ANN, CAT], "x")
        self.assertEqual(seen, events)


class QueueTests(SynchronousTestCase):
    def test_events_to_a_key_without_listener_wait_and_come_as_backlog(self):
        hub = Hub(Clock())
        ben = Recorder()
        hub.subscribe(BEN, ben)
        publish(hub, [ANN, BEN], "one")
        publish(hub, [BEN], "for ben only")
        publish(hub, [ANN], "two")
        listener = Recorder()
        subscription = hub.subscribe(ANN, listener)
        self.assertFalse(subscription.gap)
        self.assertEqual(subscription.cursor, 0)
        self.assertEqual([(e.id, e.payload) for e in subscription.backlog], [(1, "one"), (3, "two")])
        self.assertEqual(listener.events, [])  # the backlog is not delivered twice
        publish(hub, [ANN], "live")
        self.assertEqual(listener.payloads, ["live"])

    def test_queue_is_consumed_once(self):
        hub = Hub(Clock())
        publish(hub, [ANN], "queued")
        first = hub.subscribe(ANN, Recorder())
        self.assertEqual([e.payload for e in first.backlog], ["queued"])
        second = hub.subscribe(ANN, Recorder())
        self.assertEqual(second.backlog, [])
        self.assertEqual(second.cursor, 1)

    def test_reconnect_without_id_continues_at_the_keys_cursor(self):
        hub = Hub(Clock())
        listener = Recorder()
        hub.subscribe(ANN, listener)
        publish(hub, [ANN], "seen")
        hub.unsubscribe(ANN, listener)
        publish(hub, [ANN], "missed")
        publish(hub, [BEN], "not ann's")
        subscription = hub.subscribe(ANN, Recorder())
        self.assertEqual((subscription.cursor, subscription.gap), (1, False))
        self.assertEqual([e.payload for e in subscription.backlog], ["missed"])

    def test_a_new_key_starts_after_the_newest_event(self):
        hub = Hub(Clock())
        publish(hub, [BEN], "before")
        publish(hub, [BEN], "before")
        subscription = hub.subscribe(ANN, Recorder())
        self.assertEqual((subscription.cursor, subscription.gap, subscription.backlog), (2, False, []))


class ResumeTests(SynchronousTestCase):
    def setUp(self):
        self.hub = Hub(Clock(), max_events=100)
        self.hub.subscribe(ANN, Recorder())
        self.hub.subscribe(BEN, Recorder())
        for n in range(1, 11):
            keys = [ANN] if n % 3 else [BEN]  # ids 3, 6, 9 go to ben only
            publish(self.hub, keys, f"e{n}")

    def test_last_event_id_gives_exactly_the_later_events_to_the_key_in_order(self):
        subscription = self.hub.subscribe(ANN, Recorder(), last_event_id=4)
        self.assertFalse(subscription.gap)
        self.assertEqual(subscription.cursor, 4)
        self.assertEqual([e.id for e in subscription.backlog], [5, 7, 8, 10])

    def test_last_event_id_zero_gives_everything_retained(self):
        subscription = self.hub.subscribe(BEN, Recorder(), last_event_id=0)
        self.assertFalse(subscription.gap)
        self.assertEqual([e.id for e in subscription.backlog], [3, 6, 9])

    def test_last_event_id_equal_to_newest_gives_nothing(self):
        subscription = self.hub.subscribe(ANN, Recorder(), last_event_id=10)
        self.assertEqual((subscription.cursor, subscription.gap, subscription.backlog), (10, False, []))

    def test_an_id_from_the_future_is_a_gap_at_the_newest_id(self):
        subscription = self.hub.subscribe(ANN, Recorder(), last_event_id=11)
        self.assertEqual((subscription.cursor, subscription.gap, subscription.backlog), (10, True, []))
        subscription = self.hub.subscribe(ANN, Recorder(), last_event_id=10**9)
        self.assertEqual((subscription.cursor, subscription.gap, subscription.backlog), (10, True, []))

    def test_live_events_follow_the_backlog(self):
        listener = Recorder()
        subscription = self.hub.subscribe(ANN, listener, last_event_id=8)
        publish(self.hub, [ANN], "e11")
        self.assertEqual([e.id for e in subscription.backlog] + listener.ids, [10, 11])


class RetentionTests(SynchronousTestCase):
    def test_retention_by_count(self):
        hub = Hub(Clock(), max_events=3)
        hub.subscribe(ANN, Recorder())
        for n in range(5):
            publish(hub, [ANN], f"e{n + 1}")
        channel = hub.channel("/room")
        self.assertEqual([e.id for e in channel.events], [3, 4, 5])
        self.assertEqual([e.id for e in channel.recent(2)], [4, 5])
        self.assertEqual([e.id for e in channel.recent(50)], [3, 4, 5])
        # Resuming right before the oldest retained event is exact...
        exact = hub.subscribe(ANN, Recorder(), last_event_id=2)
        self.assertEqual((exact.gap, [e.id for e in exact.backlog]), (False, [3, 4, 5]))
        # ... one further back is a gap, reported at the newest id.
        for older in (1, 0):
            gap = hub.subscribe(ANN, Recorder(), last_event_id=older)
            self.assertEqual((gap.gap, gap.cursor, gap.backlog), (True, 5, []))

    def test_retention_by_age(self):
        clock = Clock()
        hub = Hub(clock, max_events=100, max_age=60)
        hub.subscribe(ANN, Recorder())
        publish(hub, [ANN], "old")        # t=0
        clock.advance(30)
        publish(hub, [ANN], "newer")      # t=30
        clock.advance(31)              # t=61: "old" is past max_age, "newer" is not
        resumable = hub.subscribe(ANN, Recorder(), last_event_id=1)
        self.assertEqual((resumable.gap, [e.id for e in resumable.backlog]), (False, [2]))
        too_old = hub.subscribe(ANN, Recorder(), last_event_id=0)
        self.assertEqual((too_old.gap, too_old.cursor, too_old.backlog), (True, 2, []))
        # Old events stay in the history even though they can no longer be resumed from.
        self.assertEqual([e.payload for e in hub.channel("/room").recent(10)], ["old", "newer"])

    def test_sweep_forgets_keys_idle_longer_than_max_age(self):
        clock = Clock()
        hub = Hub(clock, max_events=100, max_age=60)
        publish(hub, [ANN], "queued for ann")   # ann has no listener: the event waits
        ben = Recorder()
        hub.subscribe(BEN, ben)
        clock.advance(59)
        hub.sweep()
        # Not idle long enough: ann's queue is intact.
        self.assertEqual(hub.listener_count(ANN), 0)
        clock.advance(2)
        hub.sweep()
        # Swept: ann starts over at the newest id, no stale queue, and no gap.
        subscription = hub.subscribe(ANN, Recorder())
        self.assertEqual((subscription.gap, subscription.cursor, subscription.backlog), (False, 1, []))
        # Keys with a listener are never swept.
        publish(hub, [BEN], "live")
        self.assertEqual(ben.payloads, ["live"])
        self.assertEqual(hub.listener_count(BEN), 1)

    def test_sweep_keeps_a_recently_idle_queue(self):
        clock = Clock()
        hub = Hub(clock, max_events=100, max_age=60)
        publish(hub, [ANN], "queued")
        clock.advance(30)
        hub.sweep()
        subscription = hub.subscribe(ANN, Recorder())
        self.assertEqual([e.payload for e in subscription.backlog], ["queued"])

    def test_restore_continues_ids(self):
        hub = Hub(Clock(), max_events=2)
        channel = hub.channel("/room")
        restored = [Event(n, 0.0, f"e{n}", "/room", frozenset({ANN})) for n in (7, 8, 9)]
        channel.restore(restored, 9)
        self.assertEqual([e.id for e in channel.events], [8, 9])
        (event,) = publish(hub, [ANN], "next")
        self.assertEqual(event.id, 10)


class PresenceTests(SynchronousTestCase):
    def test_observer_called_on_first_and_last_listener_only(self):
        hub = Hub(Clock())
        calls = []
        hub.observe_presence(lambda key, online: calls.append((key, online)))
        one, two = Recorder(), Recorder()
        hub.subscribe(ANN, one)
        self.assertEqual(calls, [(ANN, True)])
        hub.subscribe(ANN, two)
        self.assertEqual(calls, [(ANN, True)])
        hub.unsubscribe(ANN, one)
        self.assertEqual(calls, [(ANN, True)])
        hub.unsubscribe(ANN, two)
        self.assertEqual(calls, [(ANN, True), (ANN, False)])
        hub.unsubscribe(ANN, two)  # twice: no second "offline"
        self.assertEqual(calls, [(ANN, True), (ANN, False)])
        hub.subscribe(BEN, one)
        self.assertEqual(calls[-1], (BEN, True))

    def test_listener_count(self):
        hub = Hub(Clock())
        self.assertEqual(hub.listener_count(ANN), 0)
        a, b = Recorder(), Recorder()
        hub.subscribe(ANN, a)
        hub.subscribe(ANN, b)
        self.assertEqual(hub.listener_count(ANN), 2)
        hub.unsubscribe(ANN, a)
        self.assertEqual(hub.listener_count(ANN), 1)


class ForgetTests(SynchronousTestCase):
    def test_forget_drops_an_idle_keys_queue(self):
        hub = Hub(Clock())
        publish(hub, [ANN], "queued")
        hub.forget(ANN)
        subscription = hub.subscribe(ANN, Recorder())
        self.assertEqual((subscription.cursor, subscription.backlog), (1, []))

    def test_forget_keeps_a_key_with_listeners(self):
        hub = Hub(Clock())
        listener = Recorder()
        hub.subscribe(ANN, listener)
        hub.forget(ANN)
        self.assertEqual(hub.listener_count(ANN), 1)
        publish(hub, [ANN], "still here")
        self.assertEqual(listener.payloads, ["still here"])

    def test_forget_an_unknown_key_is_harmless(self):
        hub = Hub(Clock())
        hub.forget("zed, 0, /room")
        self.assertEqual(hub.listener_count("zed, 0, /room"), 0)
