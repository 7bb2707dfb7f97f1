"""Several daemons, one chat: events numbered, stored and shared through Redis.

With ``--redis URL`` every daemon uses a :class:`RedisBackplane` as its hub's backplane
(:meth:`Hub.use_backplane <cherrychat.hub.Hub.use_backplane>`). Publishing then runs one
Lua script in Redis that, atomically, takes the location's next id (``INCR``), stores the
event in the location's history (a sorted set scored by id, trimmed to
``--retain-events``) and ``PUBLISH``\\ es it on the one channel every daemon subscribes
to. Being one script, publication order is id order, and an event is stored before anyone
can see it. A room event (:meth:`RedisBackplane.broadcast`) is stored and published once,
with no recipients: each daemon's hub decides from its members who reads it. A targeted
event (:meth:`RedisBackplane.publish`) carries its keys.

Every daemon, the publisher included, takes the events from the channel and hands them to
:meth:`Hub.receive <cherrychat.hub.Hub.receive>` in id order. After every (re)connection it
first runs the :meth:`~RedisBackplane.on_resync` hooks (the chat room loads its members),
then loads from the history sets what it missed, and whenever an id skips ahead of the
hub's last id it fills the gap from the history before going on; so each daemon's hub holds
the same events with the same ids, and a client resumes with ``last_event_id`` on any
daemon. Control messages (JSON objects without ``id``: a nickname's new state) travel on
the same channel, in order with the events, to :meth:`~RedisBackplane.observe_control`.

A publish fires with the new ids once Redis has stored the event and this daemon's hub has
received it (so ``/msg`` answers ``200`` only for an event that is stored, and ``/history``
on the same daemon already shows it). While Redis cannot be reached the backplane is not
:meth:`~RedisBackplane.healthy`: publishing fails at once with
:class:`~cherrychat.errors.Unavailable` (``503``), streams stay open, and txredisapi
reconnects by itself; the backplane then resubscribes and resynchronises before it is
healthy again.

Keys (``PREFIX`` is ``cherrychat:``): ``PREFIX seq:LOCATION`` (the id counter),
``PREFIX history:LOCATION`` (sorted set of event JSON), ``PREFIX locations`` (set), and the
chat room's ``PREFIX members:LOCATION``, ``PREFIX member-stamp:LOCATION`` and
``PREFIX presence:LOCATION`` (see :mod:`cherrychat.redis_chat`). The channel is
``PREFIX DB:events``. Scripts run by SHA-1 (EVALSHA), and are sent whole only when Redis
does not know them. They touch keys they compute, so this needs a standalone Redis (or
Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.internet.defer import Deferred, fail, gatherResults, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from cherrychat.errors import Refused, Unavailable
from cherrychat.hub import DEFAULT_MAX_EVENTS, Event, Hub, parse_key

log = Logger()

DEFAULT_PREFIX = "cherrychat:"


# -- the address ---------------------------------------------------------------------


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is: parsed from ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``."""

    host: str
    port: int = 6379
    db: int = 0
    password: str | None = None
    username: str | None = None


def parse_redis_url(url: str) -> RedisAddress:
    """Parse a ``redis://`` URL.

    @raise ValueError: not a ``redis://`` URL, or a bad port or database number.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a redis://HOST[:PORT][/DB] URL: {url}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database in a redis URL is a number: {url}")
    return RedisAddress(
        host=parts.hostname,
        port=parts.port or 6379,
        db=int(path) if path else 0,
        password=unquote(parts.password) if parts.password else None,
        username=unquote(parts.username) if parts.username else None,
    )


class RedisKeys:
    """The names of the keys and of the channel, for one prefix and database."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, db: int = 0):
        self.prefix = prefix
        self.locations = f"{prefix}locations"
        # Pub/sub channels are shared by all databases of a server; keep them apart.
        self.channel = f"{prefix}{db}:events"

    def seq(self, location: str) -> str:
        """The id counter of ``location``."""
        return f"{self.prefix}seq:{location}"

    def history(self, location: str) -> str:
        """The sorted set of ``location``'s recent events, scored by id."""
        return f"{self.prefix}history:{location}"

    def members(self, location: str) -> str:
        """The hash of ``location``'s nickname holders: identity -> JSON holder record."""
        return f"{self.prefix}members:{location}"

    def stamps(self, location: str) -> str:
        """The counter numbering ``location``'s membership changes (apart from event ids)."""
        return f"{self.prefix}member-stamp:{location}"

    def presence(self, location: str) -> str:
        """The sorted set of ``location``'s holders by deadline (ms, Redis time): a holder
        past its deadline has had no connection anywhere for the presence timeout."""
        return f"{self.prefix}presence:{location}"

    def publishing(self, location: str) -> list[str]:
        """The keys every publishing script takes first: counter, history, locations."""
        return [self.seq(location), self.history(location), self.locations]


