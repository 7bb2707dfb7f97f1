"""History that survives crashes: events and members kept in SQLite, committed before
anyone is told.

The store is the hub's :class:`~cherrychat.hub.Journal`: an event is written and committed
before it is delivered and before its publisher gets ``200``, so a daemon killed at any
moment has stored every event any client saw or was promised, and numbers its next events
above them. Writes use *group commit*: while one transaction commits (in the store's one
database thread, ``twisted.enterprise.adbapi``), the writes that arrive queue up, and the
next transaction takes all of them, so throughput stays while each answer waits for its own
commit. Membership changes take the same queue, in order with the events.

A write that fails (disk full, file made read-only, I/O error) fails every request of its
batch with ``503``, marks the store unhealthy (``/healthz`` answers ``503``) with one log
line, and the next write that succeeds makes it healthy again.

A ``clean`` mark in the file tells a restart after SIGKILL or a crash from a clean one; the
restart logs which it was.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from cherrychat.errors import Unavailable
from cherrychat.hub import DEFAULT_MAX_EVENTS, DEFAULT_MAX_NOTICES, Event, Hub

log = Logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    location TEXT NOT NULL,
    id INTEGER NOT NULL,
    time REAL NOT NULL,
    payload TEXT NOT NULL,
    recipients TEXT NOT NULL,
    PRIMARY KEY (location, id)
);
CREATE TABLE IF NOT EXISTS members (
    location TEXT NOT NULL,
    user TEXT NOT NULL,
    session TEXT NOT NULL,
    labels TEXT NOT NULL,
    PRIMARY KEY (location, user)
)
"""
# Columns added since the first schema; a file written by an older daemon gains them.
MIGRATIONS = {
    ("events", "presence"): "ALTER TABLE events ADD COLUMN presence TEXT",
    ("members", "since"): "ALTER TABLE members ADD COLUMN since INTEGER NOT NULL DEFAULT 0",
}
#: writes waiting for a commit at most; past it, publishing is refused with 503
MAX_QUEUED_WRITES = 20000
#: seconds between trims of what is past the retention bounds
TRIM_INTERVAL = 1.0
#: SQLite's ``synchronous`` settings the daemon offers: FULL survives power loss, NORMAL
#: (in WAL mode) survives the daemon's crash or SIGKILL but not the machine's
SYNC_MODES = ("full", "normal")
#: the database file, in the daemon's working directory (``--database``)
DEFAULT_DATABASE = "cherrychat.sqlite3"
#: ``--database-sync``
DEFAULT_SYNC = "full"

STORAGE_UNAVAILABLE = "storage unavailable, not stored; try again later"


def _encode_event(event: Event) -> tuple[Any, ...]:
    recipients = None if event.recipients is None else sorted(event.recipients)
    presence = None if event.presence is None else json.dumps(event.presence)
    return (event.location, event.id, event.time, event.payload, json.dumps(recipients), presence)


def _decode_event(location: str, row: tuple[Any, ...]) -> Event:
    event_id, time, payload, recipients, presence = row
    keys = json.loads(recipients)
    return Event(event_id, time, payload, location, None if keys is None else frozenset(keys),
                 None if presence is None else json.loads(presence))


def _open(path: str, sync: str = DEFAULT_SYNC) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False)
    _prepare(connection, sync)
    return connection


def _prepare(connection: sqlite3.Connection, sync: str = DEFAULT_SYNC) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    connection.executescript(SCHEMA)
    for (table, column), statement in MIGRATIONS.items():
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            connection.execute(statement)
    connection.commit()


@dataclass(frozen=True)
class StoredMember:
    """A member as the file keeps it."""

    user: str
    session: str
    labels: list[str]
    since: int


Write = Callable[[Any], object]


