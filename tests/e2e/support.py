"""What the browser tests share: the daemon, Chromium, a cuttable proxy, page helpers.

Every wait here is bounded in time, and every loop in count, so that a broken daemon or
browser fails a test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TRANSPORTS = ["websocket", "sse", "xhrstream", "iframe", "longpoll"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

# Playwright timeouts, in milliseconds.
WAIT_MS = 10_000
RECONNECT_WAIT_MS = 20_000

DAEMON_START_SECONDS = 20.0
DAEMON_STOP_SECONDS = 10.0
SERVING = re.compile(r"CherryChat serving on (http://127\.0\.0\.1:(\d+)/)")


def in_ci() -> bool:
    """CI sets CI=true: there a missing dependency is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_browser() -> None:
    """Skip (locally) or fail (in CI) when Chromium or Playwright is missing."""
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if not missing:
        return
    reason = "browser tests need " + " and ".join(missing)
    if in_ci():
        raise AssertionError(reason + " (CI=true: a missing dependency is a failure)")
    raise SkipTest(reason)


AXE_SCRIPT = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"


def axe_source() -> str:
    """axe-core's script (installed from npm by scripts/test); skip, or fail in CI, without it."""
    if AXE_SCRIPT.is_file():
        return AXE_SCRIPT.read_text(encoding="utf-8")
    reason = f"the accessibility checks need axe-core at {AXE_SCRIPT} (./scripts/test installs it)"
    if in_ci():
        raise AssertionError(reason + " (CI=true: a missing dependency is a failure)")
    raise SkipTest(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------

SOURCE_TREE = Path(__file__).resolve().parents[2]


def daemon_directory() -> str:
    """Where the daemon runs: by default away from the source tree, so that the tests
    exercise the installed package (its static files included); with
    CHERRYCHAT_E2E_FROM_SOURCE=1, in the checkout, to try changes without installing."""
    if os.environ.get("CHERRYCHAT_E2E_FROM_SOURCE") == "1":
        return str(SOURCE_TREE)
    return tempfile.gettempdir()


class Daemon:
    """``twistd cherrychat`` as a subprocess (run as ``python -m twisted cherrychat``).

    @param port: 0 for any free port, or a fixed one (to restart on the same port).
    @param database: ``:memory:`` or a file path.
    """

    def __init__(self, port: int = 0, database: str = ":memory:", extra: list[str] | None = None):
        self.port = port
        self.database = database
        self.extra = list(extra or [])
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.url = ""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "twisted", "--log-format", "text", "cherrychat",
            "--listen", f"tcp:{self.port}:interface=127.0.0.1",
            "--database", self.database,
            *self.extra,
        ]

    def start(self) -> "Daemon":
        """Start the daemon and wait for its "serving on" line."""
        self.output = []
        self._lines = queue.Queue()
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            cwd=daemon_directory(),
        )
        threading.Thread(target=self._read, args=(self.process, self._lines), daemon=True).start()
        deadline = time.monotonic() + DAEMON_START_SECONDS
        for _ in range(100_000):   # bounded by the deadline long before the count
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                break   # the daemon exited
            match = SERVING.search(line)
            if match:
                self.url = match.group(1).rstrip("/")
                self.port = int(match.group(2))
                return self
        self.stop()
        raise AssertionError("the daemon did not start:\n" + "".join(self.output[-40:]))

    def _read(self, process: subprocess.Popen[str], lines: "queue.Queue[str | None]") -> None:
        # Keep draining the output so that the daemon never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            if len(self.output) < 10_000:
                self.output.append(line)
            lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within a bound."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=DAEMON_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=DAEMON_STOP_SECONDS)


# ---------------------------------------------------------------------------------------
# A TCP proxy whose connections a test can cut
# ---------------------------------------------------------------------------------------


class CuttableProxy:
    """Forwards 127.0.0.1:port to the daemon; `cut()` drops every open connection.

    While `refusing` is set, new connections are closed at once, so that a page stays
    disconnected until the test lets it back in.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.refusing = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            if self.refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source)
            self._drop(sink)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        """Drop every connection now, like a network that went away."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._drop(sock)

    def close(self) -> None:
        self._stopped.set()
        self.cut()
        self._listener.close()


# ---------------------------------------------------------------------------------------
# Chromium
# ---------------------------------------------------------------------------------------


