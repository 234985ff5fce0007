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

__all__ = [
    "MAX_STORED_INT", "MemoryStore", "SQLiteStore", "Store", "StoreError", "StoredJob", "default_queue", "open_store",
]

MAX_STORED_INT = 2**63 - 1  # SQLite's INTEGER is a signed 64-bit number


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

    durable: bool  # False when nothing survives a restart (MemoryStore)

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
        """Make every buffered write durable (one transaction).

        On failure it raises `StoreError` having dropped the buffered adds (the caller
        refuses those jobs) and kept the buffered removes for the next flush.
        """
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
    durable = False

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


_COLUMNS = ["id", "function", "unique_id", "data", "priority", "run_after", "reducer"]
_APPLICATION_ID = 0x47454152  # "GEAR": marks a SQLite file as a gearspec queue (PRAGMA application_id)


def _stored_job(path: Path, row: tuple[object, ...]) -> StoredJob:
    """A row as a StoredJob, or StoreError saying which row is damaged and how."""
    job_id, function, unique, data, priority, when, reducer = row
    for name, value in (("function", function), ("unique_id", unique), ("data", data), ("reducer", reducer)):
        if not isinstance(value, bytes):
            raise StoreError(f"queue {path} is damaged: row {job_id!r} has a {type(value).__name__} {name}, not a blob")
    if not isinstance(priority, int) or priority not in (0, 1, 2):
        raise StoreError(f"queue {path} is damaged: row {job_id!r} has priority {priority!r}, not 0, 1 or 2")
    if not isinstance(when, int) or when < 0:
        raise StoreError(f"queue {path} is damaged: row {job_id!r} has run_after {when!r}, not a Unix time")
    assert isinstance(job_id, int) and isinstance(function, bytes) and isinstance(unique, bytes)
    assert isinstance(data, bytes) and isinstance(reducer, bytes)
    return StoredJob(job_id, function, unique, data, priority, when, reducer)


class SQLiteStore:
    """Background jobs in one SQLite file (stdlib sqlite3), written in batched transactions.

    WAL journal with synchronous=FULL: a committed transaction survives a crash of the
    process and of the machine. An exclusive lock file keeps two servers from replaying the
    same queue. New files are created 0600 (they hold job data); SQLite gives its -wal and
    -shm files the database file's mode. A SQLite file that is not a gearspec queue is
    refused before anything in it is changed.
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise StoreError(
                f"queue sqlite:{path} would not be a file that survives a restart; "
                "use --queue memory for a queue that keeps nothing"
            )
        self.path = Path(path)
        blocking = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:  # mkdir would say only "File exists"
            raise StoreError(f"cannot open queue {self.path}: {blocking} is a file, not a folder")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock = os.fdopen(os.open(str(self.path) + ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot open queue {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(f"queue {self.path} is in use by another server") from None
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._check_foreign()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            self._db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
            row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM gearspec_jobs").fetchone()
        except (sqlite3.Error, StoreError) as exc:
            self._lock.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open queue {self.path}: {exc}") from None
        self._next = int(row[0])
        self._adds: list[tuple[int, bytes, bytes, bytes, int, int, bytes]] = []
        self._removes: list[tuple[int]] = []

    def new_id(self) -> int:
        self._next += 1
        return self._next

    def add(self, job: StoredJob) -> None:
        self._adds.append((job.id, job.function, job.unique, job.data, job.priority, job.when, job.reducer))

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
        except Exception as exc:  # sqlite3.Error, or a value SQLite cannot hold (OverflowError)
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self._removes = removes + self._removes  # finished jobs: forget them once writable again
            raise StoreError(f"cannot write queue {self.path}: {exc}") from None

    def _check_foreign(self) -> None:
        """Refuse a SQLite file that is not a (possibly empty) gearspec queue, changing nothing."""
        tables = sorted(
            name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        )
        (app_id,) = self._db.execute("PRAGMA application_id").fetchone()
        if app_id not in (0, _APPLICATION_ID) or tables not in ([], ["gearspec_jobs"]):
            raise StoreError(
                f"queue {self.path} is a SQLite database of something else "
                f"(tables: {', '.join(tables) or 'none'}; application_id {app_id}); refusing to use it"
            )
        if tables:
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(gearspec_jobs)")]
            if columns != _COLUMNS:
                raise StoreError(f"queue {self.path}: table gearspec_jobs has columns {columns}, expected {_COLUMNS}")

    def load(self) -> Iterator[StoredJob]:
        """Every kept job; a damaged row raises StoreError naming it."""
        try:
            cursor = self._db.execute(
                "SELECT id, function, unique_id, data, priority, run_after, reducer FROM gearspec_jobs ORDER BY id"
            )
            for row in cursor:
                yield _stored_job(self.path, row)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read queue {self.path}: {exc}") from None

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
