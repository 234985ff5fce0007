"""A raw-packet session against a target server, with a decoded trace of both directions.

A case gets one `Session`. It opens connections (`s.client()`, `s.worker(fn)`, `s.connect()`),
sends packets and admin lines, and waits for what the server must send with `expect(...)`.
Every byte either way is recorded in `s.trace` with a timestamp, a decoded summary and hex.

Every wait has a deadline: the per-wait `s.wait` (default 2 s) and the case's own deadline,
whichever comes first. Nothing here sleeps; "nothing else arrives" is checked with an ECHO
round trip (`conn.expect_silence()`): the server answers in order, so anything it meant to
send before the ECHO_RES is in by then.

A case ends by returning (pass; informational for INFO cases) or by one of:

    s.fail(expected, actual)          # the target broke the requirement
    s.non_strict(name, detail)        # a tolerated alternative, declared on the case
    s.unsupported(reason)             # an optional feature the target lacks
    s.info(observation)               # end as informational, recording what was seen

Helpers like `conn.expect(...)` call `s.fail` themselves with "expected vs actual" text.
"""

from __future__ import annotations

import enum
import errno
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from gearspec.conformance.capabilities import REPLY_LINE_LIMIT, Capabilities
from gearspec.conformance.servers.targets import Target

from gearspec.admin import AdminCommand, AdminReply, AdminReplyReader, admin_command, encode_admin
from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Packet, RawPacket, decode
from gearspec.errors import ProtocolError
from gearspec.spec import Magic, PacketType

if TYPE_CHECKING:
    from gearspec.conformance.registry import Case

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_WAIT",
    "CaseEnd",
    "Closed",
    "Conn",
    "Garbled",
    "Outcome",
    "Session",
    "Target",
    "TraceEntry",
    "describe",
    "is_barrier_reply",
]

DEFAULT_WAIT = 2.0  # seconds to wait for one expected reply
CONNECT_TIMEOUT = 5.0  # seconds a TCP connect to the target may take (also capped by the case deadline)


class Outcome(enum.Enum):
    """How one case ended (Autobahn-style grades plus harness errors)."""

    PASS = "pass"
    NON_STRICT = "non-strict"  # a tolerated alternative behaviour, named by the case
    FAIL = "fail"
    UNSUPPORTED = "unsupported"  # an optional feature the target lacks
    INFORMATIONAL = "informational"  # recorded, not graded
    ERROR = "error"  # the harness could not run the case (no connection, timeout, bug)


class CaseEnd(Exception):
    """Raised to end a case with an outcome other than a plain pass."""

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        *,
        expected: str | None = None,
        actual: str | None = None,
        alternative: str | None = None,
    ) -> None:
        self.outcome = outcome
        self.message = message
        self.expected = expected
        self.actual = actual
        self.alternative = alternative
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One line of a case's trace: bytes sent or received on a connection, or a note."""

    time: float  # seconds since the case started
    conn: str  # connection label ("client1", "worker1", ...) or "" for notes
    direction: str  # "send", "recv", "note", "event" (connect, close, timeout)
    summary: str
    data: bytes = b""

    def arrow(self) -> str:
        return {"send": "->", "recv": "<-", "note": "##", "event": "--"}[self.direction]

    def format(self) -> str:
        where = f" {self.conn}" if self.conn else ""
        return f"{self.time * 1000:9.1f}ms{where} {self.arrow()} {self.summary}"


