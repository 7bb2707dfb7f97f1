"""nginx in front of two daemons sharing Redis, with the shipped docs/deploy/nginx.conf."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from twisted.internet.defer import Deferred, inlineCallbacks

from tests.integration.integration_support import settle, stop_process
from tests.redis.redis_support import SOURCE_TREE, RedisTestCase, free_port, require
from tests.support import wait_until

SHIPPED = SOURCE_TREE / "docs" / "deploy" / "nginx.conf"

MAIN = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    access_log off;
    include {dir}/cherrychat.conf;
}}
"""


def site_config(port: int, upstreams: list[int], directory: str) -> str:
    """The shipped site, with only its ports and paths changed for the test."""
    text = SHIPPED.read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{port};",
        "listen [::]:80;": "",
        "server 127.0.0.1:4701 ": f"server 127.0.0.1:{upstreams[0]} ",
        "server 127.0.0.1:4702 ": f"server 127.0.0.1:{upstreams[1]} ",
        "/var/log/nginx/": f"{directory}/",
    }
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in {SHIPPED}"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground with its own prefix, pid file, temp paths and logs."""

    def __init__(self, upstreams: list[int]):
        self.program = require("nginx", "/usr/sbin/nginx")
        self.directory = tempfile.mkdtemp(prefix="cherrychat-nginx-")
        # Workers run as an unprivileged user when the tests run as root.
        os.chmod(self.directory, 0o755)
        self.port = free_port()
        with open(os.path.join(self.directory, "cherrychat.conf"), "w") as site:
            site.write(site_config(self.port, upstreams, self.directory))
        with open(os.path.join(self.directory, "nginx.conf"), "w") as main:
            main.write(MAIN.format(dir=self.directory))
        self.process: subprocess.Popen | None = None

    def start(self) -> Deferred:
        """Start nginx in the foreground; fires once it accepts connections."""
        self.process = subprocess.Popen(
            [self.program, "-p", self.directory, "-c", os.path.join(self.directory, "nginx.conf"),
             "-e", os.path.join(self.directory, "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return wait_until(self.listening, "nginx to listen", timeout=10.0)

    def listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{self.log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        try:
            with open(os.path.join(self.directory, "error.log")) as log:
                return log.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop by pid: SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.directory, True)


class NginxTests(RedisTestCase):
    """Chat through nginx on every transport; events arrive at once, unbuffered."""

    daemons = 2

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.nginx = Nginx([int(base.rsplit(":", 1)[1]) for base in self.bases])
        self.addCleanup(self.nginx.stop)
        yield self.nginx.start()
        self.base = f"http://127.0.0.1:{self.nginx.port}"

    @inlineCallbacks
    def test_every_transport_through_the_proxy_gets_events_promptly(self):
        transports = ["websocket", "sse", "xhrstream", "iframe", "longpoll"]
        browsers, streams = {}, {}
        for transport in transports:
            browsers[transport] = yield self.browser(self.base)
            streams[transport] = yield self.connect(browsers[transport], transport, transport)
        # least_conn spread the connections over both daemons.
        counts = [len(service.comet.connections) for service in self.services]
        self.assertTrue(all(counts), counts)
        for count, transport in enumerate(transports, 1):
            self.assertEqual((yield browsers[transport].post("/join", user=transport)), (200, "joined\n"))
            # A join soon after another on the same daemon is announced at the end of the
            # presence window: wait for it, so that the notices stay in join order.
            yield streams["websocket"].wait_for_events(count, timeout=5.0)
        yield streams["longpoll"].wait_for_events(1)
        joins = len(transports)
        for round_ in range(3):
            for transport in transports:
                # A held long-poll answers with one event; its next poll must be held
                # again before the next message, or it would get two in one answer.
                yield wait_until(lambda: any(s.hub.listener_count("longpoll, 0, /cherrychat") for s in self.services), "the next poll", timeout=10.0)
                started = time.monotonic()
                status = yield browsers[transport].get("/msg", user=transport, msg=f"{round_} via {transport}")
                self.assertEqual(status, (200, "sent\n"))
                expected = joins + round_ * len(transports) + transports.index(transport) + 1
                for index, receiver in enumerate(transports):
                    # Well below anything a buffering proxy would flush at (4-8 KiB or
                    # the end of the response): each event arrives within two seconds.
                    yield streams[receiver].wait_for_events(expected - index, timeout=2.0)
                self.assertLess(time.monotonic() - started, 2.0)
        yield wait_until(lambda: any(s.hub.listener_count("longpoll, 0, /cherrychat") for s in self.services), "the next poll", timeout=10.0)
        yield settle(browsers["websocket"], "websocket", streams.values())  # a stray event would show up now
        everything = streams["websocket"].payloads
        self.assertEqual(len(everything), joins + 3 * len(transports))
        for index, transport in enumerate(transports):
            self.assertEqual(streams[transport].payloads, everything[index:], transport)
        status, body = yield browsers["sse"].get("/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        # nginx answered (it consumes X-Accel-Buffering and names itself).
        self.assertTrue(streams["iframe"].headers.getRawHeaders("server")[0].startswith("nginx"))
