"""A ``200`` is a promise: the installed daemon, killed or starved of disk at random
moments while several publishers burst, loses nothing it acknowledged, reuses no id, and a
client that resumes misses nothing and sees nothing twice."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import random
import resource
import signal
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field

from tests.integration.test_twistd import DaemonTestCase, Page

#: the per-session and per-address limits lifted, so publishers can burst; no access log,
#: whose thousands of lines would fill the pipe the test reads the daemon's log from
UNLIMITED = ("--rate-limit", "100000", "--rate-burst", "100000",
             "--address-rate-limit", "100000", "--address-rate-burst", "100000", "--no-access-log",
             "--retain-events", "100000", "--address-joins-per-minute", "100000")
#: how long one publisher keeps sending at most, and how many messages
BURST_SECONDS = 8.0
BURST_MESSAGES = 3000


@dataclass
class Publisher:
    """A member sending numbered messages on one keep-alive connection, from a thread,
    recording which were answered 200 and what every other answer was."""

    name: str
    port: int
    cookie: str
    tag: str = "pre"
    acknowledged: list[str] = field(default_factory=list)
    other_answers: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        deadline = time.monotonic() + BURST_SECONDS
        for n in range(BURST_MESSAGES):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            text = f"{self.name}-{self.tag}-{n:05}"
            try:
                connection.request("POST", "/msg", body=f"user={self.name}&msg={text}", headers={
                    "Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                break  # the daemon is gone: what was not answered was not promised
            if response.status == 200:
                self.acknowledged.append(f"<b>{self.name}</b> {text}")
            else:
                self.other_answers.append(response.status)
        connection.close()


class Reader:
    """A member's SSE stream, read in a thread: the (id, payload) of every event."""

    def __init__(self, port: int, page: Page, user: str, last_event_id: int | None = None):
        path = f"/cherrychat?user={user}&session=0&transport=sse"
        if last_event_id is not None:
            path += f"&last_event_id={last_event_id}"
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.connection.request("GET", path, headers={"Cookie": page.cookie})
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.status
        self.events: list[tuple[int, str]] = []
        self.gaps = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event_id = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    message = json.loads(line[6:])
                    if message.get("type") == "event":
                        self.events.append((message["id"], message["data"]))
                        assert event_id == message["id"]
                    elif message.get("type") == "reset":
                        self.gaps += 1
        except (OSError, ValueError, http.client.HTTPException):
            pass

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def close(self) -> None:
        self.connection.close()


