"""The chat room when daemons share Redis: nicknames, members and presence kept in Redis.

:class:`RedisChatRoom` has the API of :class:`cherrychat.chat.ChatRoom` and the same rules
and payloads, but ``claim``, ``join``, ``msg`` and ``members`` return Deferreds, and their
state is in Redis, so that a nickname held through one daemon is held on all of them:

- ``PREFIX members:LOCATION`` is a hash, nickname -> ``{"session", "joined", "labels"}``.
  Claiming, joining (with its ``NAME joined`` event), sending and leaving (with its
  ``NAME left`` event) are each one Lua script, so two daemons cannot both win a nickname,
  and a message goes to exactly the members of the moment it is numbered.
- ``PREFIX presence:LOCATION:NAME`` is a key with a time to live of the presence timeout.
  Every daemon refreshes it, every third of the timeout, for the nicknames it holds
  connections for, and once more after the last of them closed. A sweep on every daemon
  removes, by a script that only one daemon can win, the holders whose presence key
  expired, and that script publishes ``NAME left``.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from cherrychat.chat import CHAT_LOCATION, ChatRoom, joined_payload, left_payload, message_payload
from cherrychat.errors import NotYours, Taken, Unavailable
from cherrychat.hub import Hub, InvalidKey, parse_key
from cherrychat.redis_backplane import RedisBackplane, Script, event_body

log = Logger()

#: KEYS: members, presence(user). ARGV: user, session, ttl ms. 1: held by session; 0: taken.
CLAIM = Script(
    "claim",
    """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cjson.decode(raw).session ~= ARGV[2] then return 0 end
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({session = ARGV[2], joined = false, labels = {}}))
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 1
""",
)

#: KEYS: members, presence(user), seq, history, locations.
#: ARGV: user, session, label, ttl ms, channel, retain, location, body.
#: {0, 0}: taken; {2, 0}: already joined; {1, id}: joined now, ``NAME joined`` is event id.
JOIN = Script(
    "join",
    """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local holder
if raw then
  holder = cjson.decode(raw)
  if holder.session ~= ARGV[2] then return {0, 0} end
else
  holder = {session = ARGV[2], joined = false, labels = {}}
end
local newly = not holder.joined
if (not newly) and holder.labels[ARGV[3]] then return {2, 0} end
holder.joined = true
holder.labels[ARGV[3]] = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(holder))
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4], 'NX')
if not newly then return {2, 0} end
return {1, publish_event(KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7], member_keys(KEYS[1], ARGV[7]), ARGV[8])}
""",
)

#: KEYS: members, seq, history, locations. ARGV: user, session, channel, retain, location, body.
#: The event id; -1: not joined; -2: another session's nickname.
MSG = Script(
    "msg",
    """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return -1 end
local holder = cjson.decode(raw)
if not holder.joined then return -1 end
if holder.session ~= ARGV[2] then return -2 end
return publish_event(KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5], member_keys(KEYS[1], ARGV[5]), ARGV[6])
""",
)

#: KEYS: members. ARGV: presence key prefix, ttl ms, users... Refreshes held nicknames.
REFRESH = Script(
    "refresh",
    """
local count = 0
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('SET', ARGV[1] .. ARGV[i], '1', 'PX', ARGV[2])
    count = count + 1
  end
end
return count
""",
)

#: KEYS: members. ARGV: presence key prefix. The holders whose presence key expired.
EXPIRED = Script(
    "expired",
    """
