"""The servers under test: how to start each one on a loopback port, pinned to a core,
and which transports it shares with CherryChat."""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import ProcessGroup, children, wait_for_port

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"


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


class CherryChat(Server):
    """The daemon as installed in this Python, with history in memory; the bench publishes
    through its HTTP publishing API, ``POST /event``."""

    def __init__(self) -> None:
        super().__init__("cherrychat", "CherryChat", ("sse", "xhrstream", "longpoll", "websocket"))

    def command(self, port: int, workdir: Path, heartbeat: float, venv_python: Path) -> list[str]:
        token = secrets.token_urlsafe(24)
        token_file = workdir / "publish-token"
        token_file.write_text(token)
        self.spec = {"token": token}
        return [sys.executable, "-m", "twisted", "cherrychat", "--listen", f"tcp:{port}:interface=127.0.0.1",
                "--database", ":memory:", "--heartbeat", str(heartbeat), "--publish-token-file", str(token_file),
                # As the peers run: nginx with access_log off, aiohttp without a log handler.
                "--no-access-log"]


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


def all_servers() -> list[Server]:
    """CherryChat first, then the peers."""
    return [
        CherryChat(),
        Nchan(),
        PythonPeer("socketio", "python-socketio (aiohttp)", "socketio_server.py", ("longpoll", "websocket")),
        PythonPeer("sockjs", "sockjs (aiohttp)", "sockjs_server.py", ("sse", "xhrstream", "longpoll", "websocket")),
    ]