class BrowserSession:
    """One headless Chromium (Debian's, never a downloaded one) in a fresh profile."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self.profile = tempfile.mkdtemp(prefix="cherrychat-e2e-profile-")
        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS + [f"--disk-cache-dir={self.profile}/cache"],
                timeout=30_000,
            )
        except Exception:
            self._playwright.stop()
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.contexts: list[Any] = []

    def context(self, **options: Any) -> Any:
        """A new isolated context: its own cookies and localStorage, like another person."""
        options.setdefault("viewport", {"width": 1000, "height": 700})
        context = self.browser.new_context(**options)
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        return context

    def close_contexts(self) -> None:
        contexts, self.contexts = self.contexts, []
        for context in contexts:
            try:
                context.close()
            except Exception:
                pass

    def close(self) -> None:
        self.close_contexts()
        try:
            self.browser.close()
        finally:
            self._playwright.stop()
            shutil.rmtree(self.profile, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# The chat page
# ---------------------------------------------------------------------------------------

# Reads what the page shows: one string per event, without its time.
LINES_JS = "() => Array.from(document.querySelectorAll('#box .event .line'), e => e.textContent)"


class ChatPage:
    """The shipped page in one browser context, watched for dialogs and page errors."""

    def __init__(self, context: Any, base: str, transport: str | None = None):
        self.page = context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        query = f"?transport={transport}" if transport else ""
        self.url = f"{base}/static/chat.html{query}"
        self.page.goto(self.url)

    def _console(self, message: Any) -> None:
        # The daemon serves a strict Content-Security-Policy: the page must never trip it.
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def join(self, nickname: str) -> None:
        """Type a nickname, press the button, and wait until the page has joined."""
        self.page.fill("#nickname", nickname)
        self.page.click("#nickbutton")
        self.wait_joined()

    def wait_joined(self, timeout: int = WAIT_MS) -> None:
        try:
            self.page.wait_for_function(
                "() => document.getElementById('status').dataset.state === 'open'"
                " && !document.getElementById('chat').disabled",
                timeout=timeout,
            )
        except Exception:
            raise AssertionError(f"{self.url} has not joined: {self.describe()}") from None

    def describe(self) -> str:
        """The status line and the notice, for failure messages."""
        return json.dumps(self.page.evaluate(
            "() => ({status: document.getElementById('status').textContent,"
            " notice: document.getElementById('notice').textContent})"), ensure_ascii=False)

    def say(self, text: str) -> None:
        """Type a message, press Enter, and wait until the server accepted it."""
        self.page.fill("#chat", text)
        self.send_with(lambda: self.page.press("#chat", "Enter"))

    def send_with(self, action: Any) -> None:
        """Run `action`, which sends a message, and wait for the server's 200 to it."""
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/msg")
        ) as answer:
            action()
        if answer.value.status != 200:
            raise AssertionError(f"/msg answered {answer.value.status}: {answer.value.text()}")

    def lines(self) -> list[str]:
        return self.page.evaluate(LINES_JS)

    def wait_lines(self, expected: list[str], timeout: int = WAIT_MS) -> None:
        """Wait until the page shows exactly `expected`, in order; fail with what it shows."""
        try:
            self.page.wait_for_function(
                f"expected => JSON.stringify(({LINES_JS})()) === JSON.stringify(expected)",
                arg=expected,
                timeout=timeout,
            )
        except Exception:
            raise AssertionError(
                f"{self.url} shows {json.dumps(self.lines(), ensure_ascii=False)},"
                f" expected {json.dumps(expected, ensure_ascii=False)}"
            ) from None

    def wait_status(self, state: str, timeout: int = WAIT_MS) -> str:
        """Wait for a connection state and return the status line's text."""
        self.page.wait_for_function(
            "state => document.getElementById('status').dataset.state === state",
            arg=state,
            timeout=timeout,
        )
        return self.page.text_content("#status") or ""

    def accessibility_violations(self, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
        """Run axe-core on the page as it is now; its violations of the given impacts.

        The script is evaluated through the DevTools protocol, which the page's
        Content-Security-Policy does not govern, so the page is checked under its own CSP.
        """
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.evaluate(axe_source())
        violations = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ['violations']});
                return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
            }"""
        )
        return [v for v in violations if v["impact"] in impacts]

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
