"""``python -m bench [--quick] [--only SCENARIOS]``: every scenario against CherryChat and its
peers in one run, then docs/BENCHMARKS.md and docs/bench-latency.png.

The server under test runs on core 0 and the Node load generator (and any attack process)
on core 1; all traffic is on 127.0.0.0/8. Every process started here is stopped by its
pid when the run ends, also when it fails or is interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

from bench import environment, profiler, report
from bench.chat import measure_chat
from bench.durable import measure_durable
from bench.hostile import measure_hostile
from bench.plans import SCENARIOS, Plan, plan
from bench.processes import ProcessGroup
from bench.scenarios import GENERATOR_CORE, measure
from bench.servers import CherryChat, CherryChatRedis, Server, Setup, all_servers

ROOT = Path(__file__).resolve().parent.parent
BASE_PORT = 18100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark CherryChat against Nchan, python-socketio and sockjs (aiohttp): idle capacity, "
                    "fan-out and chat through POST /event over the transports each peer shares with CherryChat; "
                    "the chat as its page uses it (/join, the comet connection, /msg); what a durable /msg "
                    "answer costs; and a well-behaved client's latency while hostile clients run. Installs the "
                    "peers where missing (apt: nginx-light, libnginx-mod-nchan, redis-server; bench/.venv: "
                    "python-socketio, sockjs, aiohttp, matplotlib, py-spy), then writes docs/BENCHMARKS.md and "
                    "docs/bench-latency.png.")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes in all")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios to run, of {', '.join(SCENARIOS)} (default: all); the "
                             "results of the others are kept from the last run of the same mode")
    parser.add_argument("--servers", default="cherrychat,cherrychat-redis,nchan,socketio,sockjs",
                        help="comma-separated servers to run (default: all)")
    parser.add_argument("--members", default="",
                        help="comma-separated room sizes replacing the mode's for the chat scenario (the first "
                             "also for the durable-answer room), e.g. 200 for a smoke test")
    parser.add_argument("--attacks", default=None, help="comma-separated attacks of the hostile scenario (default: all)")
    parser.add_argument("--daemon-source", type=Path, default=ROOT,
                        help="the checkout whose cherrychat package the daemon runs (default: this one); with "
                             "--label, to compare two commits")
    parser.add_argument("--label", default=None,
                        help="name of this daemon in the durable-answer comparison (default: git describe of "
                             "--daemon-source)")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy sampling of CherryChat's fan-out")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md", help="the report to write")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="where the results files are read and written (default: bench/results)")
    args = parser.parse_args(argv)
    args.only = [x for x in args.only.split(",") if x]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}")
    try:
        args.members = [int(x) for x in args.members.split(",") if x]
    except ValueError:
        parser.error("--members: comma-separated numbers")
    args.attacks = args.attacks.split(",") if args.attacks else None
    return args


def git_label(source: Path) -> str:
    """``git describe --always --dirty`` of ``source``, or "unknown"."""
    result = subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty"], capture_output=True,
                            text=True, timeout=30)
    return result.stdout.strip() or "unknown"


class Runner:
    """Runs the plan's scenarios, each on fresh processes and fresh ports."""

    def __init__(self, the_plan: Plan, servers: list[Server], group: ProcessGroup, workdir: Path,
                 args: argparse.Namespace) -> None:
        self.plan = the_plan
        self.by_name = {s.name: s for s in servers}
        self.group = group
        self.workdir = workdir
        self.args = args
        self.source = args.daemon_source.resolve()
        self._ports = self._port_numbers()

    @staticmethod
    def _port_numbers() -> Iterator[int]:
        # Two apart: cherrychat-redis also listens on port + 1.
        port = BASE_PORT
        while True:
            port += 2
            yield port

    @staticmethod
    def timed(line: Callable[[dict[str, Any]], str], fn: Callable[..., dict[str, Any]], *args: Any,
              **kwargs: Any) -> dict[str, Any]:
        """``fn(*args, **kwargs)``'s record with its duration, printed with ``line``."""
        t0 = time.monotonic()
        record = fn(*args, **kwargs)
        record["seconds"] = round(time.monotonic() - t0, 1)
        print(line(record), flush=True)
        return record

    def publish(self) -> list[dict[str, Any]]:
        """Idle, fan-out and chat rate through POST /event, and the capacity run."""
        results = []
        jobs = [(r, False) for r in self.plan.runs] + [(r, True) for r in self.plan.capacity]
        for (name, transport, n), idle_only in jobs:
            if name not in self.by_name or transport not in self.by_name[name].transports:
                continue
            port = next(self._ports)
            hook = None
            if (name == "cherrychat" and n == self.plan.profile_n and transport == "sse" and not idle_only
                    and not self.args.no_profile):
                hook = lambda pid: profiler.start(self.group, environment.py_spy(), pid,  # noqa: E731
                                                  self.workdir, GENERATOR_CORE)
            server = self.by_name[name]
            record = self.timed(report.one_line, measure, self.group, server, transport, n, self.plan.settings,
                                self.workdir, port, environment.venv_python(), idle_only=idle_only,
                                during_fanout=hook)
            record["idle_only"] = idle_only
            results.append(record)
        return results

    def chat(self) -> list[dict[str, Any]]:
        """The page's own requests, on CherryChat alone and on two daemons over Redis."""
        results = []
        for name, transport, n in self.plan.chat_runs:
            if name not in self.by_name:
                continue
            kind = CherryChatRedis if name == "cherrychat-redis" else CherryChat
            server = kind(self.source, Setup(lift_limits=True))
            port = next(self._ports)
            results.append(self.timed(report.chat_line, measure_chat, self.group, server, transport, n,
                                      self.plan.chat, self.workdir, port, environment.venv_python()))
        return results

    def durable(self) -> dict[str, Any]:
        """/msg at a steady rate into a room, the daemon on its default SQLite file."""
        server = CherryChat(self.source, Setup(database=None, lift_limits=True))
        ports = [next(self._ports), next(self._ports)]
        record = self.timed(report.durable_line, measure_durable, self.group, server, self.plan.durable,
                            self.workdir, ports, environment.venv_python())
        record["label"] = self.args.label or git_label(self.source)
        record["settings"] = asdict(self.plan.durable)
        return record

    def hostile(self) -> list[dict[str, Any]]:
        """One fresh default daemon per attack."""
        results = []
        for kind in self.plan.attacks:
            server = CherryChat(self.source, Setup(defaults=True))
            port = next(self._ports)
            results.append(self.timed(report.hostile_line, measure_hostile, self.group, server, kind,
                                      self.plan.hostile, self.workdir, port, environment.venv_python()))
        return results


