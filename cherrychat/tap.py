"""``twistd cherrychat``: the command-line options and the service that wires the parts."""

from __future__ import annotations

import gc
import os
import resource as rlimit
from typing import Any, Sequence

from twisted.application.service import IService, MultiService, Service
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from cherrychat.assets import static_directory
from cherrychat.chat import DEFAULT_PRESENCE_TIMEOUT, ChatRoom, Room
from cherrychat.comet import Comet, CometSettings
from cherrychat.hub import DEFAULT_MAX_AGE, DEFAULT_MAX_EVENTS, DEFAULT_MAX_NOTICES, Hub
from cherrychat.metrics import metrics_resource
from cherrychat.orbit import OrbitFactory, OrbitSettings, hub_publisher, loopback_default
from cherrychat.proxy import ProxyRoot, opt_proxy
from cherrychat.security_options import (
    SECURITY_PARAMETERS,
    connection_caps,
    opt_allowed_origin,
    opt_trusted_proxy,
    positive,
    web_security,
)
from cherrychat.store import DEFAULT_DATABASE, DEFAULT_SYNC, SYNC_MODES, HistoryStore
from cherrychat.web import ChatWeb

log = Logger()

DEFAULT_LISTEN = "tcp:4700:interface=127.0.0.1"
#: seconds between sweeps of what departed clients left behind
SWEEP_INTERVAL = 10.0
# Each option's default is the one its settings state.
_COMET = CometSettings()


def sync_mode(value: str) -> str:
    """Check ``--database-sync``."""
    if value not in SYNC_MODES:
        raise ValueError(f"--database-sync must be one of {', '.join(SYNC_MODES)}")
    return value


