"""What the Python peer servers share: the command line, the file limit, the publish route."""

from __future__ import annotations

import argparse
import resource


def parse_args(description: str) -> argparse.Namespace:
    """``--port`` (loopback only) and ``--heartbeat`` seconds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=25.0, help="seconds between keep-alive pings")
    return parser.parse_args()


def raise_file_limit() -> None:
    """Each connection is a file: raise the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