def previous(path: Path, mode: str) -> dict[str, Any]:
    """The last results of ``mode``, whose scenarios not run now are kept."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if data.get("mode") == mode else {}


def main(argv: list[str] | None = None) -> int:
    """Install, run the chosen scenarios, write the report; returns the exit status."""
    args = parse_args(argv)
    environment.check_tools()
    wanted = set(args.servers.split(","))
    # Installed only when something chosen needs them: Nchan and Redis (apt), the Python
    # peers, py-spy and matplotlib (bench/.venv, for the publish scenarios).
    if wanted & {"nchan", "cherrychat-redis"}:
        environment.ensure_apt(nchan="nchan" in wanted and "publish" in args.only, redis="cherrychat-redis" in wanted)
    if "publish" in args.only:
        environment.ensure_venv()
    servers = [s for s in all_servers(args.daemon_source.resolve()) if s.name in wanted]
    mode = "quick" if args.quick else "full"
    the_plan = plan(mode, servers, members=args.members, attacks=args.attacks)
    results_dir: Path = args.results
    results_dir.mkdir(parents=True, exist_ok=True)
    results_path = results_dir / f"{mode}.json"
    data = previous(results_path, mode)
    group = ProcessGroup()
    # A SIGTERM (or Ctrl-C) still stops every process this run started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    command = "python -m bench" + (" --quick" if args.quick else "")
    sections = data.setdefault("sections", {})
    try:
        with tempfile.TemporaryDirectory(prefix="cherrychat-bench-") as tmp:
            runner = Runner(the_plan, servers, group, Path(tmp), args)
            for scenario in args.only:
                t0 = time.monotonic()
                data[{"publish": "runs"}.get(scenario, scenario)] = getattr(runner, scenario)()
                sections[scenario] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                      "elapsed_s": round(time.monotonic() - t0, 1),
                                      "command": command + ("" if len(args.only) == len(SCENARIOS)
                                                            else f" --only {scenario}")}
    except KeyboardInterrupt:
        print("bench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        group.stop_all()
    elapsed = time.monotonic() - started
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if "publish" in args.only or "date" not in data:
        # The publish section's heading speaks of this run.
        data.update({"command": command, "date": now, "elapsed_s": round(elapsed, 1),
                     "settings": asdict(the_plan.settings)})
    data.update({"mode": the_plan.mode, "machine": environment.machine(),
                 "labels": {s.name: s.label for s in all_servers()}})
    data.setdefault("runs", [])
    results_path.write_text(json.dumps(data, indent=1))
    if "durable" in args.only:
        # Kept apart per daemon, so that two commits' runs can be set side by side.
        durable = data["durable"]
        (results_dir / f"durable-{mode}-{durable['label']}.json").write_text(
            json.dumps({"mode": mode, "date": now, "machine": data["machine"], **durable}, indent=1))
    png = args.output.parent / "bench-latency.png"
    if "publish" in args.only:
        subprocess.run([str(environment.venv_python()), str(Path(__file__).with_name("plot.py")), str(results_path),
                        str(png)], check=False, timeout=120)
    report.write(args.output, results_dir, png.name)
    print(f"bench: {', '.join(args.only)} in {elapsed:.0f} s; wrote {args.output} and {results_path}")
    return 0
