"""``twistd -n cherrychat`` from the installed package, as a subprocess, chatting for real."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.integration_support import stop_process

SERVING = re.compile(rb"CherryChat serving on http://127\.0\.0\.1:(\d+)/")


def twistd_command() -> list[str]:
    """The installed ``twistd`` script beside this Python."""
    script = Path(sys.executable).with_name("twistd")
    return [str(script)] if script.exists() else [shutil.which("twistd") or "twistd"]


class TwistdDaemon:
    """A daemon started as a subprocess; stopped by its pid."""

    def __init__(self, *arguments: str, cwd: str):
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        # Unbuffered, so the log is whole even though twistd ends by re-raising SIGTERM.
        environment["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [*twistd_command(), "-n", "--pidfile=", "cherrychat", *arguments],
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = b""

    def wait_for_port(self, timeout: float = 20.0) -> int:
        """Read the log until the daemon says where it serves."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.2):
                    continue
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.output += chunk
                match = SERVING.search(self.output)
                if match:
                    return int(match.group(1))
        raise AssertionError(f"daemon did not start; it said:\n{self.output.decode(errors='replace')}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
        if self.process.stdout.closed:
            return self.process.returncode
        stop_process(self.process, timeout)
        self.output += self.process.stdout.read() or b""
        self.process.stdout.close()
        return self.process.returncode


class Page:
    """A browser session against the daemon, over plain ``http.client``."""

    def __init__(self, port: int):
        self.port = port
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        text = response.read().decode()
        connection.close()
        return response.status, text


class DaemonTestCase(SynchronousTestCase):
    """Starts the installed daemon the way users start it, in an empty directory."""

    def setUp(self) -> None:
        # An empty working directory: nothing of the source tree is importable from it.
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, True)

    def start(self, *arguments: str) -> int:
        daemon = TwistdDaemon("--listen", "tcp:0:interface=127.0.0.1", *arguments, cwd=self.directory)
        self.addCleanup(daemon.stop)
        self.daemon = daemon
        return daemon.wait_for_port()



class TwistdTests(DaemonTestCase):
    """``twistd -n cherrychat`` from the installed package."""

    def test_help_lists_every_option(self) -> None:
        result = subprocess.run(
            [*twistd_command(), "cherrychat", "--help"], cwd=self.directory, capture_output=True, timeout=60
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in ("--listen", "--presence-timeout", "--heartbeat", "--max-connections", "--retain-events",
                       "--no-access-log", "--orbit-listen", "--proxy", "--allowed-origin"):
            self.assertIn(option.encode(), result.stdout)

    def test_two_pages_chat_through_the_installed_daemon(self) -> None:
        port = self.start()
        ann, ben = Page(port), Page(port)
        status, page = ann.request("GET", "/static/chat.html")
        self.assertEqual(status, 200)
        self.assertIn('id="box"', page)
        self.assertEqual(ben.request("GET", "/static/orbited.js")[0], 200)

        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stream.request("GET", "/cherrychat?user=ben&session=0&transport=xhrstream", headers={"Cookie": ben.cookie})
        response = stream.getresponse()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.getheader("X-Accel-Buffering"), "no")

        def next_message() -> dict:
            while True:
                line = response.readline()
                if line.strip():
                    return json.loads(line)

        self.assertEqual(next_message()["type"], "open")
        self.assertEqual(ben.request("GET", "/join?user=ben"), (200, "joined\n"))
        self.assertEqual(ann.request("POST", "/join", "user=ann"), (200, "joined\n"))
        self.assertEqual(ann.request("GET", "/msg?ie_nocache=2&user=ann&msg=hi%20ben"), (200, "sent\n"))
        self.assertEqual(ben.request("GET", "/msg?user=ann&msg=forged")[0], 403)
        received = [next_message()["data"] for _ in range(3)]
        self.assertEqual(received, ["ben joined", "ann joined", "<b>ann</b> hi ben"])
        stream.close()
        # After a clean shutdown twistd exits by re-raising the signal that stopped it.
        self.assertIn(self.daemon.stop(), (0, -signal.SIGTERM))
        self.assertIn(b"Main loop terminated", self.daemon.output)


