"""A SockJS peer on aiohttp (the ``sockjs`` package) for the benchmark.

Subscribers use ``/sockjs/<server>/<session>/<transport>`` (xhr_streaming, eventsource,
xhr polling, websocket); ``POST /publish`` with a text body broadcasts it to every session.
"""

from __future__ import annotations

import sockjs
from aiohttp import web

from common import add_publish_route, serve


async def on_message(manager: sockjs.SessionManager, session: sockjs.Session, message: sockjs.SockjsMessage) -> None:
    """Subscribers only listen; what they send is ignored."""


def make_app(heartbeat: float) -> web.Application:
    """The aiohttp application with the SockJS endpoint and the publish route."""
    app = web.Application()
    sockjs.add_endpoint(app, on_message, name="bench", prefix="/sockjs", heartbeat_delay=heartbeat)
    manager = app["__sockjs_managers__"]["bench"]

    add_publish_route(app, manager.broadcast)
    return app


if __name__ == "__main__":
    serve(make_app, __doc__.splitlines()[0])
