"""The chat room when daemons share Redis: nicknames, members and presence kept in Redis.

:class:`RedisChatRoom` implements :class:`cherrychat.chat.Room` with the rules of
:class:`cherrychat.chat.ChatRoom` (nickname identity, the label bound, the payloads, the
presence notices), its state in Redis so that a nickname held through one daemon is held
on all of them. Every operation costs the same however many members the room has:

- ``PREFIX members:LOCATION`` is a hash, nickname identity -> ``{"name", "session",
  "held", "joined", "labels"}``, where ``held`` is the id after which the holder's tenure
  starts (what was addressed to the nickname before is not theirs) and ``labels`` maps
  each joined label to the id after which that key reads room events. Claiming, joining,
  sending and leaving are each one Lua script that reads and writes one entry, so two
  daemons cannot both win a nickname.
- Each change of an entry is told to every daemon as a control message on the event
  channel, numbered by ``PREFIX member-stamp:LOCATION``; each daemon mirrors the entries
  into its hub (:meth:`Hub.hold`, :meth:`Hub.admit`, :meth:`Hub.expel`,
  :meth:`Hub.release`) and so decides locally who reads a room event, which is stored
  once with no recipients. Being on the event channel, a change reaches a daemon before
  any event numbered after it. Every (re)synchronisation loads the whole hash again.
- ``PREFIX presence:LOCATION`` is a sorted set, identity -> deadline (milliseconds of the
  Redis clock), one presence timeout ahead. Every daemon moves it on, every third of the
  timeout, for the nicknames it holds connections for, and once more after the last of
  them closed. A sweep on every daemon takes the holders past their deadline (a range of
  the set: it costs what expired, not what the room holds) and removes each by a script
  that only one daemon can win.
- Joins and leaves go out as presence notices gathered by a
  :class:`~cherrychat.presence.PresenceBatcher` on the daemon where the join was asked for,
  or whose sweep removed the holder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from cherrychat.chat import (
    CHAT_LOCATION,
    DEFAULT_PRESENCE_TIMEOUT,
    message_payload,
    nickname_taken,
    not_joined,
    not_yours,
)
from cherrychat.errors import NotYours, Taken, Unavailable
from cherrychat.hub import Hub, InvalidKey, make_key, parse_key
from cherrychat.presence import DEFAULT_WINDOW, PresenceBatcher
from cherrychat.validation import MAX_LABELS_PER_NICKNAME, too_many_labels
from cherrychat.validation import nickname_identity as identity
from cherrychat.redis_backplane import RedisBackplane, Script, event_body

log = Logger()

#: KEYS: members, presence, seq, stamps. ARGV: identity, name, session, ttl ms,
#: channel, location. {1, stamp}: held by session (stamp 0: it was already); {0, 0}: taken.
CLAIM = Script(
    "claim",
    """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cjson.decode(raw).session ~= ARGV[3] then return {0, 0} end
  return {1, 0}
end
local holder = {name = ARGV[2], session = ARGV[3], held = last_id(KEYS[3]), joined = false, labels = {}}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(holder))
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[4]), ARGV[1])
return {1, announce_member(KEYS[4], ARGV[5], ARGV[6], ARGV[1], holder)}
""",
)

#: KEYS: members, presence, seq, stamps.
#: ARGV: identity, name, session, label, ttl ms, channel, location, labels allowed.
#: {code, stamp, name}: code 0 taken, 1 joined now, 2 already joined, 3 too many labels.
JOIN = Script(
    "join",
    """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local holder
if raw then
  holder = cjson.decode(raw)
  if holder.session ~= ARGV[3] then return {0, 0, ''} end
  holder.name = holder.name or ARGV[2]
  holder.held = holder.held or 0
else
  holder = {name = ARGV[2], session = ARGV[3], held = last_id(KEYS[3]), joined = false, labels = {}}
end
local newly = not holder.joined
if holder.labels[ARGV[4]] then return {newly and 1 or 2, 0, holder.name} end
local count = 0
for _ in pairs(holder.labels) do count = count + 1 end
if count >= tonumber(ARGV[8]) then return {3, 0, holder.name} end
holder.joined = true
holder.labels[ARGV[4]] = last_id(KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(holder))
redis.call('ZADD', KEYS[2], 'NX', now_ms() + tonumber(ARGV[5]), ARGV[1])
return {newly and 1 or 2, announce_member(KEYS[4], ARGV[6], ARGV[7], ARGV[1], holder), holder.name}
""",
)

#: KEYS: members, seq, history, locations. ARGV: identity, name, session, channel, retain,
#: location, body. {1, id, ''}: sent as room event ``id``; {-1, 0, ''}: not joined;
#: {-2, 0, ''}: another session's nickname; {-3, 0, name}: the member is spelled ``name``.
MSG = Script(
    "msg",
    """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {-1, 0, ''} end
