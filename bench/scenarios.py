"""One measured run: a fresh server, N subscribers on one transport, then the idle,
fan-out and chat scenarios on the same connections."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.driver import LoadGen
from bench.processes import ProcessGroup, cpu_seconds, rss_kib
from bench.servers import CherryChat, Server

SERVER_CORE = 0
GENERATOR_CORE = 1


@dataclass
class Settings:
    """What a mode measures; see run.py for the quick and full values."""

    heartbeat: float = 5.0
    idle_s: float = 10.0
    messages: int = 20
    payload_bytes: int = 64
    chat_senders: int = 5
    chat_rate: float = 5.0  # messages per second, all senders together
    chat_s: float = 8.0
    # seconds without a delivery after which a scenario stops waiting for the rest
    quiet_s: float = 10.0


def measure(group: ProcessGroup, server: Server, transport: str, n: int, settings: Settings, workdir: Path,
            port: int, venv_python: Path, venv_node_ok: bool = True, idle_only: bool = False,
            during_fanout: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Run the scenarios for ``server`` over ``transport`` with ``n`` subscribers."""
    record: dict[str, Any] = {"server": server.name, "transport": transport, "n": n}
    run_dir = workdir / f"{server.name}-{transport}-{n}"
    gen: LoadGen | None = None
    try:
        # Inside the try: a server that fails to start is one failed run, stopped below.
        server.start(group, port, run_dir, settings.heartbeat, venv_python, SERVER_CORE)
        time.sleep(0.5)
        pids = server.pids()
        record["rss_base_kib"] = rss_kib(pids)
        spec = {"server": server.name, "port": port, "transport": transport, **server.spec}
        gen = LoadGen(group, spec, run_dir, GENERATOR_CORE)
        record["gen_nofile"] = gen.nofile
        if isinstance(server, CherryChat) and not idle_only:
            record["prepare"] = gen.command("prepare", 60)
        connect_timeout = 60 + n / 100
        record["connect"] = gen.command("connect", connect_timeout + 30, n=n, timeout_s=connect_timeout,
                                        concurrency=200)
        time.sleep(1.0)
        # Memory and idle CPU with every connection open and heartbeats running.
        rss = rss_kib(pids)
        ready = max(1, record["connect"]["ready"])
        record["rss_kib"] = rss
        record["rss_per_conn_kib"] = (rss - record["rss_base_kib"]) / ready
        record["rss_total_per_conn_kib"] = rss / ready
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        record["idle_gen"] = gen.command("idle", settings.idle_s + 30, seconds=settings.idle_s)
        record["idle_cpu_pct"] = 100 * (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
        if idle_only:
            return record
        # One message alone first: the latency of a single fan-out, then the burst.
        record["single"] = gen.command("fanout", 200, messages=1, size=settings.payload_bytes, timeout_s=60, quiet_s=settings.quiet_s)
        hook = during_fanout(pids[-1]) if during_fanout else None
        try:
            cpu0 = cpu_seconds(pids)
            record["fanout"] = gen.command("fanout", 200, messages=settings.messages, size=settings.payload_bytes,
                                           timeout_s=120, quiet_s=settings.quiet_s)
            record["fanout"]["server_cpu_s"] = cpu_seconds(pids) - cpu0
        finally:
            if hook is not None:
                record["profile"] = hook()
        record["chat"] = gen.command("chat", settings.chat_s + 200, senders=settings.chat_senders,
                                     rate=settings.chat_rate, duration_s=settings.chat_s, size=settings.payload_bytes,
                                     timeout_s=60, quiet_s=settings.quiet_s)
        record["status"] = gen.command("status", 30)
        return record
    except Exception as error:  # noqa: BLE001 - one failed run must not lose the others
        record["error"] = f"{type(error).__name__}: {error}"
        return record
    finally:
        if gen is not None:
            gen.close()
        server.stop(group)
