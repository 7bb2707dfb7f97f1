"""The servers under test: how to start each one on a loopback port, pinned to a core,
and which transports it shares with CherryChat."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.environment import REDIS_SERVER
from bench.processes import ProcessGroup, children, wait_for_port

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
ROOT = BENCH.parent

#: What the chat and durable-answer scenarios lift, so that thousands of members sending
#: from loopback are not refused as one abusive client (issue 13 measured the same way).
#: The one list of such arguments: an option the daemon under test does not have is left
#: out, and any other numeric per-address or per-minute bound its --help lists is lifted
#: as well (:func:`lifted_limits`), so that bounds added later (issue 14's new sessions and
#: joins per address) do not throttle the benchmark.
LIFTED_LIMITS: list[tuple[str, str]] = [
    ("--address-rate-limit", "1000000"),
    ("--address-rate-burst", "1000000"),
    # The durable-answer senders send 100 /msg per second each.
    ("--rate-limit", "1000000"),
    ("--rate-burst", "1000000"),
    ("--max-connections-per-address", "100000"),
    ("--max-connections", "100000"),
    # Nobody leaves while the bench holds a connection for them.
    ("--presence-timeout", "3600"),
]
#: Bounds of the kind LIFTED_LIMITS lifts, recognised by name in the daemon's --help
#: (and by a numeric default).
_MORE_BOUNDS = re.compile(r"address|per-minute")
_OPTION = re.compile(r"^\s+(?:-\w, )?--([a-z0-9-]+)=", re.MULTILINE)
_NUMERIC_DEFAULT = re.compile(r"\[default:\s*[0-9]+(?:\.[0-9]+)?\]")
_LIFT_TO = "1000000"


@dataclass
class Server:
    """One server under test. ``transports`` use CherryChat's names."""

    name: str
    label: str
    transports: tuple[str, ...]
    proc: subprocess.Popen | None = None
    spec: dict[str, Any] = field(default_factory=dict)

    def command(self, port: int, workdir: Path, heartbeat: float, venv_python: Path) -> list[str]:
        """The command line that serves on 127.0.0.1:``port``."""
        raise NotImplementedError

    def start(self, group: ProcessGroup, port: int, workdir: Path, heartbeat: float, venv_python: Path,
              core: int) -> None:
        """Start pinned to ``core`` and wait until it accepts connections."""
        workdir.mkdir(parents=True, exist_ok=True)
        argv = self.command(port, workdir, heartbeat, venv_python)
        self.proc = group.start(argv, core, log=workdir / f"{self.name}.log", cwd=self.cwd())
        wait_for_port(port, self.proc)

    def cwd(self) -> Path | None:
        return None

    def pids(self) -> list[int]:
        """The processes whose memory and CPU count as the server's."""
        assert self.proc is not None
        # taskset execs the server, so the pid is the server's own.
        return [self.proc.pid]

    def stop(self, group: ProcessGroup) -> None:
        if self.proc is not None:
            group.stop(self.proc)
            self.proc = None


@dataclass
class Setup:
    """How a scenario runs the daemon."""

    #: ``--database``; None: the daemon's default file, which lands in the run's directory
    database: str | None = ":memory:"
    #: LIFTED_LIMITS and the bounds found like them
    lift_limits: bool = False
    #: nothing but --listen: the daemon as an operator starts it
    defaults: bool = False


