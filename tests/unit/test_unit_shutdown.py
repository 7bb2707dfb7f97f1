"""A daemon that is shutting down takes no new comet connection."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.comet import Comet
from cherrychat.errors import Unavailable
from cherrychat.hub import Hub


class ShutdownTests(SynchronousTestCase):
    def test_connections_are_refused_once_stopping(self) -> None:
        comet = Comet(Hub(Clock()), Clock())
        comet.start()
        comet.admit()
        comet.stop()
        with self.assertRaises(Unavailable) as caught:
            comet.admit()
        self.assertEqual((caught.exception.code, caught.exception.reason), (503, "shutting down, reconnect shortly"))
