"""What every suite shares: the one bounded wait, and the in-memory web daemon's helpers.

- :func:`wait_until`: wait, in the test's reactor, until a condition holds; bounded in
  time, and failing the test with what it waited for.
- :func:`until_connections_closed`: wait until the reactor holds no TCP connection, so
  that trial finds a clean reactor after a test closed or aborted its sockets.
- :func:`daemon_state`: what a refused request must not change, for the tests that show
  a refusal changes nothing.
- :func:`cooperate_on_clock`: run ``twisted.web.static.File``'s cooperative task on a
  ``task.Clock``, so that static files are served synchronously in memory.

Test modules import these absolutely: ``from tests.support import wait_until``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import twisted.internet._producer_helpers as producer_helpers
from twisted.internet import reactor, tcp
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, Cooperator, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest

#: The daemon's static files, in the source tree.
STATIC = Path(__file__).resolve().parents[1] / "static"

#: The nicknames whose holders :func:`daemon_state` records.
NAMES = ("ann", "ben", "eve", "zed", "a" * 33)


@inlineCallbacks
def wait_until(condition: Callable[[], Any], what: str, timeout: float = 5.0, step: float = 0.01) -> Deferred:
    """Wait until ``condition()`` holds, checking every ``step`` seconds of the reactor.

    ``condition`` may return a Deferred; its result is what counts. The wait is bounded
    twice: at most ``timeout / step`` checks, and no check starts after ``timeout``
    seconds; when either runs out the test fails with a message naming ``what``.
    """
    deadline = reactor.seconds() + timeout
    for _ in range(int(timeout / step) + 1):
        if (yield condition()):
            return
        if reactor.seconds() >= deadline:
            break
        yield deferLater(reactor, step, lambda: None)
    raise FailTest(f"timed out after {timeout} s waiting for {what}")


def open_connections() -> list[Any]:
    """The TCP connections (client or server side) the reactor still reads or writes."""
    selectables = set(reactor.getReaders()) | set(reactor.getWriters())
    return [selectable for selectable in selectables if isinstance(selectable, tcp.Connection)]


def until_connections_closed(timeout: float = 5.0) -> Deferred:
    """Wait until every TCP connection of the test has finished closing (an aborted
    connection is let go a reactor turn or two later), bounded by ``timeout``."""
    return wait_until(lambda: not open_connections(), "the test's TCP connections to close", timeout)


def fired(value: Any) -> Any:
    """``value``, or the result of ``value`` if it is a Deferred that has fired (the
    in-memory room answers at once, whether or not its API returns Deferreds)."""
    if not isinstance(value, Deferred):
        return value
    results: list[Any] = []
    value.addBoth(results.append)
    if not results:
        raise FailTest(f"{value!r} has not fired")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def daemon_state(hub: Any, chat: Any, comet: Any) -> dict[str, Any]:
    """What a refused request must not change: members, history, ids, nickname holders
    and open comet connections of the chat room ``chat`` on ``hub``."""
    channel = hub.channel(chat.location)
    return {
        "members": fired(chat.members()),
        "history": [(e.id, e.payload) for e in channel.recent(10**6)],
        "last_id": channel.last_id,
        "published": hub.published,
        "holders": {name: fired(chat.holder_of(name)) for name in NAMES},
        "connections": len(comet.connections),
    }


def cooperate_on_clock(testcase: Any) -> Clock:
    """Run the global cooperator's tasks on a new ``Clock``, for the rest of ``testcase``.

    ``twisted.web.static.File`` streams through ``twisted.internet.task.cooperate``, which
    runs on the global reactor; the returned clock runs it instead (``advance(0)``).
    """
    clock = Clock()
    cooperator = Cooperator(scheduler=lambda work: clock.callLater(0, work))
    testcase.patch(producer_helpers, "cooperate", cooperator.cooperate)
    return clock