class CherryChat(Server):
    """The daemon of ``source`` (the checkout whose ``cherrychat`` package it imports: this
    one unless ``--daemon-source`` names another), with history in memory; the bench
    publishes through its HTTP publishing API, ``POST /event``. ``setup`` says otherwise
    for the chat, durable-answer and hostile scenarios."""

    def __init__(self, source: Path = ROOT, setup: Setup | None = None) -> None:
        super().__init__("cherrychat", "CherryChat", ("sse", "xhrstream", "longpoll", "websocket"))
        self.source = source
        self.setup = setup or Setup()
        self.lifted: list[str] = []

    def command(self, port: int, workdir: Path, heartbeat: float, venv_python: Path) -> list[str]:
        return self.daemon(port, self.write_token(workdir), heartbeat)

    def start(self, group: ProcessGroup, port: int, workdir: Path, heartbeat: float, venv_python: Path,
              core: int) -> None:
        """As :meth:`Server.start`, in ``workdir`` with ``source`` first on the path."""
        workdir.mkdir(parents=True, exist_ok=True)
        argv = self.command(port, workdir, heartbeat, venv_python)
        self.proc = group.start(argv, core, log=workdir / f"{self.name}.log", cwd=workdir, env=self.env())
        wait_for_port(port, self.proc)

    def env(self) -> dict[str, str]:
        """The daemon imports ``cherrychat`` (and its twistd plugin) from ``source``."""
        return {"PYTHONPATH": str(self.source)}

    def write_token(self, workdir: Path) -> Path:
        """A fresh publish token in ``workdir``, also handed to the generator."""
        token = secrets.token_urlsafe(24)
        token_file = workdir / "publish-token"
        token_file.write_text(token)
        self.spec = {"token": token}
        return token_file

    def daemon(self, port: int, token_file: Path, heartbeat: float) -> list[str]:
        """One daemon's command line: history in memory, publishing with ``token_file``;
        or as :attr:`setup` says."""
        argv = [sys.executable, "-m", "twisted", "cherrychat", "--listen", f"tcp:{port}:interface=127.0.0.1"]
        if self.setup.defaults:
            return argv
        argv += ["--heartbeat", str(heartbeat)]
        if self.setup.database is not None:
            argv += ["--database", self.setup.database]
        # As the peers run: nginx with access_log off, aiohttp without a log handler.
        argv += ["--publish-token-file", str(token_file), "--no-access-log"]
        if self.setup.lift_limits:
            lifted = lifted_limits(daemon_help(self.source))
            self.lifted = lifted
            argv += lifted
        return argv


class CherryChatRedis(CherryChat):
    """Two daemons sharing one chat through a Redis of their own (``--redis``): subscribers
    are spread over both, the generator publishes to the first. Redis and both daemons run
    on the server's core and count as the server."""

    def __init__(self, source: Path = ROOT, setup: Setup | None = None) -> None:
        CherryChat.__init__(self, source, setup)
        self.name, self.label = "cherrychat-redis", "CherryChat ×2 + Redis"
        # The publish scenarios run it over SSE; the chat scenario over WebSocket too.
        self.transports = ("sse", "websocket")
        self.procs: list[subprocess.Popen] = []

    def start(self, group: ProcessGroup, port: int, workdir: Path, heartbeat: float, venv_python: Path,
              core: int) -> None:
        """Redis first, then a daemon on ``port`` and one on ``port + 1``; each must answer
        ``/healthz`` (which waits for the Redis subscription) before the run goes on."""
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            redis_port = free_port()
            redis = self._start(group, redis_argv(redis_port, workdir / "redis"), core, workdir / "redis.log")
            wait_for_port(redis_port, redis)
            token_file = self.write_token(workdir)
            ports = [port, port + 1]
            url = f"redis://127.0.0.1:{redis_port}/0"
            daemons = [self._start(group, self.daemon(p, token_file, heartbeat) + ["--redis", url], core,
                                   workdir / f"{self.name}-{p}.log") for p in ports]
            for p, proc in zip(ports, daemons):
                wait_for_health(p, proc)
            self.proc = daemons[0]
            self.spec["ports"] = ports
        except BaseException:
            # A half-started group must not outlive the run that failed.
            self.stop(group)
            raise

    def _start(self, group: ProcessGroup, argv: list[str], core: int, log: Path) -> subprocess.Popen:
        proc = group.start(argv, core, log=log, cwd=log.parent, env=self.env())
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Redis and both daemons."""
        return [proc.pid for proc in self.procs]

    def stop(self, group: ProcessGroup) -> None:
        """The daemons first (so they do not log Redis going away), Redis last."""
        for proc in reversed(self.procs):
            group.stop(proc)
        self.procs = []
        self.proc = None


class Nchan(Server):
    """nginx with the Nchan module, one worker, in its own prefix."""

    def __init__(self) -> None:
        super().__init__("nchan", "Nchan", ("sse", "longpoll", "websocket"))

    def command(self, port: int, workdir: Path, heartbeat: float, venv_python: Path) -> list[str]:
        conf = (PEERS / "nchan.conf").read_text()
        conf = conf.replace("{prefix}", str(workdir)).replace("{port}", str(port))
        conf = conf.replace("{heartbeat}", str(max(1, round(heartbeat))))
        path = workdir / "nginx.conf"
        path.write_text(conf)
        return ["nginx", "-p", str(workdir), "-c", str(path)]

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *children(self.proc.pid)]


class PythonPeer(Server):
    """A peer script under bench/peers/, run by the bench's own virtualenv."""

    def __init__(self, name: str, label: str, script: str, transports: tuple[str, ...]) -> None:
        super().__init__(name, label, transports)
        self.script = script

    def command(self, port: int, workdir: Path, heartbeat: float, venv_python: Path) -> list[str]:
        return [str(venv_python), self.script, "--port", str(port), "--heartbeat", str(heartbeat)]

    def cwd(self) -> Path:
        return PEERS