class _Closed:
    """The server closed the connection (EOF or reset)."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __repr__(self) -> str:
        return f"<connection closed: {self.how}>"


class Garbled:
    """Bytes from the server that cannot be framed at all (framing is lost after them)."""

    def __init__(self, error: ProtocolError, data: bytes) -> None:
        self.error = error
        self.data = data

    def __repr__(self) -> str:
        return f"<undecodable bytes: {self.error.message}>"


Closed = _Closed
Received = Packet | RawPacket | AdminLine | _Closed | Garbled


def _short(value: bytes, limit: int = 48) -> str:
    text = repr(value)[1:] if value.isascii() else repr(value)
    if len(value) > limit:
        return repr(value[:limit])[1:] + f"…({len(value)} bytes)"
    return text


def _value(value: object) -> str:
    """A value as failure messages show it: bytes as text, not b'...'."""
    return _short(value, 100) if isinstance(value, bytes) else repr(value)


def describe(event: object) -> str:
    """A one-line human summary of an event, as traces and failure messages show it."""
    if isinstance(event, Packet):
        args = " ".join(f"{k}={_short(v)}" for k, v in event.fields.items())
        return f"{event.magic.name} {event.type.name}" + (f" {args}" if args else "")
    if isinstance(event, RawPacket):
        magic = event.magic.decode("latin-1").strip("\0") or repr(event.magic)
        return f"{magic} {event.name} payload={_short(event.payload)} (off-spec: {event.problem.message})"
    if isinstance(event, AdminLine):
        ending = {b"\n": "", b"\r\n": " [CRLF]", b"": " [no newline]"}.get(event.terminator, "")
        return f"text {_short(event.text, 100)}{ending}"
    if isinstance(event, PacketType):
        return event.name
    if event is None:
        return "nothing"
    return repr(event)


def _name_of(types: Sequence[PacketType]) -> str:
    return " or ".join(t.name for t in types)


class Conn:
    """One TCP connection to the target, sending requests and reading replies."""

    def __init__(self, session: Session, label: str, sock: socket.socket) -> None:
        self.session = session
        self.label = label
        self.sock = sock
        self.decoder = Decoder(Magic.RES, lenient=True, max_line=REPLY_LINE_LIMIT)
        self._unread: list[Received] = []  # events put back or read ahead, returned first
        self.closed_by_server: _Closed | None = None
        self.closed = False
        self._garbled = False
        self.last_reply_lines: list[AdminLine] = []

    # -- sending ---------------------------------------------------------------------------
    def send_raw(self, data: bytes, summary: str | None = None) -> None:
        """Send bytes as they are (split packets, bad magic, admin lines...)."""
        if summary is None:
            summary = _summarise_outgoing(data)
        self.session._record(self.label, "send", summary, data)
        if self.closed:
            raise CaseEnd(Outcome.ERROR, f"{self.label}: send on a connection the case closed")
        try:
            # A big send may block while the server reads: allow up to the case deadline.
            self.sock.settimeout(max(0.01, self.session.deadline - time.monotonic()))
            self.sock.sendall(data)
        except TimeoutError:
            self.session._record(self.label, "event", "send blocked: the target is not reading")
            raise CaseEnd(Outcome.ERROR, f"{self.label}: the target stopped reading (send timed out)") from None
        except OSError as exc:
            # A server that closed on us shows up on the next read; keep the trace honest.
            self.session._record(self.label, "event", f"send failed: {exc.strerror or exc}")

    def send(self, packet: Packet | PacketType | str, *args: object) -> Packet:
        """Send a request packet: `conn.send(PacketType.ECHO_REQ, b"x")` or a built Packet."""
        if not isinstance(packet, Packet):
            packet = Packet.request(packet, *args)
        self.send_raw(packet.to_bytes(), describe(packet))
        return packet

    def send_admin(self, command: str, *args: object, crlf: bool = False) -> None:
        """Send one admin text line (`\\n` ending, or `\\r\\n` with crlf=True)."""
        self.send_raw(encode_admin(command, *args, crlf=crlf))

    # -- receiving -------------------------------------------------------------------------
    def receive(self, timeout: float | None = None) -> Received | None:
        """The next thing the server sent, or None when nothing came within the wait."""
        if self._unread:
            return self._unread.pop(0)
        if self.closed_by_server is not None:
            return self.closed_by_server
        deadline = self.session._wait_deadline(timeout)
        while True:
            event = self._decode_one()
            if event is not None:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.session._check_case_deadline()
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return self._mark_closed("reset by the server")
            except OSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
                    return self._mark_closed("reset by the server")
                return self._mark_closed(f"closed: {exc.strerror or exc}")
            if not chunk:
                self.decoder.receive_data(b"")
                tail = self._decode_one()
                if tail is not None:
                    self._unread.append(self._mark_closed("closed by the server"))
                    return tail
                return self._mark_closed("closed by the server")
            self.decoder.receive_data(chunk)

    def _mark_closed(self, how: str) -> _Closed:
        if self.closed_by_server is None:
            self.closed_by_server = _Closed(how)
            self.session._record(self.label, "event", how)
        return self.closed_by_server

    def _decode_one(self) -> Received | None:
        if self._garbled:
            return None
        try:
            event = self.decoder.next_event()
        except ProtocolError as exc:
            self._garbled = True
            rest = self._leftover()
            garbled = Garbled(exc, rest)
            self.session._record(self.label, "recv", f"undecodable: {exc.message}", rest)
            return garbled
        if event is NEED_DATA or event is CLOSED:
            return None
        assert isinstance(event, (Packet, RawPacket, AdminLine))
        data = event.to_bytes()
        self.session._record(self.label, "recv", describe(event), data)
        if isinstance(event, Packet) and event.type is PacketType.JOB_CREATED:
            self.session.handles_created.add(event.args[0])  # cancelled after the run if still queued
        return event

    def _leftover(self) -> bytes:
        # The undecodable bytes, for the trace (the decoder keeps them in two buffers).
        dec = self.decoder
        return bytes(dec._buf[dec._pos:]) + b"".join(dec._more)

    def unread(self, *events: Received) -> None:
        """Put events back, in order: the next `receive` calls return them first."""
        self._unread[:0] = events

    def drop_unread(self) -> list[Received]:
        """Forget the events put back or read ahead (returned, for a note)."""
        dropped, self._unread = self._unread, []
        return dropped

    @property
    def unread_events(self) -> tuple[Received, ...]:
        """The events put back or read ahead, which the next `receive` calls return."""
        return tuple(self._unread)

    def has_event(self) -> bool:
        """Whether `receive` would return at once: an event is put back, already decoded from
        bytes read earlier, or the server closed. Reads nothing from the socket."""
        if not self._unread and self.closed_by_server is None:
            event = self._decode_one()
            if event is not None:
                self._unread.append(event)
        return bool(self._unread) or self.closed_by_server is not None

    def expect(
        self,
        *types: PacketType,
        timeout: float | None = None,
        ignore: Iterable[PacketType] = (),
        what: str | None = None,
    ) -> Packet:
        """The next packet, which must be one of `types` with RES magic (else the case fails).

        Packets of the `ignore` types are skipped (e.g. NOOP on a worker connection).
        """
        skip = set(ignore)
        wanted = what or _name_of(types)
        while True:
            event = self.receive(timeout)
            if isinstance(event, Packet) and event.type in skip:
                continue
            if isinstance(event, Packet) and event.type in types:
                return event
            self.session.fail(wanted, self.describe_received(event, timeout))

    def expect_error(self, *codes: str, timeout: float | None = None) -> Packet:
        """An ERROR packet, with one of `codes` when given."""
        packet = self.expect(PacketType.ERROR, timeout=timeout)
        if codes and packet.code.decode("latin-1") not in codes:
            self.session.fail(f"ERROR {' or '.join(codes)}", describe(packet))
        return packet

    def expect_closed(self, timeout: float | None = None) -> None:
        """The server closes the connection (anything it sends first fails the case)."""
        event = self.receive(timeout)
        if not isinstance(event, _Closed):
            self.session.fail("the connection closed", self.describe_received(event, timeout))

    def expect_error_or_close(self, timeout: float | None = None) -> Packet | None:
        """An ERROR packet (returned) or the connection closing (None); anything else fails."""
        event = self.receive(timeout)
        if isinstance(event, _Closed):
            return None
        if isinstance(event, Packet) and event.type is PacketType.ERROR:
            return event
        self.session.fail("ERROR or the connection closed", self.describe_received(event, timeout))

    def echo(self, data: bytes | None = None) -> list[Received]:
        """An ECHO round trip; returns whatever the server sent before the ECHO_RES."""
        token = data if data is not None else b"barrier-" + self.session.token().encode()
        self.send(PacketType.ECHO_REQ, token)
        before: list[Received] = []
        while True:
            event = self.receive()
            if isinstance(event, Packet) and event.type is PacketType.ECHO_RES and event.data == token:
                return before
            if event is None or isinstance(event, (_Closed, Garbled)):
                self.session.fail(f"ECHO_RES {_short(token)}", self.describe_received(event, None))
            before.append(event)

    def sync(self) -> list[Received]:
        """A round trip the target answers in order; returns whatever came before its reply.

        ECHO_REQ, or GET_STATUS of a made-up handle for targets seen not to answer ECHO
        (`Session.barrier`). Used to show that nothing (else) was sent.
        """
        token = b"gs-barrier-" + self.session.token().encode()
        self.send(self.session.barrier_request(token))
        before: list[Received] = []
        while True:
            event = self.receive()
            if is_barrier_reply(event, token):
                return before
            if event is None or isinstance(event, (_Closed, Garbled)):
                self.session.fail(f"{self.session.barrier_reply} for {_short(token)}", self.describe_received(event, None))
            before.append(event)

    def round_trip(self, token: bytes) -> None:
        """Expect the barrier reply carrying `token` next (its request was sent by the case)."""
        event = self.receive()
        if not is_barrier_reply(event, token):
            self.session.fail(f"{self.session.barrier_reply} {_short(token)}", self.describe_received(event, None))

    def expect_silence(self, why: str = "nothing") -> None:
        """Nothing arrives before a `sync` round trip completes."""
        extra = self.sync()
        if extra:
            self.session.fail(why + " (before the barrier reply)", "; ".join(describe(e) for e in extra))

    def describe_received(self, event: Received | None, timeout: float | None = None) -> str:
        """What `receive` returned, for a failure's 'actual' line: the event, or the wait that passed."""
        if event is None:
            wait = self.session.wait if timeout is None else timeout
            return f"nothing within {wait:g} s"
        return describe(event)

    # -- admin -----------------------------------------------------------------------------
    def expect_admin(self, command: str | AdminCommand | None, timeout: float | None = None) -> AdminReply:
        """Read one admin reply framed as the command's table row says (line or `.` block)."""
        cmd = admin_command(command) if isinstance(command, str) else command
        reader = AdminReplyReader(cmd)
        self.last_reply_lines = []
        while True:
            event = self.receive(timeout)
            if isinstance(event, AdminLine):
                self.last_reply_lines.append(event)
                reply = reader.feed(event.text)
                if reply is not None:
                    return reply
                continue
            framing = "a reply ending in a lone '.'" if cmd is not None and cmd.reply.value == "block" else "one reply line"
            got = [describe(line) for line in self.last_reply_lines]
            got.append(self.describe_received(event, timeout))
            self.session.fail(f"{cmd.name if cmd else 'admin'}: {framing}", "; ".join(got))

    def admin(self, command: str, *args: object, crlf: bool = False, timeout: float | None = None) -> AdminReply:
        """Send an admin command and read its reply: `conn.admin("cancel job", handle)`."""
        self.send_admin(command, *args, crlf=crlf)
        return self.expect_admin(command, timeout)

    # -- client helpers --------------------------------------------------------------------
    def submit(
        self,
        function: str | bytes,
        data: bytes | str = b"",
        unique: bytes | str = b"",
        type: PacketType = PacketType.SUBMIT_JOB,
    ) -> bytes:
        """Submit a job with a (function, unique, data) submit packet; returns its handle."""
        self.send(type, function, unique, data)
        return self.expect(PacketType.JOB_CREATED, what=f"JOB_CREATED for {type.name}").handle

    def get_status(self, handle: bytes) -> Packet:
        self.send(PacketType.GET_STATUS, handle)
        return self.expect(PacketType.STATUS_RES)

    # -- worker helpers --------------------------------------------------------------------
    def can_do(self, *functions: str | bytes) -> None:
        for function in functions:
            self.send(PacketType.CAN_DO, function)

    def grab(self, type: PacketType | None = None, timeout: float | None = None) -> Packet:
        """Ask for a job and expect one; `type` defaults to the target's grab packet."""
        grab = type or self.session.grab_type
        self.send(grab)
        assign = {
            PacketType.GRAB_JOB: PacketType.JOB_ASSIGN,
            PacketType.GRAB_JOB_UNIQ: PacketType.JOB_ASSIGN_UNIQ,
            PacketType.GRAB_JOB_ALL: PacketType.JOB_ASSIGN_ALL,
        }[grab]
        return self.expect(assign, ignore=[PacketType.NOOP], timeout=timeout, what=f"{assign.name} for {grab.name}")

    def grab_nothing(self, type: PacketType | None = None) -> None:
        """Ask for a job and expect NO_JOB."""
        self.send(type or self.session.grab_type)
        self.expect(PacketType.NO_JOB, ignore=[PacketType.NOOP])

    def work(self, type: PacketType, handle: bytes, *args: object) -> None:
        """Send a WORK_* update (REQ magic) for `handle`."""
        self.send(Packet.request(type, handle, *args))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.session._record(self.label, "event", "closed by the case")
            try:
                self.sock.close()
            except OSError:
                pass