class DurabilityTestCase(DaemonTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.database = os.path.join(self.directory, "chat.sqlite3")

    def history(self, page: Page) -> list[tuple[int, str]]:
        """What the restarted daemon serves as the room's history (its newest events)."""
        status, body = page.request("GET", "/history?limit=1000")
        self.assertEqual(status, 200, body)
        return [(e["id"], e["payload"]) for e in json.loads(body)["events"]]

    def stored(self) -> list[tuple[int, str]]:
        """Every event in the database file, read with SQLite itself: more than one
        /history answer holds when the publishers were fast."""
        with closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as connection:
            rows = connection.execute("SELECT id, payload FROM events WHERE location = '/cherrychat' ORDER BY id")
            return [(event_id, payload) for event_id, payload in rows]

    def members(self, port: int, names: list[str]) -> dict[str, Page]:
        pages = {}
        for name in names:
            page = Page(port)
            self.assertEqual(page.request("POST", "/join", f"user={name}")[0], 200)
            pages[name] = page
        return pages

    def burst(self, port: int, pages: dict[str, Page], tag: str = "pre") -> list[tuple[Publisher, threading.Thread]]:
        running = []
        for name, page in pages.items():
            publisher = Publisher(name, port, page.cookie, tag)
            thread = threading.Thread(target=publisher.run, daemon=True)
            thread.start()
            running.append((publisher, thread))
        return running

    def finish(self, running: list[tuple[Publisher, threading.Thread]]) -> None:
        for publisher, thread in running:
            publisher.stop.set()
            thread.join(15)
            self.assertFalse(thread.is_alive())

    def assert_kept_every_promise(self, history: list[tuple[int, str]], running, reader_events) -> None:
        ids = [event_id for event_id, _ in history]
        self.assertEqual(len(ids), len(set(ids)), "an id was used twice")
        self.assertEqual(ids, sorted(ids))
        payloads = [payload for _, payload in history]
        for publisher, _ in running:
            for text in publisher.acknowledged:
                self.assertEqual(payloads.count(text), 1, f"acknowledged {text!r} is not stored exactly once")
        # Whatever a client was shown is stored, under the same id.
        stored = dict(history)
        for event_id, payload in reader_events:
            self.assertEqual(stored.get(event_id), payload, f"id {event_id} was shown as {payload!r}")


class KillTests(DurabilityTestCase):
    """SIGKILL at a random moment of a burst from several publishers, then a restart."""

    trials = 4

    def test_nothing_acknowledged_is_lost_and_no_id_is_reused_across_sigkill(self) -> None:
        chooser = random.Random(20261130)
        for trial in range(self.trials):
            port = self.start("--database", self.database, *UNLIMITED)
            names = [f"p{trial}x{n}" for n in range(3)]
            pages = self.members(port, names + [f"r{trial}"])
            reader_page = pages.pop(f"r{trial}")
            reader = Reader(port, reader_page, f"r{trial}")
            running = self.burst(port, pages)
            time.sleep(chooser.uniform(0.3, 1.5))  # a random moment of the burst
            self.daemon.process.send_signal(signal.SIGKILL)
            self.daemon.process.wait(10)
            self.finish(running)
            reader.close()
            self.assertGreater(sum(len(p.acknowledged) for p, _ in running), 0, "nothing was sent before the kill")
            seen_before = list(reader.events)

            port = self.start("--database", self.database, *UNLIMITED)
            self.assertIn(b"did not stop cleanly", self.daemon.output)
            for page in [*pages.values(), reader_page]:
                page.port = port
            # The reader resumes after the last id it saw, while others speak again.
            last_seen = seen_before[-1][0] if seen_before else 0
            resumed = Reader(port, reader_page, f"r{trial}", last_event_id=last_seen)
            after = self.burst(port, {names[0]: pages[names[0]]}, "post")
            time.sleep(0.3)
            self.finish(after)
            history = self.stored()
            self.assertEqual(self.history(reader_page), history[-len(self.history(reader_page)):])
            expected = [(i, p) for i, p in history if i > last_seen]
            self.assertTrue(resumed.wait_for(lambda: len(resumed.events) >= len(expected)), "the resumed reader stalled")
            resumed.close()
            self.assertEqual(resumed.gaps, 0)
            # Exactly what was stored after the last id it saw: nothing missed, nothing twice.
            self.assertEqual(resumed.events[:len(expected)], expected)
            self.assert_kept_every_promise(history, running + after, seen_before + resumed.events)
            self.daemon.process.send_signal(signal.SIGKILL)
            self.daemon.process.wait(10)


class TermTests(DurabilityTestCase):
    def test_after_sigterm_every_answer_is_stored_or_refused(self) -> None:
        port = self.start("--database", self.database, *UNLIMITED)
        pages = self.members(port, ["ann", "ben", "cat"])
        running = self.burst(port, pages)
        time.sleep(0.8)
        self.daemon.process.send_signal(signal.SIGTERM)
        self.daemon.process.wait(15)
        self.finish(running)
        # Refusals after the signal are 503s; nothing else.
        for publisher, _ in running:
            self.assertTrue(set(publisher.other_answers) <= {503}, publisher.other_answers)
        port = self.start("--database", self.database, *UNLIMITED)
        self.assertNotIn(b"did not stop cleanly", self.daemon.output)
        page = pages["ann"]
        page.port = port
        self.assertTrue(self.history(page))
        self.assert_kept_every_promise(self.stored(), running, [])


class FullDiskTests(DurabilityTestCase):
    """The daemon's file size limit lowered to nothing while it runs: writes fail as on a
    full disk. Publishing answers 503 and /healthz says so; raised again, it recovers."""

    def test_a_disk_that_cannot_be_written_refuses_loudly_and_recovers(self) -> None:
        port = self.start("--database", self.database, "--database-sync", "normal", *UNLIMITED)
        ann = self.members(port, ["ann"])["ann"]
        self.assertEqual(ann.request("POST", "/msg", "user=ann&msg=before")[0], 200)
        pid = self.daemon.process.pid
        limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        self.addCleanup(lambda: self.daemon.process.poll() is None and resource.prlimit(pid, resource.RLIMIT_FSIZE, limits))
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, limits[1]))
        answers = [ann.request("POST", "/msg", f"user=ann&msg=starved+{n}") for n in range(50)]
        refused = [(status, text) for status, text in answers if status != 200]
        self.assertEqual(len(refused), 50, answers[:3])
        self.assertEqual({status for status, _ in refused}, {503})
        self.assertIn("storage unavailable", refused[0][1])
        self.assertEqual(ann.request("GET", "/healthz")[0], 503)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
        deadline = time.monotonic() + 10
        while ann.request("POST", "/msg", "user=ann&msg=after")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(ann.request("GET", "/healthz"), (200, "ok\n"))
        self.daemon.stop()
        # One line when writing failed, one when it worked again; not one per request.
        self.assertEqual(self.daemon.output.count(b"cannot write"), 1, self.daemon.output.decode(errors="replace"))
        self.assertEqual(self.daemon.output.count(b"is writable again"), 1)
        port = self.start("--database", self.database, *UNLIMITED)
        ann.port = port
        payloads = [payload for _, payload in self.history(ann)]
        self.assertIn("<b>ann</b> before", payloads)
        self.assertIn("<b>ann</b> after", payloads)
        self.assertFalse([p for p in payloads if "starved" in p])
