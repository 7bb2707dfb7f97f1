"""A python-socketio peer on aiohttp for the benchmark.

Subscribers connect to the default namespace at ``/socket.io/`` (polling or websocket);
``POST /publish`` with a text body emits it to every connected client as event ``msg``.
"""

from __future__ import annotations

import socketio
from aiohttp import web

from common import add_publish_route, serve


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

    add_publish_route(app, lambda body: sio.emit("msg", body))
    return app


if __name__ == "__main__":
    serve(make_app, __doc__.splitlines()[0])