def is_barrier_reply(event: object, token: bytes) -> bool:
    """Whether `event` answers the barrier request that carried `token` (ECHO or GET_STATUS).

    A STATUS_RES read leniently counts (gear and Perl send off-spec number fields): the
    barrier only orders events; status/* grade the fields.
    """
    if isinstance(event, Packet) and event.type is PacketType.ECHO_RES:
        return event.data == token
    if isinstance(event, (Packet, RawPacket)) and event.name == "STATUS_RES":
        first = event.args[0] if isinstance(event, Packet) else event.payload.split(b"\0")[0]
        return first == token
    return False


def _summarise_outgoing(data: bytes) -> str:
    try:
        events = decode(data, lenient=True)
    except ProtocolError:
        return f"raw {len(data)} bytes"
    if not events:
        return "raw 0 bytes"
    return " | ".join(describe(e) for e in events)


_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class Session:
    """Everything one case run needs: the target, connections, names, deadlines and trace."""

    case: Case
    target: Target
    timeout: float = 10.0  # the whole case
    wait: float = DEFAULT_WAIT  # one expected reply
    seed: str = "0"
    run_token: str = "0"
    grab_type: PacketType = PacketType.GRAB_JOB
    barrier: str | None = "echo"  # or "status": how `conn.sync()` makes a round trip; None: neither works
    capabilities: Capabilities = field(default_factory=Capabilities)
    # Restarts the target (hard=True: kill it first) and returns its new address; None when
    # gearspec cannot restart it (see conformance/lifecycle.py).
    restarter: Callable[[bool], Target] | None = None
    durable: bool = False  # the target is said to have a persistent queue (--durable)
    trace: list[TraceEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    conns: list[Conn] = field(default_factory=list)
    names_used: set[str] = field(default_factory=set)  # drained at the end of the run
    handles_created: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}/{self.case.id}")
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        self._counts: dict[str, int] = {}

    # -- names -----------------------------------------------------------------------------
    def token(self) -> str:
        """A short random token from the case's seeded RNG."""
        return f"{self.rng.getrandbits(32):08x}"

    def name(self, tag: str = "fn") -> str:
        """A function name (or unique id) no other case or run uses: gs-<case>-<tag>-<token>."""
        slug = _SLUG.sub("-", self.case.id.lower()).strip("-")
        name = f"gs-{slug}-{tag}-{self.run_token}{self.token()}"
        self.names_used.add(name)
        return name

    # -- round trips -------------------------------------------------------------------------
    def barrier_request(self, token: bytes) -> Packet:
        """A request the target answers in order with `token` in its reply (see `barrier`).

        Ends the case unsupported when the target answers neither ECHO_REQ nor GET_STATUS:
        a case cannot show order or silence without a round trip.
        """
        if self.barrier == "echo":
            return Packet.request(PacketType.ECHO_REQ, token)
        if self.barrier == "status":
            return Packet.request(PacketType.GET_STATUS, token)
        self.unsupported("needs a round trip: the target answered neither ECHO_REQ nor GET_STATUS")

    @property
    def barrier_reply(self) -> str:
        return "STATUS_RES" if self.barrier == "status" else "ECHO_RES"

    def restart_target(self, hard: bool = False) -> None:
        """Restart the target (a clean stop, or `hard`: killed); later connections go to it.

        Ends the case unsupported when gearspec cannot restart the target.
        """
        if self.restarter is None:
            self.unsupported("needs a target gearspec can restart: --server NAME, or --restart-command CMD")
        self._record("", "event", f"restarting the target ({'killed' if hard else 'stopped cleanly'})")
        for conn in self.conns:
            conn.close()
        try:
            self.target = self.restarter(hard)
        except Exception as exc:  # RestartError, or a launch failure: the case cannot go on
            raise CaseEnd(Outcome.ERROR, f"cannot restart the target: {exc}") from None
        self._record("", "event", f"restarted at {self.target.address}")

    # -- connections -----------------------------------------------------------------------
    def connect(self, label: str = "conn", tls: ssl.SSLContext | bool | None = True) -> Conn:
        """A new connection to the target; labels are numbered (conn1, client1, worker2...).

        `tls`: True opens it as the target says (TLS for a TLS target), False plaintext, or
        a context to use instead of the target's (another client certificate).
        """
        self._counts[label] = self._counts.get(label, 0) + 1
        label = f"{label}{self._counts[label]}"
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._check_case_deadline()
        try:
            sock = socket.create_connection((self.target.host, self.target.port), timeout=min(remaining, CONNECT_TIMEOUT))
        except TimeoutError:
            self._record(label, "event", f"connect to {self.target.address} timed out")
            raise CaseEnd(Outcome.ERROR, f"cannot connect to {self.target.address}: timed out") from None
        except OSError as exc:
            self._record(label, "event", f"connect to {self.target.address} failed: {exc.strerror or exc}")
            raise CaseEnd(
                Outcome.ERROR, f"cannot connect to {self.target.address}: {exc.strerror or exc}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = (self.target.tls.context if self.target.tls else None) if tls is True else (tls or None)
        if context is not None:
            sock = self._handshake(label, sock, context)
        conn = Conn(self, label, sock)
        self.conns.append(conn)
        self._record(label, "event", f"connected to {self.target.address}")
        return conn

    def _handshake(self, label: str, sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        try:
            wrapped = context.wrap_socket(sock, server_hostname=self.target.host)
        except (OSError, ValueError) as exc:
            sock.close()
            why = getattr(exc, "reason", None) or (exc.strerror if isinstance(exc, OSError) else None) or exc
            self._record(label, "event", f"TLS handshake with {self.target.address} failed: {why}")
            raise CaseEnd(Outcome.ERROR, f"TLS handshake with {self.target.address} failed: {why}") from None
        self._record(label, "event", f"TLS {wrapped.version()} with {self.target.address}")
        return wrapped

    def client(self) -> Conn:
        return self.connect("client")

    def worker(self, *functions: str | bytes) -> Conn:
        """A connection that has sent CAN_DO for each function."""
        conn = self.connect("worker")
        conn.can_do(*functions)
        return conn

    def check_alive(self, after: str) -> None:
        """Fail unless the target still accepts a new connection and answers a round trip."""
        expected = f"the server still answers a new connection after {after}"
        try:
            probe = self.connect("probe")
            probe.sync()
        except CaseEnd as exc:
            # A crashing server may still accept for a moment, then close: same verdict.
            self.fail(expected, f"{exc.actual or exc.message} (did it crash?)")
        probe.close()

    def close_all(self) -> None:
        for conn in self.conns:
            conn.close()

    # -- outcomes --------------------------------------------------------------------------
    def fail(self, expected: str, actual: str, message: str | None = None) -> NoReturn:
        """End the case as failed: the target did `actual` where `expected` was required."""
        raise CaseEnd(Outcome.FAIL, message or f"expected {expected}; got {actual}", expected=expected, actual=actual)

    def check(self, condition: bool, expected: str, actual: object) -> None:
        """Fail unless `condition` holds."""
        if not condition:
            self.fail(expected, actual if isinstance(actual, str) else describe(actual))

    def check_equal(self, actual: object, expected: object, what: str) -> None:
        if actual != expected:
            self.fail(f"{what} = {_value(expected)}", f"{what} = {_value(actual)}")

    def non_strict(self, alternative: str, detail: str = "") -> NoReturn:
        """End with a tolerated alternative behaviour (must be declared on the case)."""
        if alternative not in self.case.alternatives:
            raise CaseEnd(Outcome.ERROR, f"case bug: alternative {alternative!r} is not declared on {self.case.id}")
        text = self.case.alternatives[alternative]
        raise CaseEnd(
            Outcome.NON_STRICT, f"{alternative}: {text}" + (f" ({detail})" if detail else ""), alternative=alternative,
            actual=detail or text,
        )

    def unsupported(self, reason: str) -> NoReturn:
        raise CaseEnd(Outcome.UNSUPPORTED, reason, actual=reason)

    def info(self, observation: str) -> NoReturn:
        self.note(observation)
        raise CaseEnd(Outcome.INFORMATIONAL, observation, actual=observation)

    def note(self, text: str) -> None:
        """Record an observation in the report without ending the case."""
        self.notes.append(text)
        self._record("", "note", text)

    # -- internals -------------------------------------------------------------------------
    def _record(self, conn: str, direction: str, summary: str, data: bytes = b"") -> None:
        self.trace.append(TraceEntry(time.monotonic() - self.started, conn, direction, summary, data))

    def _wait_deadline(self, timeout: float | None) -> float:
        wait = self.wait if timeout is None else timeout
        return min(time.monotonic() + wait, self.deadline)

    def _check_case_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            self._record("", "event", f"case timeout ({self.timeout:g} s) reached")
            raise CaseEnd(Outcome.ERROR, f"timed out after {self.timeout:g} s (the target stopped answering)")
