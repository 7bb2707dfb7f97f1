"""A python-socketio peer on aiohttp for the benchmark.

Subscribers connect to the default namespace at ``/socket.io/`` (polling or websocket);
``POST /publish`` with a text body emits it to every connected client as event ``msg``.
"""

from __future__ import annotations

import socketio
from aiohttp import web

from common import parse_args, raise_file_limit


def make_app(heartbeat: float) -> web.Application:
    """The aiohttp application with Socket.IO attached and the publish route."""
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        ping_interval=heartbeat,
        ping_timeout=max(20.0, heartbeat),
        cors_allowed_origins=[],
    )
    app = web.Application()
    sio.attach(app)

    async def publish(request: web.Request) -> web.Response:
        body = await request.text()
        await sio.emit("msg", body)
        return web.Response(text="ok")

    app.router.add_post("/publish", publish)
    return app


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    raise_file_limit()
    web.run_app(make_app(args.heartbeat), host="127.0.0.1", port=args.port, backlog=4096, print=None)
