"""The reference job server's I/O: a thin asyncio layer around the sans-IO broker.

`Config` holds the settings, `GearmanProtocol` is one connection (framing, flow control),
`Server` owns start-up (store replay, listening), the once-per-turn flush of the durable
store and of every connection's output, timers, and graceful shutdown.

Framing is checked here on a fast path derived from `gearspec.spec.PACKETS` (argument
counts, NUL and number rules). A packet that fails any check is handed to the codec
(`gearspec.codec.Decoder`), which says exactly what is wrong; the connection gets an ERROR
with the codec's code and stays usable. Fatal framing errors (bad magic, a packet over
--max-packet-size, an admin line over 8192 bytes) close that connection only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import time
from dataclasses import dataclass

from gearspec.reference.acl import Acl
from gearspec.reference.broker import Broker, Session
from gearspec.reference.store import Store, open_store

from gearspec import __version__
from gearspec.codec import AdminLine, Decoder, Packet
from gearspec.errors import RemoteProtocolError
from gearspec.spec import DEFAULT_PORT, Magic, PacketType
from gearspec.wire.tls import server_context, subject_name

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "Config", "GearmanProtocol", "Server"]

log = logging.getLogger("gearspec.serve")

DEFAULT_MAX_PACKET_SIZE = 16 * 1024 * 1024
_time = time.time


_STALLED = 0.5  # seconds without a byte taken: at shutdown, a peer that does not read


@dataclass
class Config:
    """Settings of one server (the `gearspec serve` flags)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    queue: str = "memory"  # "memory" or "sqlite:PATH"
    job_retries: int = 0  # 0: requeue without bound
    log_level: str = "WARNING"
    max_connections: int = 20000
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    max_output_buffer: int = 64 * 1024 * 1024  # a connection that lets more pile up is closed
    enable_shutdown: bool = False
    backlog: int = 1024
    write_high_water: int = 1024 * 1024  # pause reading a peer that does not read its replies
    shutdown_timeout: float = 10.0
    tls_cert: str | None = None  # PEM certificate (chain): serve TLS only
    tls_key: str | None = None  # its key, when not in the certificate file
    tls_ca: str | None = None  # require client certificates signed by this CA
    acl: Acl | None = None  # who may register, submit and administer what (needs tls_ca)

    def tls_context(self) -> ssl.SSLContext | None:
        """The server's SSL context, None for plaintext; raises TlsError for unusable files."""
        if self.tls_cert is None:
            return None
        return server_context(self.tls_cert, self.tls_key, self.tls_ca)


