"""Each attack of issue 14 against the installed ``twistd -n cherrychat`` on loopback: the
bound holds, and a well-behaved client beside it (from its own address) still gets its
events with a p99 under 100 ms meanwhile.

Attack sizes are hundreds, not tens of thousands, and the floods of many small requests
are paced a few milliseconds apart (the bound they prove is a count, not a speed): the
machine is small and shared, with the attacker, the daemon and the side client on two
cores. ``python -m bench`` measures the same attacks' effect on latency at full speed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter

from twisted.trial.unittest import SynchronousTestCase

from tests import hostile_clients as hostile
from tests.integration.test_twistd import TwistdDaemon, twistd_command

P99_BOUND = 0.100  # seconds
# The side client sends many messages: its own rate bounds are raised.
SIDE = ("--rate-burst", "100000", "--address-rate-burst", "100000", "--no-access-log")


class HostileTestCase(SynchronousTestCase):
    """A daemon per test, from the installed package, in an empty directory."""

    def start(self, *arguments: str) -> int:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        # A listen queue that holds a burst of hundreds of connects (Twisted's default is 50).
        self.daemon = TwistdDaemon("--listen", "tcp:0:interface=127.0.0.1:backlog=1024", "--database", ":memory:", *SIDE, *arguments,
                                   cwd=directory)
        self.addCleanup(self.daemon.stop)
        self.port = self.daemon.wait_for_port()
        self.side = hostile.SideClient(self.port)
        self.addCleanup(self.side.close)
        # The same client before any attack: a failure then says whether the machine
        # itself was slow (this one is small and shared).
        self.baseline = hostile.percentile(self.side.measure(50, 0.01), 0.99)
        self.side.latencies.clear()
        return self.port

    def rss(self) -> int:
        return hostile.rss_bytes(self.daemon.process.pid)

    def assertSideWasServed(self, minimum: int = 100) -> None:
        """The side client's messages all arrived, p99 under the bound."""
        self.assertEqual(self.side.errors, [])
        latencies = self.side.latencies
        self.assertGreaterEqual(len(latencies), minimum)
        p99 = hostile.percentile(latencies, 0.99)
        worst = [round(x * 1000, 1) for x in sorted(latencies)[-5:]]
        self.assertLess(p99, P99_BOUND, f"side p99 {p99 * 1000:.1f} ms over {len(latencies)} messages; worst {worst} ms; "
                                        f"before the attack: p99 {self.baseline * 1000:.1f} ms")


class SlowlorisTests(HostileTestCase):
    def test_half_sent_requests_are_bounded_per_address_and_timed_out(self) -> None:
        port = self.start("--max-connections-per-address", "200", "--request-timeout", "4", "--idle-timeout", "5")
        started = time.monotonic()
        sockets = hostile.slowloris(port, 300, pace=0.005)
        self.assertLess(time.monotonic() - started, 3.5)  # all are in before any deadline
        self.addCleanup(lambda: [sock.close() for sock in sockets])
        side = self.side.measure_in_background(100, 0.01)
        for n in range(2):  # a header line a second: Twisted's idle timer alone would wait
            time.sleep(1)
            hostile.drip(sockets, n)
        side.join(30)
        self.assertSideWasServed()
        # Past the cap (200 from 127.0.0.1) connections were refused at once; at the request
        # deadline every held one got its 408 and was closed. (The kernel's accept queue
        # may reorder the connections, so which ones is not known in advance.)
        deadline = started + 4 + 4
        answers = [hostile.read_until_closed(sock, max(0.1, deadline - time.monotonic())) for sock in sockets]
        self.assertEqual(Counter(hostile.status_of(answer) for answer in answers), {429: 100, 408: 200})
        self.assertLess(time.monotonic() - started, 4 + 4)
        # And the address may connect again.
        self.assertEqual(hostile.request(port, "GET", "/healthz")[0], 200)

    def test_idle_keep_alive_connections_close(self) -> None:
        port = self.start("--idle-timeout", "1")
        sock = hostile.connect(port)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        answer = hostile.read_until_closed(sock, 10)
        self.assertEqual(hostile.status_of(answer), 200)
        self.assertLess(time.monotonic() - started, 5)  # closed by the daemon, not the timeout here


