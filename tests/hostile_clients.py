"""Hostile clients, and one well-behaved client to watch beside them, over real loopback
sockets (blocking, standard library only, so that the benchmark can import them too).

Every attack is bounded in count and time by its arguments, and returns what the daemon
answered; :class:`SideClient` joins the chat, holds an ``xhrstream`` and times each of its
own messages from sending ``/msg`` to the event's arrival on its stream.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import secrets
import socket
import struct
import threading
import time
from urllib.parse import quote

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10.0, receive_buffer: int | None = None) -> socket.socket:
    """A TCP connection to ``127.0.0.1:port`` from ``source`` (any 127.0.0.0/8 address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 10.0, limit: int = 64 * 1024 * 1024) -> bytes:
    """Everything the daemon sends until it closes (or resets) the connection, at most
    ``limit`` bytes and ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while time.monotonic() < deadline and len(data) < limit:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer."""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer[9:12])


def request(port: int, method: str, target: str, cookie: str = "", body: str = "", source: str = "127.0.0.1",
            headers: dict[str, str] | None = None) -> tuple[int | None, dict[str, str], bytes]:
    """One ``Connection: close`` request; ``(status, headers, body)``."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    data = body.encode("utf-8")
    if method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(data)}"]
    with connect(port, source) as sock:
        sock.sendall("\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + data)
        answer = read_until_closed(sock)
    head, _, content = answer.partition(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if fields.get("transfer-encoding") == "chunked":
        content = dechunk(content)
    return status_of(answer), fields, content


def dechunk(data: bytes) -> bytes:
    """The body of a chunked answer."""
    body = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        body += rest[:size]
        data = rest[size + 2:]
    return body


def new_session(port: int, source: str = "127.0.0.1") -> str:
    """A fresh browser session's cookie (``cherrychat_session=...``), or ``""`` if refused."""
    status, fields, _ = request(port, "GET", "/healthz", source=source)
    return fields.get("set-cookie", "").split(";", 1)[0] if status == 200 else ""


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class SideClient:
    """A well-behaved chat client from its own address: joined, reading an ``xhrstream``."""

    def __init__(self, port: int, source: str = "127.0.0.2", name: str = "side"):
        self.port = port
        self.source = source
        self.name = name
        self.cookie = new_session(port, source)
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._buffer = b""
        self.stream = connect(port, source)
        self.stream.sendall(
            f"GET /cherrychat?user={name}&session=0&transport=xhrstream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: {self.cookie}\r\n\r\n".encode()
        )
        self._wait_for(b'"type":"open"', 10.0)
        status, _, body = request(port, "POST", "/join", self.cookie, f"user={name}", source)
        if status != 200:
            raise AssertionError(f"the side client could not join: {status} {body!r}")
        self._wait_for(f"{name} joined".encode(), 10.0)
        # Messages go over one keep-alive connection, as a browser's would.
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))

    def _wait_for(self, marker: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {marker!r} on the side client's stream")
            self.stream.settimeout(remaining)
            chunk = self.stream.recv(65536)
            if not chunk:
                raise ConnectionError("the side client's stream closed")
            self._buffer += chunk
        self._buffer = self._buffer[self._buffer.index(marker) + len(marker):]

    def say(self, text: str) -> float:
        """Send ``text`` and return the seconds until it arrived on the stream."""
        started = time.monotonic()
        self.http.request("POST", "/msg", body=f"user={self.name}&msg={quote(text)}",
                          headers={"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})
        response = self.http.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"/msg answered {response.status} {body!r}")
        self._wait_for(text.encode(), 10.0)
        return time.monotonic() - started

    def measure(self, count: int, interval: float = 0.02) -> list[float]:
        """Send ``count`` messages, ``interval`` seconds apart; their latencies."""
        for n in range(count):
            try:
                self.latencies.append(self.say(f"side-{secrets.token_hex(4)}-{n}"))
            except Exception as error:  # recorded; the test fails on it
                self.errors.append(repr(error))
            time.sleep(interval)
        return self.latencies

    def measure_in_background(self, count: int, interval: float = 0.02) -> threading.Thread:
        """:meth:`measure` in a thread; join it to get :attr:`latencies`."""
        thread = threading.Thread(target=self.measure, args=(count, interval), daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Close the stream and the connection of the messages."""
        self.stream.close()
        self.http.close()


# -- attacks ------------------------------------------------------------------------------


def slowloris(port: int, count: int, source: str = "127.0.0.1", pace: float = 0.0) -> list[socket.socket]:
    """``count`` connections, ``pace`` seconds apart, that each send a request line and
    one header, never the end."""
    sockets = []
    for _ in range(count):
        sock = connect(port, source)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sockets.append(sock)
        time.sleep(pace)
    return sockets


def drip(sockets: list[socket.socket], n: int) -> int:
    """One more header line on each connection still open; how many took it."""
    alive = 0
    for sock in sockets:
        try:
            sock.sendall(b"X-Drip-%d: 1\r\n" % n)
            alive += 1
        except OSError:
            pass
    return alive


def pipelined_history(port: int, count: int, limit: int = 1000, source: str = "127.0.0.1") -> socket.socket:
    """One connection sending ``count`` pipelined ``/history`` requests and reading nothing
    (a small receive buffer, so the daemon's answers stay on its side)."""
    sock = connect(port, source, receive_buffer=4096)
    sock.sendall(b"GET /history?limit=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % limit * count)
    return sock


def websocket(port: int, cookie: str, user: str, source: str = "127.0.0.1", handshake: bytes | None = None) -> tuple[socket.socket, bytes]:
    """A WebSocket upgrade for ``user``; the socket and the daemon's answer head."""
    sock = connect(port, source)
    sock.sendall(handshake if handshake is not None else (
        f"GET /cherrychat?user={user}&session={secrets.token_hex(4)}&transport=websocket HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nCookie: {cookie}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def masked_frame_header(opcode: int, length: int, fin: bool = True) -> tuple[bytes, bytes]:
    """A client frame's header for a payload of ``length`` bytes, and its mask."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + mask, mask


def endless_message(sock: socket.socket, seconds: float, chunk: int = 65536) -> tuple[int, bytes]:
    """Send one text message that never ends (a frame declaring 2**40 bytes), for at most
    ``seconds``; the bytes sent before the daemon stopped taking them, and what it sent."""
    header, mask = masked_frame_header(0x1, 2**40, fin=False)
    sent = 0
    received = b""
    sock.sendall(header)
    # Valid text once unmasked ("a" repeated), so that only the size can stop it; a chunk
    # of a multiple of 4 bytes keeps the mask aligned from one chunk to the next.
    chunk -= chunk % 4
    payload = bytes(byte ^ mask[n % 4] for n, byte in enumerate(b"a" * chunk))
    deadline = time.monotonic() + seconds
    sock.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            sent += sock.send(payload)
        except TimeoutError:
            pass
        except OSError:
            break
        try:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        except TimeoutError:
            pass
        except OSError:
            break
    return sent, received


def session_flood(port: int, count: int, source: str = "127.0.0.3", pace: float = 0.0) -> list[int | None]:
    """``count`` fresh sessions from ``source``, ``pace`` seconds apart, each joining under
    a new nickname; the status of each join (or of the session's refusal)."""
    codes: list[int | None] = []
    for n in range(count):
        time.sleep(pace)
        cookie = new_session(port, source)
        if not cookie:
            codes.append(429)
            continue
        codes.append(request(port, "POST", "/join", cookie, f"user=flood{n}", source)[0])
    return codes


def history_payloads(port: int, limit: int = 1000, source: str = "127.0.0.4") -> list[str]:
    """The payloads of ``/history``."""
    status, _, body = request(port, "GET", f"/history?limit={limit}", source=source)
    assert status == 200, (status, body)
    return [event["payload"] for event in json.loads(body)["events"]]


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid``."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError("no VmRSS")