local holder = cjson.decode(raw)
if not holder.joined then return {-1, 0, ''} end
if holder.session ~= ARGV[3] then return {-2, 0, ''} end
if holder.name and holder.name ~= ARGV[2] then return {-3, 0, holder.name} end
return {1, publish_event(KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[6], '', ARGV[7]), ''}
""",
)

#: KEYS: members, presence. ARGV: ttl ms, identities... Moves the deadline of the held ones.
REFRESH = Script(
    "refresh",
    """
local deadline = now_ms() + tonumber(ARGV[1])
local count = 0
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], deadline, ARGV[i])
    count = count + 1
  end
end
return count
""",
)

#: KEYS: presence. ARGV: at most how many. The holders past their deadline, oldest first:
#: a range of the sorted set, so a sweep costs what expired, not what the room holds.
EXPIRED = Script(
    "expired",
    """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
""",
)

#: KEYS: members, presence, stamps. ARGV: identity, channel, location.
#: {0, 0, ''}: not removed (back, or removed by another daemon); {1, joined, name}: removed.
LEAVE = Script(
    "leave",
    """
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if deadline and tonumber(deadline) > now_ms() then return {0, 0, ''} end
redis.call('ZREM', KEYS[2], ARGV[1])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, 0, ''} end
local holder = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
announce_member(KEYS[3], ARGV[2], ARGV[3], ARGV[1], nil)
return {1, holder.joined and 1 or 0, holder.name or ARGV[1]}
""",
)

#: KEYS: members, stamps, presence. ARGV: ttl ms. {stamp, {identity, record, ...}}: every
#: holder, and the stamp of the newest change they include. A holder without a deadline
#: (kept by an older version) gets one. Run on (re)synchronisation only: it reads the hash.
SNAPSHOT = Script(
    "snapshot",
    """
local all = redis.call('HGETALL', KEYS[1])
local deadline = now_ms() + tonumber(ARGV[1])
for i = 1, #all, 2 do redis.call('ZADD', KEYS[3], 'NX', deadline, all[i]) end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), all}
""",
)

#: holders a sweep removes at most at once (the rest at the next sweep)
SWEEP_BATCH = 1000


@dataclass(eq=False, slots=True)
class _Holder:
    """This daemon's copy of one entry of the members hash."""

    name: str
    session: str
    held: int
    joined: bool
    labels: dict[str, int]

    @classmethod
    def decode(cls, record: Any, user: str = "") -> "_Holder":
        """From the record as the scripts encode it (a JSON text or its decoded object);
        ``user`` is its field, the name of a record kept by an older version (which had
        no ``name`` and no ids: it reads from the start of what is retained)."""
        data = json.loads(record) if isinstance(record, (str, bytes)) else record
        labels = data.get("labels") or {}
        return cls(str(data.get("name") or user), str(data["session"]), _id(data.get("held")), bool(data.get("joined")),
                   {str(label): _id(since) for label, since in labels.items()} if isinstance(labels, dict) else {})


