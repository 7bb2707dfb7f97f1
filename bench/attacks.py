"""Misbehaving clients for the hostile-neighbours scenario, one kind per process:

    python bench/attacks.py KIND --port P [--source 127.0.99.1] [--count N] [--seconds S]

Every attack comes from one loopback source address, is bounded by ``--count`` (connections
held or requests sent) and by ``--seconds`` (it stops by itself), and prints one JSON line
of what it did when it ends or gets SIGTERM. Kinds:

- ``slowloris``: N connections, each sending a request's headers one line every few
  seconds and never finishing them.
- ``pipeline``: N pipelined ``GET /history?limit=1000`` (250 per connection), answers
  never read.
- ``wsmessage``: one WebSocket whose one text message never ends (a frame announcing
  2^40 bytes, sent as fast as the daemon takes it, at most ``--max-bytes``).
- ``wsrefused``: N WebSocket handshakes the daemon refuses (``Connection: x-upgrade``, no
  ``Host``, ``Host: xn--a`` in turn), all from one browser session.
- ``joinstorm``: N fresh sessions (no cookie) each ``/join`` with a new nickname.
- ``labels``: N long-polls (three sessions, 45 at a time), each with a new ``session=``
  label, given up after 50 ms.
- ``fill``: not an attack; fills the room's history with N messages of ``--size`` bytes
  from sessions that stay within the default rate limits (before ``pipeline``).

Stand-alone (standard library only), so that it runs under any Python.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import socket
import time
from collections import Counter
from typing import Any

COOKIE = re.compile(rb"cherrychat_session=([A-Za-z0-9_-]+)")
PER_CONNECTION = 250  # pipelined requests per connection


class Attack:
    """Shared state: where to connect from and to, the deadline, and what happened."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.host = "127.0.0.1"
        self.deadline = time.monotonic() + args.seconds
        self.stats: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.writers: list[asyncio.StreamWriter] = []
        self.t0 = time.monotonic()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def connect(self, rcvbuf: int | None = None,
                      held: bool = True) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection from the attack's source address (a small receive buffer if
        asked: a client that never reads); a ``held`` one is aborted when the attack ends."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        sock.bind((self.args.source, 0))
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (self.host, self.args.port)), 5)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        if held:
            self.writers.append(writer)
        return reader, writer

    async def request(self, head: str, timeout: float = 10.0) -> tuple[int, bytes, bytes]:
        """One request on its own connection, read to its end: status, headers, body."""
        reader, writer = await self.connect(held=False)
        try:
            writer.write(head.encode("latin-1"))
            data = await asyncio.wait_for(reader.read(1 << 20), timeout)
            while data and b"\r\n\r\n" not in data:
                more = await asyncio.wait_for(reader.read(1 << 20), timeout)
                if not more:
                    break
                data += more
            headers, _, body = data.partition(b"\r\n\r\n")
            status = int(headers.split(b" ", 2)[1]) if headers.startswith(b"HTTP/") else 0
            return status, headers, body
        finally:
            writer.close()

    async def session(self) -> str:
        """A browser session: the cookie the chat page sets."""
        status, headers, _ = await self.request(get("/static/chat.html"))
        match = COOKIE.search(headers)
        if not match:
            raise RuntimeError(f"no session cookie (status {status})")
        return match.group(1).decode()

    def report(self) -> dict[str, Any]:
        return {"kind": self.args.kind, "seconds": round(time.monotonic() - self.t0, 2), **self.stats,
                "statuses": dict(self.statuses)}


def get(path: str, cookie: str | None = None, extra: str = "", host: str | None = "127.0.0.1") -> str:
    """A GET request's head, closing the connection after the answer."""
    head = f"GET {path} HTTP/1.1\r\n"
    if host is not None:
        head += f"Host: {host}\r\n"
    if cookie:
        head += f"Cookie: cherrychat_session={cookie}\r\n"
    return head + extra + "Connection: close\r\n\r\n"


