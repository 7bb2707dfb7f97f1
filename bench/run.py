"""``python -m bench [--quick]``: every scenario against CherryChat and its peers in one run,
then docs/BENCHMARKS.md and docs/bench-latency.png.

The server under test runs on core 0 and the Node load generator on core 1; all traffic is
on 127.0.0.0/8. Every process started here is stopped by its pid when the run ends, also
when it fails or is interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import environment, profiler, report
from bench.processes import ProcessGroup
from bench.scenarios import GENERATOR_CORE, Settings, measure
from bench.servers import Server, all_servers

ROOT = Path(__file__).resolve().parent.parent
BASE_PORT = 18100


@dataclass
class Plan:
    """Which runs a mode makes: (server, transport, subscribers), plus idle-only capacity runs."""

    mode: str
    settings: Settings
    runs: list[tuple[str, str, int]] = field(default_factory=list)
    capacity: list[tuple[str, str, int]] = field(default_factory=list)
    profile_n: int = 0


# The transport each server is compared on first: SSE where it has it, else WebSocket.
PRIMARY = [("cherrychat", "sse"), ("cherrychat", "websocket"), ("nchan", "sse"), ("sockjs", "sse"),
           ("socketio", "websocket")]


def plan(mode: str, servers: list[Server]) -> Plan:
    """The quick plan (under 3 minutes) or the full one (under 20)."""
    if mode == "quick":
        p = Plan(mode, Settings(heartbeat=2.0, idle_s=3.0, chat_s=3.0, chat_rate=5.0, quiet_s=5.0))
        p.runs = [(s, t, n) for n in (500, 1500) for s, t in PRIMARY]
        # Two daemons sharing Redis once, beside the single daemon at the same size.
        p.runs.append(("cherrychat-redis", "sse", 1500))
        p.profile_n = 1500
        return p
    p = Plan(mode, Settings(heartbeat=5.0, idle_s=10.0, chat_s=6.0, chat_rate=5.0, quiet_s=8.0))
    every = [(s.name, t) for s in servers for t in s.transports]
    # Long-polling re-requests after every event, so it is measured at 1,000 only: at
    # 10,000 CherryChat's long-poll alone would take most of the time budget.
    p.runs = [(s, t, n) for n in (1000, 10000) for s, t in every if t != "longpoll" or n == 1000]
    p.runs += [(s, t, 5000) for s, t in PRIMARY if t == "sse"]
    p.runs.sort(key=lambda r: (r[0] != "cherrychat", r[0], r[1], r[2]))
    # Nchan is left out here: nginx's 20,000 worker_connections hold only about 18,800
    # subscribers, and waiting for the rest took four minutes of the budget.
    p.capacity = [("cherrychat", "sse", 19000)]
    p.profile_n = 10000
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark CherryChat against Nchan, python-socketio and sockjs (aiohttp): idle capacity, "
                    "fan-out and chat, over the transports each peer shares with CherryChat; and two CherryChat "
                    "daemons sharing one Redis against one daemon. Installs the peers where missing (apt: "
                    "nginx-light, libnginx-mod-nchan, redis-server; bench/.venv: python-socketio, sockjs, "
                    "aiohttp, matplotlib, py-spy), then writes docs/BENCHMARKS.md and docs/bench-latency.png.")
    parser.add_argument("--quick", action="store_true", help="a smaller plan that finishes in under 3 minutes")
    parser.add_argument("--servers", default="cherrychat,cherrychat-redis,nchan,socketio,sockjs",
                        help="comma-separated servers to run (default: all)")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy sampling of CherryChat's fan-out")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md", help="the report to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Install, run every scenario, write the report; returns the exit status."""
    args = parse_args(argv)
    environment.check_tools()
    environment.ensure_apt()
    environment.ensure_venv()
    wanted = set(args.servers.split(","))
    servers = [s for s in all_servers() if s.name in wanted]
    by_name = {s.name: s for s in servers}
    the_plan = plan("quick" if args.quick else "full", servers)
    group = ProcessGroup()
    # A SIGTERM (or Ctrl-C) still stops every process this run started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="cherrychat-bench-") as tmp:
            workdir = Path(tmp)
            port = BASE_PORT
            jobs = [(r, False) for r in the_plan.runs] + [(r, True) for r in the_plan.capacity]
            for index, ((name, transport, n), idle_only) in enumerate(jobs):
                if name not in by_name or transport not in by_name[name].transports:
                    continue
                # Two apart: cherrychat-redis also listens on port + 1.
                port += 2
                hook = None
                if (name == "cherrychat" and n == the_plan.profile_n and transport == "sse" and not idle_only
                        and not args.no_profile):
                    hook = lambda pid, d=workdir: profiler.start(group, environment.py_spy(), pid, d,  # noqa: E731
                                                                 GENERATOR_CORE)
                t0 = time.monotonic()
                record = measure(group, by_name[name], transport, n, the_plan.settings, workdir, port,
                                 environment.venv_python(), idle_only=idle_only, during_fanout=hook)
                record["idle_only"] = idle_only
                record["seconds"] = round(time.monotonic() - t0, 1)
                results.append(record)
                print(report.one_line(record), flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        group.stop_all()
    elapsed = time.monotonic() - started
    data = {
        "mode": the_plan.mode,
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "elapsed_s": round(elapsed, 1),
        "machine": environment.machine(),
        "settings": asdict(the_plan.settings),
        "labels": {s.name: s.label for s in all_servers()},
        "runs": results,
    }
    results_dir = Path(__file__).resolve().parent / "results"
    results_dir.mkdir(exist_ok=True)
    results_path = results_dir / f"{the_plan.mode}.json"
    results_path.write_text(json.dumps(data, indent=1))
    png = args.output.parent / "bench-latency.png"
    subprocess.run([str(environment.venv_python()), str(Path(__file__).with_name("plot.py")), str(results_path),
                    str(png)], check=False, timeout=120)
    report.write(args.output, results_dir, png.name)
    print(f"bench: {len(results)} runs in {elapsed:.0f} s; wrote {args.output} and {png}")
    return 0
