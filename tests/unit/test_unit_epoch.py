"""Epochs: an id only resumes within the history it was counted in."""

from __future__ import annotations

import os
import tempfile

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.hub import Hub
from cherrychat.store import HistoryStore
from tests.unit.unit_support import Recorder

KEY = "ann, 0, /cherrychat"


class EpochTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hub = Hub(Clock())
        self.hub.subscribe(KEY, Recorder())
        for n in range(3):
            self.hub.event([KEY], f"e{n}")

    def test_same_epoch_resumes_exactly(self) -> None:
        subscription = self.hub.subscribe(KEY, Recorder(), last_event_id=1, epoch=self.hub.epoch)
        self.assertFalse(subscription.gap)
        self.assertEqual([e.id for e in subscription.backlog], [2, 3])

    def test_another_epoch_is_a_gap_even_when_the_id_exists(self) -> None:
        subscription = self.hub.subscribe(KEY, Recorder(), last_event_id=1, epoch="a-wiped-history")
        self.assertTrue(subscription.gap)
        self.assertEqual((subscription.cursor, subscription.backlog), (3, []))

    def test_no_epoch_keeps_the_id_only_check(self) -> None:
        self.assertFalse(self.hub.subscribe(KEY, Recorder(), last_event_id=1).gap)

    def test_each_memory_hub_has_its_own_epoch(self) -> None:
        self.assertNotEqual(Hub(Clock()).epoch, Hub(Clock()).epoch)


class StoredEpochTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()

    def test_a_database_file_keeps_its_epoch_and_a_new_file_gets_a_new_one(self) -> None:
        path = os.path.join(self.directory, "a.sqlite3")
        first, again, other = Hub(Clock()), Hub(Clock()), Hub(Clock())
        HistoryStore(path, Clock()).load_into(first)
        HistoryStore(path, Clock()).load_into(again)
        HistoryStore(os.path.join(self.directory, "b.sqlite3"), Clock()).load_into(other)
        self.assertEqual(first.epoch, again.epoch)
        self.assertNotEqual(first.epoch, other.epoch)
