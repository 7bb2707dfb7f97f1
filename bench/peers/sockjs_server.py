"""A SockJS peer on aiohttp (the ``sockjs`` package) for the benchmark.

Subscribers use ``/sockjs/<server>/<session>/<transport>`` (xhr_streaming, eventsource,
xhr polling, websocket); ``POST /publish`` with a text body broadcasts it to every session.
"""

from __future__ import annotations

import sockjs
from aiohttp import web

from common import parse_args, raise_file_limit


async def on_message(manager: sockjs.SessionManager, session: sockjs.Session, message: sockjs.SockjsMessage) -> None:
    """Subscribers only listen; what they send is ignored."""


def make_app(heartbeat: float) -> web.Application:
    """The aiohttp application with the SockJS endpoint and the publish route."""
    app = web.Application()
    sockjs.add_endpoint(app, on_message, name="bench", prefix="/sockjs", heartbeat_delay=heartbeat)
    manager = app["__sockjs_managers__"]["bench"]

    async def publish(request: web.Request) -> web.Response:
        manager.broadcast(await request.text())
        return web.Response(text="ok")

    app.router.add_post("/publish", publish)
    return app


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    raise_file_limit()
    web.run_app(make_app(args.heartbeat), host="127.0.0.1", port=args.port, backlog=4096, print=None)
