"""The benchmark's own rules that a run cannot show: which daemon bounds the room scenarios
lift, and how the report judges issue 13's and issue 12's targets from a run's figures."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from bench.plans import plan
from bench.report_scenarios import chat_targets, durable_section
from bench.servers import LIFTED_LIMITS, lifted_limits

HELP = """Usage: python -m twisted [options] plugin [plugin_options] cherrychat [options]
Options:
      --address-rate-burst=           /join and /msg one client address may send
                                      at once. [default: 2000]. Must be
                                      positive.
      --address-rate-limit=           /join and /msg per second from one client
                                      address. [default: 50.0].
      --max-connections-per-address=  Open comet connections from one client
                                      address; more get 429. [default: 1000].
      --max-new-sessions-per-address= New sessions per minute from one address.
                                      [default: 120]. Must be positive.
      --joins-per-minute=             Joins per minute from one address.
                                      [default: 60.0]
      --trusted-address=              A proxy's address. [default: 127.0.0.1]
      --database=                     SQLite file. [default: cherrychat.sqlite3]
"""


class LiftedLimitsTests(TestCase):
    """The one list of lifted bounds, and the bounds recognised beside it."""

    def test_only_options_the_daemon_has(self) -> None:
        """An option of LIFTED_LIMITS the daemon does not list is not passed (it would stop
        an older daemon from starting)."""
        argv = lifted_limits(HELP)
        passed = set(argv[::2])
        self.assertIn("--address-rate-limit", passed)
        self.assertIn("--max-connections-per-address", passed)
        self.assertNotIn("--presence-timeout", passed)
        self.assertNotIn("--rate-limit", passed)
        self.assertEqual(argv[argv.index("--address-rate-limit") + 1], dict(LIFTED_LIMITS)["--address-rate-limit"])

    def test_new_numeric_bounds_are_lifted(self) -> None:
        """A per-address or per-minute bound with a numeric default, not in the list, is set
        to a million; options that merely mention an address are left alone."""
        argv = lifted_limits(HELP)
        pairs = dict(zip(argv[::2], argv[1::2], strict=True))
        self.assertEqual(pairs.get("--max-new-sessions-per-address"), "1000000")
        self.assertEqual(pairs.get("--joins-per-minute"), "1000000")
        self.assertNotIn("--trusted-address", pairs)
        self.assertNotIn("--database", pairs)


def chat_run(server: str, transport: str, n: int, join_cpu: float, streams_s: float, rss: float,
             rate: float, p99: float) -> dict[str, Any]:
    """A chat-scenario record with the figures the targets read."""
    return {"server": server, "transport": transport, "n": n, "rss_per_member_kib": rss,
            "join": {"joined": n, "server_cpu_s": join_cpu, "seconds": join_cpu},
            "connect": {"ready": n, "seconds": streams_s},
            "single": {"p99": p99, "expected": n, "delivered": n},
            "fanout": {"rate": rate, "expected": 20 * n, "delivered": 20 * n}}


def publish_run(server: str, transport: str, n: int, rate: float) -> dict[str, Any]:
    return {"server": server, "transport": transport, "n": n, "fanout": {"rate": rate}}


class ChatTargetTests(TestCase):
    """Issue 13's four targets, judged at 10,000 members."""

    def verdicts(self, run: dict[str, Any]) -> list[str]:
        data = {"labels": {}, "chat": [run],
                "runs": [publish_run("cherrychat", "sse", 10000, 50000.0), publish_run("nchan", "sse", 10000, 80000.0)]}
        return [line.split(" | ")[2] for line in chat_targets(data)[2:]]

    def test_all_met(self) -> None:
        run = chat_run("cherrychat", "sse", 10000, join_cpu=4.0, streams_s=9.0, rss=9.5, rate=52000.0, p99=140.0)
        self.assertEqual(self.verdicts(run), ["met"] * 4)

    def test_each_missed(self) -> None:
        """Over 5 s of join CPU, over 10 KiB, under POST /event's rate, p99 at 150 ms."""
        run = chat_run("cherrychat", "sse", 10000, join_cpu=5.5, streams_s=9.0, rss=10.5, rate=49000.0, p99=150.0)
        self.assertEqual(self.verdicts(run), ["missed"] * 4)

    def test_under_six_tenths_of_nchan(self) -> None:
        """Above POST /event's rate is not enough when Nchan's is over 1/0.6 of it."""
        run = chat_run("cherrychat", "sse", 10000, join_cpu=1.0, streams_s=1.0, rss=1.0, rate=47000.0, p99=1.0)
        data = {"labels": {}, "chat": [run], "runs": [publish_run("cherrychat", "sse", 10000, 40000.0),
                                                      publish_run("nchan", "sse", 10000, 80000.0)]}
        self.assertIn("| missed |", chat_targets(data)[4])


class DurableComparisonTests(TestCase):
    """Issue 12's targets compare the last daemon measured with the first."""

    def section(self, before: float, after: float, p50: float) -> str:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        settings = {"members": 1000, "senders": 10, "rate": 1000.0, "seconds": 10.0}
        for label, date, rate in (("before", "2026-01-01", before), ("after", "2026-01-02", after)):
            steady = {"achieved_rate": 1000.0, "answer": {"p50": p50}, "rate_while_sending": rate}
            record = {"label": label, "date": date, "n": 1000, "settings": settings,
                      "alone": {"n": 10, "steady": steady}, "room": {"n": 1000, "steady": steady}}
            (directory / f"durable-full-{label}.json").write_text(json.dumps(record))
        return "\n".join(durable_section({"mode": "full"}, directory))

    def test_within_ten_percent(self) -> None:
        text = self.section(before=50000.0, after=46000.0, p50=4.0)
        self.assertIn("| under 10% fewer deliveries/s, room (after against before) | met |", text)
        self.assertIn("| p50 `/msg` answer < 10 ms at 1,000 messages/s (after) | met |", text)

    def test_more_than_ten_percent_fewer(self) -> None:
        text = self.section(before=50000.0, after=44000.0, p50=12.0)
        self.assertIn("| under 10% fewer deliveries/s, room (after against before) | missed |", text)
        self.assertIn("| p50 `/msg` answer < 10 ms at 1,000 messages/s (after) | missed |", text)


class PlanTests(TestCase):
    """The plans name the sizes the issues ask for."""

    def test_full_chat_runs(self) -> None:
        runs = set(plan("full", []).chat_runs)
        for server in ("cherrychat", "cherrychat-redis"):
            for transport in ("sse", "websocket"):
                self.assertTrue({(server, transport, 1000), (server, transport, 10000)} <= runs)

    def test_members_override(self) -> None:
        p = plan("quick", [], members=[200])
        self.assertEqual({n for _, _, n in p.chat_runs}, {200})
        self.assertEqual(p.durable.members, 200)
