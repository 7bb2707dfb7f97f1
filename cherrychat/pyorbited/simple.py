"""The blocking client, as ``pyorbited.simple``: ``Client().connect(); event(keys, payload)``."""

from __future__ import annotations

import socket
import threading
from typing import Any, Iterable

from cherrychat.pyorbited.wire import OrbitFailure, ProtocolError, encode_body, encode_request, split_reply

__all__ = ["Client", "OrbitFailure"]


class Client:
    """One connection to an Orbit listener (``twistd cherrychat --orbit-listen tcp:9000``).

    ``event`` sends one event and waits for its reply: it returns the reply's text on
    ``Success`` and raises :class:`OrbitFailure` on ``Failure``. As pyorbited, a connection
    found broken is made again and the event sent once more (only when no reply had begun).
    Safe to share between threads: one event at a time goes over the connection.
    """

    version = "Orbit 1.0"

    def __init__(self, addr: str = "localhost", port: int = 9000, timeout: float | None = 30.0):
        self.addr = addr
        self.port = port
        self.timeout = timeout
        self.socket: socket.socket | None = None
        self.id = 0
        self.connected = False
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Connect, unless connected already."""
        self.connected = True
        if self.socket is None:
            self.socket = socket.create_connection((self.addr, self.port), timeout=self.timeout)

    def disconnect(self) -> None:
        """Close the connection."""
        self.connected = False
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def reconnect(self) -> None:
        """Close and connect again."""
        self.disconnect()
        self.connect()

    def event(self, recipients: Iterable[Any], body: Any, json: bool = True, retry: bool = True) -> str:
        """Publish ``body`` to the orbit keys ``recipients``; the reply text on success.

        @raise OrbitFailure: the daemon refused the event.
        @raise OSError: the daemon cannot be reached (after one retry when ``retry``).
        """
        data = encode_body(body, json)
        recipients = list(recipients)
        with self._lock:
            try:
                return self._send(recipients, data)
            except _Retryable as error:
                if not retry:
                    raise error.cause from None
                self.reconnect()
                try:
                    return self._send(recipients, data)
                except _Retryable as again:
                    raise again.cause from None

    def _send(self, recipients: list[Any], data: bytes) -> str:
        if not self.connected or self.socket is None:
            self.connect()
        assert self.socket is not None
        self.id += 1
        request_id = self.id
        try:
            self.socket.sendall(encode_request(request_id, recipients, data))
        except OSError as error:
            raise _Retryable(error) from None
        buffer = b""
        while True:
            try:
                chunk = self.socket.recv(4096)
            except OSError as error:
                if buffer:
                    raise
                raise _Retryable(error) from None
            if not chunk:
                lost = ConnectionError("the Orbit listener closed the connection")
                if buffer:
                    self.disconnect()
                    raise lost
                raise _Retryable(lost)
            buffer += chunk
            reply, _ = split_reply(buffer)
            if reply is not None:
                break
        if reply.id != str(request_id):
            self.disconnect()
            raise ProtocolError(f"reply to request {reply.id!r}, expected {request_id}")
        if not reply.success:
            raise OrbitFailure(reply)
        return reply.text


class _Retryable(Exception):
    def __init__(self, cause: OSError):
        super().__init__(str(cause))
        self.cause = cause