class HistoryStore:
    """Persists a hub's events and the room's members in the SQLite file at ``path``.

    @param reactor: runs the database thread and schedules trims.
    @param keep: messages kept per location in the file; older ones are deleted.
    @param keep_notices: presence notices kept per location.
    @param sync: ``"full"`` (default) or ``"normal"``, see :data:`SYNC_MODES`.
    """

    def __init__(self, path: str, reactor: Any, keep: int = DEFAULT_MAX_EVENTS, keep_notices: int = DEFAULT_MAX_NOTICES, sync: str = DEFAULT_SYNC):
        self.path = path
        self.reactor = reactor
        self.keep = keep
        self.keep_notices = keep_notices
        self.sync = sync
        self._queue: list[tuple[Write, Deferred]] = []
        self._committing = False
        self._pool: adbapi.ConnectionPool | None = None
        self._healthy = True
        self._last_trim = 0.0
        self._touched: set[str] = set()
        self._idle: list[Deferred] = []
        #: whether the last run stopped cleanly (set by :meth:`load_into`)
        self.clean_start = True
        #: transactions committed, and batches that could not be
        self.commits = 0
        self.failures = 0

    # -- start-up --------------------------------------------------------------------

    def load_into(self, hub: Hub) -> int:
        """Read the retained events back into ``hub``; returns how many.

        Runs once at start-up, before the reactor serves anything. Ids continue after the
        newest stored one, which is above every id any client was shown.
        """
        connection = _open(self.path, self.sync)
        try:
            # The file's epoch: ids count within it, so a new file means a new epoch.
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (hub.epoch,))
            clean = connection.execute("SELECT value FROM meta WHERE name = 'clean'").fetchone()
            self.clean_start = clean is None or clean[0] == "1"
            connection.commit()
            (epoch,) = connection.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
            hub.use_epoch(epoch)
            loaded = 0
            for (location,) in connection.execute("SELECT DISTINCT location FROM events").fetchall():
                last_id = connection.execute("SELECT MAX(id) FROM events WHERE location = ?", (location,)).fetchone()[0]
                rows = []
                for kind, bound in (("IS NULL", hub.max_events), ("IS NOT NULL", hub.max_notices)):
                    rows += connection.execute(
                        f"SELECT id, time, payload, recipients, presence FROM events WHERE location = ? "  # noqa: S608
                        f"AND presence {kind} ORDER BY id DESC LIMIT ?",
                        (location, bound),
                    ).fetchall()
                rows.sort()
                hub.channel(location).restore([_decode_event(location, row) for row in rows], last_id)
                loaded += len(rows)
        finally:
            connection.close()
        if not self.clean_start:
            log.warn("the last run did not stop cleanly (killed or crashed); every event it answered "
                     "for is in {path}, and ids continue after the newest", path=self.path)
        return loaded

    def load_members(self, location: str) -> list[StoredMember]:
        """The members of ``location`` when the daemon stopped.

        Runs once at start-up, before the reactor serves anything.
        """
        connection = _open(self.path, self.sync)
        try:
            rows = connection.execute(
                "SELECT user, session, labels, since FROM members WHERE location = ? ORDER BY user", (location,)
            ).fetchall()
        finally:
            connection.close()
        return [StoredMember(user, session, json.loads(labels), since) for user, session, labels, since in rows]

    def start(self) -> None:
        """Open the database thread; until :meth:`stop`, the file says "not stopped cleanly"."""
        self._pool = adbapi.ConnectionPool(
            "sqlite3", self.path, check_same_thread=False, cp_min=1, cp_max=1,
            cp_openfun=lambda connection: _prepare(connection, self.sync), cp_reactor=self.reactor,
        )
        self._submit(lambda cursor: cursor.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '0')"))

    # -- writing ---------------------------------------------------------------------

    def record(self, events: list[Event]) -> Deferred:
        """Commit ``events``: the hub's journal. Fires once they are durable."""
        rows = [_encode_event(event) for event in events]
        self._touched.update(event.location for event in events)
        return self._submit(lambda cursor: cursor.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)", rows))

    def member_saved(self, location: str, user: str, session: str, labels: Iterable[str], since: int) -> Deferred:
        """Record that ``user`` (held by ``session``) is a member, since id ``since``."""
        row = (location, user, session, json.dumps(sorted(labels)), since)
        return self._submit(lambda cursor: cursor.execute(
            "INSERT OR REPLACE INTO members (location, user, session, labels, since) VALUES (?, ?, ?, ?, ?)", row))

    def member_removed(self, location: str, user: str) -> Deferred:
        """Record that ``user`` left."""
        return self._submit(
            lambda cursor: cursor.execute("DELETE FROM members WHERE location = ? AND user = ?", (location, user))
        )

    def healthy(self) -> bool:
        """Did the last commit succeed?"""
        return self._healthy

    def queued(self) -> int:
        """Writes waiting for a commit."""
        return len(self._queue)

    def _submit(self, write: Write) -> Deferred:
        if self._pool is None:
            return fail(Unavailable("storage is closed: the daemon is stopping", retry_after=5))
        if len(self._queue) >= MAX_QUEUED_WRITES:
            return fail(Unavailable("storage is behind, try again later", retry_after=1))
        done: Deferred = Deferred()
        self._queue.append((write, done))
        if not self._committing:
            self._commit()
        return done

    def _commit(self) -> None:
        batch, self._queue = self._queue, []
        writes = [write for write, _ in batch]
        trim = self._trim_due()
        self._committing = True
        assert self._pool is not None
        committing = self._pool.runInteraction(self._write_batch, writes, trim)
        committing.addCallbacks(self._committed, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _trim_due(self) -> list[str]:
        now = self.reactor.seconds()
        if now - self._last_trim < TRIM_INTERVAL or not self._touched:
            return []
        self._last_trim = now
        touched, self._touched = sorted(self._touched), set()
        return touched

    def _write_batch(self, cursor: Any, writes: list[Write], trim: list[str]) -> None:
        # One transaction: adbapi commits it after this returns, or rolls it back.
        for write in writes:
            write(cursor)
        for location in trim:
            for kind, bound in (("IS NULL", self.keep), ("IS NOT NULL", self.keep_notices)):
                cursor.execute(
                    f"DELETE FROM events WHERE location = ? AND presence {kind} AND id <= "  # noqa: S608
                    f"(SELECT id FROM events WHERE location = ? AND presence {kind} ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (location, location, bound),
                )

    def _committed(self, _: object, batch: list[tuple[Write, Deferred]]) -> None:
        self.commits += 1
        if not self._healthy:
            self._healthy = True
            log.info("storage {path} is writable again", path=self.path)
        self._next()
        for _write, done in batch:
            done.callback(None)

    def _failed(self, failure: Failure, batch: list[tuple[Write, Deferred]]) -> None:
        self.failures += 1
        if self._healthy:
            self._healthy = False
            log.error("cannot write {path}: {error}; publishing answers 503 until it can",
                      path=self.path, error=failure.getErrorMessage())
        self._next()
        for _write, done in batch:
            done.errback(Unavailable(STORAGE_UNAVAILABLE, retry_after=1))

    def _next(self) -> None:
        self._committing = False
        if self._queue and self._pool is not None:
            self._commit()
        elif not self._queue:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)

    def flush(self) -> Deferred:
        """Fires once every write queued so far is committed (or failed)."""
        if not self._committing and not self._queue:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._idle.append(waiter)
        return waiter

    def stop(self) -> Deferred:
        """Commit what is queued, mark the file as stopped cleanly, close the thread."""
        if self._pool is None:
            return succeed(None)
        marked = self._submit(lambda cursor: cursor.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '1')"))
        marked.addErrback(lambda failure: log.error("could not mark {path} as stopped cleanly: {error}",
                                                    path=self.path, error=failure.getErrorMessage()))

        def close(_: object) -> None:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

        return marked.addBoth(lambda _: self.flush()).addBoth(close)