local gone = {}
for _, user in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. user) == 0 then gone[#gone + 1] = user end
end
return gone
""",
)

#: KEYS: members, presence(user), seq, history, locations.
#: ARGV: user, channel, retain, location, body.
#: {0, 0}: not removed (back, or removed by another daemon); {1, id}: removed, and
#: ``NAME left`` is event id (0 when the holder had not joined). Every daemon is told to
#: forget the holder's keys first.
LEAVE = Script(
    "leave",
    """
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, 0} end
local holder = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
local keys = {}
for label, _ in pairs(holder.labels) do
  keys[#keys + 1] = cjson.encode(ARGV[1] .. ', ' .. label .. ', ' .. ARGV[4])
end
redis.call('PUBLISH', ARGV[2], '{"forget":[' .. table.concat(keys, ',') .. '],"location":' .. cjson.encode(ARGV[4]) .. '}')
if not holder.joined then return {1, 0} end
return {1, publish_event(KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3], ARGV[4], member_keys(KEYS[1], ARGV[4]), ARGV[5])}
""",
)


class RedisChatRoom(ChatRoom):
    """The chat room at ``location``, its state in Redis through ``backplane``.

    @param reactor: times the presence refresh and the sweep (Redis expires keys in real
        time, so these run on the reactor even when ``clock`` is a test clock).
    """

    def __init__(
        self,
        hub: Hub,
        clock: IReactorTime,
        backplane: RedisBackplane,
        location: str = CHAT_LOCATION,
        presence_timeout: float = 10.0,
        reactor: Any = None,
    ):
        super().__init__(hub, clock, location, presence_timeout)
        self.backplane = backplane
        self.reactor = reactor if reactor is not None else backplane.reactor
        self._ttl_ms = max(1, int(presence_timeout * 1000))
        keys = backplane.keys
        self._members_key = keys.members(location)
        self._presence_prefix = keys.presence(location)
        #: nickname -> this daemon's keys with a connection; and who lost their last one
        self._online: dict[str, set[str]] = {}
        self._offline: set[str] = set()
        self._refreshed: dict[str, float] = {}
        #: nickname -> session that Redis confirmed holds it (until a leave says otherwise)
        self._verified: dict[str, str] = {}
        self._refresher = LoopingCall(self._refresh)
        self._refresher.clock = self.reactor
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = self.reactor
        self.sweep_interval = max(0.2, min(2.0, presence_timeout / 5))
        backplane.observe_ready(self._ready)
        backplane.observe_forget(self._forgotten)

    def start(self) -> None:
        """Start refreshing presence and sweeping expired holders."""
        if not self._refresher.running:
            self._refresher.start(self.presence_timeout / 3, now=False)
        if not self._sweeper.running:
            self._sweeper.start(self.sweep_interval, now=False)

    def stop(self) -> None:
        """Stop the timers; presence keys of this daemon's members then run out in Redis."""
        for loop in (self._refresher, self._sweeper):
            if loop.running:
                loop.stop()

    # -- the tutorial's API ----------------------------------------------------------

    def claim(self, user: str, session: str) -> Deferred:
        """Reserve ``user`` for ``session`` (see :meth:`ChatRoom.claim`).

        A nickname Redis already confirmed for the session is not asked again (so
        long-poll requests do not each cost a round trip, and streams of members
        reconnect while Redis is briefly away).

        @raise NotYours: (through the Deferred) the nickname is held by another session.
        """
        if self._verified.get(user) == session:
            return succeed(None)

        def claimed(result: Any) -> None:
            if not int(result):
                raise NotYours(f"nickname {user} is taken")
            self._verified[user] = session

        keys = [self._members_key, self._presence_prefix + user]
        return self.backplane.run(CLAIM, keys, [user, session, self._ttl_ms]).addCallback(claimed)

    def join(self, user: str, session: str, label: str = "0") -> Deferred:
        """Make ``user`` a member (see :meth:`ChatRoom.join`); fires with ``True`` when it joined now.

        @raise Taken: (through the Deferred) the nickname is held by another session.
        """
        keys = [self._members_key, self._presence_prefix + user, *self.backplane.keys.publishing(self.location)]
        args = [user, session, label, self._ttl_ms, *self._publishing_args(joined_payload(user))]

        def joined(result: list[Any]) -> bool:
            if int(result[0]) == 0:
                raise Taken(f"nickname {user} is taken")
            self._verified[user] = session
            return int(result[0]) == 1

        return self.backplane.publish_with(JOIN, self.location, keys, args).addCallback(joined)

    def msg(self, user: str, session: str, text: str) -> Deferred:
        """Send ``<b>user</b> text`` to every member; fires with the event id.

        @raise NotYours: (through the Deferred) ``user`` is not a member held by ``session``.
        """
        keys = [self._members_key, *self.backplane.keys.publishing(self.location)]
        args = [user, session, *self._publishing_args(message_payload(user, text))]

        def sent(result: Any) -> int:
            event_id = int(result)
            if event_id == -1:
                raise NotYours(f"{user} has not joined")
            if event_id == -2:
                raise NotYours(f"{user} belongs to another session")
            return event_id

        return self.backplane.publish_with(MSG, self.location, keys, args).addCallback(sent)

    def rename(self, old: str, new: str, session: str, label: str = "0") -> bool | Deferred:
        """Not yet with Redis: renaming would need its own script.

        @raise Unavailable: always.
        """
        raise Unavailable("renaming is not available with --redis")

    def members(self) -> Deferred:
        """Fires with the nicknames that joined and have not left, sorted, read from Redis."""
        return self._holders().addCallback(
            lambda holders: sorted(user for user, holder in holders.items() if holder["joined"])
        )

    def holder_of(self, user: str) -> Deferred:  # type: ignore[override]
        """Fires with the session holding ``user``, or ``None`` when the nickname is free."""
        return self._holders().addCallback(lambda holders: holders[user]["session"] if user in holders else None)

    def member_keys(self) -> Deferred:  # type: ignore[override]
        """Fires with the orbit keys of every member."""
        return self._holders().addCallback(
            lambda holders: sorted(
                f"{user}, {label}, {self.location}"
                for user, holder in holders.items()
                if holder["joined"]
                for label in holder["labels"]
            )
        )

    def _holders(self) -> Deferred:
        def decode(raw: dict[str, str]) -> dict[str, dict[str, Any]]:
            return {user: json.loads(record) for user, record in (raw or {}).items()}

        return self.backplane.call(lambda redis: redis.hgetall(self._members_key)).addCallback(decode)

    def _publishing_args(self, payload: str) -> list[Any]:
        backplane = self.backplane
        body = event_body(self.location, self.hub.clock.seconds(), payload)
        return [backplane.keys.channel, backplane.retain_events, self.location, body]

    # -- presence --------------------------------------------------------------------

    def _presence_changed(self, key: str, online: bool) -> None:
        try:
            user, _, location = parse_key(key)
        except InvalidKey:
            return
        if location != self.location:
            return
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
        args = [self._presence_prefix, self._ttl_ms, *users]
        self.backplane.run(REFRESH, [self._members_key], args).addErrback(self._ignore_unavailable)

    def sweep(self) -> Deferred:
        """Remove the holders whose presence expired; one daemon wins each, and publishes ``NAME left``.

        A daemon sweeps only after it has been connected to Redis for a whole presence
        timeout, so that after an outage every daemon has refreshed its members first.
        """
        since = self.backplane.healthy_since
        if since is None or self.reactor.seconds() - since < self.presence_timeout:
            return succeed(None)
        expired = self.backplane.run(EXPIRED, [self._members_key], [self._presence_prefix])
        return expired.addCallback(self._leave_all).addErrback(self._ignore_unavailable)

    def _leave_all(self, users: list[str]) -> Deferred | None:
        if not users:
            return None
        return gatherResults([self._leave_one(user) for user in users], consumeErrors=True)

    def _leave_one(self, user: str) -> Deferred:
        keys = [self._members_key, self._presence_prefix + user, *self.backplane.keys.publishing(self.location)]
        args = [user, *self._publishing_args(left_payload(user))]
        return self.backplane.publish_with(LEAVE, self.location, keys, args)

    def _forgotten(self, keys: list[str]) -> None:
        for key in keys:
            try:
                user, _, location = parse_key(key)
            except InvalidKey:
                continue
            if location == self.location:
                self._verified.pop(user, None)

    def _ready(self) -> None:
        # Leaves may have been missed while Redis was away: confirm nicknames anew, and
        # refresh this daemon's members at once.
        self._verified.clear()
        self._send_refresh(sorted(self._online))

    def _ignore_unavailable(self, failure: Failure) -> None:
        if not failure.check(Unavailable):
            log.failure("redis presence upkeep failed", failure)
