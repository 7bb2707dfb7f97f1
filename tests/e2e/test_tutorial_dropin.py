"""The tutorial's own system with CherryChat in Orbited's place: its chat.py exactly as
written, on CherryPy 3.0.4 under Python 2.7 with the real pyorbited 0.2.2, publishing to
``--orbit-listen``; its chat.html, chat.css and chat.js served by that app in two Chromium
windows on two host names (localhost and 127.0.0.1), loading ``orbited.js`` from the daemon.
They chat, and each window shows each line once.

The files are in ``tests/e2e/tutorial/`` as the tutorial prints them (its indentation, lost
in the text, restored). What a reader fills in is filled in: ``yourdomain:8000`` in
chat.html and ``ORBITED_PORT = 8000`` in chat.js name the test's daemon; ``run_app.py``
puts the test's ports where chat.py says 4700 and pyorbited's default says 9000.

chat.py runs CherryPy with ``server.thread_pool: 0``: one worker, which a browser's
kept-alive (or speculatively opened) connection holds while its other connections wait, so
the tutorial says to put a proxy in front that disables keep-alive. Here that proxy is the
test's (:class:`NoKeepAliveProxy`): the windows browse the app through it, and their
requests reach CherryPy unchanged, one connection each. Their requests to the daemon
(orbited.js, the comet connections) go straight to it, cross-origin.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.base import BrowserTestCase
from tests.e2e.support import WAIT_MS, free_port
from tests.legacy_clients import python27, require

TUTORIAL = Path(__file__).resolve().parent / "tutorial"
EVENTS_JS = "() => Array.from(document.querySelectorAll('#box .event'), e => e.textContent)"


def wait_for_port(port: int, process: Any, seconds: float = 20.0) -> None:
    """Wait, bounded, until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