class PipelineTests(HostileTestCase):
    def test_pipelined_history_never_read_is_closed_and_costs_little(self) -> None:
        port = self.start()
        for n in range(150):  # a history worth sending: ~1 KiB events
            self.side.say(f"fill-{n}-" + "x" * 1000)
        self.side.latencies.clear()
        before = self.rss()
        attacker = hostile.pipelined_history(port, 250)
        self.addCleanup(attacker.close)
        self.side.measure(100, 0.01)
        peak = self.rss()
        self.assertSideWasServed()
        # The daemon answered a few, then closed: nowhere near 250 answers were made.
        received = hostile.read_until_closed(attacker, 20)
        answers = received.count(b"HTTP/1.1 200 ")
        self.assertGreaterEqual(answers, 1)
        self.assertLess(answers, 20)
        self.assertLess(peak - before, 50 * 1024 * 1024)


class WebSocketTests(HostileTestCase):
    def test_a_message_that_never_ends_is_closed_with_1009(self) -> None:
        port = self.start()
        cookie = hostile.new_session(port)
        sock, head = hostile.websocket(port, cookie, "mallory")
        self.addCleanup(sock.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        before = self.rss()
        side = self.side.measure_in_background(100, 0.01)
        sent, received = hostile.endless_message(sock, 5)
        side.join(30)
        self.assertSideWasServed()
        # A close frame with 1009 came back, after no more than the socket buffers' worth.
        self.assertIn(b"\x88", received)
        self.assertEqual(received.partition(b"\x88")[2][1:3], (1009).to_bytes(2, "big"))
        self.assertLess(sent, 16 * 1024 * 1024)
        self.assertLess(self.rss() - before, 20 * 1024 * 1024)

    def test_refused_handshakes_answer_400_and_leak_no_count(self) -> None:
        port = self.start()
        cookie = hostile.new_session(port)
        target = "GET /cherrychat?user=eve&session=1&transport=websocket HTTP/1.1\r\n"
        common = f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {hostile.KEY}\r\nCookie: {cookie}\r\n"
        bad = [
            (target + "Host: 127.0.0.1\r\nConnection: x-upgrade\r\n" + common + "\r\n").encode(),
            (target + "Connection: Upgrade\r\n" + common + "\r\n").encode(),
            (target + "Host: xn--a\r\nConnection: Upgrade\r\n" + common + "\r\n").encode(),
        ]
        side = self.side.measure_in_background(100, 0.01)
        codes = set()
        for n in range(300):
            sock, head = hostile.websocket(port, cookie, "eve", handshake=bad[n % 3])
            codes.add(hostile.status_of(head))
            sock.close()
            time.sleep(0.005)
        side.join(30)
        self.assertSideWasServed()
        self.assertEqual(codes, {400})
        # The session is not locked out: all of its 20 connections are still there to take.
        held = []
        for _ in range(20):
            sock, head = hostile.websocket(port, cookie, "eve")
            held.append(sock)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        for sock in held:
            sock.close()


class SessionFloodTests(HostileTestCase):
    def test_fresh_sessions_joining_are_bounded_per_address(self) -> None:
        port = self.start()
        self.side.say("said before the flood")
        side = self.side.measure_in_background(100, 0.01)
        started = time.monotonic()
        codes = hostile.session_flood(port, 200, pace=0.005)
        elapsed = time.monotonic() - started
        side.join(30)
        self.assertSideWasServed()
        # --address-joins-per-minute: 60 at once, then one a second
        self.assertLessEqual(codes.count(200), 60 + int(elapsed) + 1)
        self.assertEqual(set(codes) - {200}, {429})
        self.assertIn("<b>side</b> said before the flood", hostile.history_payloads(port))

    def test_look_alike_nicknames_are_refused(self) -> None:
        port = self.start()
        cookie = hostile.new_session(port)
        for name in ("side%E2%80%8B", "%E2%80%AEoob"):
            status, _, body = hostile.request(port, "POST", "/join", cookie, f"user={name}")
            self.assertEqual((status, body), (400, b"nickname contains invisible or text-direction characters\n"))
        self.assertEqual(json.loads(hostile.request(port, "GET", "/who")[2]), {"members": ["side"]})


class ListenTests(SynchronousTestCase):
    def test_a_daemon_whose_port_is_taken_exits_at_once_with_one_line(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 (the installed twistd, fixed arguments)
            [*twistd_command(), "-n", "--pidfile=", "cherrychat", "--database", ":memory:", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            cwd=directory, capture_output=True, timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertLess(time.monotonic() - started, 30)
        output = (result.stdout + result.stderr).decode()
        lines = [line for line in output.splitlines() if "cannot listen" in line]
        self.assertEqual(len(lines), 1, output)
        self.assertIn(f"cherrychat: cannot listen on tcp:{port}:interface=127.0.0.1: ", lines[0])
        self.assertIn("Address already in use", lines[0])
        self.assertNotIn("Traceback", output)