# -- scripts -------------------------------------------------------------------------

#: Lua shared by the scripts that publish: number, store, trim and announce an event.
#: ``body`` is the event's JSON object without ``id`` (and ``recipients``); the script puts
#: them in front, so the stored and published text carries its id. ``recipients`` is the
#: JSON array of a targeted event's keys, or ``''`` for a room event, which is stored
#: once with no recipients at all (its readers follow from the members' join ids).
LUA_LIBRARY = r"""
local function publish_event(seq, history, locations, channel, retain, location, recipients, body)
  local id = redis.call('INCR', seq)
  local head = '{"id":' .. string.format('%d', id) .. ','
  if recipients ~= '' then head = head .. '"recipients":' .. recipients .. ',' end
  local event = head .. string.sub(body, 2)
  redis.call('ZADD', history, id, event)
  local excess = redis.call('ZCARD', history) - tonumber(retain)
  if excess > 0 then
    redis.call('ZREMRANGEBYRANK', history, 0, excess - 1)
  end
  redis.call('SADD', locations, location)
  redis.call('PUBLISH', channel, event)
  return id
end

-- Now, in milliseconds of the Redis server's clock (one clock for every daemon).
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- The newest id handed out at a location: a member or holder from now on reads what is above it.
local function last_id(seq)
  return tonumber(redis.call('GET', seq) or '0')
end

-- Tell every daemon the new state of one nickname (nil: it is free), numbered by the
-- location's membership counter so that a daemon can tell old news from new.
local function announce_member(stamps, channel, location, user, holder)
  local stamp = redis.call('INCR', stamps)
  local record = 'null'
  if holder then record = cjson.encode(holder) end
  redis.call('PUBLISH', channel, '{"member":' .. cjson.encode(user) .. ',"record":' .. record ..
    ',"stamp":' .. string.format('%d', stamp) .. ',"location":' .. cjson.encode(location) .. '}')
  return stamp
end
"""


class Script:
    """A Lua script, run by its SHA-1 with EVALSHA; sent whole (EVAL) only when Redis
    answers NOSCRIPT, the first time on a server (or after it restarted or flushed its
    script cache)."""

    def __init__(self, name: str, body: str):
        self.name = name
        self.source = LUA_LIBRARY + body
        self.sha1 = hashlib.sha1(self.source.encode("utf-8")).hexdigest()


#: KEYS: seq, history, locations. ARGV: channel, retain, location, recipients JSON
#: (``''`` for a room event), body. The event's id.
PUBLISH = Script("publish", "return publish_event(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])")

#: KEYS: seq, locations. ARGV: the hub's last id, location. Ids never go backwards, even
#: when Redis lost its data: a daemon that saw id N makes the counter at least N.
SEED = Script(
    "seed",
    """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
""",
)


def event_body(location: str, time: float, payload: str, presence: dict[str, Any] | None = None) -> str:
    """An event's JSON object as the scripts complete it (they add the id, and the
    recipients of a targeted event); a presence notice carries its ``presence``."""
    fields: dict[str, Any] = {"time": time, "location": location, "payload": payload}
    if presence is not None:
        fields["presence"] = presence
    return json.dumps(fields, separators=(",", ":"))