_HELP: dict[Path, str] = {}


def daemon_help(source: Path) -> str:
    """``twistd cherrychat --help`` of the daemon in ``source`` (asked once per run)."""
    if source not in _HELP:
        # From ``source`` itself: ``python -m`` puts the working directory first on the
        # path, ahead of PYTHONPATH, and another checkout there would answer instead.
        result = subprocess.run([sys.executable, "-m", "twisted", "cherrychat", "--help"], capture_output=True,
                                text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(source)}, cwd=source)
        _HELP[source] = result.stdout
    return _HELP[source]


def help_options(help_text: str) -> dict[str, str]:
    """Each ``--name=`` option of a twistd --help and its description (default included)."""
    matches = list(_OPTION.finditer(help_text))
    return {m.group(1): help_text[m.end():matches[i + 1].start() if i + 1 < len(matches) else len(help_text)]
            for i, m in enumerate(matches)}


def lifted_limits(help_text: str) -> list[str]:
    """LIFTED_LIMITS that ``help_text`` lists, then every other option whose name speaks of
    an address or a rate per minute and whose default is a number, set to a million: the
    extra arguments of a chat-scenario daemon."""
    options = help_options(help_text)
    argv: list[str] = []
    for option, value in LIFTED_LIMITS:
        if option[2:] in options:
            argv += [option, value]
    listed = {option[2:] for option, _ in LIFTED_LIMITS}
    for name, description in sorted(options.items()):
        if name not in listed and _MORE_BOUNDS.search(name) and _NUMERIC_DEFAULT.search(description):
            argv += [f"--{name}", _LIFT_TO]
    return argv


def redis_argv(port: int, directory: Path) -> list[str]:
    """Debian's redis-server on 127.0.0.1:``port``, in memory only, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--logfile", ""]


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until the daemon on ``port`` answers ``GET /healthz`` with 200, or fail."""
    wait_for_port(port, proc, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon on port {port} exited with {proc.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"daemon on port {port} not healthy after {timeout} s")


def all_servers(source: Path = ROOT) -> list[Server]:
    """CherryChat (the daemon of ``source``) first, then the peers."""
    return [
        CherryChat(source),
        CherryChatRedis(source),
        Nchan(),
        PythonPeer("socketio", "python-socketio (aiohttp)", "socketio_server.py", ("longpoll", "websocket")),
        PythonPeer("sockjs", "sockjs (aiohttp)", "sockjs_server.py", ("sse", "xhrstream", "longpoll", "websocket")),
    ]
