"""History that survives a restart: events and members kept in SQLite, written off the
reactor thread.

At start the recent events of every location are read back, so that ids continue where
they were and clients resume across the restart, and so are the room's members, so that a
restart neither makes them join again nor leaves them out of what is said meanwhile. While
the daemon runs, each published event is queued and written in batches by
``twisted.enterprise.adbapi`` in its one database thread, and each change of membership is
written in the same order; the reactor never waits for the disk. Stopping flushes what is
queued.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Iterable

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from cherrychat.hub import Event, Hub

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
#: seconds events may wait in memory before they are written
FLUSH_DELAY = 0.05
#: events queued for writing at most; past it, writing starts at once
FLUSH_BATCH = 500


def _row(event: Event) -> tuple[Any, ...]:
    return (event.location, event.id, event.time, event.payload, json.dumps(sorted(event.recipients)))


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(SCHEMA)
    connection.commit()
    return connection


class HistoryStore:
    """Persists a hub's events in the SQLite file at ``path``.

    @param keep: events kept per location in the file; older ones are deleted.
    """

    def __init__(self, path: str, clock: IReactorTime, keep: int = 1000):
        self.path = path
        self.clock = clock
        self.keep = keep
        self._pending: list[Event] = []
        self._timer: IDelayedCall | None = None
        self._writing: Deferred = succeed(None)
        self._pool: adbapi.ConnectionPool | None = None

    def load_into(self, hub: Hub) -> int:
        """Read the retained events back into ``hub``; returns how many.

        Runs once at start-up, before the reactor serves anything.
        """
        connection = _connect(self.path)
        try:
            # The file's epoch: ids count within it, so a new file means a new epoch.
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (hub.epoch,))
            connection.commit()
            (hub.epoch,) = connection.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
            loaded = 0
            locations = connection.execute("SELECT location, MAX(id) FROM events GROUP BY location").fetchall()
            for location, last_id in locations:
                rows = connection.execute(
                    "SELECT id, time, payload, recipients FROM events WHERE location = ? AND id > ? ORDER BY id",
                    (location, last_id - hub.max_events),
                ).fetchall()
                events = [Event(i, t, p, location, frozenset(json.loads(r))) for i, t, p, r in rows]
                hub.channel(location).restore(events, last_id)
                loaded += len(events)
        finally:
            connection.close()
        return loaded

    def load_members(self, location: str) -> list[tuple[str, str, list[str]]]:
        """The members of ``location`` when the daemon stopped: (user, session, labels).

        Runs once at start-up, before the reactor serves anything.
        """
        connection = _connect(self.path)
        try:
            rows = connection.execute(
                "SELECT user, session, labels FROM members WHERE location = ? ORDER BY user", (location,)
            ).fetchall()
        finally:
            connection.close()
        return [(user, session, json.loads(labels)) for user, session, labels in rows]

    def member_saved(self, location: str, user: str, session: str, labels: Iterable[str]) -> None:
        """Record that ``user`` (held by ``session``) is a member with these labels."""
        row = (location, user, session, json.dumps(sorted(labels)))
        self._in_order(lambda cursor: cursor.execute("INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?)", row))

    def member_removed(self, location: str, user: str) -> None:
        """Record that ``user`` left."""
        self._in_order(
            lambda cursor: cursor.execute("DELETE FROM members WHERE location = ? AND user = ?", (location, user))
        )

    def _in_order(self, interaction: Callable[[Any], object]) -> None:
        # After the events published before it, so the file never says more than happened.
        self.flush()
        if self._pool is None:
            return
        pool = self._pool
        self._writing = self._writing.addCallback(lambda _: pool.runInteraction(interaction))
        self._writing.addErrback(lambda failure: log.failure("could not write membership", failure))

    def start(self, hub: Hub) -> None:
        """Open the database thread and write every event ``hub`` publishes from now on."""
        self._pool = adbapi.ConnectionPool(
            "sqlite3", self.path, check_same_thread=False, cp_min=1, cp_max=1,
            cp_openfun=lambda connection: connection.execute("PRAGMA journal_mode=WAL"),
        )
        hub.observe_events(self.append)

    def append(self, event: Event) -> None:
        """Queue an event for writing."""
        self._pending.append(event)
        if len(self._pending) >= FLUSH_BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(FLUSH_DELAY, self.flush)

    def flush(self) -> Deferred:
        """Write what is queued; fires when everything queued so far is on disk."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._pending and self._pool is not None:
            rows = [_row(event) for event in self._pending]
            self._pending = []
            # Writes are chained so that they reach the file in publishing order.
            self._writing = self._writing.addCallback(lambda _: self._pool.runInteraction(self._write, rows))
            self._writing.addErrback(lambda failure: log.failure("could not write history", failure))
        return self._writing

    def _write(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        cursor.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)", rows)
        for location in {row[0] for row in rows}:
            cursor.execute(
                "DELETE FROM events WHERE location = ? AND id <= (SELECT MAX(id) FROM events WHERE location = ?) - ?",
                (location, location, self.keep),
            )

    def stop(self) -> Deferred:
        """Flush, then close the database thread."""
        def close(_: object) -> None:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

        return self.flush().addBoth(close)