class GearmanProtocol(asyncio.Protocol):
    """One connection: frames bytes into broker calls and writes what the broker queued."""

    __slots__ = (
        "_held", "_paused", "_reading", "broker", "framer", "handlers", "server", "session", "transport",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.broker = server.broker
        self.handlers = server.broker.handlers  # by packet type; the ACL's guards included
        # The core's sans-IO decoder frames the requests (with its C core, when built): whole
        # packets, checked against the table, and admin lines; it words every flaw.
        self.framer = Decoder(accept=Magic.REQ, max_packet_size=server.config.max_packet_size)
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self._paused = False  # the transport's write buffer is over the high-water mark
        self._reading = True
        self._held: AdminLine | None = None  # a command left unanswered until the peer reads its replies

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport: asyncio.Transport = base  # type: ignore[assignment]
        self.transport = transport
        server = self.server
        if len(server.connections) >= server.config.max_connections or server.closing:
            now = time.monotonic()
            if now - server.last_refusal_log > 1.0:  # at most one line a second under a flood
                server.last_refusal_log = now
                log.warning("refusing connections: %d open (--max-connections)", len(server.connections))
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        host = peer[0] if isinstance(peer, tuple) else "-"
        fd = sock.fileno() if sock is not None else -1
        # Under TLS this runs after the handshake, so the verified certificate is known.
        identity = subject_name(transport.get_extra_info("peercert")) if server.tls is not None else None
        self.session = self.broker.connect(host, fd, identity)
        self.session.io = self
        server.connections.add(self)
        transport.set_write_buffer_limits(high=server.config.write_high_water)
        log.debug("connection %d from %s", self.session.id, host)

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.session
        if session is None:
            return
        self.session = None
        server = self.server
        server.connections.discard(self)
        self.broker.disconnect(session, time.time())
        log.debug("connection %d closed", session.id)
        server.flush()

    def pause_writing(self) -> None:
        # The peer is not reading its replies: stop reading its requests until it does.
        self._paused = True
        if self._reading and self.transport is not None:
            self._reading = False
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._held is not None:
            self._release_held()
        elif not self._reading and self.transport is not None and not self.transport.is_closing():
            self._reading = True
            self.transport.resume_reading()

    def _hold(self, line: AdminLine) -> None:
        """Stop answering (and reading) until the peer has taken the replies built so far."""
        self._held = line
        if self._reading and self.transport is not None:
            self._reading = False
            self.transport.pause_reading()
        server = self.server
        server.flush()  # the replies are written at the end of this turn, before the call below
        assert server._loop is not None
        server._loop.call_soon(self._release_held)

    def _release_held(self) -> None:
        held = self._held
        transport = self.transport
        if held is None or self._paused or transport is None or transport.is_closing():
            return  # still over the high-water mark: resume_writing comes back here
        self._held = None
        self._reading = True
        transport.resume_reading()
        self._serve(held)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            return
        self.framer.receive_data(data)
        if self._held is None:  # (reading is paused while a command is held; its bytes wait in the framer)
            self._serve(None)

    def _serve(self, held: AdminLine | None) -> None:
        try:
            self._dispatch(held)
        except Exception:  # never let one connection's surprise take the server down
            log.exception("internal error on connection %d; closing it", self.session.id if self.session else -1)
            self.close()
        server = self.server
        if not server._flush_scheduled:
            server.flush()

    # -- dispatch ---------------------------------------------------------------------------
    def _dispatch(self, held: AdminLine | None) -> None:
        """Hand every request the framer has to the broker (a held admin command first)."""
        session = self.session
        if session is None:
            return
        handlers = self.handlers
        broker = self.broker
        high_water = self.server.config.write_high_water
        now = _time()
        built = 0  # bytes of admin replies built by this call
        if held is not None:
            built += broker.admin(session, held.text, now)
        while True:
            try:
                for event in self.framer:
                    if event.__class__ is Packet:
                        handlers[event.type](session, event.args, now)
                    elif self._paused or built > high_water:
                        # One short line can ask for a reply of megabytes (`status` with many
                        # functions): answer no more until the peer reads what it has.
                        self._hold(event)  # type: ignore[arg-type]
                        return
                    else:
                        built += broker.admin(session, event.text, now)  # type: ignore[union-attr]
                return
            except RemoteProtocolError as exc:
                if exc.fatal:
                    self._fatal(exc.message)
                    return
                # The framer consumed the bad packet: say what was wrong and go on after it.
                log.info("connection %d: %s", session.id, exc.message)
                broker.send_error(session, exc.code, exc.message)

    def _fatal(self, why: str) -> None:
        log.info("connection %d: %s; closing it", self.session.id if self.session else -1, why)
        self.close()

    # -- output -----------------------------------------------------------------------------
    def write(self, data: list[bytes]) -> None:
        """Send `data` (pieces of output) in one write. `Server._write_pending` inlines this."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if len(data) == 1:
            transport.write(data[0])
        else:
            transport.writelines(data)  # one vectored write; large payloads are not copied
        if self._paused:
            self.check_backlog()

    def check_backlog(self) -> None:
        """Close the connection when more output than --max-output-buffer waits for it."""
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > self.server.config.max_output_buffer:
            log.warning(
                "connection %d does not read its replies (over %d bytes waiting); closing it",
                self.session.id if self.session else -1, self.server.config.max_output_buffer,
            )
            transport.abort()

    def close(self) -> None:
        """Send what is queued (after committing what it acknowledges), then close."""
        session = self.session
        if session is not None and session.out:
            if self.server.store.dirty:
                self.server.commit()
            data, session.out = session.out, []
            self.write(data)
        if self.transport is not None:
            self.transport.close()


def _log_refusal(session: Session, why: str) -> None:
    log.warning("connection %d from %s: refused by the ACL: %s", session.id, session.host, why)


class Server:
    """A job server: owns the broker, the store, the listening socket and shutdown."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else open_store(config.queue)
        prefix = b"H:" + socket.gethostname().encode("ascii", "replace") + b":"
        self.broker = Broker(
            store=self.store,
            handle_prefix=prefix,
            job_retries=config.job_retries,
            pid=os.getpid(),
            version=__version__,
            log_level=config.log_level.upper(),
            enable_shutdown=config.enable_shutdown,
            queue=config.queue,
            acl=config.acl,
        )
        self.broker.on_refusal = _log_refusal
        self.tls = config.tls_context()
        # The framer yields every well-formed REQ packet; the broker serves each such type.
        unserved = [t.name for t in PacketType if Magic.REQ in t.spec.magics and t not in self.broker.handlers]
        if unserved:
            raise RuntimeError(f"the broker has no handler for {', '.join(unserved)}")
        self.connections: set[GearmanProtocol] = set()
        self.closing = False
        self.last_refusal_log = 0.0
        self._listener: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_mode: str | None = None
        self._store_closed = False
        self._retry: asyncio.TimerHandle | None = None  # retries a failing store's commit
        self.exit_status = 0  # 1 when the store could not be written at shutdown

    @property
    def address(self) -> tuple[str, int]:
        assert isinstance(self._listener, asyncio.Server) or hasattr(self._listener, "sockets")
        sockname = self._listener.sockets[0].getsockname()  # type: ignore[union-attr]
        return sockname[0], sockname[1]

    async def start(self) -> None:
        """Replay the durable queue and start listening."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        replayed = self.broker.replay(self.store.load(), time.time())
        if replayed:
            log.warning("replayed %d background jobs from %s", replayed, self.config.queue)
        self._listener = await self._loop.create_server(
            lambda: GearmanProtocol(self), self.config.host, self.config.port,
            backlog=self.config.backlog, reuse_address=True, ssl=self.tls,
        )
        self._arm_timer()

    # -- output, once per turn --------------------------------------------------------------
    def flush(self) -> None:
        """Schedule the end-of-turn flush: the store commits, then every output is written.

        Deferring to the end of the event-loop turn lets everything that turn produced for
        one connection leave in one write, lets many background submits share one store
        transaction, and guarantees no JOB_CREATED precedes its commit.
        """
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        self._flush_scheduled = False
        if self._store_closed:
            return
        if self.store.dirty:
            self.commit()
        self._write_pending()

    def commit(self) -> bool:
        """Commit the store's buffered writes, then settle the jobs that waited for it.

        On failure the jobs are refused (their JOB_CREATED becomes an ERROR), the server goes
        on serving, says so in the log and in `show queue`, and retries every second until a
        commit succeeds. Returns whether everything buffered is now durable.
        """
        broker = self.broker
        now = time.time()
        try:
            self.store.flush()
        except Exception as exc:  # StoreError, or anything else a store may raise
            reason = str(exc)
            if broker.store_error is None:
                log.error("%s; refusing background jobs until it can be written", reason)
            broker.store_failed(reason, now)
            if self._retry is None and self._loop is not None and not self._store_closed:
                self._retry = self._loop.call_later(1.0, self._retry_commit)
            return False
        if broker.store_error is not None:
            log.warning("the durable queue %s can be written again", self.config.queue)
        broker.store_committed(now)
        return True

    def _retry_commit(self) -> None:
        self._retry = None
        if self.store.dirty and not self._store_closed:
            self.commit()
            self.flush()

    def _write_pending(self) -> None:
        broker = self.broker
        pending = broker.pending
        if pending:
            broker.pending = []
            for session in pending:
                data = session.out
                if data:
                    session.out = []
                    proto: GearmanProtocol | None = session.io
                    if proto is not None and not session.closed:
                        # GearmanProtocol.write, inlined: this runs for most output.
                        transport = proto.transport
                        if transport is None or transport.is_closing():
                            continue
                        if len(data) == 1:
                            transport.write(data[0])
                        else:
                            transport.writelines(data)  # one vectored write; large payloads are not copied
                        if proto._paused:
                            proto.check_backlog()
        if broker.shutdown_requested and self._stop_mode is None:
            self.request_stop(broker.shutdown_requested)
        if self._timer_at is None or (broker.next_deadline() or self._timer_at) < self._timer_at:
            self._arm_timer()

    # -- timers -----------------------------------------------------------------------------
    def _arm_timer(self) -> None:
        deadline = self.broker.next_deadline()
        if deadline is None or self._loop is None:
            return
        if self._timer is not None:
            if self._timer_at is not None and self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        # At most a day ahead: an epoch far in the future is a valid job, not a valid timer.
        delay = min(max(0.0, deadline - time.time()), 86400.0)
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.broker.tick(time.time())
        self.flush()
        self._arm_timer()

    # -- stopping ---------------------------------------------------------------------------
    def request_stop(self, mode: str = "now") -> None:
        """Begin shutdown: "now" (SIGTERM, SIGINT, `shutdown`) or "graceful" (`shutdown graceful`)."""
        if self._stop_mode == "now" or (self._stop_mode == "graceful" and mode == "graceful"):
            return
        self._stop_mode = mode
        if self._stopped is not None:
            self._stopped.set()

    async def serve_until_stopped(self) -> None:
        """Run until a signal or the shutdown admin command, then stop cleanly."""
        assert self._loop is not None and self._stopped is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(sig, self.request_stop, "now")
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
                pass
        await self._stopped.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop listening, let in-flight writes finish, keep the store consistent, close."""
        self.closing = True
        if self._listener is not None:
            self._listener.close()
        timeout = self.config.shutdown_timeout
        if self._stop_mode == "graceful":
            # Let running jobs finish, for at most --shutdown-timeout seconds; queued
            # background jobs stay in the store.
            log.warning("graceful shutdown: waiting up to %g s for %d running jobs", timeout, self.broker.running_jobs())
            deadline = time.monotonic() + timeout
            while self.broker.running_jobs() and self._stop_mode == "graceful" and time.monotonic() < deadline:
                self._stopped.clear()  # type: ignore[union-attr]
                try:
                    await asyncio.wait_for(self._stopped.wait(), 0.05)  # type: ignore[union-attr]
                except TimeoutError:
                    pass
            if self.broker.running_jobs():
                log.warning(
                    "graceful shutdown: %d jobs still running; stopping anyway (background jobs stay in the "
                    "queue and run again after a restart; foreground ones end with their clients' connections)",
                    self.broker.running_jobs(),
                )
        for handle in (self._timer, self._retry):
            if handle is not None:
                handle.cancel()
        if self.store.dirty and not self.commit():
            self.exit_status = 1
        self._flush_scheduled = False
        self._write_pending()
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.close()  # buffered replies are still written
        await self._drain_connections(timeout)
        if self._listener is not None:
            await self._listener.wait_closed()
        self._store_closed = True
        try:
            self.store.close()
        except Exception as exc:
            log.error("%s; finished jobs not yet removed from it will run again after a restart", exc)
            self.exit_status = 1

    async def _drain_connections(self, timeout: float) -> None:
        """Wait for closing connections to deliver their replies; drop those whose peer does not read."""
        deadline = time.monotonic() + timeout
        progress: dict[GearmanProtocol, tuple[int, float]] = {}  # bytes left, when it last went down
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            for proto in list(self.connections):
                transport = proto.transport
                if transport is None:
                    continue
                left = transport.get_write_buffer_size()
                last = progress.get(proto)
                if last is None or left < last[0]:
                    progress[proto] = (left, now)
                elif now - last[1] > _STALLED:
                    log.warning(
                        "connection %d does not read its replies; closed with %d bytes unsent",
                        proto.session.id if proto.session else -1, left,
                    )
                    transport.abort()
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.abort()
