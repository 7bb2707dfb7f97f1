"""What the Redis tests share: a real ``redis-server``, daemons that use it, and waiting.

``redis-server`` (and ``nginx`` for the proxy test) are Debian packages; ``scripts/test``
installs them. A test that needs a missing one is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SkipTest
from twisted.web.client import Agent

from tests.integration.clients import Browser
from tests.integration.integration_support import DaemonTestCase, stop_process
from tests.integration.test_twistd import TwistdDaemon, twistd_command
from tests.support import wait_until

SOURCE_TREE = Path(__file__).resolve().parents[2]
CHAT = "/cherrychat"


def require(name: str, *candidates: str) -> str:
    """The path of a program the test needs: skip without it, or fail when ``CI=true``."""
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} is not installed (scripts/test installs it with apt-get)"
    if os.environ.get("CI") == "true":
        raise AssertionError(message)
    raise SkipTest(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of the test's own, on a free port, its files in a temp dir.

    By default every write is in the append-only file before Redis answers
    (``appendfsync always``), so a Redis killed and started again has everything it
    acknowledged; ``persistence`` replaces those settings (e.g. ``("--appendonly", "yes",
    "--appendfsync", "everysec")``).
    """

    def __init__(self, persistence: tuple[str, ...] = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")) -> None:
        self.persistence = persistence
        self.program = require("redis-server", "/usr/bin/redis-server")
        self.directory = tempfile.mkdtemp(prefix="cherrychat-redis-")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Deferred:
        """Start ``redis-server``; fires with this server once it answers PING."""
        self.process = subprocess.Popen(
            [
                self.program, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.directory,
                *self.persistence, "--daemonize", "no",
                "--logfile", os.path.join(self.directory, "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return wait_until(self.answers, "redis-server to answer PING", timeout=10.0).addCallback(lambda _: self)

    def answers(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"redis-server exited; see {self.directory}/redis.log")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash; the port is free again when this returns."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Stop by pid and remove the files."""
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.directory, True)


class SourceTwistd(TwistdDaemon):
    """``twistd -n cherrychat`` running this source tree (the installed copy may be older)."""

    def __init__(self, *arguments: str, cwd: str):
        environment = dict(os.environ, PYTHONPATH=str(SOURCE_TREE), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*twistd_command(), "-n", "--pidfile=", "cherrychat", *arguments],
            cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.output = b""

    def kill(self) -> None:
        """SIGKILL: the daemon dies without a word to its clients."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def browser_at(browser: Browser, base: str) -> Browser:
    """The same browser (same cookies, so the same session) talking to another daemon."""
    moved = Browser(reactor, base)
    moved.cookies = browser.cookies
    moved.http = HTTPClient(Agent(reactor, pool=moved.pool), cookiejar=browser.cookies)
    return moved


class RedisTestCase(DaemonTestCase):
    """A Redis server per test, daemons sharing it, and clients closed at the end."""

    timeout = 60
    daemons = 3
    daemon_arguments: tuple[str, ...] = ()

    #: the redis-server's persistence settings (None: RedisServer's default)
    redis_persistence: tuple[str, ...] | None = None

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.redis_persistence) if self.redis_persistence else RedisServer()
        self.addCleanup(self.redis.stop)
        yield self.redis.start()
        self.bases: list[str] = []
        for _ in range(self.daemons):
            yield self.start_daemon()

    @inlineCallbacks
    def start_daemon(self, *arguments: str):
        """Start a daemon using this test's Redis; fires once it has reached Redis."""
        service, base = yield super().start_daemon("--redis", self.redis.url, *self.daemon_arguments, *arguments)
        self.bases.append(base)
        yield wait_until(service.backplane.healthy, "the daemon to reach redis", timeout=10.0)
        return service, base

    @inlineCallbacks
    def browser(self, base: str):
        """A browser that loaded the chat page from ``base``, and so holds a session."""
        browser = self.add_browser(base)
        status, _ = yield browser.get("/static/chat.html")
        self.assertEqual(status, 200)
        return browser

    def move(self, browser: Browser, base: str) -> Browser:
        """``browser`` talking to the daemon at ``base`` from now on."""
        moved = browser_at(browser, base)
        self.browsers.append(moved)
        return moved

    @inlineCallbacks
    def connect(self, browser: Browser, user: str, transport: str, **kwargs):
        """Open a comet connection; fires with the client once it is open."""
        client = self.add_client(browser, user, transport)
        status = yield client.connect(**kwargs)
        self.assertEqual(status, 101 if transport == "websocket" else 200, getattr(client, "body", ""))
        if transport != "longpoll" or "last_event_id" not in kwargs:
            yield client.wait_opened()
        return client

    def listening(self, service: Any, user: str, session: str = "0"):
        """Wait until ``service`` holds a connection for ``user``."""
        key = f"{user}, {session}, {CHAT}"
        return wait_until(lambda: service.hub.listener_count(key), f"a connection for {key!r}", timeout=10.0)
