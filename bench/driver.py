"""Drives the Node load generator: one process per measured run, commands as JSON lines."""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.processes import ProcessGroup

LOADGEN = Path(__file__).resolve().parent / "loadgen" / "main.js"


class LoadGen:
    """A generator process pinned to ``core``, aimed at one server and transport."""

    def __init__(self, group: ProcessGroup, spec: dict[str, Any], workdir: Path, core: int) -> None:
        spec_path = workdir / f"spec-{spec['server']}-{spec['transport']}.json"
        spec_path.write_text(json.dumps(spec))
        self.group = group
        self.proc = group.start(["node", str(LOADGEN), str(spec_path)], core, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        first = self._read(30)
        if first.get("event") != "started":
            raise RuntimeError(f"load generator did not start: {first}")
        self.nofile = first.get("nofile")

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("load generator exited")
                return json.loads(line)
        raise TimeoutError(f"load generator silent for {timeout} s")

    def command(self, cmd: str, timeout: float, **args: Any) -> dict[str, Any]:
        """Send one command and wait (at most ``timeout`` s) for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._read(timeout)
        if answer.get("event") == "error":
            raise RuntimeError(f"load generator: {answer.get('error')}")
        return answer

    def close(self) -> None:
        """Close every connection and stop the process."""
        try:
            if self.proc.poll() is None:
                self.command("close", 30)
                self.proc.wait(5)
        except (RuntimeError, TimeoutError, OSError, subprocess.TimeoutExpired):
            pass
        self.group.stop(self.proc)
