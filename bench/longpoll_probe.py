"""``python -m bench.longpoll_probe``: one small long-poll fan-out run, with a profile.

The publish scenario's fan-out for one server over long-poll only (issue 13's long-poll
figure), without the rest of the bench: a fresh server on core 0, N pollers from the Node
load generator on core 1 (each re-polls with its last event id on its keep-alive
connection, as the page's orbited.js does), M messages through the server's publishing
API, and the server's CPU seconds over the fan-out, per delivered event and per poll
answered (a busy server answers fewer polls with more events each, so CPU per delivery
alone flatters it). With ``--py-spy PATH``, CherryChat is sampled during the fan-out and
the busiest frames are printed.

    python -m bench.longpoll_probe --n 1000 --messages 20 --py-spy /path/to/py-spy
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import profiler
from bench.driver import LoadGen
from bench.processes import ProcessGroup, cpu_seconds
from bench.scenarios import GENERATOR_CORE, SERVER_CORE
from bench.servers import CherryChat, Nchan, Server

#: seconds before a held poll answers empty (the bench's full-mode heartbeat)
HEARTBEAT = 5.0


def main(argv: list[str] | None = None) -> int:
    """Run the probe and print one JSON summary line per server."""
    parser = argparse.ArgumentParser(prog="python -m bench.longpoll_probe")
    parser.add_argument("--n", type=int, default=1000, help="pollers")
    parser.add_argument("--messages", type=int, default=20, help="messages in the fan-out")
    parser.add_argument("--servers", default="cherrychat", help="cherrychat and/or nchan, comma-separated")
    parser.add_argument("--daemon-source", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--py-spy", type=Path, default=None, help="sample CherryChat's fan-out with this py-spy")
    parser.add_argument("--port", type=int, default=18900)
    parser.add_argument("--gc-stats", type=Path, default=None,
                        help="a directory with a sitecustomize.py to put on the daemon's path (GC timing)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and the raw profile here")
    args = parser.parse_args(argv)
    group = ProcessGroup()
    try:
        with tempfile.TemporaryDirectory(prefix="cc-lp-") as scratch:
            workdir = args.workdir or Path(scratch)
            workdir.mkdir(parents=True, exist_ok=True)
            for port, name in enumerate(args.servers.split(","), start=args.port):
                server: Server = CherryChat(args.daemon_source.resolve()) if name == "cherrychat" else Nchan()
                if args.gc_stats is not None and isinstance(server, CherryChat):
                    extra = f"{args.daemon_source.resolve()}:{args.gc_stats}"
                    server.env = lambda extra=extra: {"PYTHONPATH": extra}  # type: ignore[method-assign, misc]
                record = run(group, server, args, port, workdir)
                print(json.dumps(summary(record)), flush=True)
                for kind in ("self", "inclusive"):
                    for frame, share in record.get("profile", {}).get(kind, []):
                        print(f"  {kind:9} {share:5.1f}%  {frame}")
    finally:
        group.stop_all()
    return 0


def run(group: ProcessGroup, server: Server, args: argparse.Namespace, port: int, workdir: Path) -> dict[str, Any]:
    """Start ``server``, connect the pollers, then one fan-out of ``args.messages``."""
    record: dict[str, Any] = {"server": server.name, "n": args.n}
    run_dir = workdir / f"{server.name}-longpoll-{args.n}"
    gen: LoadGen | None = None
    try:
        server.start(group, port, run_dir, HEARTBEAT, Path(sys.executable), SERVER_CORE)
        time.sleep(0.5)
        pids = server.pids()
        gen = LoadGen(group, {"server": server.name, "port": port, "transport": "longpoll", **server.spec}, run_dir,
                      GENERATOR_CORE)
        if isinstance(server, CherryChat):
            gen.command("prepare", 60)
        record["connect"] = gen.command("connect", 120, n=args.n, timeout_s=90, concurrency=200)
        time.sleep(1.0)
        polls0 = gen.command("status", 30)["polls"]
        hook = None
        if args.py_spy is not None and isinstance(server, CherryChat):
            hook = profiler.start(group, args.py_spy, pids[-1], run_dir, GENERATOR_CORE)
        try:
            cpu0 = cpu_seconds(pids)
            record["fanout"] = gen.command("fanout", 200, messages=args.messages, size=64, timeout_s=120, quiet_s=5.0)
            record["fanout"]["server_cpu_s"] = cpu_seconds(pids) - cpu0
        finally:
            if hook is not None:
                record["profile"] = hook()
        record["polls"] = gen.command("status", 30)["polls"] - polls0
        return record
    except Exception as error:  # noqa: BLE001 - reported in the summary
        record["error"] = f"{type(error).__name__}: {error}"
        return record
    finally:
        if gen is not None:
            gen.close()
        server.stop(group)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """Deliveries/s, latency and the server's CPU per delivered event of the fan-out."""
    fanout = record.get("fanout", {})
    delivered = fanout.get("delivered") or 0
    cpu = fanout.get("server_cpu_s")
    return {
        "server": record["server"], "n": record["n"], "error": record.get("error"),
        "ready": record.get("connect", {}).get("ready"),
        "delivered": delivered, "expected": fanout.get("expected"),
        "rate": round(fanout.get("rate") or 0), "p50_ms": fanout.get("p50"), "p99_ms": fanout.get("p99"),
        "server_cpu_s": round(cpu, 2) if cpu else cpu, "polls": record.get("polls"),
        "cpu_us_per_delivery": round(1e6 * cpu / delivered) if cpu and delivered else None,
        "cpu_us_per_poll": round(1e6 * cpu / record["polls"]) if cpu and record.get("polls") else None,
        "profile_samples": record.get("profile", {}).get("samples"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