class NoKeepAliveProxy:
    """The tutorial's proxy in front of its single-threaded app: on 127.0.0.1:port, each
    request is forwarded on a connection of its own and answered with ``Connection: close``."""

    def __init__(self, app: str):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                proxy.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.app = app
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def forward(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        try:
            with urllib.request.urlopen(self.app + handler.path, timeout=10) as answer:  # noqa: S310
                status, headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        except OSError:
            handler.send_error(502, "app unreachable")
            return
        handler.send_response(status)
        for name in ("Content-Type", "Set-Cookie", "Location"):
            for value in headers.get_all(name) or []:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
        handler.close_connection = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class TutorialDropInTests(BrowserTestCase):
    def start_tutorial(self, python: str, import_line: str | None = None, orbited_port: bool = True) -> tuple[str, str]:
        """The daemon as Orbited and the tutorial's app; returns the app's two base URLs."""
        app_port, orbit_port = free_port(), free_port()
        proxy = NoKeepAliveProxy(f"http://127.0.0.1:{app_port}")
        self.addCleanup(proxy.close)
        app_origins = [f"http://localhost:{proxy.port}", f"http://127.0.0.1:{proxy.port}"]
        extra = ["--orbit-listen", f"tcp:{orbit_port}"]
        for origin in app_origins:
            extra += ["--allowed-origin", origin]
        daemon = self.daemon = self.start_daemon(extra=extra)
        # pyorbited connects once, when chat.py is imported: the listener must be up.
        wait_for_port(orbit_port, daemon.process)
        folder = Path(tempfile.mkdtemp(prefix="cherrychat-tutorial-"))
        self.addCleanup(shutil.rmtree, folder, True)
        shutil.copytree(TUTORIAL, folder, dirs_exist_ok=True)
        html = folder / "static" / "chat.html"
        html.write_text(html.read_text().replace("http://yourdomain:8000", daemon.url))
        js = folder / "static" / "chat.js"
        setting = f"ORBITED_PORT = {daemon.port}" if orbited_port else ""
        js.write_text(js.read_text().replace("ORBITED_PORT = 8000", setting))
        if import_line is not None:
            chat = folder / "chat.py"
            chat.write_text(chat.read_text().replace("from pyorbited.simple import Client", import_line))
        log = open(folder / "app.log", "w")
        self.addCleanup(log.close)
        app = subprocess.Popen(  # noqa: S603 (a fixed command: the test's own)
            [python, str(folder / "run_app.py"), str(app_port), str(orbit_port), str(folder / "chat.py")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
        )
        self.addCleanup(self.stop_app, app)
        wait_for_port(app_port, app)
        self.app_log = folder / "app.log"
        return app_origins[0], app_origins[1]

    def stop_app(self, app: subprocess.Popen) -> None:
        if app.poll() is None:
            app.terminate()
            try:
                app.wait(10)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait(10)

    def window(self, base: str, query: str = ""):
        page = self.browser.context().new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(f"{base}/static/chat.html{query}")
        page.wait_for_function("() => typeof Orbited === 'object' && typeof connect === 'function'")
        return page

    def wait_events(self, page, expected: list[str]) -> None:
        try:
            page.wait_for_function(
                f"e => JSON.stringify(({EVENTS_JS})()) === JSON.stringify(e)", arg=expected, timeout=WAIT_MS)
        except Exception:
            raise AssertionError(
                f"{page.url} shows {page.evaluate(EVENTS_JS)}, expected {expected};"
                f" app log: {self.app_log.read_text()[-2000:]}; daemon: {''.join(self.daemon.output[-20:])}"
            ) from None

    def chat(self, python: str, query: str = "", import_line: str | None = None, orbited_port: bool = True) -> None:
        first, second = self.start_tutorial(python, import_line, orbited_port)
        if not orbited_port:
            # orbited.js then connects to where it was loaded from, 127.0.0.1: open both
            # windows there, so that each is one site with the daemon (docs/MIGRATING.md).
            first = second
        ann = self.window(first, query)
        ben = self.window(second, query)
        ann.fill("#nickname", "ann")
        ann.click("input[value=nickname]")
        self.wait_events(ann, ["ann joined"])
        ben.fill("#nickname", "ben")
        ben.click("input[value=nickname]")
        self.wait_events(ann, ["ann joined", "ben joined"])
        self.wait_events(ben, ["ben joined"])
        ann.fill("#chat", "hello ben")
        ann.click("input[value=chat]")
        self.wait_events(ben, ["ben joined", "ann hello ben"])
        ben.fill("#chat", "hi ann")
        ben.click("input[value=chat]")
        self.wait_events(ann, ["ann joined", "ben joined", "ann hello ben", "ben hi ann"])
        self.wait_events(ben, ["ben joined", "ann hello ben", "ben hi ann"])
        ann.wait_for_timeout(500)  # nothing arrives twice
        self.assertEqual(ann.evaluate(EVENTS_JS), ["ann joined", "ben joined", "ann hello ben", "ben hi ann"])
        self.assertEqual(ben.evaluate(EVENTS_JS), ["ben joined", "ann hello ben", "ben hi ann"])
        self.assertEqual(ann.errors + ben.errors, [])

    def test_tutorial_on_python27_with_pyorbited(self) -> None:
        """CherryPy 3.0.4 and pyorbited 0.2.2; orbited.js picks its transport (WebSocket)."""
        self.chat(require(python27))

    def test_tutorial_over_cross_origin_xhr_streaming(self) -> None:
        """The streaming transport that needs CORS with credentials."""
        self.chat(require(python27), "?transport=xhrstream")

    def test_tutorial_over_cross_origin_longpoll(self) -> None:
        self.chat(require(python27), "?transport=longpoll")

    def test_page_without_orbited_port_connects_where_orbited_js_came_from(self) -> None:
        """No ORBITED_PORT: orbited.js finds the daemon from its own script src."""
        self.chat(require(python27), "?transport=xhrstream", orbited_port=False)
