"""The real pyorbited 0.2.2, under Python 2.7, publishing to ``--orbit-listen`` of a running
daemon, and a comet client receiving its events.

pyorbited ships three clients: ``simple`` (blocking sockets, the tutorial's), ``twistedorbit``
and ``event`` (pyevent). The first two are run here. pyevent's libevent bindings (PyPI ``event``
0.4.3) no longer build: they read libevent 1.x internals (``struct event``'s ``ev_flags``,
``struct evbuffer``) that libevent 2 hides, so its client cannot run on a current system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.integration_support import DaemonTestCase, wait_until
from tests.legacy_clients import python27, require

KEY = "ann, 0, /cherrychat"

SIMPLE = r'''
import sys
from pyorbited.simple import Client
orbited = Client(port=int(sys.argv[1]))
orbited.connect()
print(repr(orbited.event(["ann, 0, /cherrychat", "ben, 0, /cherrychat"], "<b>alice</b> hi")))
print(repr(orbited.event([], "to nobody")))
print(repr(orbited.event(["not a key"], "refused")))
print(repr(orbited.event(["ann, 0, /cherrychat"], u"caf\xe9 \u2603")))
'''

TWISTED = r'''
import sys
from twisted.internet import reactor
from pyorbited.twistedorbit import OrbitClient
client = OrbitClient(port=int(sys.argv[1]))
answers = []
def send(tries=[0]):
    if client.factory.client is None or client.factory.client.transport is None:
        tries[0] += 1
        if tries[0] > 100:
            print("never connected"); reactor.stop(); return
        reactor.callLater(0.05, send); return
    first = client.event(["ann, 0, /cherrychat"], "from twisted")
    second = client.event(["ann, 0, /cherrychat"], "and again")
    def done(response):
        answers.append((response.status, sorted(response.headers.items())))
        if len(answers) == 2:
            for answer in answers:
                print(repr(answer))
            reactor.stop()
    first.addCallback(done)
    second.addCallback(done)
reactor.callLater(0, send)
reactor.callLater(20, reactor.stop)
reactor.run()
'''


class PyorbitedTests(DaemonTestCase):
    timeout = 120  # the first run installs Python 2.7's clients

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.python27 = require(python27)
        self.service, base = yield self.start_daemon("--orbit-listen", "tcp:0")
        port = yield self.service.listeners[-1].when_listening()
        self.orbit_port = port.getHost().port
        self.assertEqual(port.getHost().host, "127.0.0.1")
        browser = self.add_browser(base)
        self.comet = self.add_client(browser, "ann", "xhrstream")
        yield self.comet.connect()
        yield wait_until(lambda: self.service.hub.listener_count(KEY), "ann's connection")

    @inlineCallbacks
    def run27(self, script: str):
        folder = Path(tempfile.mkdtemp(prefix="pyorbited-"))
        self.addCleanup(shutil.rmtree, folder, True)
        path = folder / "client.py"
        path.write_text(script)
        out, err, code = yield getProcessOutputAndValue(
            self.python27, [str(path), str(self.orbit_port)], env=dict(os.environ), reactor=reactor
        )
        self.assertEqual(code, 0, err.decode(errors="replace"))
        return out.decode().splitlines()

    @inlineCallbacks
    def test_simple_client(self):
        lines = yield self.run27(SIMPLE)
        self.assertEqual(lines[0], repr("Success\r\nid: 1\r\n\r\n"))
        self.assertEqual(lines[1], repr("Success\r\nid: 2\r\n\r\n"))
        self.assertTrue(lines[2].startswith("'Failure\\r\\nid: 3\\r\\nmsg: 1 invalid orbit keys"), lines[2])
        self.assertIn("recipient: (not a key)", lines[2])
        self.assertEqual(lines[3], repr("Success\r\nid: 4\r\n\r\n"))
        yield self.comet.wait_for_events(2)
        self.assertEqual(self.comet.payloads, ["<b>alice</b> hi", "café ☃"])
        # ben had no connection: the event waits in his queue, as the tutorial needs.
        self.assertEqual([e.payload for e in self.service.hub.channel("/cherrychat").events], ["<b>alice</b> hi", "café ☃"])

    @inlineCallbacks
    def test_twisted_client(self):
        lines = yield self.run27(TWISTED)
        self.assertEqual(lines, [repr(("Success", [("id", "1")])), repr(("Success", [("id", "2")]))])
        yield self.comet.wait_for_events(2)
        self.assertEqual(self.comet.payloads, ["from twisted", "and again"])