async def bounded(attack: Attack, count: int, concurrency: int, one: Any) -> None:
    """``one(i)`` for i < count, ``concurrency`` at a time, none started past the deadline."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and attack.left() > 0:
            i = next_index
            next_index += 1
            try:
                await one(i)
            except (OSError, asyncio.TimeoutError, ValueError, IndexError) as error:
                attack.statuses[type(error).__name__] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def hold(attack: Attack) -> None:
    """Keep what is open until the deadline."""
    await asyncio.sleep(max(0.0, attack.left()))


# -- the attacks -----------------------------------------------------------------------


async def slowloris(attack: Attack) -> None:
    """Half-sent requests: one more header line every ``--interval`` seconds, never the end."""

    async def one(i: int) -> None:
        try:
            reader, writer = await attack.connect()
        except (OSError, asyncio.TimeoutError):
            attack.stats["refused"] += 1
            return
        attack.stats["opened"] += 1
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = 0
        while attack.left() > 0:
            try:
                # Data or end of stream from the daemon means it gave up on us.
                got = await asyncio.wait_for(reader.read(4096), min(attack.args.interval, max(0.01, attack.left())))
                attack.stats["closed_by_server"] += 1
                attack.stats["answered" if got else "closed_silently"] += 1
                return
            except asyncio.TimeoutError:
                pass
            except OSError:
                attack.stats["closed_by_server"] += 1
                return
            line += 1
            try:
                writer.write(f"X-Slow-{line}: {i}\r\n".encode())
            except OSError:
                attack.stats["closed_by_server"] += 1
                return

    # Opened in waves so that the listen backlog is not the first thing that breaks.
    tasks = []
    for i in range(attack.args.count):
        if attack.left() <= 0:
            break
        tasks.append(asyncio.create_task(one(i)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)


async def pipeline(attack: Attack) -> None:
    """Pipelined /history?limit=1000 requests whose answers are never read."""
    cookie = await attack.session()
    head = (f"GET /history?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: cherrychat_session={cookie}\r\n\r\n")
    count = attack.args.count
    for start in range(0, count, PER_CONNECTION):
        _, writer = await attack.connect(rcvbuf=4096)
        n = min(PER_CONNECTION, count - start)
        writer.write(head.encode() * n)
        attack.stats["requests"] += n
        attack.stats["connections"] += 1
        attack.stats["bytes_sent"] += len(head) * n
    await hold(attack)


async def wsmessage(attack: Attack) -> None:
    """One WebSocket text message announced as 2^40 bytes, sent until the daemon stops it."""
    cookie = await attack.session()
    reader, writer = await attack.connect()
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(get("/cherrychat?user=atk&session=0&transport=websocket", cookie,
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Key: {key}\r\n").replace("Connection: close\r\n", "").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    attack.statuses[str(status)] += 1
    if status != 101:
        return
    closed = asyncio.Event()

    async def watch() -> None:
        # The daemon's frames (unmasked); its close frame or the end of the stream ends the attack.
        buffer = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data
                while len(buffer) >= 2:
                    size, start = buffer[1] & 0x7F, 2
                    if size == 126:
                        size, start = int.from_bytes(buffer[2:4], "big"), 4
                    elif size == 127:
                        size, start = int.from_bytes(buffer[2:10], "big"), 10
                    if len(buffer) < start + size:
                        break
                    if buffer[0] & 0x0F == 0x8:
                        payload = buffer[start:start + size]
                        attack.stats["close_code"] = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                    buffer = buffer[start + size:]
        except OSError:
            pass
        attack.stats["closed_by_server_after_s"] = round(time.monotonic() - attack.t0, 2)
        closed.set()

    watcher = asyncio.create_task(watch())
    mask = os.urandom(4)
    writer.write(bytes([0x81, 0xFF]) + (1 << 40).to_bytes(8, "big") + mask)
    chunk = bytes(b ^ mask[i % 4] for i, b in enumerate(b"a" * 65536))
    while attack.left() > 0 and attack.stats["bytes_sent"] < attack.args.max_bytes and not closed.is_set():
        try:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), max(0.01, attack.left()))
        except (OSError, asyncio.TimeoutError):
            break
        # Counted as it goes: a stop by SIGTERM still reports it.
        attack.stats["bytes_sent"] += len(chunk)
    if not closed.is_set():
        await hold(attack)
    watcher.cancel()


async def wsrefused(attack: Attack) -> None:
    """Handshakes the daemon refuses, each on a new connection, all from one session."""
    cookie = await attack.session()
    upgrade = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    path = "/cherrychat?user=atk&session=0&transport=websocket"

    async def one(i: int) -> None:
        key = f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        variant = i % 3
        if variant == 0:
            head = get(path, cookie, upgrade + key).replace("Connection: close", "Connection: x-upgrade")
        elif variant == 1:
            head = get(path, cookie, upgrade + key + "Connection: Upgrade\r\n", host=None)
            head = head.replace("Connection: close\r\n", "")
        else:
            head = get(path, cookie, upgrade + key + "Connection: Upgrade\r\n", host="xn--a")
            head = head.replace("Connection: close\r\n", "")
        status, _, _ = await attack.request(head, timeout=5)
        attack.statuses[str(status)] += 1

    await bounded(attack, attack.args.count, 10, one)
    # Whether the refusals left the session able to connect: a leaked count shows as 429.
    status, _, _ = await attack.request(get("/cherrychat?user=atk&session=0&transport=sse", cookie), timeout=2)
    attack.statuses[f"then a stream of that session: {status}"] += 1


async def joinstorm(attack: Attack) -> None:
    """Fresh sessions joining with new nicknames, as fast as the daemon answers."""

    async def one(i: int) -> None:
        status, _, _ = await attack.request(get(f"/join?user=storm{i}&session=0"), timeout=10)
        attack.statuses[str(status)] += 1

    await bounded(attack, attack.args.count, 20, one)


async def labels(attack: Attack) -> None:
    """Long-polls, each with a session label never used before, given up after 50 ms (a
    poll is held until an event for its key, and none comes): three sessions, each with
    its own nickname and 15 polls at a time (under the default 20 per session)."""
    cookies = [await attack.session() for _ in range(3)]

    async def one(i: int) -> None:
        label = os.urandom(6).hex()
        reader, writer = await attack.connect(held=False)
        try:
            writer.write(get(f"/cherrychat?user=lp{i % 3}&session={label}&transport=longpoll",
                             cookies[i % 3]).encode())
            answer = await asyncio.wait_for(reader.read(12), 0.05)
            attack.statuses[answer.decode(errors="replace")[9:12] or "closed"] += 1
        except asyncio.TimeoutError:
            attack.stats["polls_held"] += 1
        finally:
            writer.transport.abort()

    await bounded(attack, attack.args.count, 45, one)


async def fill(attack: Attack) -> None:
    """``--count`` messages of ``--size`` bytes, 25 per session (within the default per-session
    burst), so that /history?limit=1000 has something to answer with."""
    text = "h" * attack.args.size
    per_session = 25
    sessions = (attack.args.count + per_session - 1) // per_session

    async def one(s: int) -> None:
        cookie = await attack.session()
        status, _, _ = await attack.request(get(f"/join?user=fill{s}&session=0", cookie))
        attack.statuses[f"join {status}"] += 1
        for _ in range(min(per_session, attack.args.count - s * per_session)):
            status, _, _ = await attack.request(get(f"/msg?user=fill{s}&session=0&msg={text}", cookie))
            attack.statuses[f"msg {status}"] += 1

    await bounded(attack, sessions, 8, one)


KINDS = {f.__name__: f for f in (slowloris, pipeline, wsmessage, wsrefused, joinstorm, labels, fill)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.99.1", help="loopback address to send from")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0, help="slowloris: seconds between header lines")
    parser.add_argument("--max-bytes", type=int, default=64 << 20, help="wsmessage: most bytes to send")
    parser.add_argument("--size", type=int, default=1000, help="fill: bytes per message")
    args = parser.parse_args()
    if not args.source.startswith("127."):
        parser.error("attacks stay on loopback: --source must be in 127.0.0.0/8")
    return args


async def main() -> None:
    args = parse_args()
    attack = Attack(args)
    task = asyncio.create_task(KINDS[args.kind](attack))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await asyncio.wait_for(task, args.seconds + 15)
    except (asyncio.CancelledError, asyncio.TimeoutError):
        attack.stats["stopped"] = 1
    except Exception as error:  # noqa: BLE001 - reported, not raised: the run goes on
        attack.stats["error"] = 1
        attack.statuses[f"{type(error).__name__}: {error}"[:80]] += 1
    for writer in attack.writers:
        writer.transport.abort()
    print(json.dumps(attack.report()), flush=True)


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main())
