"""The tutorial's chat.py on Python 3 with one import changed to cherrychat.pyorbited:
its ``ChatServer.join`` and ``msg`` publish through ``--orbit-listen`` to comet clients.

CherryPy is not among the test dependencies (the browser test runs the whole tutorial on
CherryPy 3.0.4 under Python 2.7), so ``cherrypy`` here is a stand-in whose ``expose`` is
the identity; chat.py's own code, from ``tests/e2e/tutorial/chat.py``, is what runs.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from tests.integration.integration_support import DaemonTestCase, wait_until

CHAT_PY = Path(__file__).resolve().parent.parent / "e2e" / "tutorial" / "chat.py"
ORIGINAL_IMPORT = "from pyorbited.simple import Client"
PYTHON3_IMPORT = "from cherrychat.pyorbited.simple import Client"


class TutorialChatOnPython3Tests(DaemonTestCase):
    @inlineCallbacks
    def test_join_and_msg_reach_both_users(self):
        self.service, base = yield self.start_daemon("--orbit-listen", "tcp:0")
        port = (yield self.service.listeners[-1].when_listening()).getHost().port
        source = CHAT_PY.read_text()
        self.assertEqual(source.count(ORIGINAL_IMPORT), 1)
        changed = source.replace(ORIGINAL_IMPORT, PYTHON3_IMPORT)
        self.assertEqual([a for a, b in zip(source.splitlines(), changed.splitlines(), strict=True) if a != b], [ORIGINAL_IMPORT])

        stand_in = types.ModuleType("cherrypy")
        stand_in.expose = lambda function: function  # type: ignore[attr-defined]
        previous = sys.modules.get("cherrypy")
        sys.modules["cherrypy"] = stand_in
        self.addCleanup(lambda: sys.modules.__setitem__("cherrypy", previous) if previous else sys.modules.pop("cherrypy", None))
        from cherrychat.pyorbited import simple

        self.patch(simple.Client.__init__, "__defaults__", ("localhost", port, 30.0))
        namespace: dict = {"__name__": "chat"}
        yield deferToThread(exec, compile(changed, str(CHAT_PY), "exec"), namespace)  # noqa: S102
        self.addCleanup(namespace["orbited"].disconnect)
        server = namespace["ChatServer"]()
        server.users = []

        clients = {}
        for user in ("ann", "ben"):
            clients[user] = self.add_client(self.add_browser(base), user, "xhrstream")
            yield clients[user].connect()
            yield wait_until(lambda user=user: self.service.hub.listener_count(f"{user}, 0, /cherrychat"), user)
        yield deferToThread(server.join, "ann")
        yield deferToThread(server.join, "ben")
        yield deferToThread(server.msg, "ann", "hello ben")
        yield clients["ben"].wait_for_events(2)
        yield clients["ann"].wait_for_events(3)
        self.assertEqual(clients["ann"].payloads, ["<b>ann joined</b>", "<b>ben joined</b>", "<b>ann</b> hello ben"])
        self.assertEqual(clients["ben"].payloads, ["<b>ben joined</b>", "<b>ann</b> hello ben"])
