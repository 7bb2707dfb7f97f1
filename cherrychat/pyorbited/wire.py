"""The Orbit protocol as the clients speak it: one request per event, one reply each."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

VERSION = b"Orbit 1.0"
END = b"\r\n\r\n"
#: a reply longer than this is not one this daemon sends
MAX_REPLY_BYTES = 64 * 1024


class OrbitFailure(Exception):
    """The daemon answered ``Failure``: nothing was published.

    ``msg`` is its reason, ``recipients`` the keys it names, ``id`` the request's id.
    """

    def __init__(self, reply: OrbitReply):
        super().__init__(reply.msg or "Failure")
        self.reply = reply
        self.id = reply.id
        self.msg = reply.msg
        self.recipients = reply.recipients


class ProtocolError(IOError):
    """The daemon's answer is not an Orbit reply (wrong port?)."""


@dataclass
class OrbitReply:
    """One reply: ``status`` is ``Success`` or ``Failure``; ``text`` the reply as sent."""

    status: str
    id: str
    text: str
    msg: str = ""
    recipients: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """Whether the event was published."""
        return self.status == "Success"


def encode_body(payload: Any, json_encode: bool = True) -> bytes:
    """The body of an event: the payload as JSON (pyorbited's default), or its text."""
    if json_encode:
        return json.dumps(payload).encode("ascii")
    return payload if isinstance(payload, bytes) else str(payload).encode("utf-8")


def encode_request(request_id: int, recipients: Iterable[Any], body: bytes) -> bytes:
    """One ``Event`` request for ``recipients`` (orbit keys ``"user, session, /location"``)."""
    lines = [VERSION, b"Event", b"id: %d" % request_id]
    for recipient in recipients:
        key = str(recipient)
        if "\r" in key or "\n" in key:
            raise ValueError(f"an orbit key cannot hold a line break: {key!r}")
        lines.append(b"recipient: " + key.encode("utf-8"))
    lines.append(b"length: %d" % len(body))
    return b"\r\n".join(lines) + END + body


def split_reply(buffer: bytes) -> tuple[OrbitReply | None, bytes]:
    """The first complete reply in ``buffer`` and what follows it, or ``(None, buffer)``.

    @raise ProtocolError: the buffer holds no Orbit reply.
    """
    end = buffer.find(END)
    if end < 0:
        if len(buffer) > MAX_REPLY_BYTES or (buffer and not (b"Success".startswith(buffer[:7]) or b"Failure".startswith(buffer[:7]))):
            raise ProtocolError(f"not an Orbit reply: {buffer[:40]!r}")
        return None, buffer
    text = buffer[: end + len(END)].decode("utf-8", "replace")
    lines = text[: -len(END)].split("\r\n")
    status = lines[0]
    if status not in ("Success", "Failure"):
        raise ProtocolError(f"not an Orbit reply: {text[:40]!r}")
    reply = OrbitReply(status=status, id="", text=text)
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        if name == "recipient":
            reply.recipients.append(value[1:-1] if value.startswith("(") and value.endswith(")") else value)
        else:
            reply.headers[name] = value
    reply.id = reply.headers.get("id", "")
    reply.msg = reply.headers.get("msg", "")
    return reply, buffer[end + len(END) :]
