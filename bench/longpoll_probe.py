"""``python -m bench.longpoll_probe``: one small long-poll fan-out run, with a profile.

The publish scenario's fan-out for one server over long-poll only (issue 13's long-poll
figure), without the rest of the bench: a fresh server on core 0, N pollers from the Node
load generator on core 1 (each re-polls with its last event id on its keep-alive
connection, as the page's orbited.js does), M messages through the server's publishing
API, and the server's CPU seconds over the fan-out. With ``--py-spy PATH``, CherryChat is
sampled during the fan-out and the busiest frames are printed.

    python -m bench.longpoll_probe --n 1000 --messages 20 --py-spy /path/to/py-spy
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import profiler
from bench.processes import ProcessGroup
from bench.scenarios import GENERATOR_CORE, Settings, measure
from bench.servers import CherryChat, Nchan, Server


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
    settings = Settings(heartbeat=5.0, idle_s=1.0, messages=args.messages, chat_s=1.0, quiet_s=5.0)
    group = ProcessGroup()
    try:
        with tempfile.TemporaryDirectory(prefix="cc-lp-") as scratch:
            tmp = str(args.workdir or scratch)
            Path(tmp).mkdir(parents=True, exist_ok=True)
            for port, name in enumerate(args.servers.split(","), start=args.port):
                server: Server = CherryChat(args.daemon_source.resolve()) if name == "cherrychat" else Nchan()
                if args.gc_stats is not None and isinstance(server, CherryChat):
                    extra = str(args.gc_stats)
                    server.env = lambda: {"PYTHONPATH": f"{args.daemon_source.resolve()}:{extra}"}  # type: ignore[method-assign]
                hook = None
                if args.py_spy is not None and name == "cherrychat":
                    spy = args.py_spy
                    hook = lambda pid: profiler.start(group, spy, pid, Path(tmp), GENERATOR_CORE)  # noqa: E731
                record = measure(group, server, "longpoll", args.n, settings, Path(tmp), port, Path(sys.executable),
                                 during_fanout=hook)
                print(json.dumps(summary(record)), flush=True)
                for kind in ("self", "inclusive"):
                    for frame, share in record.get("profile", {}).get(kind, []):
                        print(f"  {kind:9} {share:5.1f}%  {frame}")
    finally:
        group.stop_all()
    return 0


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
        "server_cpu_s": cpu,
        "cpu_us_per_delivery": round(1e6 * cpu / delivered) if cpu and delivered else None,
        "profile_samples": record.get("profile", {}).get("samples"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