class RestartTests(DaemonTestCase):
    """Stopped with SIGTERM and started again on the same database, nothing is lost."""

    def test_history_and_ids_continue_and_a_reader_resumes_after_sigterm(self) -> None:
        database = os.path.join(self.directory, "chat.sqlite3")
        port = self.start("--database", database)
        ann = Page(port)
        self.assertEqual(ann.request("POST", "/join", "user=ann"), (200, "joined\n"))
        for n in range(3):
            self.assertEqual(ann.request("POST", "/msg", f"user=ann&msg=before+{n}")[0], 200)
        status, body = ann.request("GET", "/history?limit=2")
        before = json.loads(body)["events"]
        self.assertEqual([e["payload"] for e in before], ["<b>ann</b> before 1", "<b>ann</b> before 2"])
        last_seen = before[-1]["id"]
        self.assertIn(self.daemon.stop(), (0, -signal.SIGTERM))

        port = self.start("--database", database)
        ann.port = port
        status, body = ann.request("GET", "/history")
        self.assertEqual([e["id"] for e in json.loads(body)["events"]], list(range(1, last_seen + 1)))
        # Members stay members across the restart: no rejoin needed, none announced.
        self.assertEqual(json.loads(ann.request("GET", "/who")[1]), {"members": ["ann"]})
        self.assertEqual(ann.request("POST", "/msg", "user=ann&msg=after")[0], 200)
        self.assertEqual(ann.request("POST", "/join", "user=ann"), (200, "already joined\n"))
        status, body = ann.request("GET", f"/cherrychat?user=ann&session=0&transport=longpoll&last_event_id={last_seen}")
        messages = json.loads(body)
        self.assertEqual([(m["id"], m["data"]) for m in messages], [(last_seen + 1, "<b>ann</b> after")])

    def test_a_member_whose_page_is_slow_to_come_back_misses_nothing(self) -> None:
        database = os.path.join(self.directory, "chat.sqlite3")
        port = self.start("--database", database)
        ann, ben = Page(port), Page(port)
        self.assertEqual(ann.request("POST", "/join", "user=ann")[0], 200)
        self.assertEqual(ben.request("POST", "/join", "user=ben")[0], 200)
        status, body = ben.request("GET", "/history?limit=1")
        ben_saw = json.loads(body)["events"][-1]["id"]
        self.assertIn(self.daemon.stop(), (0, -signal.SIGTERM))

        ann.port = ben.port = self.start("--database", database)
        # Ann is back first and speaks before Ben's page has reconnected.
        self.assertEqual(ann.request("POST", "/msg", "user=ann&msg=anyone+there%3F")[0], 200)
        self.assertEqual(ann.request("POST", "/join", "user=ben")[0], 409)
        status, body = ben.request("GET", f"/cherrychat?user=ben&session=0&transport=longpoll&last_event_id={ben_saw}")
        self.assertEqual(status, 200)
        self.assertEqual([m["data"] for m in json.loads(body)], ["<b>ann</b> anyone there?"])

    def test_sigterm_tells_streams_to_reconnect_and_exits_promptly(self) -> None:
        port = self.start("--database", os.path.join(self.directory, "chat.sqlite3"))
        ann = Page(port)
        ann.request("GET", "/static/chat.html")
        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stream.request("GET", "/cherrychat?user=ann&session=0&transport=xhrstream", headers={"Cookie": ann.cookie})
        response = stream.getresponse()
        response.readline()  # the prelude
        self.assertEqual(json.loads(response.readline())["type"], "open")
        started = time.monotonic()
        self.daemon.process.send_signal(signal.SIGTERM)
        self.assertEqual(json.loads(response.readline()), {"type": "reconnect"})
        self.assertIn(self.daemon.process.wait(10), (0, -signal.SIGTERM))
        self.assertLess(time.monotonic() - started, 5)
        stream.close()