class Options(usage.Options):
    """The options of ``twistd cherrychat``."""

    optFlags: list[Sequence[Any]] = [
        ["no-access-log", None, "Write no line per HTTP request to the log (long-polling writes one per poll)."],
    ]

    optParameters: list[Sequence[Any]] = [
        ["orbit-listen", None, None, "Accept pyorbited 0.2 clients (the Orbit protocol of Orbited's port 9000) on this endpoint description, e.g. tcp:9000; on the loopback interface unless the description names one. Off by default.", loopback_default],
        ["metrics-listen", None, None, "Serve /metrics (Prometheus) on this endpoint description, e.g. tcp:9700:interface=127.0.0.1; off by default."],
        ["database", None, DEFAULT_DATABASE, "SQLite file keeping the history across restarts; :memory: keeps nothing."],
        ["redis", None, None, "Share one chat among daemons through Redis at this URL, e.g. redis://127.0.0.1:6379/0; history and presence then live in Redis and --database is not used. Off by default."],
        ["presence-timeout", None, DEFAULT_PRESENCE_TIMEOUT, "Seconds after a member's last connection closed before the member leaves.", positive(float)],
        ["heartbeat", None, _COMET.heartbeat, "Seconds of silence before a stream gets a heartbeat and a long-poll returns empty.", positive(float)],
        ["database-sync", None, DEFAULT_SYNC, "How hard SQLite makes each commit durable: full (survives power loss) or normal (survives the daemon being killed, not the machine losing power).", sync_mode],
        ["retain-events", None, DEFAULT_MAX_EVENTS, "Events each location keeps: its history, and what clients resume from.", positive(int)],
        ["retain-seconds", None, DEFAULT_MAX_AGE, "Age after which a client can no longer resume from an event (it gets a reset and reloads the history).", positive(float)],
        ["max-connections", None, _COMET.max_connections, "Open comet connections in all; more get 503.", positive(int)],
        ["max-queued-bytes", None, _COMET.max_queued_bytes, "Bytes queued for a client that cannot keep up before it is disconnected.", positive(int)],
        *SECURITY_PARAMETERS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    opt_allowed_origin = opt_allowed_origin
    opt_trusted_proxy = opt_trusted_proxy
    opt_proxy = opt_proxy

    def opt_listen(self, description: str) -> None:
        """Listen on a Twisted endpoint description, e.g. tcp:4700:interface=127.0.0.1,
        tcp6:port=4700:interface=\\:\\:, ssl:..., unix:... (repeatable; replaces the
        default tcp:4700:interface=127.0.0.1)."""
        self["listen"].append(description)

    def postOptions(self) -> None:
        """Fill in the default listener; check the Redis URL."""
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        if self["redis"]:
            from cherrychat.redis_backplane import parse_redis_url

            try:
                parse_redis_url(self["redis"])
            except ValueError as error:
                raise usage.UsageError(str(error)) from None


class ListenerService(Service):
    """Listens on one endpoint description and says where it serves."""

    def __init__(self, reactor: Any, description: str, factory: Site, announce: str = "CherryChat serving on", scheme: str | None = None):
        self.reactor = reactor
        self.announce = announce
        #: how the address is shown in the log; http or https by default
        self.scheme = scheme
        self.description = description
        self.factory = factory
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        """Bind early, before twistd would drop privileges.

        @raise SystemExit: the endpoint cannot listen (its port is taken, say): the daemon
            exits at once, non-zero, with one line that says where and why.
        """
        Service.privilegedStartService(self)
        self._bound: Deferred = serverFromString(self.reactor, self.description).listen(self.factory)
        self._bound.addCallbacks(self._listened, self._failed)
        if self._cannot_listen is not None:
            raise SystemExit(self._cannot_listen)

    def startService(self) -> None:
        """Binding started in :meth:`privilegedStartService`."""
        if not hasattr(self, "_bound"):
            self.privilegedStartService()
        Service.startService(self)

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address = port.getHost()
        host = getattr(address, "host", None)
        if host is not None:
            shown = f"[{host}]" if ":" in host else host
            scheme = self.scheme or ("https" if self.description.startswith("ssl:") else "http")
            port_number = getattr(address, "port", None)
            log.info("{announce} {url}", announce=self.announce, url=f"{scheme}://{shown}:{port_number}/")
        else:
            log.info("{announce} {address}", announce=self.announce, address=address)
        return port

    def when_listening(self) -> Deferred:
        """A Deferred that fires with the listening port once bound."""
        waiter: Deferred = Deferred()

        def tell(port: IListeningPort | None) -> IListeningPort | None:
            waiter.callback(port)
            return port

        self._bound.addCallback(tell)
        return waiter

    _cannot_listen: str | None = None

    def _failed(self, failure: Any) -> None:
        # A daemon that cannot listen where it was told is of no use: say why, in one
        # line, and exit non-zero.
        self._cannot_listen = f"cherrychat: cannot listen on {self.description}: {failure.getErrorMessage()}"
        if self.reactor.running:
            # Bound later than at start (an endpoint that listens asynchronously); at
            # start, privilegedStartService raises SystemExit with the line instead.
            log.critical("{line}", line=self._cannot_listen)
            self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
            self.reactor.stop()

    def stopService(self) -> Deferred:
        """Stop accepting connections."""
        Service.stopService(self)
        return self.when_listening().addCallback(lambda port: port and port.stopListening())


class CherryChatService(MultiService):
    """The daemon: the hub, the chat room, the comet core and the web listeners.

    Stopping it stops accepting, tells every streaming client to reconnect, and then
    lets the listeners finish.
    """

    def __init__(self, config: Options, reactor: Any, clock: IReactorTime | None = None):
        super().__init__()
        self.reactor = reactor
        # Timers (presence, heartbeats, retention) read ``clock``; tests pass a task.Clock
        # to drive them while the sockets run on the real reactor.
        clock = clock if clock is not None else reactor
        self.clock = clock
        self.store: HistoryStore | None = None
        if not config["redis"] and config["database"] != ":memory:":
            self.store = HistoryStore(config["database"], reactor, keep=config["retain-events"],
                                      keep_notices=DEFAULT_MAX_NOTICES, sync=config["database-sync"])
        self.hub = Hub(clock, max_events=config["retain-events"], max_age=config["retain-seconds"], journal=self.store)
        self.backplane: Any = None
        self.chat: Room
        if config["redis"]:
            # Several daemons, one chat: ids, history, nicknames and presence in Redis.
            from cherrychat.redis_backplane import RedisBackplane
            from cherrychat.redis_chat import RedisChatRoom

            self.backplane = RedisBackplane(config["redis"], self.hub, reactor, retain_events=config["retain-events"])
            self.chat = RedisChatRoom(self.hub, clock, self.backplane, presence_timeout=config["presence-timeout"], reactor=reactor)
        elif self.store is not None:
            loaded = self.store.load_into(self.hub)
            log.info("history: {count} events from {path}", count=loaded, path=config["database"])
        if self.backplane is None:
            room = ChatRoom(self.hub, clock, presence_timeout=config["presence-timeout"], membership=self.store)
            if self.store is not None:
                room.restore(self.store.load_members(room.location))
            self.chat = room
        self.comet = Comet(
            self.hub,
            clock,
            CometSettings(
                heartbeat=config["heartbeat"],
                max_connections=config["max-connections"],
                max_queued_bytes=config["max-queued-bytes"],
                **connection_caps(config),
            ),
        )
        healthy = self.backplane.healthy if self.backplane is not None else (self.store.healthy if self.store else (lambda: True))
        self.web = ChatWeb(self.chat, self.comet, static_directory(), healthy=healthy, **web_security(config))
        # HTTP deadlines run on the reactor even when tests drive the other timers by hand.
        self.site = self.web.site(access_log=not config["no-access-log"], reactor=reactor)
        if config.get("proxy"):
            # Orbited 0.3's proxy role: the app behind the daemon, on one origin.
            self.site.resource = ProxyRoot(self.site.resource, config["proxy"], reactor, [self.chat.location.encode()])
        self.listeners = [ListenerService(reactor, d, self.site) for d in config["listen"]]
        if config["metrics-listen"]:
            metrics_site = Site(metrics_resource(self.hub, self.comet, self.web.refusals, self.store))
            self.listeners.append(ListenerService(reactor, config["metrics-listen"], metrics_site, "CherryChat metrics on"))
        if config["orbit-listen"]:
            # pyorbited's publishing port; each event goes through the hub like /msg's.
            orbit = OrbitFactory(hub_publisher(self.hub), clock, OrbitSettings(max_payload_bytes=config["max-payload-bytes"]))
            self.listeners.append(ListenerService(reactor, config["orbit-listen"], orbit, "CherryChat Orbit protocol on", "tcp"))  # type: ignore[arg-type]
        for listener in self.listeners:
            listener.setServiceParent(self)
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = clock

    def startService(self) -> None:
        """Raise the file limit, start the timers and listen."""
        raise_file_limit()
        if self.store is not None:
            self.store.start()
        if self.backplane is not None:
            self.backplane.start()
        self.chat.start()
        super().startService()
        self.comet.start()
        self._sweeper.start(SWEEP_INTERVAL, now=False)

    def sweep(self) -> None:
        """Forget what departed clients left: idle hub keys, full rate buckets."""
        self.hub.sweep()
        self.web.limits.prune()

    def stopService(self) -> Deferred:
        """Stop accepting, send streaming clients away, stop the timers."""
        # From the signal on, publishing answers 503 with Retry-After; what was accepted
        # before is committed before the store closes.
        self.hub.close()
        stopped = DeferredList([maybeDeferred(listener.stopService) for listener in self.listeners])
        Service.stopService(self)
        self.comet.stop()
        self.chat.stop()
        if self._sweeper.running:
            self._sweeper.stop()
        if self.store is not None:
            store = self.store
            stopped.addBoth(lambda _: store.stop())
        if self.backplane is not None:
            backplane = self.backplane
            stopped.addBoth(lambda _: backplane.stop())
        return stopped


def raise_file_limit() -> None:
    """Raise the soft limit on open files to the hard one: each connection is a file."""
    soft, hard = rlimit.getrlimit(rlimit.RLIMIT_NOFILE)
    if soft < hard:
        rlimit.setrlimit(rlimit.RLIMIT_NOFILE, (hard, hard))
        log.info("raised the open-file limit from {soft} to {hard}", soft=soft, hard=hard)


def makeService(config: Options, reactor: Any = global_reactor) -> IService:
    """Build the daemon's service from parsed options."""
    service = CherryChatService(config, reactor)
    # What is loaded by now (modules, classes, the service, the loaded history) lives as
    # long as the daemon: kept out of the collector's full passes, which otherwise scan it
    # over and over while thousands of short-lived requests come and go (a fifth of the
    # daemon's time with 1,000 long-pollers: bench/analysis.md).
    gc.collect()
    gc.freeze()
    return service