def decode_event(text: str | bytes) -> Event:
    """An event as stored and published by the scripts: a room event has no recipients."""
    data = json.loads(text)
    recipients = data.get("recipients")
    presence = data.get("presence")
    return Event(
        int(data["id"]), float(data["time"]), data["payload"], data["location"],
        frozenset(recipients) if recipients is not None else None,
        presence if isinstance(presence, dict) else None,
    )


# -- connections ---------------------------------------------------------------------


class _Subscriber(txredisapi.SubscriberProtocol):
    """The pub/sub connection: hands every message to the backplane."""

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.backplane._message(message)


class _Factory(txredisapi.RedisFactory):
    """One reconnecting connection; tells the backplane when it is usable and when lost."""

    #: seconds before the first reconnection attempt, and at most between attempts
    initialDelay = 0.2
    maxDelay = 2.0

    def __init__(self, backplane: "RedisBackplane", protocol: type, reply_timeout: float | None):
        address = backplane.address
        super().__init__(
            f"{address.host}:{address.port}",
            address.db,
            1,
            isLazy=True,
            password=address.password,
            replyTimeout=reply_timeout,
            convertNumbers=False,
            username=address.username,
        )
        self.protocol = protocol
        self.backplane = backplane

    def addConnection(self, conn: Any) -> None:
        super().addConnection(conn)
        if conn in self.pool:
            self.backplane._connection_up(self, conn)

    def delConnection(self, conn: Any) -> None:
        super().delConnection(conn)
        self.backplane._connection_down(self, conn)


# -- the backplane -------------------------------------------------------------------


