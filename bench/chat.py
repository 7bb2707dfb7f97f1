"""The chat scenario (issue 13): the chat as its page uses it, not ``POST /event``.

N browser sessions each load the page (``GET /static/chat.html``, which sets their
``cherrychat_session`` cookie), ``/join?user=uN&session=0`` with their own cookie, open
their comet connection (``/cherrychat?user=uN&session=0&transport=T``), then one member
sends ``/msg``: once alone (the latency of one message reaching everyone), then 20 in a
row (deliveries per second). Each phase records the daemon's CPU seconds, its wall time
and the daemon's RSS after it, so that the cost of sessions, membership, history and
connections shows separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bench.driver import LoadGen
from bench.processes import ProcessGroup, cpu_seconds, rss_kib
from bench.scenarios import GENERATOR_CORE, SERVER_CORE
from bench.servers import Server


@dataclass
class ChatSettings:
    """What the chat scenario does; see run.py for the quick and full values."""

    heartbeat: float = 5.0
    messages: int = 20
    payload_bytes: int = 64
    #: page loads and joins in flight at once
    concurrency: int = 50
    #: no join starts after this many seconds: a room that fills in O(members²) is cut
    #: off here (and reported so) instead of taking the whole run
    join_cap_s: float = 120.0
    quiet_s: float = 10.0


def phase(gen: LoadGen, pids: Sequence[int], cmd: str, timeout: float, **args: Any) -> dict[str, Any]:
    """One generator command, with the daemon's CPU seconds over it and its RSS after."""
    cpu0 = cpu_seconds(pids)
    result = gen.command(cmd, timeout, **args)
    result["server_cpu_s"] = round(cpu_seconds(pids) - cpu0, 2)
    result["rss_after_kib"] = rss_kib(pids)
    return result


def settle(pids: Sequence[int], max_s: float = 30.0, window: float = 0.5, busy: float = 0.2) -> float:
    """Wait until the daemon uses less than ``busy`` of a core over ``window`` seconds (the
    backlogs of a room's new connections written), at most ``max_s``; returns the wait."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_s:
        cpu0 = cpu_seconds(pids)
        time.sleep(window)
        if cpu_seconds(pids) - cpu0 < busy * window:
            break
    return round(time.monotonic() - t0, 2)


def fill_room(gen: LoadGen, pids: Sequence[int], record: dict[str, Any], n: int, concurrency: int,
              join_cap_s: float) -> int:
    """Pages, joins and connections of ``n`` members into ``record``; returns how many
    members joined."""
    record["pages"] = phase(gen, pids, "pages", 60 + n / 20, n=n, concurrency=concurrency, timeout_s=30 + n / 50)
    record["join"] = phase(gen, pids, "join", join_cap_s + 120, concurrency=concurrency, timeout_s=join_cap_s)
    joined = record["join"]["joined"]
    connect_timeout = 60 + joined / 100
    record["connect"] = phase(gen, pids, "connect", connect_timeout + 30, n=joined, timeout_s=connect_timeout,
                              concurrency=200)
    return joined


def measure_chat(group: ProcessGroup, server: Server, transport: str, n: int, settings: ChatSettings,
                 workdir: Path, port: int, venv_python: Path) -> dict[str, Any]:
    """Fill a room of ``n`` members on ``transport`` and measure /msg fan-out to it."""
    record: dict[str, Any] = {"server": server.name, "transport": transport, "n": n}
    run_dir = workdir / f"chat-{server.name}-{transport}-{n}"
    gen: LoadGen | None = None
    try:
        server.start(group, port, run_dir, settings.heartbeat, venv_python, SERVER_CORE)
        time.sleep(0.5)
        pids = server.pids()
        record["daemon_args"] = getattr(server, "lifted", [])
        record["rss_base_kib"] = rss_kib(pids)
        spec = {"server": server.name, "port": port, "transport": transport, "chat": True, **server.spec}
        gen = LoadGen(group, spec, run_dir, GENERATOR_CORE)
        record["gen_nofile"] = gen.nofile
        joined = fill_room(gen, pids, record, n, settings.concurrency, settings.join_cap_s)
        # The messages are measured on a room at rest, not behind the backlogs of its
        # members' first connections.
        record["settle_s"] = settle(pids)
        ready = max(1, record["connect"]["ready"])
        record["rss_connected_kib"] = rss_kib(pids)
        record["single"] = phase(gen, pids, "fanout", 200, messages=1, size=settings.payload_bytes, timeout_s=60,
                                 quiet_s=settings.quiet_s)
        record["fanout"] = phase(gen, pids, "fanout", 200, messages=settings.messages, size=settings.payload_bytes,
                                 timeout_s=120, quiet_s=settings.quiet_s)
        # Everything a member costs (session, membership, history, connection), with the
        # room's history as it stands after the messages.
        record["rss_kib"] = rss_kib(pids)
        record["rss_per_member_kib"] = (record["rss_kib"] - record["rss_base_kib"]) / max(1, joined)
        record["rss_per_connection_kib"] = (record["rss_connected_kib"] - record["join"]["rss_after_kib"]) / ready
        record["status"] = gen.command("status", 30)
        return record
    except Exception as error:  # noqa: BLE001 - one failed run must not lose the others
        record["error"] = f"{type(error).__name__}: {error}"
        return record
    finally:
        if gen is not None:
            gen.close()
        server.stop(group)
