"""Starting the processes of a run pinned to a core, reading their use from /proc, and
stopping every one of them by its pid, also when the run fails."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Mapping, Sequence

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _raise_nofile() -> None:
    # Runs in the child before exec: every held connection is a file descriptor.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class ProcessGroup:
    """The processes this run started; :meth:`stop_all` ends each of them by pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: Sequence[str], core: int | None, log: Path | None = None, cwd: Path | None = None,
              stdin: int | None = subprocess.DEVNULL, stdout: int | IO | None = None,
              env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """Start ``argv`` pinned to ``core`` (``taskset -c``), output to ``log``; ``env`` is
        added to this process's environment."""
        command = (["taskset", "-c", str(core)] if core is not None else []) + list(argv)
        out = stdout if stdout is not None else (open(log, "ab") if log else subprocess.DEVNULL)
        proc = subprocess.Popen(command, cwd=cwd, stdin=stdin, stdout=out, stderr=subprocess.STDOUT if log else None,
                                preexec_fn=_raise_nofile, env={**os.environ, **env} if env else None)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; only this pid."""
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            except ProcessLookupError:
                pass
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process still running, newest first."""
        for proc in reversed(list(self.procs)):
            self.stop(proc, timeout=5.0)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (nginx's worker under its master)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_kib(pids: Sequence[int]) -> int:
    """Resident set size of ``pids`` together, from /proc/PID/status (VmRSS)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of ``pids`` together, from /proc/PID/stat."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLOCK_TICKS


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until something accepts on 127.0.0.1:``port``, or fail if ``proc`` died."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")