class RedisBackplane:
    """The hub's backplane on a Redis server; see the module's description.

    @param url: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``
    @param hub: the hub whose events are shared; it gets ``backplane`` set to this.
    @param reactor: the reactor that connects (and times retries and pings).
    @param retain_events: events each location keeps in Redis.
    @param reply_timeout: seconds a Redis command may take before the connection is
        taken as dead, dropped and reconnected.
    @param confirm_timeout: seconds a publish waits for this daemon's hub to receive the
        stored event before it answers anyway (the event is stored either way).
    """

    def __init__(
        self,
        url: str,
        hub: Hub,
        reactor: Any,
        retain_events: int = DEFAULT_MAX_EVENTS,
        prefix: str = DEFAULT_PREFIX,
        reply_timeout: float = 5.0,
        confirm_timeout: float = 5.0,
        ping_interval: float = 2.0,
    ):
        self.url = url
        self.address = parse_redis_url(url)
        self.keys = RedisKeys(prefix, self.address.db)
        self.hub = hub
        self.reactor = reactor
        self.retain_events = retain_events
        self.reply_timeout = reply_timeout
        self.confirm_timeout = confirm_timeout
        #: events this daemon published, and events it received from Redis
        self.published = 0
        self.received = 0
        #: scripts sent whole (EVAL) after Redis did not know their SHA-1
        self.scripts_sent = 0
        #: reactor time at which the backplane last became healthy
        self.healthy_since: float | None = None
        self._command: Any = None
        self._subscriber: Any = None
        self._synced = False
        self._syncing = False
        self._draining = False
        self._buffer: list[tuple[str, Any]] = []
        self._waiters: dict[str, list[tuple[int, Any, Deferred, IDelayedCall]]] = {}
        self._ready_observers: list[Callable[[], None]] = []
        self._control_observers: list[Callable[[dict[str, Any]], None]] = []
        self._resync_hooks: list[Callable[[], Deferred]] = []
        self._factories: list[_Factory] = []
        self._pinger = LoopingCall(self._ping)
        self._pinger.clock = reactor
        self._ping_interval = ping_interval
        self._retry: IDelayedCall | None = None
        self._stopped = False
        # Redis keeps one id sequence per room that never goes back (see _resync), so
        # every daemon of the chat shares one epoch.
        hub.use_backplane(self, "redis")

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Connect (and keep reconnecting) the command and the subscriber connections."""
        endpoint = HostnameEndpoint(self.reactor, self.address.host, self.address.port, timeout=self.reply_timeout)
        self._command_factory = _Factory(self, txredisapi.RedisProtocol, self.reply_timeout)
        self._subscriber_factory = _Factory(self, _Subscriber, None)
        self._factories = [self._command_factory, self._subscriber_factory]
        for factory in self._factories:
            factory.startConnecting(endpoint)
        self._pinger.start(self._ping_interval, now=False)

    def stop(self) -> Deferred:
        """Disconnect for good; publishes waiting for confirmation are answered."""
        self._stopped = True
        self._synced = False
        if self._pinger.running:
            self._pinger.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        for location in list(self._waiters):
            for _, result, waiter, timer in self._waiters.pop(location):
                if timer.active():
                    timer.cancel()
                waiter.callback(result)
        return gatherResults([factory.disconnect() for factory in self._factories], consumeErrors=True)

    def healthy(self) -> bool:
        """Connected to Redis, subscribed and caught up: publishing works now."""
        return self._synced

    def observe_ready(self, observer: Callable[[], None]) -> None:
        """Call ``observer()`` each time the backplane (re)gains Redis and caught up."""
        self._ready_observers.append(observer)

    def observe_control(self, observer: Callable[[dict[str, Any]], None]) -> None:
        """Call ``observer(message)`` for each control message of the channel (a JSON
        object without ``id``, e.g. a nickname's new state), in channel order with the
        events."""
        self._control_observers.append(observer)

    def on_resync(self, hook: Callable[[], Deferred]) -> None:
        """Call ``hook()`` on every (re)synchronisation, after subscribing and before the
        missed events are loaded; it may run scripts with ``run(..., syncing=True)`` and
        returns a Deferred. Control messages received meanwhile are handed on after it fired."""
        self._resync_hooks.append(hook)

    # -- commands --------------------------------------------------------------------

    def run(self, script: Script, keys: list[str], args: list[Any], syncing: bool = False) -> Deferred:
        """Run ``script``; fails with :class:`Unavailable` while Redis is not usable
        (with ``syncing``, only while it is not connected: for :meth:`on_resync` hooks)."""
        if not syncing and not self.healthy():
            return fail(Unavailable("chat backend unavailable, try again later"))
        return self._run(script, keys, args)

    def call(self, command: Callable[[Any], Deferred]) -> Deferred:
        """Run ``command(connection)`` (a txredisapi call); :class:`Unavailable` while Redis is lost."""
        if not self.healthy():
            return fail(Unavailable("chat backend unavailable, try again later"))
        return self._call(command)

    def _run(self, script: Script, keys: list[str], args: list[Any]) -> Deferred:
        def run(redis: Any) -> Deferred:
            def unknown(failure: Failure) -> Deferred:
                # NOSCRIPT: this server has not seen the script yet (or restarted).
                failure.trap(txredisapi.ScriptDoesNotExist)
                self.scripts_sent += 1
                return redis.eval(script.source, keys, args)

            return redis.evalsha(script.sha1, keys, args).addErrback(unknown)

        return self._call(run)

    def _call(self, command: Callable[[Any], Deferred]) -> Deferred:
        connection = self._command
        if connection is None:
            return fail(Unavailable("chat backend unavailable, try again later"))
        return maybeDeferred(command, connection).addErrback(self._unavailable)

    def _unavailable(self, failure: Failure) -> Failure:
        if failure.check(Refused):
            return failure
        if not failure.check(txredisapi.ConnectionError):
            log.failure("redis command failed", failure)
        return Failure(Unavailable("chat backend unavailable, try again later"))

    # -- publishing ------------------------------------------------------------------

    def publish(self, keys: list[str], payload: str) -> Deferred:
        """Number, store and share an event; fires with its ids, one per location."""
        by_location: dict[str, list[str]] = {}
        for key in keys:
            by_location.setdefault(parse_key(key)[2], []).append(key)
        now = self.hub.clock.seconds()
        published = [
            self.publish_with(
                PUBLISH,
                location,
                self.keys.publishing(location),
                [self.keys.channel, self.retain_events, location, json.dumps(sorted(location_keys)), event_body(location, now, payload)],
            )
            for location, location_keys in by_location.items()
        ]
        return gatherResults(published, consumeErrors=True).addErrback(lambda failure: failure.value.subFailure)

    def broadcast(self, location: str, payload: str, presence: dict[str, Any] | None = None) -> Deferred:
        """Number, store and share a room event: stored once, with no recipients, so it
        costs the same however many members the room has. Fires with its id."""
        body = event_body(location, self.hub.clock.seconds(), payload, presence)
        return self.publish_with(PUBLISH, location, self.keys.publishing(location),
                                 [self.keys.channel, self.retain_events, location, "", body])

    def publish_with(self, script: Script, location: str, keys: list[str], args: list[Any]) -> Deferred:
        """Run a publishing script and wait until this daemon's hub has the event.

        The script returns the event's id (or a list whose second item is the id, 0 when
        nothing was published); the Deferred fires with the script's result.
        """
        def stored(result: Any) -> Any:
            event_id = result[1] if isinstance(result, list) else result
            if not event_id:
                return result
            self.published += 1
            return self.stored(location, int(event_id), result)

        return self.run(script, keys, args).addCallback(stored)

    def stored(self, location: str, event_id: int, result: Any = None) -> Deferred:
        """Fires with ``result`` once the hub received event ``event_id`` of ``location``.

        Waits at most ``confirm_timeout``: the event is stored in Redis already, and a
        daemon that lost its subscription still gets it when it resynchronises.
        """
        if self.hub.channel(location).last_id >= event_id:
            return succeed(result)
        waiter: Deferred = Deferred()
        timer = self.reactor.callLater(self.confirm_timeout, self._confirm_late, location, event_id)
        self._waiters.setdefault(location, []).append((event_id, result, waiter, timer))
        return waiter

    def _confirm_late(self, location: str, event_id: int) -> None:
        log.warn("event {id} of {location} stored but not yet received", id=event_id, location=location)
        waiting = self._waiters.get(location, [])
        for entry in [entry for entry in waiting if entry[0] == event_id]:
            waiting.remove(entry)
            entry[2].callback(entry[1])

    def _confirm(self, location: str) -> None:
        waiting = self._waiters.get(location)
        if not waiting:
            return
        last_id = self.hub.channel(location).last_id
        ready = [entry for entry in waiting if entry[0] <= last_id]
        if not ready:
            return
        self._waiters[location] = [entry for entry in waiting if entry[0] > last_id]
        for _, result, waiter, timer in ready:
            if timer.active():
                timer.cancel()
            waiter.callback(result)

    # -- receiving -------------------------------------------------------------------

    def _message(self, message: str | bytes) -> None:
        """One message from the channel: an event, or a control message (a nickname's state)."""
        try:
            data = json.loads(message)
            item = ("event", decode_event(message)) if "id" in data else ("control", data)
        except (ValueError, KeyError, TypeError):
            log.warn("ignoring a malformed message from redis: {message!r}", message=message)
            return
        if self._synced and not self._buffer and not self._draining and item[0] == "event":
            event = item[1]
            last_id = self.hub.channel(event.location).last_id
            if event.id <= last_id + 1:
                self._receive(event)
                return
        self._buffer.append(item)
        if self._synced:
            self._drain().addErrback(self._drain_failed)

    def _receive(self, event: Event) -> None:
        if self.hub.receive(event):
            self.received += 1
        self._confirm(event.location)

    def _control(self, data: dict[str, Any]) -> None:
        for observer in self._control_observers:
            try:
                observer(data)
            except Exception:
                # One bad message must not stop the messages behind it.
                log.failure("a control message could not be applied: {data!r}", data=data)

    @inlineCallbacks
    def _drain(self):
        """Hand buffered messages to the hub in order, filling id gaps from the history."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._buffer:
                kind, item = self._buffer[0]
                if kind == "event" and item.id > self.hub.channel(item.location).last_id + 1:
                    yield self._fetch(item.location)
                self._buffer.pop(0)
                if kind == "control":
                    self._control(item)
                else:
                    self._apply([item])
        finally:
            self._draining = False

    def _drain_failed(self, failure: Failure) -> None:
        # The connection went away while filling a gap; resynchronising drains again.
        if not failure.check(Unavailable, txredisapi.ConnectionError):
            log.failure("could not catch up with redis", failure)

    @inlineCallbacks
    def _fetch(self, location: str):
        """Load the events of ``location`` after the hub's last id from the history."""
        after = self.hub.channel(location).last_id
        texts = yield self._call(lambda redis: redis.zrangebyscore(self.keys.history(location), f"({after}", "+inf"))
        self._apply(sorted((decode_event(text) for text in texts), key=lambda event: event.id))

    def _apply(self, events: Iterable[Event]) -> None:
        """Receive events (in id order); an id gap that the history cannot fill restarts the channel."""
        for event in events:
            channel = self.hub.channel(event.location)
            if event.id <= channel.last_id:
                continue
            if event.id != channel.last_id + 1 and channel.events:
                # More was missed than Redis retains: the channel starts over here, and a
                # client resuming from inside the hole gets a reset and reloads the history.
                log.warn(
                    "events {first} to {last} of {location} are no longer retained",
                    first=channel.last_id + 1, last=event.id - 1, location=event.location,
                )
                channel.restart(event.id - 1)
            self._receive(event)

    # -- connection state ------------------------------------------------------------

    def _connection_up(self, factory: _Factory, connection: Any) -> None:
        if self._stopped:
            return
        if factory is self._command_factory:
            self._command = connection
            self._synchronise()
        else:
            connection.subscribe(self.keys.channel).addCallbacks(
                lambda _: self._subscribed(connection), self._subscribe_failed
            )

    def _subscribed(self, connection: Any) -> None:
        if connection.connected:
            self._subscriber = connection
            self._synchronise()

    def _subscribe_failed(self, failure: Failure) -> None:
        if not failure.check(txredisapi.ConnectionError):
            log.failure("could not subscribe to redis", failure)

    def _connection_down(self, factory: _Factory, connection: Any) -> None:
        if connection is self._command:
            self._command = None
        elif connection is self._subscriber:
            self._subscriber = None
            # Messages published from now on are lost to this connection; the buffer is
            # kept (it is in order) and drained after the resynchronisation.
        else:
            return
        if self._synced and not self._stopped:
            log.warn("lost redis at {url}; refusing publishes until it is back", url=self.url)
        self._synced = False
        self.healthy_since = None

    def _synchronise(self) -> None:
        if self._stopped or self._synced or self._syncing or self._command is None or self._subscriber is None:
            return
        self._syncing = True
        self._resync().addErrback(self._resync_failed).addBoth(self._resync_done)

    @inlineCallbacks
    def _resync(self):
        """Catch up with Redis after (re)subscribing, before trusting pub/sub again."""
        for location, channel in self.hub.channels().items():
            if channel.last_id:
                yield self._run(SEED, [self.keys.seq(location), self.keys.locations], [channel.last_id, location])
        for hook in self._resync_hooks:
            yield hook()
        locations = yield self._call(lambda redis: redis.smembers(self.keys.locations))
        for location in sorted(locations):
            yield self._fetch(location)
        yield self._drain()
        if self._command is None or self._subscriber is None:
            return
        self._synced = True
        self.healthy_since = self.reactor.seconds()
        log.info("redis backplane ready at {url}", url=self.url)
        for observer in self._ready_observers:
            observer()

    def _resync_failed(self, failure: Failure) -> None:
        if not failure.check(Unavailable, txredisapi.ConnectionError):
            log.failure("could not resynchronise with redis; retrying", failure)
            # Connected but failing: try again shortly (a lost connection retries by itself).
            self._retry = self.reactor.callLater(1.0, self._synchronise)

    def _resync_done(self, _: object) -> None:
        self._syncing = False

    def _ping(self) -> None:
        # A Redis that stopped answering (not closed) is found by the reply timeout,
        # which drops the connection; txredisapi then reconnects.
        for connection in (self._command,):
            if connection is not None:
                maybeDeferred(connection.ping).addErrback(lambda _: None)