class RedisChatRoom:
    """The chat room at ``location``, its state in Redis through ``backplane``.

    @param reactor: times the presence refresh and the sweep (Redis expires keys in real
        time, so these run on the reactor even when ``clock`` is a test clock).
    @param presence_window: seconds over which joins and leaves are gathered into one notice.
    """

    def __init__(
        self,
        hub: Hub,
        clock: IReactorTime,
        backplane: RedisBackplane,
        location: str = CHAT_LOCATION,
        presence_timeout: float = DEFAULT_PRESENCE_TIMEOUT,
        reactor: Any = None,
        presence_window: float = DEFAULT_WINDOW,
    ):
        self.hub = hub
        self.clock = clock
        self.location = location
        self.presence_timeout = presence_timeout
        self.backplane = backplane
        self.reactor = reactor if reactor is not None else backplane.reactor
        self._ttl_ms = max(1, int(presence_timeout * 1000))
        keys = backplane.keys
        self._members_key = keys.members(location)
        self._stamps_key = keys.stamps(location)
        self._presence_key = keys.presence(location)
        #: this daemon's mirror of the members hash: identity -> holder, and by session
        self._holders: dict[str, _Holder] = {}
        self._by_session: dict[str, set[str]] = {}
        #: the stamp of the newest membership change applied to the mirror
        self._stamp = 0
        self._stamp_waiters: list[tuple[int, Deferred, IDelayedCall]] = []
        #: identity -> this daemon's keys with a connection; and who lost their last one
        self._online: dict[str, set[str]] = {}
        self._offline: set[str] = set()
        self._refreshed: dict[str, float] = {}
        self._presence = PresenceBatcher(clock, self._publish_presence, presence_window)
        self._refresher = LoopingCall(self._refresh)
        self._refresher.clock = self.reactor
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = self.reactor
        self.sweep_interval = max(0.2, min(2.0, presence_timeout / 5))
        hub.guard(location)
        hub.observe_presence(self._presence_changed)
        backplane.on_resync(self._load_members)
        backplane.observe_control(self._control)
        backplane.observe_ready(self._ready)

    def start(self) -> None:
        """Start refreshing presence and sweeping expired holders."""
        if not self._refresher.running:
            self._refresher.start(self.presence_timeout / 3, now=False)
        if not self._sweeper.running:
            self._sweeper.start(self.sweep_interval, now=False)

    def stop(self) -> None:
        """Stop the timers; presence keys of this daemon's members then run out in Redis."""
        self._presence.stop()
        for loop in (self._refresher, self._sweeper):
            if loop.running:
                loop.stop()
        waiters, self._stamp_waiters = self._stamp_waiters, []
        for _, waiter, timer in waiters:
            if timer.active():
                timer.cancel()
            waiter.callback(None)

    # -- the Room interface ----------------------------------------------------------

    def claim(self, user: str, session: str) -> Deferred:
        """Reserve ``user`` for ``session``, as a comet connection does before joining.

        A nickname this daemon's mirror shows held by the session is not asked again (so
        long-poll requests do not each cost a round trip, and streams of members
        reconnect while Redis is briefly away).

        @raise NotYours: (through the Deferred) the nickname is held by another session.
        """
        holder = self._holders.get(identity(user))
        if holder is not None and holder.session == session:
            return succeed(None)

        def claimed(result: list[Any]) -> Deferred:
            if not int(result[0]):
                raise nickname_taken(user, NotYours)
            return self._applied(int(result[1]))

        keys = [self._members_key, self._presence_key, self._seq_key, self._stamps_key]
        args = [identity(user), user, session, self._ttl_ms, self.backplane.keys.channel, self.location]
        return self.backplane.run(CLAIM, keys, args).addCallback(claimed)

    def join(self, user: str, session: str, label: str = "0") -> Deferred:
        """Make ``user`` a member with orbit key ``user, label, location``.

        Fires with ``True`` when the nickname joined now and ``False`` when it was already
        a member, once Redis stored the membership and this daemon applied it.

        @raise Taken: (through the Deferred) the nickname is held by another session.
        @raise Refused: (429) the nickname has joined with as many labels as allowed.
        """
        try:
            self.hub.check_open()
        except Unavailable as refusal:
            return fail(refusal)
        keys = [self._members_key, self._presence_key, self._seq_key, self._stamps_key]
        args = [identity(user), user, session, label, self._ttl_ms, self.backplane.keys.channel, self.location,
                MAX_LABELS_PER_NICKNAME]

        def joined(result: list[Any]) -> Deferred:
            code, stamp, name = int(result[0]), int(result[1]), _text(result[2])
            if code == 0:
                raise nickname_taken(user, Taken)
            if code == 3:
                raise too_many_labels()
            steps = [self._applied(stamp)]
            if code == 1 and stamp:
                steps.append(self._presence.joined(name))
            return gatherResults(steps, consumeErrors=True).addCallbacks(
                lambda _: code == 1, lambda failure: failure.value.subFailure
            )

        return self.backplane.run(JOIN, keys, args).addCallback(joined)

    def msg(self, user: str, session: str, text: str) -> Deferred:
        """Send ``<b>NAME</b> text`` (both escaped) to every member as one room event;
        fires with its id once stored and received by this daemon's hub.

        @raise NotYours: (through the Deferred) ``user`` is not a member held by ``session``.
        """
        try:
            self.hub.check_open()
        except Unavailable as refusal:
            return fail(refusal)
        # Joins and leaves gathered here go out first (the same connection keeps them in
        # order): nobody reads a message from a member before reading that it joined.
        self._presence.flush_pending()
        holder = self._holders.get(identity(user))
        return self._send(user, holder.name if holder is not None else user, session, text, retry=True)

    def _send(self, user: str, name: str, session: str, text: str, retry: bool) -> Deferred:
        keys = [self._members_key, *self.backplane.keys.publishing(self.location)]
        body = event_body(self.location, self.hub.clock.seconds(), message_payload(name, text))
        args = [identity(user), name, session, self.backplane.keys.channel, self.backplane.retain_events,
                self.location, body]

        def sent(result: list[Any]) -> Any:
            code = int(result[0])
            if code == 1:
                return int(result[1])
            if code == -3 and retry:
                # Spelled otherwise than this daemon's mirror knew: send under the member's name.
                return self._send(user, _text(result[2]), session, text, retry=False)
            if code == -2:
                raise not_yours(user)
            raise not_joined(user)

        return self.backplane.publish_with(MSG, self.location, keys, args).addCallback(sent)

    def rename(self, old: str, new: str, session: str, label: str = "0") -> Deferred:
        """Not yet with Redis (renaming needs its own script): fails with a 503."""
        return fail(Unavailable("renaming is not available with --redis"))

    def members(self) -> Deferred:
        """Fires with the nicknames that joined and have not left, sorted, read from Redis
        (so exact on every daemon)."""

        def decode(raw: dict[str, str] | None) -> list[str]:
            holders = (_Holder.decode(record, _text(user)) for user, record in (raw or {}).items())
            return sorted(holder.name for holder in holders if holder.joined)

        return self.backplane.call(lambda redis: redis.hgetall(self._members_key)).addCallback(decode)

    def keys_of(self, session: str) -> list[str]:
        """The orbit keys of the nicknames ``session`` holds: what it may read."""
        return [
            make_key(holder.name, label, self.location)
            for holder in (self._holders[user] for user in self._by_session.get(session, ()))
            for label in (holder.labels or {"0": 0})
        ]

    def member_keys(self) -> list[str]:
        """The orbit keys of every member (one per session label), as this daemon last heard."""
        return [
            make_key(holder.name, label, self.location)
            for holder in self._holders.values() if holder.joined for label in holder.labels
        ]

    def holder_of(self, user: str) -> str | None:
        """The session holding ``user`` as this daemon last heard, or ``None``."""
        holder = self._holders.get(identity(user))
        return holder.session if holder is not None else None

    @property
    def _seq_key(self) -> str:
        return self.backplane.keys.seq(self.location)

    # -- the mirror of the members hash ----------------------------------------------

    def _load_members(self) -> Deferred:
        """Load the whole hash (every resynchronisation: changes may have been missed)."""

        def loaded(result: list[Any]) -> None:
            stamp, flat = int(result[0]), result[1] or []
            records = {_text(flat[i]): _Holder.decode(_text(flat[i + 1]), _text(flat[i])) for i in range(0, len(flat) - 1, 2)}
            for user in [user for user in self._holders if user not in records]:
                self._apply(user, None)
            for user, holder in records.items():
                try:
                    self._apply(user, holder)
                except InvalidKey:
                    log.warn("ignoring the member {user!r}: its name or labels make no key", user=user)
            # The counter may have gone back (Redis lost its data): take it as it is now.
            self._stamp = stamp
            self._wake()

        keys = [self._members_key, self._stamps_key, self._presence_key]
        return self.backplane.run(SNAPSHOT, keys, [self._ttl_ms], syncing=True).addCallback(loaded)

    def _control(self, data: dict[str, Any]) -> None:
        """A nickname's new state from the channel (in order with the events)."""
        if data.get("location") != self.location or "member" not in data:
            return
        try:
            stamp = int(data["stamp"])
            user = str(data["member"])
            record = data.get("record")
            holder = _Holder.decode(record, user) if record is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warn("ignoring a malformed membership message: {data!r}", data=data)
            return
        if stamp <= self._stamp:
            return  # already in the mirror (loaded with the hash)
        try:
            self._apply(user, holder)
        except InvalidKey:
            log.warn("ignoring a membership with an invalid key: {data!r}", data=data)
        self._stamp = stamp
        self._wake()

    def _apply(self, user: str, holder: _Holder | None) -> None:
        old = self._holders.get(user)
        if old is not None and (holder is None or holder.session != old.session or holder.name != old.name):
            self._drop(user, old)
            old = None
        if holder is None:
            return
        self._holders[user] = holder
        self._by_session.setdefault(holder.session, set()).add(user)
        self.hub.hold(self.location, holder.name, holder.held)
        for label, since in holder.labels.items():
            self.hub.admit(make_key(holder.name, label, self.location), since)
        if old is not None:
            for label in old.labels.keys() - holder.labels.keys():
                self.hub.expel(make_key(old.name, label, self.location))

    def _drop(self, user: str, old: _Holder) -> None:
        del self._holders[user]
        sessions = self._by_session.get(old.session)
        if sessions is not None:
            sessions.discard(user)
            if not sessions:
                del self._by_session[old.session]
        for label in old.labels:
            self.hub.expel(make_key(old.name, label, self.location))
        # What was addressed to the nickname stays unreadable to its next holder.
        self.hub.release(self.location, old.name)

    def _applied(self, stamp: int) -> Deferred:
        """Fires once the mirror has change ``stamp`` (at most the confirm timeout later:
        Redis has it either way)."""
        if stamp <= self._stamp:
            return succeed(None)
        waiter: Deferred = Deferred()
        timer = self.reactor.callLater(self.backplane.confirm_timeout, self._late, waiter)
        self._stamp_waiters.append((stamp, waiter, timer))
        return waiter

    def _late(self, waiter: Deferred) -> None:
        log.warn("a membership change is stored but not yet received")
        self._stamp_waiters = [entry for entry in self._stamp_waiters if entry[1] is not waiter]
        waiter.callback(None)

    def _wake(self) -> None:
        if not self._stamp_waiters:
            return
        ready = [entry for entry in self._stamp_waiters if entry[0] <= self._stamp]
        self._stamp_waiters = [entry for entry in self._stamp_waiters if entry[0] > self._stamp]
        for _, waiter, timer in ready:
            if timer.active():
                timer.cancel()
            waiter.callback(None)

    # -- presence --------------------------------------------------------------------

    def _publish_presence(self, payload: str, presence: dict[str, Any]) -> Deferred:
        publishing = maybeDeferred(self.hub.broadcast, self.location, payload, presence)
        # A notice that cannot be stored is not worth failing the join for.
        publishing.addErrback(self._ignore_unavailable)
        return publishing

    def _presence_changed(self, key: str, online: bool) -> None:
        try:
            user, _, location = parse_key(key)
        except InvalidKey:
            return
        if location != self.location:
            return
        user = identity(user)
        keys = self._online.get(user)
        if online:
            if keys is None:
                keys = self._online[user] = set()
                self._offline.discard(user)
                # A claim gave the nickname one timeout; make sure it is not about to run
                # out before the next refresh (a long-poll comes and goes: not each time).
                refreshed = self._refreshed.get(user)
                if refreshed is None or self.reactor.seconds() - refreshed > self.presence_timeout / 3:
                    self._send_refresh([user])
            keys.add(key)
        elif keys is not None:
            keys.discard(key)
            if not keys:
                del self._online[user]
                # Refreshed once more at the next tick: the member leaves about one
                # presence timeout after its last connection here closed.
                self._offline.add(user)

    def _refresh(self) -> None:
        users = sorted(set(self._online) | self._offline)
        self._offline.clear()
        for user in list(self._refreshed):
            if user not in self._online:
                del self._refreshed[user]
        self._send_refresh(users)

    def _send_refresh(self, users: list[str]) -> None:
        if not users or not self.backplane.healthy():
            return
        now = self.reactor.seconds()
        for user in users:
            if user in self._online:
                self._refreshed[user] = now
        args = [self._ttl_ms, *users]
        self.backplane.run(REFRESH, [self._members_key, self._presence_key], args).addErrback(self._ignore_unavailable)

    def sweep(self) -> Deferred:
        """Remove the holders whose presence expired; one daemon wins each, and announces
        the leave of those that had joined.

        A daemon sweeps only after it has been connected to Redis for a whole presence
        timeout, so that after an outage every daemon has refreshed its members first.
        """
        since = self.backplane.healthy_since
        if since is None or self.reactor.seconds() - since < self.presence_timeout:
            return succeed(None)
        expired = self.backplane.run(EXPIRED, [self._presence_key], [SWEEP_BATCH])
        return expired.addCallback(self._leave_all).addErrback(self._ignore_unavailable)

    def _leave_all(self, users: list[Any]) -> Deferred | None:
        if not users:
            return None
        return gatherResults([self._leave_one(_text(user)) for user in users], consumeErrors=True)

    def _leave_one(self, user: str) -> Deferred:
        keys = [self._members_key, self._presence_key, self._stamps_key]

        def left(result: list[Any]) -> None:
            if int(result[0]) and int(result[1]):
                self._presence.left(_text(result[2]))

        return self.backplane.run(LEAVE, keys, [user, self.backplane.keys.channel, self.location]).addCallback(left)

    def _ready(self) -> None:
        # Leaves may have been missed while Redis was away (the mirror was reloaded):
        # refresh this daemon's members at once.
        self._send_refresh(sorted(self._online))

    def _ignore_unavailable(self, failure: Failure) -> None:
        if not failure.check(Unavailable):
            log.failure("redis presence upkeep failed", failure)


def _id(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)

