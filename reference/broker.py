"""The job broker: Gearman's job-server semantics with no I/O (sans-IO).

The broker owns functions (queues per priority), jobs, workers and listeners. Its inputs are
synchronous calls that take `now` (Unix time in seconds): a connection came (`connect`),
went (`disconnect`), sent a packet (`receive`, or the per-type `handlers` dict the I/O layer
calls directly), sent an admin line (`admin`), or a timer fired (`tick`). Its outputs are
bytes appended to each `Session.out`; every session with something to send is listed in
`pending`, which the I/O layer drains. `next_deadline()` says when `tick` is next needed.
Background jobs go to a `Store` (reference/store.py); the I/O layer calls `store.flush()`
before writing any output and reports the outcome (`store_committed` / `store_failed`), so no
JOB_CREATED leaves before its job is durable, and a job the store could not take gets ERROR.

Behaviour follows gearmand 1.1 (libgearman-server/server.cc `gearman_server_run_command`,
job.cc, worker.cc, text.cc `server_run_text`) except where docs/server.md says otherwise.
This module never imports asyncio, socket or time.
"""

from __future__ import annotations

import heapq
import logging
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

from gearspec.reference.acl import Acl
from gearspec.reference.store import MAX_STORED_INT, MemoryStore, Store, StoredJob

from gearspec.errors import ErrorCode
from gearspec.plans import LARGE_PAYLOAD
from gearspec.spec import Magic, PacketType, is_number

__all__ = ["LOG_LEVELS", "MAX_FUNCTION_SIZE", "MAX_NUMBER", "MAX_UNIQUE_SIZE", "Broker", "Function", "Job", "Session"]

log = logging.getLogger("gearspec.serve")

MAX_UNIQUE_SIZE = 64  # gearmand's GEARMAN_MAX_UNIQUE_SIZE (unique ids up to 64 bytes)
# gearmand's GEARMAN_FUNCTION_MAX_SIZE (libgearman-1.0/limits.h): its job keeps a reducer name
# in a buffer of that size (libgearman-server/struct/job.h); we hold every function name to it.
MAX_FUNCTION_SIZE = 512
# Every NUMBER argument is a decimal of at most this value: what gearmand parses (strtoll for the
# epoch, strtol for CAN_DO_TIMEOUT, server.cc gearman_server_run_command) and what the store holds.
MAX_NUMBER = MAX_STORED_INT
_MAX_DIGITS = len(str(MAX_NUMBER))
# Bytes a function name may not contain: the admin protocol splits its words on whitespace and
# its replies into lines, so a name with these could not be shown or named there.
_NAME_BREAKERS = frozenset(b" \t\n\r\x0b\x0c")
MAX_CLIENT_ID_SIZE = 127  # gearmand truncates client ids (connection.cc gearman_server_con_set_id)
IDLE_FUNCTIONS_KEPT = 1024  # unused function names still listed by `status` (see Broker._release)
MIN_WORKER_TIMEOUT_MS = 1000  # connection.cc gearman_server_con_add_job_timeout raises smaller ones
LOG_LEVELS = ("ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")

_HEADER = struct.Struct(">4sII")
_pack = _HEADER.pack
_RES = b"\0RES"
_T = PacketType


def _reply_header(ptype: PacketType) -> Callable[[int], bytes]:
    """The header of a `ptype` reply for a payload size: the table's code under RES magic.

    Made once per type at import (checked against the table there), so the hot paths pack
    a header with one call and name the type, never its number.
    """
    if Magic.RES not in ptype.spec.magics:
        raise ValueError(f"{ptype.name} is never sent with RES magic")
    return partial(_pack, _RES, int(ptype))


_JOB_CREATED = _reply_header(_T.JOB_CREATED)
_JOB_ASSIGN_UNIQ = _reply_header(_T.JOB_ASSIGN_UNIQ)
_WORK_COMPLETE = _reply_header(_T.WORK_COMPLETE)
_NOOP = _reply_header(_T.NOOP)(0)
_NO_JOB = _reply_header(_T.NO_JOB)(0)

# Job states. _PENDING: a background job whose store write is not yet committed; it is queued
# (and its JOB_CREATED sent) only once the commit succeeded.
_QUEUED, _RUNNING, _WAITING, _DONE, _PENDING = 0, 1, 2, 3, 4
_NO_LIMIT = (0, 0, 0)

HandlerFn = Callable[["Session", Sequence[bytes], float], None]


def _packet(ptype: PacketType, payload: bytes) -> bytes:
    return _pack(_RES, ptype, len(payload)) + payload


def _parts(ptype: PacketType, head: bytes, data: bytes) -> tuple[bytes, ...]:
    """A packet whose last argument is `data`, as pieces for a vectored write.

    Large data stays its own piece, so it is never copied into a bigger buffer.
    """
    header = _pack(_RES, ptype, len(head) + len(data))
    if len(data) >= LARGE_PAYLOAD:
        return (header + head, data)
    return (header + head + data,)


def _error(code: ErrorCode, text: str) -> bytes:
    return _packet(_T.ERROR, code.value.encode() + b"\0" + text.encode())


class Session:
    """One connection as the broker sees it: a client, a worker, or both."""

    __slots__ = (
        "abilities",
        "client_id",
        "closed",
        "exceptions",
        "fd",
        "host",
        "id",
        "identity",
        "io",
        "listening",
        "noop_sent",
        "out",
        "sleeping",
        "working",
    )

    def __init__(self, session_id: int, host: str, fd: int, identity: str | None = None) -> None:
        self.id = session_id
        self.identity = identity  # the client certificate's subject (ACL checks), None without one
        self.out: list[bytes] = []  # pieces to send, drained by the I/O layer
        self.host = host
        self.fd = fd
        self.client_id = b"-"
        # function name -> CAN_DO_TIMEOUT ms (0: none), in CAN_DO order (what GRAB tries first)
        self.abilities: dict[bytes, int] = {}
        self.sleeping = False
        self.noop_sent = False
        self.exceptions = False  # OPTION_REQ exceptions
        self.working: dict[bytes, Job] = {}  # handle -> job assigned to this worker
        self.listening: set[Job] = set()  # foreground jobs whose updates go to this client
        self.io: Any = None  # for the I/O layer (its transport or protocol)
        self.closed = False

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.host} fd={self.fd}>"


