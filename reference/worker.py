"""The reference asyncio Gearman worker.

    worker = Worker(["127.0.0.1:4730"], concurrency=4)

    @worker.function("reverse")
    async def reverse(job: WorkerJob) -> bytes:
        job.send_status(1, 2)
        return job.data[::-1]

    await worker.run()            # until worker.stop(): running jobs finish first

One connection per job server. Each connection loop takes a free slot (at most
`concurrency` jobs run at once across all servers), sends GRAB_JOB_UNIQ and, on NO_JOB,
gives the slot back, sends PRE_SLEEP and waits for the server's NOOP: a worker never polls.
A server that refuses GRAB_JOB_UNIQ with an ERROR (Perl Gearman::Server only serves
GRAB_JOB: lib/Gearman/Server/Client.pm has no CMD_grab_job_uniq) makes that connection fall
back to GRAB_JOB. A lost connection is retried with a growing delay.

A handler gets a `WorkerJob` and returns the result (bytes, str or None). Raising
`WorkFailed` sends WORK_FAIL; any other exception sends WORK_EXCEPTION with its text.
Handlers may be coroutine functions or plain functions; plain ones run in a thread, and
their `job.send_*` calls are safe from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gearspec.reference.connection import (
    ConnectFailed,
    Connection,
    ConnectionLost,
    ServerAddress,
    open_connection,
    server_address,
)

from gearspec.codec import Packet, RawPacket
from gearspec.errors import GearspecError
from gearspec.spec import PacketType as T

__all__ = ["Handler", "WorkFailed", "Worker", "WorkerError", "WorkerJob"]

log = logging.getLogger("gearspec.worker")

Handler = Callable[["WorkerJob"], "Awaitable[bytes | str | None] | bytes | str | None"]

_ASSIGN = {T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL}
_GRAB_REPLIES = _ASSIGN | {T.NO_JOB, T.ERROR}


class WorkerError(GearspecError):
    """A worker misconfiguration or a failure it cannot recover from."""


class WorkFailed(Exception):
    """Raise inside a handler to end the job with WORK_FAIL."""


def _bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


@dataclass(frozen=True, slots=True)
class _Function:
    name: bytes
    handler: Handler
    timeout: int | None  # CAN_DO_TIMEOUT value, sent as given


class WorkerJob:
    """A job handed to this worker; its `send_*` methods report back while it runs."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop, packet: Packet) -> None:
        self._conn = conn
        self._loop = loop
        self.handle: bytes = packet["handle"]
        self.function: bytes = packet["function"]
        self.unique: bytes = packet["unique"] if packet.type is not T.JOB_ASSIGN else b""
        self.data: bytes = packet["data"]
        self.finished = False

    @property
    def server(self) -> str:
        return self._conn.name

    def _send(self, packet: Packet) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # a plain handler, in its thread
            running = None
        if running is self._loop:
            self._conn.send(packet)
        else:
            self._loop.call_soon_threadsafe(self._send_quietly, packet)

    def _send_quietly(self, packet: Packet) -> None:
        with contextlib.suppress(ConnectionLost):
            self._conn.send(packet)

    def send_data(self, data: bytes | str) -> None:
        """WORK_DATA: a chunk of partial result, forwarded to foreground clients."""
        self._send(Packet.request(T.WORK_DATA, self.handle, _bytes(data)))

    def send_warning(self, data: bytes | str) -> None:
        """WORK_WARNING: a warning forwarded to foreground clients."""
        self._send(Packet.request(T.WORK_WARNING, self.handle, _bytes(data)))

    def send_status(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: progress, kept by the server for GET_STATUS."""
        self._send(Packet.request(T.WORK_STATUS, self.handle, numerator, denominator))

    def __repr__(self) -> str:
        return f"<WorkerJob {self.function!r} {self.handle!r} from {self.server}>"


class _ServerLoop:
    """The worker's connection to one job server: grab, sleep, run, reconnect."""

    def __init__(self, worker: Worker, address: ServerAddress) -> None:
        self.worker = worker
        self.address = address
        self.conn: Connection | None = None
        self.grab = worker.grab_packet
        self.replies: asyncio.Queue[Packet | ConnectionLost] = asyncio.Queue()
        self.wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.grabbing = False  # a grab is waiting for its reply
        self.heard = False  # the current connection has brought a packet

    def _on_packet(self, packet: Packet | RawPacket) -> None:
        self.heard = True
        if isinstance(packet, RawPacket):
            assert self.conn is not None
            self.conn._finish(f"the server sent a malformed packet: {packet.problem.message}")
            return
        if packet.type is T.NOOP:
            self.wake.set()
        elif packet.type is T.ERROR and not self.grabbing:
            # An answer to a WORK_* packet the server does not serve (Perl Gearman::Server
            # has no WORK_DATA or WORK_WARNING): worth a log line, not a reconnect.
            log.warning("%s: ERROR %s: %s", self.address, packet["code"], packet["text"])
        elif packet.type in _GRAB_REPLIES:
            self.replies.put_nowait(packet)
        # ECHO_RES, OPTION_RES and others need no action.

    def _on_close(self, lost: ConnectionLost) -> None:
        self.connected.clear()
        self.replies.put_nowait(lost)
        self.wake.set()

    async def run(self) -> None:
        delay = 0.1
        worker = self.worker
        while not worker.stopping:
            try:
                self.conn = await open_connection(
                    self.address, self._on_packet, self._on_close, timeout=worker.connect_timeout,
                    tls=worker.contexts[self.address],
                )
            except ConnectFailed as exc:
                log.warning("%s; retrying in %.1fs", exc, delay)
                await worker._sleep(delay)
                delay = min(delay * 2, worker.max_retry_interval)
                continue
            self.replies = asyncio.Queue()
            self.heard = False
            try:
                self._announce()
                self.connected.set()
                await self._serve(self.conn)
            except ConnectionLost as exc:
                if not worker.stopping:
                    log.warning("%s; reconnecting in %.1fs", exc, 0.1 if self.heard else delay)
            finally:
                self.connected.clear()
            # A server that accepts and closes at once must not get a reconnect storm: the
            # delay grows until a connection has brought a packet.
            if self.heard:
                delay = 0.1
            if not worker.stopping:
                await worker._sleep(delay)
                delay = min(delay * 2, worker.max_retry_interval)
        if self.conn is not None:
            await worker._drained()
            await self.conn.close()

    def _announce(self) -> None:
        assert self.conn is not None
        packets = []
        if self.worker.client_id:
            packets.append(Packet.request(T.SET_CLIENT_ID, self.worker.client_id))
        for fn in self.worker.functions.values():
            if fn.timeout is None:
                packets.append(Packet.request(T.CAN_DO, fn.name))
            else:
                packets.append(Packet.request(T.CAN_DO_TIMEOUT, fn.name, fn.timeout))
        self.conn.send(*packets)

    async def _serve(self, conn: Connection) -> None:
        worker = self.worker
        while not worker.stopping:
            await worker._slots.acquire()
            handed_off = False
            try:
                if worker.stopping:
                    return
                if conn.closed is not None:
                    raise conn.closed
                conn.send(Packet.request(self.grab))
                self.grabbing = True
                reply = await self.replies.get()
                while isinstance(reply, Packet) and reply.type is T.ERROR and self.grab is T.GRAB_JOB:
                    # Most likely the answer to a work packet sent before the grab.
                    log.warning("%s: ERROR %s: %s", conn.name, reply["code"], reply["text"])
                    reply = await self.replies.get()
                if isinstance(reply, ConnectionLost):
                    raise reply
                if reply.type in _ASSIGN:
                    worker._start_job(conn, reply)
                    handed_off = True  # the job task gives the slot back
                    continue
                if reply.type is T.ERROR:
                    # A late reply to the refused grab, if any, is absorbed by later rounds.
                    log.info("%s refused %s (%s); using GRAB_JOB", conn.name, self.grab.name, reply["code"])
                    self.grab = T.GRAB_JOB
                    continue
            finally:
                self.grabbing = False
                if not handed_off:
                    worker._slots.release()
            # NO_JOB: sleep until the server says there is work (NOOP), or we stop.
            self.wake.clear()
            if worker.stopping:  # stop() may have come while the grab was answered
                return
            conn.send(Packet.request(T.PRE_SLEEP))
            await self.wake.wait()
            if conn.closed is not None and not worker.stopping:
                raise conn.closed


class Worker:
    """An asyncio Gearman worker over one or more job servers.

    `concurrency`: jobs run at once, across all servers. `grab`: the grab packet to start
    with (GRAB_JOB_UNIQ gives handlers the unique id; GRAB_JOB for old servers).
    """

    def __init__(
        self,
        servers: Sequence[str | ServerAddress] | str,
        *,
        concurrency: int = 1,
        client_id: str | bytes | None = None,
        connect_timeout: float = 5.0,
        max_retry_interval: float = 5.0,
        grab: T = T.GRAB_JOB_UNIQ,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(servers, str):
            servers = [servers]
        if not servers:
            raise ValueError("a worker needs at least one job server")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if grab not in (T.GRAB_JOB, T.GRAB_JOB_UNIQ, T.GRAB_JOB_ALL):
            raise ValueError(f"{grab.name} is not a grab packet")
        # `tls://HOST:PORT` servers are reached over TLS, with `tls` or the system's CAs.
        resolved = [server_address(s, tls) for s in servers]
        self.addresses = [address for address, _ in resolved]
        self.contexts = dict(resolved)
        self.concurrency = concurrency
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.max_retry_interval = max_retry_interval
        self.grab_packet = grab
        self.functions: dict[bytes, _Function] = {}
        self.stopping = False
        self.jobs_done = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._loops: list[_ServerLoop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_event = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._count_limit: int | None = None

    # -- configuration --------------------------------------------------------------------
    def register(self, name: str | bytes, handler: Handler, *, timeout: int | None = None) -> None:
        """Serve `name` with `handler`; `timeout` sends CAN_DO_TIMEOUT with that value.

        The timeout's unit is the server's: milliseconds for gearmand >= 1.1.19, seconds
        in PROTOCOL and Perl Gearman::Server. Registering while running announces the
        function on every connected server.
        """
        fn = _Function(_bytes(name), handler, timeout)
        self.functions[fn.name] = fn
        for loop in self._loops:
            if loop.conn is not None and loop.conn.closed is None:
                packet = (
                    Packet.request(T.CAN_DO, fn.name) if timeout is None
                    else Packet.request(T.CAN_DO_TIMEOUT, fn.name, timeout)
                )
                loop.conn.send(packet)
                loop.wake.set()  # grab again: work may already be queued for it

    def function(self, name: str | bytes, *, timeout: int | None = None) -> Callable[[Handler], Handler]:
        """Decorator form of `register`."""

        def decorate(handler: Handler) -> Handler:
            self.register(name, handler, timeout=timeout)
            return handler

        return decorate

    # -- running --------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to every server and begin taking jobs (returns at once).

        Functions may be registered before or after starting.
        """
        if self._tasks:
            return
        self._loops = [_ServerLoop(self, a) for a in self.addresses]
        self._tasks = [asyncio.create_task(loop.run(), name=f"gearspec-worker-{loop.address}") for loop in self._loops]

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until every server connection is up and its functions announced."""
        await asyncio.wait_for(asyncio.gather(*(loop.connected.wait() for loop in self._loops)), timeout)

    async def run(self, *, count: int | None = None) -> None:
        """Start, then serve until `stop()` is called (or after `count` jobs)."""
        self._count_limit = count
        await self.start()
        await self._stop_event.wait()
        await self._shutdown()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs, let running jobs finish (up to `timeout`), then disconnect."""
        self._request_stop()
        if timeout is None:
            await self._shutdown()
        else:
            await asyncio.wait_for(self._shutdown(), timeout)

    def _request_stop(self) -> None:
        self.stopping = True
        self._stop_event.set()
        for loop in self._loops:
            loop.wake.set()
            loop.replies.put_nowait(ConnectionLost("worker stopping"))

    async def _shutdown(self) -> None:
        await self._drained()
        # return_exceptions: one server loop's failure must not keep the others open; a
        # cancellation of this coroutine itself still propagates.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for loop in self._loops:
            if loop.conn is not None:
                await loop.conn.close()

    async def _drained(self) -> None:
        await self._idle.wait()

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), delay)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- jobs -----------------------------------------------------------------------------
    def _start_job(self, conn: Connection, assign: Packet) -> None:
        self._idle.clear()
        task = asyncio.create_task(self._run_job(conn, assign))
        self._running.add(task)
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self.jobs_done += 1
        if self._count_limit is not None and self.jobs_done >= self._count_limit:
            self._request_stop()
        self._slots.release()
        if not self._running:
            self._idle.set()

    async def _run_job(self, conn: Connection, assign: Packet) -> None:
        job = WorkerJob(conn, asyncio.get_running_loop(), assign)
        fn = self.functions.get(job.function)
        if fn is None:
            # Possible right after unregistering; the server must hear back about the job.
            reply = Packet.request(T.WORK_FAIL, job.handle)
        else:
            try:
                result: object
                if inspect.iscoroutinefunction(fn.handler):
                    result = await fn.handler(job)
                else:
                    result = await asyncio.to_thread(fn.handler, job)
                    if inspect.isawaitable(result):
                        result = await result
                if result is None:
                    result = b""
                if not isinstance(result, (bytes, bytearray, memoryview, str)):
                    raise TypeError(f"a handler must return bytes, str or None, not {type(result).__name__}")
                reply = Packet.request(T.WORK_COMPLETE, job.handle, _bytes(result))
            except WorkFailed:
                reply = Packet.request(T.WORK_FAIL, job.handle)
            except Exception as exc:  # a handler's bug is the job's exception, not the worker's
                log.info("job %r raised %r", job.handle, exc)
                text = str(exc) or type(exc).__name__
                reply = Packet.request(T.WORK_EXCEPTION, job.handle, text.encode("utf-8", "replace"))
        job.finished = True
        try:
            conn.send(reply)
        except ConnectionLost as exc:
            log.warning("could not report job %r: %s (the server will requeue it)", job.handle, exc)
