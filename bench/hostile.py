"""The hostile-neighbours scenario (issue 14): what one misbehaving client does to everyone
else's latency.

For each attack, a fresh daemon with its default options (an operator's daemon: default
limits, its default SQLite file in the run's directory). A well-behaved member (page,
``/join``, an SSE stream, from its own loopback address) sends one ``/msg`` every 100 ms
and receives it on its stream, while a fresh connection asks ``GET /healthz`` just as
often. Its latencies are measured without the attack (baseline), then while the attack
runs (``bench/attacks.py``, from 127.0.99.1, bounded in count and time, stopped by its pid),
then just after it. The daemon's RSS is sampled throughout; after the attack, a fresh
browser session from the attacker's address tries to load the page, join and open a
stream, to show what the attack left behind.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench.chat import fill_room, phase
from bench.driver import LoadGen
from bench.processes import ProcessGroup, rss_kib
from bench.scenarios import GENERATOR_CORE, SERVER_CORE
from bench.servers import Server

ATTACKS_SCRIPT = Path(__file__).resolve().with_name("attacks.py")
ATTACKER = "127.0.99.1"
FILLER = "127.0.98.1"

#: attack name -> what it does (the report's wording; {n} is the attack's count)
ATTACKS: dict[str, str] = {
    "slowloris": "slowloris: {n} connections sending a request's headers one line every 10 s, never finishing",
    "pipeline": "{n} pipelined GET /history?limit=1000 (250 per connection), answers never read",
    "wsmessage": "one WebSocket text message that never ends (announced as 2^40 bytes; at most {n} MiB sent)",
    "wsrefused": "{n} WebSocket handshakes the daemon refuses (bad Connection, no Host, Host: xn--a), one session",
    "joinstorm": "{n} fresh sessions from one address, each /join with a new nickname",
    "labels": "{n} long-polls from three sessions, each with a new session= label, given up after 50 ms",
}


@dataclass
class HostileSettings:
    """What the hostile-neighbours scenario does; see plans.py for the quick and full values."""

    counts: dict[str, int] = field(default_factory=lambda: {
        "slowloris": 1000, "pipeline": 100, "wsmessage": 32, "wsrefused": 300, "joinstorm": 500, "labels": 2000})
    baseline_s: float = 3.0
    #: attack running before the well-behaved client is measured
    warmup_s: float = 2.0
    attack_s: float = 5.0
    after_s: float = 2.0
    interval_ms: int = 100
    #: the room's history before the pipeline attack: messages and bytes each
    fill_messages: int = 300
    fill_bytes: int = 1000


class RssSampler:
    """Samples the daemon's RSS every ``interval`` seconds in a thread, keeping the peak."""

    def __init__(self, pids: Sequence[int], interval: float = 0.2) -> None:
        self.pids = pids
        self.peak = rss_kib(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, rss_kib(self.pids))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def attack_argv(kind: str, port: int, count: int, seconds: float, source: str = ATTACKER,
                **extra: Any) -> list[str]:
    """The attack process's command line."""
    argv = [sys.executable, str(ATTACKS_SCRIPT), kind, "--port", str(port), "--source", source,
            "--count", str(count), "--seconds", str(seconds)]
    for name, value in extra.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def read_report(proc: subprocess.Popen) -> dict[str, Any]:
    """The attack's JSON line (it prints it when it ends or is stopped)."""
    assert proc.stdout is not None
    try:
        lines = [line for line in proc.stdout.read().decode(errors="replace").splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {"error": "no report"}
    except (OSError, ValueError) as error:
        return {"error": str(error)}


def fresh_client(port: int, source: str, timeout: float = 5.0) -> dict[str, Any]:
    """A new browser session from ``source``: page, /join, and the first bytes of an SSE
    stream; the status of each step (0: no answer in ``timeout``)."""
    result: dict[str, Any] = {}

    def get(path: str, cookie: str | None, read_body: bool = True) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
        try:
            connection.request("GET", path, headers={"Cookie": f"cherrychat_session={cookie}"} if cookie else {})
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            return 0, ""
        try:
            if read_body:
                response.read()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        return response.status, response.getheader("Set-Cookie") or ""

    page, set_cookie = get("/static/chat.html", None)
    cookie = set_cookie.split("cherrychat_session=", 1)[1].split(";", 1)[0] if "cherrychat_session=" in set_cookie else None
    result["page"] = page
    result["join"], _ = get("/join?user=newcomer&session=0", cookie) if cookie else (0, "")
    result["stream"], _ = get("/cherrychat?user=newcomer&session=0&transport=sse", cookie, read_body=False) \
        if cookie else (0, "")
    result["ok"] = (result["page"], result["join"], result["stream"]) == (200, 200, 200)
    return result


def measure_hostile(group: ProcessGroup, server: Server, kind: str, settings: HostileSettings, workdir: Path,
                    port: int, venv_python: Path) -> dict[str, Any]:
    """The well-behaved member's latencies before, during and after attack ``kind``."""
    count = settings.counts[kind]
    record: dict[str, Any] = {"attack": kind, "count": count}
    run_dir = workdir / f"hostile-{kind}"
    gen: LoadGen | None = None
    attacker: subprocess.Popen | None = None
    sampler: RssSampler | None = None
    probe = dict(interval_ms=settings.interval_ms)
    try:
        server.start(group, port, run_dir, 25.0, venv_python, SERVER_CORE)
        time.sleep(0.5)
        pids = server.pids()
        spec = {"server": server.name, "port": port, "transport": "sse", "chat": True, **server.spec}
        gen = LoadGen(group, spec, run_dir, GENERATOR_CORE)
        fill_room(gen, pids, record, 1, 1, 30)
        if kind == "pipeline":
            # Something for /history?limit=1000 to answer with, from another address.
            filler = group.start(attack_argv("fill", port, settings.fill_messages, 120, FILLER,
                                             size=settings.fill_bytes), GENERATOR_CORE, stdout=subprocess.PIPE)
            try:
                filler.wait(150)
            except subprocess.TimeoutExpired:
                pass
            group.stop(filler)
            record["fill"] = read_report(filler)
        record["baseline"] = phase(gen, pids, "probe", settings.baseline_s + 30, duration_s=settings.baseline_s, **probe)
        record["rss_before_kib"] = rss_kib(pids)
        sampler = RssSampler(pids)
        extra = {"max_bytes": count << 20} if kind == "wsmessage" else {}
        seconds = settings.warmup_s + settings.attack_s + 5
        attacker = group.start(attack_argv(kind, port, count, seconds, **extra), GENERATOR_CORE,
                               stdout=subprocess.PIPE)
        time.sleep(settings.warmup_s)
        record["during"] = phase(gen, pids, "probe", settings.attack_s + 30, duration_s=settings.attack_s, **probe)
        # Stopped by its pid; it reports what it did as it goes.
        group.stop(attacker)
        record["attacker"] = read_report(attacker)
        attacker = None
        record["after"] = phase(gen, pids, "probe", settings.after_s + 30, duration_s=settings.after_s, **probe)
        record["rss_peak_kib"] = sampler.stop()
        sampler = None
        record["rss_after_kib"] = rss_kib(pids)
        record["fresh_client"] = fresh_client(port, ATTACKER)
        return record
    except Exception as error:  # noqa: BLE001 - one failed attack run must not lose the others
        record["error"] = f"{type(error).__name__}: {error}"
        return record
    finally:
        if sampler is not None:
            sampler.stop()
        if attacker is not None:
            group.stop(attacker)
        if gen is not None:
            gen.close()
        server.stop(group)
