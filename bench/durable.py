"""The durable-answer scenario (issue 12): what answering ``/msg`` only once the message
is stored costs.

A few members send ``/msg`` at a steady total rate (1,000 per second), each sender with
one request in flight at most, twice, each time on a fresh daemon with its default SQLite
database (a fresh file in the run's directory), not ``:memory:``:

- ``alone``: the room is just the senders, so the daemon can keep up with the rate and
  the answer time is what storing costs;
- ``room``: a room of members on SSE (filled as the chat scenario fills it) receives; one
  core cannot deliver 1,000 messages/s to 1,000 members, so this measures the deliveries
  per second the daemon sustains under that load, and the answer time then.

Measured each time: each ``/msg``'s answer time (p50/p99), the messages per second
achieved, and the deliveries per second. The same command run against two commits
(``--daemon-source``, ``--label``) gives the before and after that the report sets side
by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chat import fill_room, phase, settle
from bench.driver import LoadGen
from bench.processes import ProcessGroup, rss_kib
from bench.scenarios import GENERATOR_CORE, SERVER_CORE
from bench.servers import Server


@dataclass
class DurableSettings:
    """What the durable-answer scenario does; see plans.py for the quick and full values."""

    members: int = 1000
    senders: int = 10
    #: /msg per second, all senders together
    rate: float = 1000.0
    seconds: float = 10.0
    heartbeat: float = 5.0
    payload_bytes: int = 64
    concurrency: int = 50
    join_cap_s: float = 60.0
    quiet_s: float = 5.0


def database_bytes(run_dir: Path) -> int:
    """Size of the SQLite files the daemon wrote in ``run_dir`` (database, WAL, journal)."""
    return sum(p.stat().st_size for p in run_dir.glob("*.sqlite3*") if p.is_file())


def measure_durable(group: ProcessGroup, server: Server, settings: DurableSettings, workdir: Path, ports: list[int],
                    venv_python: Path) -> dict[str, Any]:
    """The senders alone, then with the room (on ``ports[0]`` and ``ports[1]``)."""
    record: dict[str, Any] = {"server": server.name, "transport": "sse", "n": settings.members}
    record["alone"] = measure_part(group, server, settings.senders, settings, workdir, ports[0], venv_python)
    record["room"] = measure_part(group, server, settings.members, settings, workdir, ports[1], venv_python)
    errors = [f"{part}: {record[part]['error']}" for part in ("alone", "room") if "error" in record[part]]
    if errors:
        record["error"] = "; ".join(errors)
    return record


def measure_part(group: ProcessGroup, server: Server, members: int, settings: DurableSettings, workdir: Path,
                 port: int, venv_python: Path) -> dict[str, Any]:
    """Fill a room of ``members``, then ``settings.senders`` of them send at
    ``settings.rate`` for ``settings.seconds``."""
    record: dict[str, Any] = {"n": members}
    run_dir = workdir / f"durable-{server.name}-{members}"
    gen: LoadGen | None = None
    try:
        server.start(group, port, run_dir, settings.heartbeat, venv_python, SERVER_CORE)
        time.sleep(0.5)
        pids = server.pids()
        record["daemon_args"] = getattr(server, "lifted", [])
        record["rss_base_kib"] = rss_kib(pids)
        spec = {"server": server.name, "port": port, "transport": "sse", "chat": True, **server.spec}
        gen = LoadGen(group, spec, run_dir, GENERATOR_CORE)
        fill_room(gen, pids, record, members, settings.concurrency, settings.join_cap_s)
        record["settle_s"] = settle(pids)
        bytes0 = database_bytes(run_dir)
        record["steady"] = phase(gen, pids, "steady", settings.seconds + 150, senders=settings.senders,
                                 rate=settings.rate, duration_s=settings.seconds, size=settings.payload_bytes,
                                 timeout_s=60, quiet_s=settings.quiet_s)
        steady = record["steady"]
        steady["server_cpu_pct"] = 100 * steady["server_cpu_s"] / max(0.001, steady["gen_wall_s"])
        record["database_bytes"] = database_bytes(run_dir)
        record["database_growth_bytes"] = record["database_bytes"] - bytes0
        record["status"] = gen.command("status", 30)
        return record
    except Exception as error:  # noqa: BLE001 - a failed run is recorded, not fatal
        record["error"] = f"{type(error).__name__}: {error}"
        return record
    finally:
        if gen is not None:
            gen.close()
        server.stop(group)
