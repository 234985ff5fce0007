"""The reference asyncio Gearman client.

    async with Client(["127.0.0.1:4730", "10.0.0.2:4730"]) as client:
        result = await client.run("reverse", b"hello")          # submit and wait
        job = await client.submit("resize", data, priority=Priority.HIGH)
        async for update in job:                                 # WORK_DATA / WARNING / STATUS
            print(update)
        print(await job)                                         # WORK_COMPLETE data

Several job servers: each submit picks one (round-robin, or a hash of the unique id so that
equal unique ids meet on the same server and coalesce) and fails over to the next when a
server cannot be reached. A server that failed is skipped for `retry_interval` seconds, then
tried again (reconnection is lazy: on the next request that picks it).

Replies on one connection come back in request order (gearmand answers each packet of a
connection in turn), so each server link keeps a FIFO of requests waiting for their reply;
WORK_* packets are routed by job handle instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from gearspec.reference.connection import (
    ConnectFailed,
    Connection,
    ConnectionError_,
    ConnectionLost,
    ServerAddress,
    open_connection,
    server_address,
)

from gearspec.codec import Packet, RawPacket
from gearspec.errors import GearspecError
from gearspec.spec import Magic, Priority, is_number
from gearspec.spec import PacketType as T

__all__ = [
    "SUBMIT_PACKETS",
    "Client",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "Job",
    "JobException",
    "JobFailed",
    "JobStatus",
    "JobTimeout",
    "JobUpdate",
    "NoServerAvailable",
    "RequestTimeout",
    "ServerError",
    "UniqueStatus",
    "WorkData",
    "WorkStatus",
    "WorkWarning",
]


log = logging.getLogger("gearspec.reference.client")

# Seconds to wait for OPTION_RES before carrying on without the option (python gear's geard
# never answers OPTION_REQ: geard.py handles no OPTION_REQ packet).
OPTION_TIMEOUT = 2.0


# -- errors -------------------------------------------------------------------------------


class ClientError(GearspecError):
    """Base of every error the client raises on purpose."""


class NoServerAvailable(ClientError):
    """No configured job server could be reached; `reasons` says why, per server."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("no job server available: " + "; ".join(self.reasons))


class ServerError(ClientError):
    """The server answered a request with an ERROR packet."""

    def __init__(self, server: str, code: str, text: str) -> None:
        self.server = server
        self.code = code
        self.text = text
        super().__init__(f"{server}: ERROR {code}: {text}" if text else f"{server}: ERROR {code}")


class RequestTimeout(ClientError, TimeoutError):
    """A server did not answer a request in time (the connection is then closed)."""


class JobTimeout(ClientError, TimeoutError):
    """A job did not finish in time; it may still be running on the server."""


class JobFailed(ClientError):
    """The job ended with WORK_FAIL (or the server gave up on it)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"job {job.handle.decode('latin-1')} ({job.function.decode('latin-1')}) failed")


class JobException(ClientError):
    """The job ended with WORK_EXCEPTION; `data` is what the worker sent."""

    def __init__(self, job: Job, data: bytes) -> None:
        self.job = job
        self.data = data
        super().__init__(
            f"job {job.handle.decode('latin-1')} ({job.function.decode('latin-1')}) raised: "
            f"{data.decode('utf-8', 'replace')}"
        )


# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkData:
    """A WORK_DATA chunk sent by the worker while the job runs."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WorkWarning:
    """A WORK_WARNING sent by the worker while the job runs."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WorkStatus:
    """A WORK_STATUS progress report: numerator out of denominator."""

    numerator: int
    denominator: int


JobUpdate = WorkData | WorkWarning | WorkStatus


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A STATUS_RES answer to GET_STATUS."""

    handle: bytes
    known: bool
    running: bool
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class UniqueStatus:
    """A STATUS_RES_UNIQUE answer to GET_STATUS_UNIQUE (gearmand extension)."""

    unique: bytes
    known: bool
    running: bool
    numerator: int
    denominator: int
    client_count: int


