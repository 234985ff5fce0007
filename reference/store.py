"""Durable queues for background jobs: a small interface and two implementations.

The broker hands a background job to the store (`add`) before it acknowledges it and tells
the store when the job is over (`remove`). Writes are buffered; `flush` makes everything
buffered durable in one transaction. The server calls `flush` once per event-loop turn,
before it writes any JOB_CREATED that acknowledges a buffered job, so batching never
acknowledges a job that is not yet on disk.

Each stored job gets its own id from the store, so two background jobs that share a unique
id (or have an empty one) are both kept. gearmand's sqlite queue keys its rows by unique id
and function (libgearman-server/plugins/queue/sqlite/instance.cc), which loses one of them.

A store for a shared database (PostgreSQL, as gearmand offers) only has to implement
`Store`. This module never imports asyncio or socket.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["MemoryStore", "SQLiteStore", "Store", "StoreError", "StoredJob", "default_queue", "open_store"]


class StoreError(Exception):
    """The durable queue cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A background job as it is kept on disk."""

    id: int
    function: bytes
    unique: bytes
    data: bytes
    priority: int  # gearspec.spec.Priority value
    when: int  # Unix time before which it is not run (SUBMIT_JOB_EPOCH), else 0
    reducer: bytes = b""


class Store(Protocol):
    """What the broker needs from a durable queue."""

    def new_id(self) -> int:
        """An id for a job about to be added (unique within this store)."""
        ...

    def add(self, job: StoredJob) -> None:
        """Keep `job`; durable after the next `flush`."""
        ...

    def remove(self, job_id: int) -> None:
        """Forget a finished job; durable after the next `flush`."""
        ...

    @property
    def dirty(self) -> bool:
        """True when writes wait for `flush`."""
        ...

    def flush(self) -> None:
        """Make every buffered write durable (one transaction)."""
        ...

    def load(self) -> Iterator[StoredJob]:
        """Every kept job in the order it was added (for replay at start)."""
        ...

    def close(self) -> None:
        """Flush and release the store."""
        ...


class MemoryStore:
    """No durability: background jobs live only as long as the process (`--queue memory`)."""

    dirty = False

    def __init__(self) -> None:
        self._next = 0

    def new_id(self) -> int:
        self._next += 1
        return self._next

    def add(self, job: StoredJob) -> None:
        pass

    def remove(self, job_id: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def load(self) -> Iterator[StoredJob]:
        return iter(())

    def close(self) -> None:
        pass


_SQLITE_MAX_INT = 2**63 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gearspec_jobs (
    id INTEGER PRIMARY KEY,
    function BLOB NOT NULL,
    unique_id BLOB NOT NULL,
    data BLOB NOT NULL,
    priority INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    reducer BLOB NOT NULL
)
"""


class SQLiteStore:
    """Background jobs in one SQLite file (stdlib sqlite3), written in batched transactions.

    WAL journal with synchronous=FULL: a committed transaction survives a crash of the
    process and of the machine. An exclusive lock file keeps two servers from replaying the
    same queue.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        blocking = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:  # mkdir would say only "File exists"
            raise StoreError(f"cannot open queue {self.path}: {blocking} is a file, not a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(str(self.path) + ".lock", "a")
        except OSError as exc:
            raise StoreError(f"cannot open queue {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(f"queue {self.path} is in use by another server") from None
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM gearspec_jobs").fetchone()
        except sqlite3.Error as exc:
            self._lock.close()
            raise StoreError(f"cannot open queue {self.path}: {exc}") from None
        self._next = int(row[0])
        self._adds: list[tuple[int, bytes, bytes, bytes, int, int, bytes]] = []
        self._removes: list[tuple[int]] = []

    def new_id(self) -> int:
        self._next += 1
        return self._next

    def add(self, job: StoredJob) -> None:
        # SQLite integers are 64-bit signed: an epoch beyond that (a fuzzer sends 2**64-1) is
        # "never", which the largest one says as well.
        when = min(job.when, _SQLITE_MAX_INT)
        self._adds.append((job.id, job.function, job.unique, job.data, job.priority, when, job.reducer))

    def remove(self, job_id: int) -> None:
        self._removes.append((job_id,))

    @property
    def dirty(self) -> bool:
        return bool(self._adds or self._removes)

    def flush(self) -> None:
        if not (self._adds or self._removes):
            return
        adds, removes = self._adds, self._removes
        self._adds, self._removes = [], []
        try:
            self._db.execute("BEGIN")
            if adds:
                self._db.executemany("INSERT OR REPLACE INTO gearspec_jobs VALUES (?,?,?,?,?,?,?)", adds)
            if removes:
                self._db.executemany("DELETE FROM gearspec_jobs WHERE id = ?", removes)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StoreError(f"cannot write queue {self.path}: {exc}") from None

    def load(self) -> Iterator[StoredJob]:
        cursor = self._db.execute(
            "SELECT id, function, unique_id, data, priority, run_after, reducer FROM gearspec_jobs ORDER BY id"
        )
        for row in cursor:
            yield StoredJob(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), row[4], row[5], bytes(row[6]))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()
            self._lock.close()


def default_queue() -> str:
    """`sqlite:` + the per-user state file used when --queue is not given."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return "sqlite:" + os.path.join(base, "gearspec", "queue.sqlite3")


def open_store(spec: str) -> Store:
    """A store from a --queue value: `memory` or `sqlite:PATH`."""
    if spec == "memory":
        return MemoryStore()
    kind, sep, rest = spec.partition(":")
    if kind == "sqlite" and sep and rest:
        return SQLiteStore(rest)
    raise StoreError(f"unknown queue {spec!r}: use 'memory' or 'sqlite:PATH'")
