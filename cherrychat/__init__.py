"""CherryChat: the Orbited tutorial's chat as one Twisted daemon.

The public pieces are :class:`cherrychat.hub.Hub` (orbit keys, event ids, fan-out, and
``event(keys, payload)``), :class:`cherrychat.chat.ChatRoom` (the tutorial's one room),
the transports in :mod:`cherrychat.comet`, the web resource in :mod:`cherrychat.web` and
the twistd service in :mod:`cherrychat.tap`.
"""

__version__ = "0.1.0"
