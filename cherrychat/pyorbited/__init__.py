"""pyorbited's interface on Python 3, for code written against Orbited's publishing client.

The tutorial's ``chat.py`` runs unchanged but for one import::

    from cherrychat.pyorbited.simple import Client   # was: from pyorbited.simple import Client
    orbited = Client()          # localhost:9000, as pyorbited; run twistd cherrychat --orbit-listen tcp:9000
    orbited.connect()
    orbited.event(keys, payload)

:mod:`cherrychat.pyorbited.simple` is the blocking client, :mod:`cherrychat.pyorbited.twistedorbit`
the Twisted one (its ``event`` returns a Deferred). Unlike pyorbited, both raise
:class:`OrbitFailure` when the daemon refuses an event, instead of handing back the reply
text as if it were a success.
"""

from cherrychat.pyorbited.wire import OrbitFailure, OrbitReply

__all__ = ["OrbitFailure", "OrbitReply"]
