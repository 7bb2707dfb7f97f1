"""Start the real daemon service in the test's reactor, on a loopback port chosen by the OS."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from cherrychat.tap import CherryChatService, Options


@inlineCallbacks
def start_daemon(*arguments: str, clock: Any = None):
    """Start a :class:`CherryChatService` listening on ``127.0.0.1:0``.

    Returns ``(service, base_url)``; the caller stops the service. A ``clock`` (a
    ``task.Clock``) drives the daemon's timers instead of the reactor.
    """
    options = Options()
    options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1", "--database", ":memory:", *arguments])
    service = CherryChatService(options, reactor, clock)
    service.startService()
    port = yield service.listeners[0].when_listening()
    return service, f"http://127.0.0.1:{port.getHost().port}"


def stop_daemon(service: Any):
    """Stop the service and its listener."""
    return service.stopService()