_Known = TypeVar("_Known", JobStatus, UniqueStatus)


# (background, priority) -> submit packet; SUBMIT_JOB_EPOCH is chosen by `epoch=`.
SUBMIT_PACKETS: dict[tuple[bool, Priority], T] = {
    (False, Priority.NORMAL): T.SUBMIT_JOB,
    (False, Priority.HIGH): T.SUBMIT_JOB_HIGH,
    (False, Priority.LOW): T.SUBMIT_JOB_LOW,
    (True, Priority.NORMAL): T.SUBMIT_JOB_BG,
    (True, Priority.HIGH): T.SUBMIT_JOB_HIGH_BG,
    (True, Priority.LOW): T.SUBMIT_JOB_LOW_BG,
}

_TERMINAL = {T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION}
_UPDATES = {T.WORK_DATA, T.WORK_WARNING, T.WORK_STATUS} | _TERMINAL
_END = object()  # closes a job's update stream


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _number(raw: bytes) -> int:
    # Perl Gearman::Server sends empty numerator/denominator for jobs without status
    # (lib/Gearman/Server/Client.pm CMD_get_status): read them as 0.
    return int(raw) if is_number(raw) else 0


# -- jobs ---------------------------------------------------------------------------------


class Job:
    """A submitted job.

    `await job` (or `await job.result(timeout)`) gives the WORK_COMPLETE data, or raises
    `JobFailed` / `JobException` / `ConnectionLost`. `async for update in job` yields each
    WORK_DATA, WORK_WARNING and WORK_STATUS as it arrives and ends when the job does.
    Background jobs are done as soon as they are created (their result is b"").
    """

    def __init__(
        self,
        link: _ServerLink,
        function: bytes,
        unique: bytes,
        data: bytes,
        background: bool,
        priority: Priority,
    ) -> None:
        self._link = link
        self.function = function
        self.unique = unique
        self.data = data
        self.background = background
        self.priority = priority
        self.handle = b""
        self.status: tuple[int, int] | None = None  # last WORK_STATUS
        self.data_chunks: list[bytes] = []  # every WORK_DATA so far
        self.warnings: list[bytes] = []  # every WORK_WARNING so far
        self._result: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._updates: asyncio.Queue[object] = asyncio.Queue()

    @property
    def server(self) -> str:
        """The job server that holds the job, as HOST:PORT."""
        return self._link.name

    def done(self) -> bool:
        return self._result.done()

    async def result(self, timeout: float | None = None) -> bytes:
        """The WORK_COMPLETE data; raises `JobTimeout` if the job has not ended in time."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise JobTimeout(
                f"job {self.handle.decode('latin-1')} ({self.function.decode('latin-1')}) "
                f"did not finish within {timeout:g}s"
            ) from None

    def __await__(self) -> Generator[Any, None, bytes]:
        return self.result().__await__()

    def __aiter__(self) -> AsyncIterator[JobUpdate]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JobUpdate]:
        while True:
            item = await self._updates.get()
            if item is _END:
                self._updates.put_nowait(_END)  # a second iteration also ends
                return
            yield item  # type: ignore[misc]

    async def get_status(self, timeout: float | None = None) -> JobStatus:
        """Ask the job's server for its status (GET_STATUS)."""
        return await self._link.get_status(self.handle, timeout)

    # -- fed by the link ------------------------------------------------------------------
    def _feed(self, packet: Packet) -> None:
        kind = packet.type
        if kind is T.WORK_DATA:
            self.data_chunks.append(packet["data"])
            self._updates.put_nowait(WorkData(packet["data"]))
        elif kind is T.WORK_WARNING:
            self.warnings.append(packet["data"])
            self._updates.put_nowait(WorkWarning(packet["data"]))
        elif kind is T.WORK_STATUS:
            self.status = (int(packet["numerator"]), int(packet["denominator"]))
            self._updates.put_nowait(WorkStatus(*self.status))
        elif kind is T.WORK_COMPLETE:
            self._settle(result=packet["data"])
        elif kind is T.WORK_FAIL:
            self._settle(error=JobFailed(self))
        elif kind is T.WORK_EXCEPTION:
            self._settle(error=JobException(self, packet["data"]))

    def _settle(self, result: bytes = b"", error: BaseException | None = None) -> None:
        if self._result.done():
            return
        if error is None:
            self._result.set_result(result)
        else:
            self._result.set_exception(error)
            self._result.exception()  # mark retrieved: nobody may await a job they only iterate
        self._updates.put_nowait(_END)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        kind = "background " if self.background else ""
        return f"<Job {kind}{self.function!r} {self.handle!r} on {self.server} {state}>"


