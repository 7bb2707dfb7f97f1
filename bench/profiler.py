"""Samples CherryChat with py-spy while a fan-out runs, and summarises where time goes."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from bench.processes import ProcessGroup


def start(group: ProcessGroup, py_spy: Path, pid: int, out_dir: Path, core: int) -> Callable[[], dict[str, Any]]:
    """Start sampling ``pid``; the returned function stops it and returns the summary."""
    raw = out_dir / "profile.txt"
    proc = group.start([str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                        "--output", str(raw), "--nonblocking"], core, log=out_dir / "py-spy.log")

    def stop() -> dict[str, Any]:
        if proc.poll() is None:
            # py-spy writes its output when interrupted.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        group.stop(proc)
        return summarise(raw) if raw.exists() else {"error": "py-spy wrote no profile"}

    return stop


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep file and function.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}"


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares of the busiest frames in a collapsed-stack file."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    share = lambda c: round(100.0 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self": [(name, share(c)) for name, c in self_counts.most_common(top)],
        "inclusive": [(name, share(c)) for name, c in inclusive.most_common(top * 2)],
    }