class Function:
    """A function name with its three priority queues and its counters.

    It exists while a job of it exists or an admin command set it up (`create function`,
    `maxqueue`), and among the last few unused names (`Broker._release`). A name workers can
    do needs none: `Broker.can_do` holds its workers. Its queues exist only while it has jobs.
    """

    __slots__ = ("max_queue", "name", "pinned", "queued", "queues", "running", "total")

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.queues: tuple[deque[Job], deque[Job], deque[Job]] = _NO_QUEUES
        self.queued = _NO_QUEUED  # live queued jobs per priority (dead ones are skipped lazily)
        self.total = 0  # queued + running + waiting + pending, as gearmand's job_total
        self.running = 0
        self.max_queue: tuple[int, ...] = _NO_LIMIT  # per priority; 0 means no limit
        self.pinned = False  # set up by an admin command: kept without workers or jobs

    def open_queues(self) -> None:
        """Give the function its queues (before its first job is queued)."""
        self.queues = (deque(), deque(), deque())
        self.queued = [0, 0, 0]


# Shared by every function without jobs; never changed in place (`Function.open_queues` first).
_NO_QUEUES: tuple[deque[Job], deque[Job], deque[Job]] = (deque(), deque(), deque())
_NO_QUEUED = [0, 0, 0]


class Job:
    """One job. Memory-lean: a million queued jobs must fit well under 1 GiB."""

    __slots__ = (
        "attempt",
        "background",
        "clients",
        "data",
        "denominator",
        "function",
        "handle",
        "key",
        "numerator",
        "priority",
        "reducer",
        "retries",
        "state",
        "store_id",
        "unique",
        "when",
        "worker",
    )

    def __init__(
        self, handle: bytes, function: Function, unique: bytes, data: bytes, priority: int,
        when: int, reducer: bytes, key: bytes | None,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self.priority = priority
        self.when = when
        self.reducer = reducer
        self.key = key  # coalescing key within the function, None when it never merges
        self.clients: list[Session] | None = None  # foreground listeners
        self.background = False  # a background submit holds it (kept without listeners)
        self.store_id = 0  # id in the durable store, 0 when not stored
        self.worker: Session | None = None
        self.numerator = b"0"
        self.denominator = b"0"
        self.retries = 0
        self.state = _QUEUED
        self.attempt = 0  # bumped on each assignment, so stale timeouts are ignored

    def __repr__(self) -> str:
        return f"<Job {self.handle!r} {self.function.name!r} state={self.state}>"


class Broker:
    """Gearman job-server state and rules, driven by synchronous calls.

    `handle_prefix` starts every job handle (gearmand uses ``H:<hostname>:``). `job_retries`
    bounds how often a job whose worker vanished is requeued (0: no bound). `pid`, `version`,
    `log_level` and `queue` (the --queue value) only feed the admin commands.

    A background job for a durable store is acknowledged only after its commit: it waits in
    `uncommitted` (state _PENDING, its JOB_CREATED held in place in the session's output)
    until the I/O layer reports the commit with `store_committed` or `store_failed`.
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        handle_prefix: bytes = b"H:gearspec:",
        job_retries: int = 0,
        pid: int = 0,
        version: str = "",
        log_level: str = "WARNING",
        enable_shutdown: bool = False,
        queue: str = "memory",
        acl: Acl | None = None,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.queue = queue
        self.handle_prefix = handle_prefix
        self.job_retries = job_retries
        self.pid = pid
        self.version = version
        self.log_level = log_level
        self.enable_shutdown = enable_shutdown
        self.functions: dict[bytes, Function] = {}
        # function name -> the worker that can do it, or (several) a tuple of them. A name only
        # workers use costs this entry and the worker's `abilities` entry: no Function object.
        self.can_do: dict[bytes, Session | tuple[Session, ...]] = {}
        self.jobs: dict[bytes, Job] = {}  # handle -> job
        self.by_key: dict[tuple[bytes, bytes], Job] = {}  # (function, key) -> job, for coalescing
        # unique -> its job (or, when jobs of several functions share it, those jobs in order),
        # for GET_STATUS_UNIQUE: gearmand's unique hash across functions (job.cc).
        self.by_unique: dict[bytes, Job | dict[Job, None]] = {}
        self.uncommitted: dict[Job, None] = {}  # background jobs whose store write awaits its commit
        self._acks: list[tuple[Session, int, bytes]] = []  # their JOB_CREATEDs: session, index in out
        self.store_error: str | None = None  # why the last commit failed, until one succeeds
        self.refused = 0  # background jobs refused because the store could not be written
        self._peaks: dict[str, int] = {}  # for `_deleted_from`
        self._idle: dict[Function, None] = {}  # functions last seen unused, oldest first (`_release`)
        self.sessions: dict[int, Session] = {}
        self.pending: list[Session] = []  # sessions whose `out` is not empty
        self.shutdown_requested: str | None = None  # "now" or "graceful", set by the admin command
        self._next_handle = 0
        self._next_session = 0
        self._epoch_heap: list[tuple[int, int, Job]] = []
        self._timeout_heap: list[tuple[float, int, Job, int]] = []
        self._seq = 0
        self._sleepers = 0  # sessions with `sleeping` set: while none, queueing wakes nobody
        self.handlers: dict[int, HandlerFn] = {
            _T.CAN_DO: self._can_do,
            _T.CANT_DO: self._cant_do,
            _T.RESET_ABILITIES: self._reset_abilities,
            _T.PRE_SLEEP: self._pre_sleep,
            _T.SUBMIT_JOB: partial(self._submit_foreground, 1),
            _T.GRAB_JOB: self._grab_job,
            _T.WORK_STATUS: self._work_status,
            _T.WORK_COMPLETE: self._work_complete,
            _T.WORK_FAIL: self._work_fail,
            _T.GET_STATUS: self._get_status,
            _T.ECHO_REQ: self._echo,
            _T.SUBMIT_JOB_BG: self._submit_bg_normal,
            _T.SUBMIT_JOB_HIGH: partial(self._submit_foreground, 0),
            _T.SET_CLIENT_ID: self._set_client_id,
            _T.CAN_DO_TIMEOUT: self._can_do_timeout,
            _T.ALL_YOURS: self._not_served,
            _T.WORK_EXCEPTION: self._work_exception,
            _T.OPTION_REQ: self._option,
            _T.WORK_DATA: self._work_data,
            _T.WORK_WARNING: self._work_warning,
            _T.GRAB_JOB_UNIQ: self._grab_job_uniq,
            _T.SUBMIT_JOB_HIGH_BG: self._submit_bg_high,
            _T.SUBMIT_JOB_LOW: partial(self._submit_foreground, 2),
            _T.SUBMIT_JOB_LOW_BG: self._submit_bg_low,
            _T.SUBMIT_JOB_SCHED: self._not_served,
            _T.SUBMIT_JOB_EPOCH: self._submit_epoch,
            _T.SUBMIT_REDUCE_JOB: self._submit_reduce,
            _T.SUBMIT_REDUCE_JOB_BACKGROUND: self._submit_reduce_bg,
            _T.GRAB_JOB_ALL: self._grab_job_all,
            _T.GET_STATUS_UNIQUE: self._get_status_unique,
        }
        self._admin: dict[str, Callable[[Session, list[str]], bytes]] = {
            "workers": self._admin_workers,
            "status": self._admin_status,
            "prioritystatus": self._admin_prioritystatus,
            "show": self._admin_show,
            "cancel": self._admin_cancel,
            "create": self._admin_create,
            "drop": self._admin_drop,
            "maxqueue": self._admin_maxqueue,
            "getpid": lambda s, w: b"OK %d\n" % self.pid,
            "verbose": lambda s, w: b"OK " + self.log_level.encode() + b"\n",
            "version": lambda s, w: b"OK " + self.version.encode() + b"\n",
            "shutdown": self._admin_shutdown,
        }
        self._show: dict[tuple[str, ...], Callable[[], bytes]] = {
            ("jobs",): self._show_jobs,
            ("unique", "jobs"): self._show_unique_jobs,
            ("queue",): self._show_queue,
        }
        self.acl = acl
        # Told of every ACL refusal (the server logs it); the broker itself does no I/O.
        self.on_refusal: Callable[[Session, str], None] = lambda session, why: None
        if acl is not None:
            self._guard_handlers()

    # -- connections ------------------------------------------------------------------------
    def connect(self, host: str = "-", fd: int = -1, identity: str | None = None) -> Session:
        """A new connection; the returned session is passed to every later call.

        `identity` names the peer for the ACL (its certificate's subject common name).
        """
        self._next_session += 1
        session = Session(self._next_session, host, fd, identity)
        self.sessions[session.id] = session
        return session

    def disconnect(self, session: Session, now: float) -> None:
        """The connection is gone: requeue its running jobs, drop its unshared waiting jobs."""
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        for job in list(session.working.values()):
            self._requeue(job, now)
        session.working.clear()
        for job in session.listening:
            clients = job.clients
            if clients is not None and session in clients:
                clients.remove(session)
                if not clients and not job.background and job.state in (_QUEUED, _WAITING):
                    self._drop_queued(job)
        session.listening.clear()
        self._reset_abilities(session, [], now)
        if session.sleeping:
            session.sleeping = False
            self._sleepers -= 1
        session.out.clear()

    # -- packets ----------------------------------------------------------------------------
    def receive(self, session: Session, packet_type: int, args: Sequence[bytes], now: float) -> None:
        """One well-formed REQ packet from `session` (arguments as split by the codec)."""
        handler = self.handlers.get(packet_type)
        if handler is None:
            self.send_error(session, ErrorCode.INVALID_COMMAND, "Command not expected")
            return
        handler(session, args, now)

    def send(self, session: Session, data: bytes) -> None:
        """Queue raw bytes for `session`."""
        out = session.out
        if not out:
            self.pending.append(session)
        out.append(data)

    def send_parts(self, session: Session, parts: tuple[bytes, ...]) -> None:
        """Queue a packet made by `_parts` for `session`."""
        out = session.out
        if not out:
            self.pending.append(session)
        out.extend(parts)

    def send_error(self, session: Session, code: ErrorCode, text: str) -> None:
        """Queue an ERROR packet for `session`."""
        self.send(session, _error(code, text))

    def _not_served(self, session: Session, args: Sequence[bytes], now: float) -> None:
        # ALL_YOURS (PROTOCOL: not yet implemented) and SUBMIT_JOB_SCHED: refused as gearmand does.
        self.send_error(session, ErrorCode.INVALID_COMMAND, "Command not expected")

    def _echo(self, session: Session, args: Sequence[bytes], now: float) -> None:
        self.send_parts(session, _parts(_T.ECHO_RES, b"", args[0]))

    def _set_client_id(self, session: Session, args: Sequence[bytes], now: float) -> None:
        session.client_id = args[0][:MAX_CLIENT_ID_SIZE] or b"-"

    def _option(self, session: Session, args: Sequence[bytes], now: float) -> None:
        if args[0].lower() == b"exceptions":
            session.exceptions = True
            self.send(session, _packet(_T.OPTION_RES, args[0]))
        else:
            self.send_error(session, ErrorCode.UNKNOWN_OPTION, "Server does not recognize given option")

    # -- submitting -------------------------------------------------------------------------
    def _submit_foreground(self, priority: int, session: Session, args: Sequence[bytes], now: float) -> None:
        # SUBMIT_JOB / _HIGH / _LOW (bound to a priority with functools.partial). The common
        # case, a new job with an empty unique id under no queue limit, is `submit` inlined
        # (the hot path of every benchmark); anything else goes through `submit` itself.
        function_name, unique, data = args
        function = self.functions.get(function_name)
        if unique or function is None or function.max_queue[priority]:
            self.submit(session, function_name, unique, data, priority, False, now)
            return
        self._next_handle += 1
        handle = self.handle_prefix + b"%d" % self._next_handle
        job = Job(handle, function, unique, data, priority, 0, b"", None)
        self.jobs[handle] = job
        job.clients = [session]
        session.listening.add(job)
        function.total += 1
        if function.queues is _NO_QUEUES:
            function.open_queues()
        function.queues[priority].append(job)  # _enqueue, inlined
        function.queued[priority] += 1
        if self._sleepers:
            self._wake(function)
        out = session.out
        if not out:
            self.pending.append(session)
        out.append(_JOB_CREATED(len(handle)) + handle)

    def _submit_bg_normal(self, s: Session, a: Sequence[bytes], now: float) -> None:
        self.submit(s, a[0], a[1], a[2], 1, True, now)

    def _submit_bg_high(self, s: Session, a: Sequence[bytes], now: float) -> None:
        self.submit(s, a[0], a[1], a[2], 0, True, now)

    def _submit_bg_low(self, s: Session, a: Sequence[bytes], now: float) -> None:
        self.submit(s, a[0], a[1], a[2], 2, True, now)

    def _submit_epoch(self, s: Session, a: Sequence[bytes], now: float) -> None:
        when = self._number(s, a[2], "epoch")
        if when is not None:
            self.submit(s, a[0], a[1], a[3], 1, True, now, when)

    def _submit_reduce(self, s: Session, a: Sequence[bytes], now: float) -> None:
        self.submit(s, a[0], a[1], a[4], 1, False, now, 0, a[2])

    def _submit_reduce_bg(self, s: Session, a: Sequence[bytes], now: float) -> None:
        self.submit(s, a[0], a[1], a[4], 1, True, now, 0, a[2])

    def submit(
        self, session: Session, function_name: bytes, unique: bytes, data: bytes, priority: int,
        background: bool, now: float, when: int = 0, reducer: bytes = b"",
    ) -> Job | None:
        """A SUBMIT_* packet: create or join a job and acknowledge it with JOB_CREATED."""
        if len(unique) > MAX_UNIQUE_SIZE:
            self.send_error(session, ErrorCode.ARGUMENT_TOO_LARGE, "Unique value too large")
            return None
        if reducer and self._refuse_name(session, reducer, "Reducer"):
            return None
        function = self.functions.get(function_name)
        if function is None:
            if self._refuse_name(session, function_name, "Function"):
                return None
            function = self.functions[function_name] = Function(function_name)
        if unique:
            key: bytes | None = data if unique == b"-" else unique
            job = self.by_key.get((function_name, key))  # type: ignore[arg-type]
            if job is not None:
                self._join(session, job, background)
                return job
        else:
            key = None
        limit = function.max_queue[priority]
        if limit and function.total >= limit:
            self.send_error(session, ErrorCode.QUEUE_ERROR, "Job queue is full")
            return None
        self._next_handle += 1
        handle = self.handle_prefix + b"%d" % self._next_handle
        job = Job(handle, function, unique, data, priority, when, reducer, key)
        self.jobs[handle] = job
        if key is not None:
            self.by_key[(function_name, key)] = job
            self._index_unique(job)
        function.total += 1
        if background:
            job.background = True
            self._persist(job)
            if job.store_id:  # durable: queued and acknowledged once committed
                job.state = _PENDING
                self._ack_after_commit(session, job)
                return job
        else:
            job.clients = [session]
            session.listening.add(job)
        self._activate(job, now)
        out = session.out
        if not out:
            self.pending.append(session)
        out.append(_JOB_CREATED(len(handle)) + handle)
        return job

    def _activate(self, job: Job, now: float) -> None:
        """Queue a new job, or hold it until its SUBMIT_JOB_EPOCH time."""
        if job.when > now:
            job.state = _WAITING
            self._seq += 1
            heapq.heappush(self._epoch_heap, (job.when, self._seq, job))
        else:
            self._enqueue(job)

    def _ack_after_commit(self, session: Session, job: Job) -> None:
        # JOB_CREATED goes into the output now, so replies keep their order; nothing is
        # written before the commit, and `store_failed` turns it into an ERROR in place.
        out = session.out
        if not out:
            self.pending.append(session)
        handle = job.handle
        ack = _JOB_CREATED(len(handle)) + handle
        self._acks.append((session, len(out), ack))
        out.append(ack)

    def store_committed(self, now: float) -> None:
        """The store committed every buffered write: queue the jobs that waited for it."""
        self.store_error = None
        self._acks.clear()
        uncommitted, self.uncommitted = self.uncommitted, {}
        enqueue = self._enqueue
        for job in uncommitted:
            if job.state == _PENDING:
                if job.when > now:
                    self._activate(job, now)
                else:
                    enqueue(job)

    def store_failed(self, reason: str, now: float) -> None:
        """The commit failed: refuse (ERROR QUEUE_ERROR) every job it would have stored.

        A job that a foreground client also waits for stays, as a foreground job.
        """
        self.store_error = reason
        error = _error(ErrorCode.QUEUE_ERROR, f"Job not stored: the durable queue cannot be written ({reason})")
        for session, index, ack in self._acks:
            out = session.out
            if index < len(out) and out[index] is ack:
                out[index] = error
                self.refused += 1
        self._acks.clear()
        uncommitted, self.uncommitted = self.uncommitted, {}
        for job in uncommitted:
            job.store_id = 0
            job.background = False
            if job.state == _PENDING:
                if job.clients:
                    self._activate(job, now)
                else:
                    self._finish(job)

    def _join(self, session: Session, job: Job, background: bool) -> None:
        # Coalescing: the same (function, unique) while queued or running is one job.
        if background:
            if not job.background:
                job.background = True
                self._persist(job)
            if job in self.uncommitted:
                self._ack_after_commit(session, job)
                return
        else:
            if job.clients is None:
                job.clients = [session]
            elif job not in session.listening:
                job.clients.append(session)
            session.listening.add(job)
        self.send(session, _packet(_T.JOB_CREATED, job.handle))

    def _persist(self, job: Job) -> None:
        store = self.store
        if job.store_id or isinstance(store, MemoryStore):
            return
        job.store_id = store.new_id()
        store.add(StoredJob(job.store_id, job.function.name, job.unique, job.data, job.priority, job.when, job.reducer))
        self.uncommitted[job] = None

    def _index_unique(self, job: Job) -> None:
        unique = job.unique
        if unique == b"-":  # coalesces on its data; gearmand's lookup by unique never finds it either
            return
        held = self.by_unique.get(unique)
        if held is None:
            self.by_unique[unique] = job
        elif isinstance(held, dict):
            held[job] = None
        else:
            self.by_unique[unique] = {held: None, job: None}

    def _unindex_unique(self, job: Job) -> None:
        unique = job.unique
        held = self.by_unique.get(unique)
        if held is job:
            del self.by_unique[unique]
        elif isinstance(held, dict):
            held.pop(job, None)
            if len(held) == 1:
                self.by_unique[unique] = next(iter(held))

    def _refuse_name(self, session: Session, name: bytes, what: str) -> bool:
        """ERROR for a function name over MAX_FUNCTION_SIZE or with whitespace; True when refused."""
        if len(name) > MAX_FUNCTION_SIZE:
            text = f"{what} name longer than {MAX_FUNCTION_SIZE} bytes"
            code = ErrorCode.ARGUMENT_TOO_LARGE
        elif not _NAME_BREAKERS.isdisjoint(name):
            text = f"{what} name contains whitespace"
            code = ErrorCode.INVALID_PACKET
        else:
            return False
        log.info("connection %d: %s", session.id, text)
        self.send_error(session, code, text)
        return True

    def _number(self, session: Session, arg: bytes, what: str) -> int | None:
        """A NUMBER argument as an int, or None after an ERROR when over MAX_NUMBER."""
        digits = arg.lstrip(b"0")
        if not digits or (len(digits) <= _MAX_DIGITS and is_number(digits)):
            value = int(digits or b"0")
            if value <= MAX_NUMBER:
                return value
        text = f"{what} is larger than {MAX_NUMBER}"
        log.info("connection %d: %s (%d digits)", session.id, text, len(arg))
        self.send_error(session, ErrorCode.ARGUMENT_TOO_LARGE, text)
        return None

    def _enqueue(self, job: Job, front: bool = False) -> None:
        function = job.function
        job.state = _QUEUED
        if function.queues is _NO_QUEUES:
            function.open_queues()
        if front:
            function.queues[job.priority].appendleft(job)
        else:
            function.queues[job.priority].append(job)
        function.queued[job.priority] += 1
        if self._sleepers:
            self._wake(function)

    def _wake(self, function: Function) -> None:
        # Wake every sleeping worker of the function, one NOOP per sleep cycle (job.cc
        # gearman_server_job_queue with the default worker_wakeup of 0: all of them).
        for worker in self.workers_of(function.name):
            if worker.sleeping and not worker.noop_sent:
                worker.noop_sent = True
                self.send(worker, _NOOP)

    def replay(self, stored: Iterable[StoredJob], now: float) -> int:
        """Queue jobs loaded from the store at start; returns how many."""
        count = 0
        for row in stored:
            function = self.functions.get(row.function)
            if function is None:
                function = self.functions[row.function] = Function(row.function)
            self._next_handle += 1
            handle = self.handle_prefix + b"%d" % self._next_handle
            key = None if not row.unique else (row.data if row.unique == b"-" else row.unique)
            job = Job(handle, function, row.unique, row.data, row.priority, row.when, row.reducer, key)
            job.background = True
            job.store_id = row.id
            self.jobs[handle] = job
            if key is not None:
                self.by_key.setdefault((row.function, key), job)
                self._index_unique(job)
            function.total += 1
            self._activate(job, now)
            count += 1
        return count

    # -- workers ----------------------------------------------------------------------------
    def _can_do(self, session: Session, args: Sequence[bytes], now: float) -> None:
        self.add_ability(session, args[0], 0)

    def _can_do_timeout(self, session: Session, args: Sequence[bytes], now: float) -> None:
        timeout = self._number(session, args[1], "CAN_DO_TIMEOUT timeout")
        if timeout is not None:
            self.add_ability(session, args[0], timeout)

    def add_ability(self, session: Session, name: bytes, timeout_ms: int) -> None:
        """CAN_DO / CAN_DO_TIMEOUT (timeout in milliseconds, as gearmand >= 1.1.19)."""
        if timeout_ms and timeout_ms < MIN_WORKER_TIMEOUT_MS:
            timeout_ms = MIN_WORKER_TIMEOUT_MS
        abilities = session.abilities
        if name in abilities:
            abilities[name] = timeout_ms
            return
        can_do = self.can_do
        held = can_do.get(name)
        if held is None:
            if name not in self.functions and self._refuse_name(session, name, "Function"):
                return
            can_do[name] = session
        elif isinstance(held, tuple):
            can_do[name] = (*held, session)
        else:
            can_do[name] = (held, session)
        abilities[name] = timeout_ms

    def workers_of(self, name: bytes) -> tuple[Session, ...]:
        """The workers that can do function `name`, in CAN_DO order."""
        held = self.can_do.get(name)
        if held is None:
            return ()
        return held if isinstance(held, tuple) else (held,)

    def _cant_do(self, session: Session, args: Sequence[bytes], now: float) -> None:
        name = args[0]
        if session.abilities.pop(name, None) is not None:
            self._drop_ability(session, name)

    def _reset_abilities(self, session: Session, args: Sequence[bytes], now: float) -> None:
        names = session.abilities
        session.abilities = {}
        for name in names:
            self._drop_ability(session, name)

    def _drop_ability(self, session: Session, name: bytes) -> None:
        can_do = self.can_do
        held = can_do[name]
        if isinstance(held, tuple):
            i = held.index(session)  # in C: cheap even for a function with thousands of workers
            rest = held[:i] + held[i + 1:]
            can_do[name] = rest[0] if len(rest) == 1 else rest
            return
        del can_do[name]
        self._deleted_from("can_do")
        function = self.functions.get(name)
        if function is None:  # listed while idle, as gearmand lists every name it saw
            function = self.functions[name] = Function(name)
        self._release(function)

    def _release(self, function: Function) -> None:
        """Give back what a function no longer needs: its queues without jobs, itself when unused."""
        if function.total:
            return
        function.queues = _NO_QUEUES  # with them go the dropped jobs still in them
        function.queued = _NO_QUEUED
        if function.pinned or function.name in self.can_do:
            return
        # Unused: kept listed (as gearmand keeps every name) among the last IDLE_FUNCTIONS_KEPT
        # unused ones, forgotten past that. One that is used again stays until it is unused
        # again; eviction checks.
        idle = self._idle
        idle.pop(function, None)
        idle[function] = None
        while len(idle) > IDLE_FUNCTIONS_KEPT:
            oldest = next(iter(idle))
            del idle[oldest]
            if not (oldest.total or oldest.pinned or oldest.name in self.can_do):
                self._forget(oldest)

    def _forget(self, function: Function) -> None:
        if self.functions.get(function.name) is function:
            del self.functions[function.name]
            self._deleted_from("functions")

    def _deleted_from(self, table: str) -> None:
        """A dict keeps its size after deletions: rebuild `self.<table>` once it is mostly empty."""
        entries = getattr(self, table)
        peak = self._peaks.get(table, 0)  # the largest size seen at a deletion since the last rebuild
        if len(entries) > peak:
            self._peaks[table] = len(entries)
        elif len(entries) < peak // 4:
            setattr(self, table, dict(entries))
            self._peaks[table] = len(entries)

    def _has_work(self, session: Session) -> bool:
        functions = self.functions
        for name in session.abilities:
            function = functions.get(name)
            if function is not None:
                queued = function.queued
                if queued[0] or queued[1] or queued[2]:
                    return True
        return False

    def _pre_sleep(self, session: Session, args: Sequence[bytes], now: float) -> None:
        if self._has_work(session):
            if session.sleeping:
                session.sleeping = False
                self._sleepers -= 1
            self.send(session, _NOOP)
        else:
            if not session.sleeping:
                session.sleeping = True
                self._sleepers += 1
            session.noop_sent = False

    def _take(self, session: Session, now: float) -> Job | None:
        # Priority is global across the worker's functions (HIGH of any function before
        # NORMAL of any), FIFO within a level, functions in CAN_DO order.
        if session.sleeping:
            session.sleeping = False
            self._sleepers -= 1
        session.noop_sent = False
        functions = self.functions
        for priority in (0, 1, 2):
            for name in session.abilities:
                function = functions.get(name)
                if function is None:
                    continue
                queued = function.queued
                if not queued[priority]:
                    continue
                queue = function.queues[priority]
                while queue:
                    job = queue.popleft()
                    if job.state != _QUEUED:
                        continue  # dropped while queued
                    queued[priority] -= 1
                    function.running += 1
                    job.state = _RUNNING
                    job.worker = session
                    job.attempt += 1
                    session.working[job.handle] = job
                    timeout = session.abilities[name]
                    if timeout:
                        self._seq += 1
                        heapq.heappush(self._timeout_heap, (now + timeout / 1000, self._seq, job, job.attempt))
                    return job
        return None

    def _grab_job(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._take(session, now)
        if job is None:
            self.send(session, _NO_JOB)
        else:
            self.send_parts(session, _parts(_T.JOB_ASSIGN, job.handle + b"\0" + job.function.name + b"\0", job.data))

    def _grab_job_uniq(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._take(session, now)
        out = session.out
        if not out:
            self.pending.append(session)
        if job is None:
            out.append(_NO_JOB)
            return
        head = b"\0".join((job.handle, job.function.name, job.unique, b""))
        data = job.data
        size = len(head) + len(data)
        if len(data) >= LARGE_PAYLOAD:  # as _parts: large data stays its own piece
            out.append(_JOB_ASSIGN_UNIQ(size) + head)
            out.append(data)
        else:
            out.append(_JOB_ASSIGN_UNIQ(size) + head + data)

    def _grab_job_all(self, session: Session, args: Sequence[bytes], now: float) -> None:
        # As gearmand: JOB_ASSIGN_ALL only for reduce jobs, JOB_ASSIGN_UNIQ otherwise
        # (server.cc gearman_server_run_command, GEARMAN_COMMAND_GRAB_JOB_ALL).
        job = self._take(session, now)
        if job is None:
            self.send(session, _NO_JOB)
        elif job.reducer:
            self.send_parts(session, _parts(
                _T.JOB_ASSIGN_ALL, b"\0".join((job.handle, job.function.name, job.unique, job.reducer, b"")), job.data
            ))
        else:
            self.send_parts(session, _parts(
                _T.JOB_ASSIGN_UNIQ, b"\0".join((job.handle, job.function.name, job.unique, b"")), job.data
            ))

    # -- work updates -----------------------------------------------------------------------
    def _owned(self, session: Session, handle: bytes, text: str) -> Job | None:
        job = session.working.get(handle)
        if job is None:
            self.send_error(session, ErrorCode.JOB_NOT_FOUND, text)
        return job

    def _forward(self, job: Job, parts: tuple[bytes, ...]) -> None:
        clients = job.clients
        if clients:
            for client in clients:
                out = client.out
                if not out:
                    self.pending.append(client)
                out.extend(parts)

    def _work_data(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._owned(session, args[0], "Job does not exist on server")
        if job is not None and job.clients:
            self._forward(job, _parts(_T.WORK_DATA, args[0] + b"\0", args[1]))

    def _work_warning(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._owned(session, args[0], "Job does not exist on server")
        if job is not None and job.clients:
            self._forward(job, _parts(_T.WORK_WARNING, args[0] + b"\0", args[1]))

    def _work_status(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._owned(session, args[0], "Job given in work result not found")
        if job is not None:
            if self._number(session, args[1], "numerator") is None or self._number(session, args[2], "denominator") is None:
                return
            job.numerator = args[1]
            job.denominator = args[2]
            if job.clients:
                self._forward(job, (_packet(_T.WORK_STATUS, b"\0".join(args)),))

    def _work_complete(self, session: Session, args: Sequence[bytes], now: float) -> None:
        handle, data = args
        working = session.working
        job = working.get(handle)
        if job is None:
            self.send_error(session, ErrorCode.JOB_NOT_FOUND, "Job given in work result not found")
            return
        clients = job.clients
        if clients:
            size = len(handle) + 1 + len(data)
            if len(data) >= LARGE_PAYLOAD:
                parts: tuple[bytes, ...] = (_WORK_COMPLETE(size) + handle + b"\0", data)  # as _parts
            else:
                parts = (_WORK_COMPLETE(size) + handle + b"\0" + data,)
            pending = self.pending
            for client in clients:
                out = client.out
                if not out:
                    pending.append(client)
                out.extend(parts)
        # `_finish` for a running job (every job in `working` is), inlined: the hot path.
        function = job.function
        function.running -= 1
        function.total -= 1
        del working[handle]
        job.worker = None
        job.state = _DONE
        self.jobs.pop(handle, None)
        if job.key is not None:
            k = (function.name, job.key)
            if self.by_key.get(k) is job:
                del self.by_key[k]
            self._unindex_unique(job)
        if clients:
            for client in clients:
                client.listening.discard(job)
            job.clients = None
        if job.store_id:
            self.store.remove(job.store_id)
            job.store_id = 0
        if not function.total:
            self._release(function)

    def _work_fail(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._owned(session, args[0], "Job given in work result not found")
        if job is not None:
            if job.clients:
                self._forward(job, (_packet(_T.WORK_FAIL, args[0]),))
            self._finish(job)

    def _work_exception(self, session: Session, args: Sequence[bytes], now: float) -> None:
        job = self._owned(session, args[0], "An exception was received for a job that does not exist")
        if job is None:
            return
        if job.clients:
            exception = _parts(_T.WORK_EXCEPTION, args[0] + b"\0", args[1])
            fail = (_packet(_T.WORK_FAIL, args[0]),)
            for client in job.clients:
                # Clients that did not ask for exceptions see a plain failure.
                self.send_parts(client, exception if client.exceptions else fail)
        self._finish(job)

    def _finish(self, job: Job) -> None:
        """The job is over (completed, failed, cancelled or out of retries): forget it."""
        function = job.function
        if job.state == _RUNNING:
            function.running -= 1
            worker = job.worker
            if worker is not None:
                worker.working.pop(job.handle, None)
                job.worker = None
        elif job.state == _QUEUED:
            function.queued[job.priority] -= 1
            queue = function.queues[job.priority]
            if len(queue) > 64 + 2 * function.queued[job.priority]:
                # Mostly dropped jobs (skipped lazily by GRAB): keep only the live ones.
                live = [j for j in queue if j.state == _QUEUED and j is not job]
                queue.clear()
                queue.extend(live)
        function.total -= 1
        job.state = _DONE
        self.jobs.pop(job.handle, None)
        if job.key is not None:
            k = (function.name, job.key)
            if self.by_key.get(k) is job:
                del self.by_key[k]
            self._unindex_unique(job)
        if job.clients:
            for client in job.clients:
                client.listening.discard(job)
            job.clients = None
        if job.store_id:
            self.store.remove(job.store_id)
            job.store_id = 0
        if not function.total:
            self._release(function)

    def _drop_queued(self, job: Job) -> None:
        # Left in its deque and skipped lazily; counters change now.
        self._finish(job)

    def _requeue(self, job: Job, now: float) -> None:
        """The worker holding `job` is gone (or timed out): run it again, within --job-retries."""
        if job.state != _RUNNING:
            return
        job.retries += 1
        out_of_retries = self.job_retries and job.retries >= self.job_retries
        if out_of_retries or (not job.clients and not job.background):
            # Out of retries: listeners get WORK_FAIL (job.cc gearman_server_job_queue).
            # A foreground job whose clients all left is not worth running again.
            if job.clients:
                self._forward(job, (_packet(_T.WORK_FAIL, job.handle),))
            self._finish(job)
            return
        job.function.running -= 1
        worker = job.worker
        if worker is not None:
            worker.working.pop(job.handle, None)
        job.worker = None
        job.numerator = job.denominator = b"0"
        self._enqueue(job, front=True)

    # -- status -----------------------------------------------------------------------------
    def _get_status(self, session: Session, args: Sequence[bytes], now: float) -> None:
        handle = args[0]
        job = self.jobs.get(handle)
        if job is None:
            payload = handle + b"\x000\x000\x000\x000"
        else:
            running = b"1" if job.state == _RUNNING else b"0"
            payload = b"\0".join((handle, b"1", running, job.numerator, job.denominator))
        self.send(session, _packet(_T.STATUS_RES, payload))

    def _get_status_unique(self, session: Session, args: Sequence[bytes], now: float) -> None:
        # gearmand looks the unique up across all functions (job.cc gearman_server_job_get_by_unique).
        unique = args[0]
        found = self.by_unique.get(unique) if unique else None
        if isinstance(found, dict):
            found = next(iter(found))  # the oldest of the jobs that share it
        if found is None:
            payload = unique + b"\x000\x000\x000\x000\x000"
        else:
            running = b"1" if found.state == _RUNNING else b"0"
            count = b"%d" % (len(found.clients) if found.clients else 0)
            payload = b"\0".join((unique, b"1", running, found.numerator, found.denominator, count))
        self.send(session, _packet(_T.STATUS_RES_UNIQUE, payload))

    # -- timers -----------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The Unix time at which `tick` must next be called, or None."""
        deadline: float | None = None
        if self._epoch_heap:
            deadline = self._epoch_heap[0][0]
        if self._timeout_heap:
            t = self._timeout_heap[0][0]
            if deadline is None or t < deadline:
                deadline = t
        return deadline

    def tick(self, now: float) -> None:
        """Release SUBMIT_JOB_EPOCH jobs whose time has come; expire CAN_DO_TIMEOUT jobs."""
        heap = self._epoch_heap
        while heap and heap[0][0] <= now:
            _, _, job = heapq.heappop(heap)
            if job.state == _WAITING:
                self._enqueue(job)
        theap = self._timeout_heap
        while theap and theap[0][0] <= now:
            _, _, job, attempt = heapq.heappop(theap)
            if job.state == _RUNNING and job.attempt == attempt:
                # gearmand requeues on expiry (connection.cc _server_job_timeout); so do we.
                self._requeue(job, now)

    # -- admin protocol ---------------------------------------------------------------------
    def admin(self, session: Session, line: bytes, now: float) -> int:
        """One admin text line (without its line ending); the reply is queued for `session`.

        Returns the reply's size, so the I/O layer can stop reading before replies pile up.
        """
        if b"\0" in line:
            # gearmand reads admin words as C strings; a NUL would silently cut a name short.
            reply = b"ERR INVALID_ARGUMENTS Admin+lines+cannot+contain+NUL+bytes\r\n"
        else:
            words = line.decode("latin-1").split()
            command = self._admin.get(words[0].lower()) if words else None
            refusal = None
            if command is not None and self.acl is not None:
                refusal = self._admin_refusal(session, words)
            if not words:
                reply = b"ERR UNKNOWN_COMMAND Unknown+server+commandNULL\r\n"
            elif refusal is not None:
                reply = refusal
            elif command is None:
                reply = b"ERR UNKNOWN_COMMAND Unknown+server+command" + words[0].encode("latin-1") + b"\r\n"
            else:
                reply = command(session, words)
        self.send(session, reply)
        return len(reply)

    def _function_rows(self) -> Iterator[tuple[Function, int]]:
        """(function, number of workers) for every known name, including names only workers use."""
        functions = self.functions
        for function in list(functions.values()):
            yield function, len(self.workers_of(function.name))
        for name in [n for n in self.can_do if n not in functions]:
            yield Function(name), len(self.workers_of(name))  # no jobs, no settings: all zeros

    def _admin_workers(self, session: Session, words: list[str]) -> bytes:
        lines = []
        for s in self.sessions.values():
            names = b"".join(b" " + name for name in s.abilities)
            lines.append(b"%d %s %s :%s\n" % (s.fd, s.host.encode(), s.client_id, names))
        lines.append(b".\n")
        return b"".join(lines)

    def _admin_status(self, session: Session, words: list[str]) -> bytes:
        lines = [
            b"%s\t%d\t%d\t%d\n" % (f.name, f.total, f.running, workers) for f, workers in self._function_rows()
        ]
        lines.append(b".\n")
        return b"".join(lines)

    def _admin_prioritystatus(self, session: Session, words: list[str]) -> bytes:
        lines = [
            b"%s\t%d\t%d\t%d\t%d\n" % (f.name, f.queued[0], f.queued[1], f.queued[2], workers)
            for f, workers in self._function_rows()
        ]
        lines.append(b".\n")
        return b"".join(lines)

    def _admin_show(self, session: Session, words: list[str]) -> bytes:
        show = self._show.get(tuple(w.lower() for w in words[1:]))
        return show() if show is not None else b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"

    def _show_jobs(self) -> bytes:
        lines = [b"%s\t%d\t0\t%d\n" % (j.handle, j.retries, 1 if j.store_id else 0) for j in list(self.jobs.values())]
        lines.append(b".\n")
        return b"".join(lines)

    def _show_unique_jobs(self) -> bytes:
        lines = [j.unique + b"\n" for j in list(self.jobs.values())]
        lines.append(b".\n")
        return b"".join(lines)

    def _show_queue(self) -> bytes:
        # gearspec's own: the durable queue's state, as `NAME\tVALUE` lines (docs/server.md).
        if not self.store.durable:
            state = b"not durable"
        elif self.store_error is None:
            state = b"ok"
        else:
            state = b"failing: " + self.store_error.encode("utf-8", "replace").replace(b"\n", b" ")
        return b"queue\t%s\nstate\t%s\nrefused\t%d\n.\n" % (self.queue.encode(), state, self.refused)

    def _admin_cancel(self, session: Session, words: list[str]) -> bytes:
        if len(words) < 3 or words[1].lower() != "job":
            return b"ERR UNKNOWN_COMMAND Unknown+server+command" + words[0].encode("latin-1") + b"\r\n"
        job = self.jobs.get(words[2].encode("latin-1"))
        # A job no worker holds yet can be cancelled; its clients get WORK_FAIL, as in gearmand
        # (gearmand_con.cc gearman_server_job_cancel). A running job is the worker's: refused.
        if job is None or job.state not in (_QUEUED, _WAITING):
            return b"ERR UNKNOWN_JOB\r\n"
        if job.clients:
            fail = (_packet(_T.WORK_FAIL, job.handle),)
            for client in job.clients:
                self.send_parts(client, fail)
        self._finish(job)
        return b"OK\r\n"

    def _admin_create(self, session: Session, words: list[str]) -> bytes:
        if len(words) != 3 or words[1].lower() != "function":
            return _args_error(words[0])
        name = words[2].encode("latin-1")
        if len(name) > MAX_FUNCTION_SIZE:
            return _NAME_TOO_LONG
        function = self.functions.get(name)
        if function is None:
            function = self.functions[name] = Function(name)
        function.pinned = True
        return b"OK\r\n"

    def _admin_drop(self, session: Session, words: list[str]) -> bytes:
        if len(words) != 3 or words[1].lower() != "function":
            return _args_error(words[0])
        name = words[2].encode("latin-1")
        function = self.functions.get(name)
        if name in self.can_do or (function is not None and function.total):
            return b"ERR there are still connected workers or executing clients\r\n"
        if function is None:
            return b"ERR function not found\r\n"
        function.pinned = False
        self._idle.pop(function, None)
        self._forget(function)
        return b"OK\r\n"

    def _admin_maxqueue(self, session: Session, words: list[str]) -> bytes:
        if len(words) < 2:
            return _args_error(words[0])
        sizes = []
        for word in words[2:5]:
            try:
                sizes.append(max(0, int(word)))
            except ValueError:
                sizes.append(0)  # gearmand uses atoi: not a number means 0 (no limit)
        if not sizes:
            sizes = [0, 0, 0]
        elif len(sizes) == 1:
            sizes = sizes * 3
        else:
            sizes += [0] * (3 - len(sizes))
        name = words[1].encode("latin-1")
        if len(name) > MAX_FUNCTION_SIZE:
            return _NAME_TOO_LONG
        function = self.functions.get(name)
        if function is None:
            # gearmand only limits functions it already knows; we create it so a limit can be
            # set before the first submit.
            function = self.functions[name] = Function(name)
        function.max_queue = tuple(sizes)
        if any(sizes):
            function.pinned = True  # a limit is an admin setting: kept until `drop function`
        self._release(function)
        return b"OK\r\n"

    def _admin_shutdown(self, session: Session, words: list[str]) -> bytes:
        if not self.enable_shutdown:
            return b"ERR UNKNOWN_COMMAND Unknown+server+command" + words[0].encode("latin-1") + b"\r\n"
        graceful = len(words) > 1 and words[1].lower() == "graceful"
        self.shutdown_requested = "graceful" if graceful else "now"
        return b"OK\r\n"

    # -- access control ---------------------------------------------------------------------
    def _guard_handlers(self) -> None:
        # Wrap only the guarded packet types: without an ACL the hot path is untouched, and
        # the server's framing plans (built from `handlers`) pick the guarded versions up.
        for code in list(self.handlers):
            name = PacketType(code).name
            if code in (_T.CAN_DO, _T.CAN_DO_TIMEOUT):
                permission, what = "register", "register"
            elif name.startswith("SUBMIT_") and self.handlers[code] != self._not_served:
                permission, what = "submit", "submit jobs to"
            else:
                continue
            self.handlers[code] = partial(self._guarded, permission, what, self.handlers[code])

    def _guarded(self, permission: str, what: str, handler: HandlerFn, session: Session, args: Sequence[bytes],
                 now: float) -> None:
        assert self.acl is not None
        if self.acl.allows(session.identity, permission, args[0]):
            handler(session, args, now)
        else:
            why = f"{_who(session)} may not {what} {_shown(args[0])}"
            self.on_refusal(session, why)
            self.send_error(session, ErrorCode.PERMISSION_DENIED, why)

    def _admin_refusal(self, session: Session, words: list[str]) -> bytes | None:
        """The ERR line refusing an admin command the ACL does not allow, or None."""
        assert self.acl is not None
        command = words[0].lower()
        name: bytes | None
        if command == "shutdown":
            name = None
        elif command == "cancel" and len(words) >= 3:
            job = self.jobs.get(words[2].encode("latin-1"))
            if job is None:
                return None  # answered ERR UNKNOWN_JOB as usual
            name = job.function.name
        elif command in ("create", "drop") and len(words) == 3:
            name = words[2].encode("latin-1")
        elif command == "maxqueue" and len(words) >= 2:
            name = words[1].encode("latin-1")
        else:
            return None  # read-only commands, and malformed ones (answered as usual)
        if self.acl.allows(session.identity, "admin", name):
            return None
        target = "the server" if name is None else _shown(name)
        why = f"{_who(session)} may not {command} {target}"
        self.on_refusal(session, why)
        return b"ERR PERMISSION_DENIED " + why.replace(" ", "+").encode("utf-8", "replace") + b"\r\n"

    # -- introspection ----------------------------------------------------------------------
    def running_jobs(self) -> int:
        """Jobs currently held by workers."""
        return sum(f.running for f in self.functions.values())


_NAME_TOO_LONG = b"ERR ARGUMENT_TOO_LARGE Function+name+longer+than+%d+bytes\r\n" % MAX_FUNCTION_SIZE


def _who(session: Session) -> str:
    if session.identity is None:
        return "a connection without a client certificate"
    return f"certificate {session.identity!r}"


def _shown(name: bytes) -> str:
    return repr(name.decode("utf-8", "backslashreplace"))


def _args_error(word: str) -> bytes:
    return (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
        + word.encode("latin-1") + b"\r\n"
    )
