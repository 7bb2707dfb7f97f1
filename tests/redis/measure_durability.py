"""What each Redis persistence setting keeps of acknowledged messages: a measurement, not a test.

For each setting, a redis-server of its own (temp dir, loopback, free port) and one
in-process daemon core (hub, Redis backplane, chat room) sending ``/msg``-equivalent room
messages from a few concurrent senders; after ``--kill-after`` acknowledged messages,
redis-server gets SIGKILL, is started again on the same directory, and the room's history
in Redis is compared with what was acknowledged. Power loss cannot be simulated here.

    PYTHONPATH=. python tests/redis/measure_durability.py [--messages 2000] [--kill-after 1500]
        [--senders 4] [--only everysec] [--rounds 1]

Prints one line per setting: acknowledged, lost, acknowledged messages per second before
the kill.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from twisted.internet import defer, reactor, task

from cherrychat.errors import Unavailable
from cherrychat.hub import Hub
from cherrychat.redis_backplane import RedisBackplane
from cherrychat.redis_chat import RedisChatRoom

SETTINGS = {
    "appendonly yes, appendfsync always": ("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
    "appendonly yes, appendfsync everysec": ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec"),
    "appendonly yes, appendfsync no": ("--save", "", "--appendonly", "yes", "--appendfsync", "no"),
    "RDB only, Redis's default save points (3600 1 300 100 60 10000)": ("--save", "3600 1 300 100 60 10000", "--appendonly", "no"),
    "RDB only, save 1 100 (a snapshot each second)": ("--save", "1 100", "--appendonly", "no"),
    "no persistence": ("--save", "", "--appendonly", "no"),
}
LOCATION = "/cherrychat"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(directory: str, port: int, persistence: tuple[str, ...]) -> subprocess.Popen:
    process = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, *persistence,
         "--daemonize", "no", "--logfile", os.path.join(directory, "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(500):  # at most 10 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("redis-server did not answer")


def stored_history(port: int) -> list[str]:
    """The payloads in the room's history, read with a plain socket (RESP)."""
    key = f"cherrychat:history:{LOCATION}".encode()
    command = b"*4\r\n$13\r\nZRANGEBYSCORE\r\n$%d\r\n%s\r\n$4\r\n-inf\r\n$4\r\n+inf\r\n" % (len(key), key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(command)
        reader = connection.makefile("rb")
        header = reader.readline()
        count = int(header[1:])
        items = []
        for _ in range(max(count, 0)):
            length = int(reader.readline()[1:])
            items.append(reader.read(length + 2)[:-2])
    return [json.loads(item)["payload"] for item in items]


def delayed_fsyncs(port: int) -> int:
    """Redis's ``aof_delayed_fsync``: times it answered clients before writing the AOF
    (``everysec`` while a background fsync is slow)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"INFO persistence\r\n")
        reader = connection.makefile("rb")
        length = int(reader.readline()[1:])
        text = reader.read(length + 2).decode()
    for line in text.splitlines():
        if line.startswith("aof_delayed_fsync:"):
            return int(line.split(":")[1])
    return 0


@defer.inlineCallbacks
def measure(name: str, persistence: tuple[str, ...], messages: int, kill_after: int, senders: int = 4):
    directory = tempfile.mkdtemp(prefix="cherrychat-durability-")
    port = free_port()
    redis = start_redis(directory, port, persistence)
    hub = Hub(reactor)
    backplane = RedisBackplane(f"redis://127.0.0.1:{port}/0", hub, reactor, retain_events=100000)
    room = RedisChatRoom(hub, reactor, backplane, presence_timeout=60)
    backplane.start()
    try:
        for _ in range(500):
            if backplane.healthy():
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        yield room.join("ann", "s")
        acknowledged: list[str] = []
        state: dict = {"killed_at": None, "started": time.monotonic(), "next": 0, "delayed": 0}

        @defer.inlineCallbacks
        def sender():
            while state["next"] < messages and state["killed_at"] is None:
                n = state["next"]
                state["next"] += 1
                text = f"m{n:05d}"
                try:
                    yield room.msg("ann", "s", text)
                except Unavailable:  # refused: Redis is gone
                    continue
                acknowledged.append(f"<b>ann</b> {text}")
                if len(acknowledged) >= kill_after and state["killed_at"] is None:
                    state["killed_at"] = time.monotonic()
                    state["delayed"] = delayed_fsyncs(port)
                    redis.send_signal(signal.SIGKILL)

        yield defer.gatherResults([sender() for _ in range(senders)], consumeErrors=True)
        elapsed = (state["killed_at"] or time.monotonic()) - state["started"]
        redis.wait(10)
        yield backplane.stop()
        room.stop()
        redis = start_redis(directory, port, persistence)
        kept = set(stored_history(port))
        lost = [text for text in acknowledged if text not in kept]
        with open(os.path.join(directory, "redis.log")) as log:
            postponed = sum("without waiting for fsync" in line for line in log)
        notes = []
        if state["delayed"]:
            notes.append(f"{state['delayed']} AOF writes postponed behind a slow fsync")
        if postponed:
            notes.append(f"redis logged {postponed} late AOF writes")
        print(f"{name}: {len(acknowledged)} acknowledged, {len(lost)} lost after kill -9 and restart, "
              f"{len(acknowledged) / elapsed:.0f} acknowledged messages/s before the kill"
              + "".join(f"; {note}" for note in notes), flush=True)
    finally:
        if redis.poll() is None:
            redis.terminate()
            redis.wait(10)
        shutil.rmtree(directory, True)


@defer.inlineCallbacks
def main(arguments: argparse.Namespace):
    try:
        for name, persistence in SETTINGS.items():
            if arguments.only and arguments.only not in name:
                continue
            for _ in range(arguments.rounds):
                yield measure(name, persistence, arguments.messages, arguments.kill_after, arguments.senders)
    finally:
        reactor.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kill-after", type=int, default=1500)
    parser.add_argument("--only", default="", help="only the settings whose name contains this")
    parser.add_argument("--senders", type=int, default=4, help="messages in flight at once")
    parser.add_argument("--rounds", type=int, default=1, help="measurements per setting")
    reactor.callWhenRunning(main, parser.parse_args())
    reactor.run()
