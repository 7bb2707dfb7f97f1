"""What the Python peer servers share: the command line, the file limit, the publish route,
and serving on loopback."""

from __future__ import annotations

import argparse
import resource
from typing import Awaitable, Callable

from aiohttp import web


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


def add_publish_route(app: web.Application, broadcast: Callable[[str], Awaitable[None] | None]) -> None:
    """``POST /publish``: the text body goes to every subscriber through ``broadcast``."""

    async def publish(request: web.Request) -> web.Response:
        result = broadcast(await request.text())
        if result is not None:
            await result
        return web.Response(text="ok")

    app.router.add_post("/publish", publish)


def serve(make_app: Callable[[float], web.Application], description: str) -> None:
    """Parse the command line, raise the file limit and serve ``make_app(heartbeat)`` on
    127.0.0.1 until stopped."""
    args = parse_args(description)
    raise_file_limit()
    web.run_app(make_app(args.heartbeat), host="127.0.0.1", port=args.port, backlog=4096, print=None)