# -- one server ---------------------------------------------------------------------------


@dataclass
class _Pending:
    expect: frozenset[T]
    future: asyncio.Future[Packet]
    on_reply: Callable[[Packet], None] | None = None


@dataclass
class _ServerLink:
    """The client's connection to one job server, opened on demand."""

    address: ServerAddress
    client: Client
    conn: Connection | None = None
    pending: deque[_Pending] = field(default_factory=deque)
    jobs: dict[bytes, list[Job]] = field(default_factory=dict)
    down_until: float = 0.0
    last_error: str = ""
    exceptions_enabled: bool = False
    tls: ssl.SSLContext | None = None  # for a tls:// server
    option_unanswered: bool = False  # the server ignored OPTION_REQ once: do not ask again
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def is_down(self) -> bool:
        return self.conn is None and time.monotonic() < self.down_until

    async def ensure(self) -> Connection:
        """The open connection, connecting (and setting options) first if needed."""
        if self.conn is not None and self.conn.closed is None:
            return self.conn
        async with self._lock:
            if self.conn is not None and self.conn.closed is None:
                return self.conn
            cfg = self.client
            try:
                conn = await self._open()
                self.exceptions_enabled = False
                if cfg.exceptions and not self.option_unanswered:
                    try:
                        await self._request_on(
                            conn, Packet.request(T.OPTION_REQ, b"exceptions"), {T.OPTION_RES},
                            min(cfg.timeout, OPTION_TIMEOUT),
                        )
                        self.exceptions_enabled = True
                    except ServerError:
                        pass  # the server has no such option: exceptions arrive as WORK_FAIL
                    except RequestTimeout:
                        # python gear's geard never answers OPTION_REQ. The timeout closed the
                        # connection (a late OPTION_RES would be taken for another reply): open
                        # a new one and carry on without the option on this server.
                        self.option_unanswered = True
                        log.warning(
                            "%s did not answer OPTION_REQ exceptions within %gs; carrying on without it "
                            "(WORK_EXCEPTION will arrive as WORK_FAIL)", self.name, min(cfg.timeout, OPTION_TIMEOUT),
                        )
                        conn = await self._open()
            except ConnectionError_ as exc:
                self.down_until = time.monotonic() + cfg.retry_interval
                self.last_error = str(exc)
                raise
            return conn

    async def _open(self) -> Connection:
        """A new connection (over TLS for a tls:// server), with the client id set."""
        cfg = self.client
        conn = await open_connection(
            self.address, self._on_packet, self._on_close, timeout=cfg.connect_timeout, tls=self.tls
        )
        self.conn = conn
        if cfg.client_id:
            conn.send(Packet.request(T.SET_CLIENT_ID, cfg.client_id))
        return conn

    async def request(
        self,
        packet: Packet,
        expect: Iterable[T],
        timeout: float | None = None,
        on_reply: Callable[[Packet], None] | None = None,
    ) -> Packet:
        conn = await self.ensure()
        return await self._request_on(conn, packet, expect, timeout, on_reply)

    async def _request_on(
        self,
        conn: Connection,
        packet: Packet,
        expect: Iterable[T],
        timeout: float | None = None,
        on_reply: Callable[[Packet], None] | None = None,
    ) -> Packet:
        waiting = _Pending(frozenset(expect), asyncio.get_running_loop().create_future(), on_reply)
        conn.send(packet)
        self.pending.append(waiting)
        limit = self.client.timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(waiting.future), limit)
        except TimeoutError:
            # Replies are matched by order: one that never came leaves the order unknown.
            await conn.close()
            raise RequestTimeout(f"{self.name}: no reply to {packet.name} within {limit:g}s") from None

    # -- events from the connection -------------------------------------------------------
    def _on_packet(self, packet: Packet | RawPacket) -> None:
        if isinstance(packet, RawPacket):
            self._on_raw(packet)
            return
        kind = packet.type
        if kind in _UPDATES:
            for job in self.jobs.get(packet["handle"], ()):
                job._feed(packet)
            if kind in _TERMINAL:
                self.jobs.pop(packet["handle"], None)
            return
        if kind is T.NOOP:
            return
        if not self.pending:
            self._violation(f"unexpected {packet.name} with no request waiting")
            return
        waiting = self.pending.popleft()
        if waiting.future.done():  # its caller gave up (cancelled)
            return
        if kind is T.ERROR:
            waiting.future.set_exception(
                ServerError(self.name, packet["code"].decode("latin-1"), packet["text"].decode("utf-8", "replace"))
            )
        elif kind in waiting.expect:
            if waiting.on_reply is not None:
                waiting.on_reply(packet)
            waiting.future.set_result(packet)
        else:
            names = "/".join(sorted(t.name for t in waiting.expect))
            self._violation(f"sent {packet.name} where {names} was expected")

    def _on_raw(self, raw: RawPacket) -> None:
        if raw.type is T.WORK_FAIL and raw.payload.endswith(b"\0") and raw.payload.count(b"\0") == 1:
            # gearmand turns WORK_EXCEPTION into WORK_FAIL for clients without the exceptions
            # option and sends the handle with its NUL terminator (libgearman-server/server.cc
            # _server_queue_work_data: arg[0], arg_size[0]).
            self._on_packet(Packet(Magic.RES, T.WORK_FAIL, (raw.payload[:-1],)))
            return
        if raw.type is T.STATUS_RES and self.pending and T.STATUS_RES in self.pending[0].expect:
            fields = raw.payload.split(b"\0", 4)
            if len(fields) == 5:
                numbers = tuple(str(_number(f)).encode() for f in fields[1:])
                self._on_packet(Packet(Magic.RES, T.STATUS_RES, (fields[0], *numbers)))
                return
        self._violation(f"sent a malformed packet: {raw.problem.message}")

    def _violation(self, what: str) -> None:
        if self.conn is not None and self.conn.closed is None:
            self.last_error = f"{self.name}: the server {what}"
            conn = self.conn
            conn._finish(f"the server {what}")

    def _on_close(self, lost: ConnectionLost) -> None:
        self.conn = None
        self.last_error = str(lost)
        while self.pending:
            waiting = self.pending.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(lost)
                waiting.future.exception()
        jobs, self.jobs = self.jobs, {}
        for listeners in jobs.values():
            for job in listeners:
                job._settle(error=lost)

    # -- requests -------------------------------------------------------------------------
    async def get_status(self, handle: bytes, timeout: float | None = None) -> JobStatus:
        reply = await self.request(Packet.request(T.GET_STATUS, handle), {T.STATUS_RES}, timeout)
        return JobStatus(
            reply["handle"], reply["known"] == b"1", reply["running"] == b"1",
            int(reply["numerator"]), int(reply["denominator"]),
        )

    async def get_status_unique(self, unique: bytes, timeout: float | None = None) -> UniqueStatus:
        reply = await self.request(Packet.request(T.GET_STATUS_UNIQUE, unique), {T.STATUS_RES_UNIQUE}, timeout)
        return UniqueStatus(
            reply["unique"], reply["known"] == b"1", reply["running"] == b"1",
            int(reply["numerator"]), int(reply["denominator"]), int(reply["client_count"]),
        )

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


# -- the client ---------------------------------------------------------------------------


class Client:
    """An asyncio Gearman client over one or more job servers.

    `servers`: "HOST[:PORT]" strings or (host, port) tuples. `strategy`: "round_robin" or
    "hash" (hash of the unique id when one is given, round-robin otherwise). `timeout`:
    seconds to wait for a server's reply to a request (not for a job's result; see
    `Job.result`). `exceptions`: ask each server for WORK_EXCEPTION forwarding (OPTION_REQ).
    `tls`: the SSL context for `tls://HOST:PORT` servers (`gearspec.wire.tls.client_context`;
    default: the system's CAs, no client certificate).
    """

    def __init__(
        self,
        servers: Sequence[str | ServerAddress] | str,
        *,
        strategy: Literal["round_robin", "hash"] = "round_robin",
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        retry_interval: float = 1.0,
        exceptions: bool = True,
        client_id: str | bytes | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(servers, str):
            servers = [servers]
        if not servers:
            raise ValueError("a client needs at least one job server")
        if strategy not in ("round_robin", "hash"):
            raise ValueError(f"unknown strategy {strategy!r} (round_robin or hash)")
        self.strategy = strategy
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.exceptions = exceptions
        self.client_id = client_id
        self._links = []
        for server in servers:
            address, context = server_address(server, tls)
            self._links.append(_ServerLink(address, self, tls=context))
        self._turn = itertools.count()

    @property
    def servers(self) -> list[str]:
        return [link.name for link in self._links]

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; jobs still waiting fail with `ConnectionLost`."""
        for link in self._links:
            await link.close()

    # -- server choice --------------------------------------------------------------------
    def _order(self, unique: bytes) -> list[_ServerLink]:
        n = len(self._links)
        if self.strategy == "hash" and unique:
            start = zlib.crc32(unique) % n
        else:
            start = next(self._turn) % n
        ring = self._links[start:] + self._links[:start]
        # Servers that failed recently go last: tried only when all others fail too.
        return [link for link in ring if not link.is_down()] + [link for link in ring if link.is_down()]

    async def _with_failover(self, unique: bytes, attempt: Callable[[_ServerLink], Any]) -> Any:
        reasons = []
        for link in self._order(unique):
            try:
                return await attempt(link)
            except (ConnectFailed, ConnectionLost) as exc:
                reasons.append(str(exc))
        raise NoServerAvailable(reasons)

    # -- submitting -----------------------------------------------------------------------
    async def submit(
        self,
        function: str | bytes,
        data: str | bytes = b"",
        *,
        unique: str | bytes | None = None,
        background: bool = False,
        priority: Priority | str = Priority.NORMAL,
        epoch: int | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Submit a job; returns once the server created it (JOB_CREATED).

        `unique` makes equal jobs coalesce (None sends an empty unique id: no coalescing).
        `epoch` (a Unix time) sends SUBMIT_JOB_EPOCH, a background job run no earlier than
        then (a gearmand extension). A server that cannot be reached, or that drops the
        connection before JOB_CREATED, is skipped for the next one.
        """
        if isinstance(priority, str):
            priority = Priority[priority.upper()]
        fn, uq, payload = _bytes(function), _bytes(unique or b""), _bytes(data)
        if epoch is not None:
            if not background:
                raise ValueError("an epoch job is always a background job: pass background=True")
            if priority is not Priority.NORMAL:
                raise ValueError("SUBMIT_JOB_EPOCH has no priority variants")
            packet = Packet.request(T.SUBMIT_JOB_EPOCH, fn, uq, int(epoch), payload)
        else:
            packet = Packet.request(SUBMIT_PACKETS[(background, priority)], fn, uq, payload)

        async def attempt(link: _ServerLink) -> Job:
            job = Job(link, fn, uq, payload, background, priority)

            def created(reply: Packet) -> None:
                # Runs inside the reader, before any WORK_* for this handle is dispatched.
                job.handle = reply["handle"]
                if background:
                    job._settle(result=b"")
                else:
                    link.jobs.setdefault(job.handle, []).append(job)

            await link.request(packet, {T.JOB_CREATED}, timeout, created)
            return job

        job: Job = await self._with_failover(uq, attempt)
        return job

    async def run(
        self,
        function: str | bytes,
        data: str | bytes = b"",
        *,
        unique: str | bytes | None = None,
        priority: Priority | str = Priority.NORMAL,
        timeout: float | None = None,
    ) -> bytes:
        """Submit a foreground job and wait for its result (`timeout` covers both)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = await self.submit(function, data, unique=unique, priority=priority, timeout=timeout)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return await job.result(left)

    # -- other requests -------------------------------------------------------------------
    def _link_for(self, server: str | ServerAddress | None) -> list[_ServerLink]:
        if server is None:
            return list(self._links)
        address, _ = server_address(server)
        found = [link for link in self._links if link.address == address]
        if not found:
            raise ValueError(f"{server!r} is not one of this client's servers ({', '.join(self.servers)})")
        return found

    async def get_status(
        self, handle: str | bytes, *, server: str | ServerAddress | None = None, timeout: float | None = None
    ) -> JobStatus:
        """GET_STATUS for a handle: asks `server`, or each server until one knows the job."""
        raw = _bytes(handle)
        return await self._ask_until_known(server, lambda link: link.get_status(raw, timeout))

    async def get_status_unique(
        self, unique: str | bytes, *, server: str | ServerAddress | None = None, timeout: float | None = None
    ) -> UniqueStatus:
        """GET_STATUS_UNIQUE (gearmand extension): asks `server`, or each until one knows it."""
        raw = _bytes(unique)
        return await self._ask_until_known(server, lambda link: link.get_status_unique(raw, timeout))

    async def _ask_until_known(
        self, server: str | ServerAddress | None, ask: Callable[[_ServerLink], Awaitable[_Known]]
    ) -> _Known:
        # A job lives on one server only: the first answer that knows it wins; if none does,
        # the last "unknown" answer stands, and if no server answered at all, say why.
        answer: _Known | None = None
        reasons = []
        for link in self._link_for(server):
            try:
                answer = await ask(link)
            except ConnectionError_ as exc:
                reasons.append(str(exc))
                continue
            if answer.known:
                return answer
        if answer is None:
            raise NoServerAvailable(reasons)
        return answer

    async def echo(
        self, data: str | bytes, *, server: str | ServerAddress | None = None, timeout: float | None = None
    ) -> bytes:
        """ECHO_REQ to one server (the first reachable one unless `server` is given)."""
        payload = _bytes(data)
        links = self._link_for(server)

        async def attempt(link: _ServerLink) -> bytes:
            reply = await link.request(Packet.request(T.ECHO_REQ, payload), {T.ECHO_RES}, timeout)
            return reply["data"]

        reasons = []
        for link in links:
            with contextlib.suppress(ConnectFailed, ConnectionLost):
                return await attempt(link)
            reasons.append(link.last_error)
        raise NoServerAvailable(reasons)

    async def set_option(self, option: str | bytes, *, timeout: float | None = None) -> None:
        """OPTION_REQ on every reachable server; raises `ServerError` when one refuses it."""
        for link in self._links:
            with contextlib.suppress(ConnectFailed):
                await link.request(Packet.request(T.OPTION_REQ, _bytes(option)), {T.OPTION_RES}, timeout)
