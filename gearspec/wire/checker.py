"""Per-connection validation of Gearman traffic, shared by the dissector and the proxy.

A `ConnectionChecker` watches both directions of one connection between a peer (client or
worker) and a job server. Bytes go in as they were seen (`feed`); it decodes them leniently
(so nothing is lost) and checks each packet against the spec table and against what came
before on the connection:

- the packet itself: magic for its direction, argument count and form, known type;
- the sender's role: a server only sends RES packets; a connection that acted as a client
  and then sends worker packets (or the reverse) is noted;
- replies: JOB_CREATED, STATUS_RES, STATUS_RES_UNIQUE, ECHO_RES, OPTION_RES, NO_JOB,
  JOB_ASSIGN*, admin replies each need an outstanding request; JOB_ASSIGN* must match the
  GRAB variant; NOOP needs a PRE_SLEEP since the last NOOP (gearmand
  `libgearman-server/server.cc` `gearman_server_run_command` clears `is_sleeping` on GRAB and
  `libgearman-server/job.cc` only wakes sleeping workers);
- job state: work updates a worker sends must be for a handle it was assigned and has not
  finished; updates the server forwards must be for a foreground job this client created
  and that has not ended; a job assignment must be for a function the worker registered.

Each problem becomes a `Violation` with the packets around it (a few before, and the next
few after, which is why violations are released once later packets have arrived or the
connection is closed).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gearspec.admin import AdminReplyReader, ReplyFraming, match_admin_command
from gearspec.codec import AdminLine, Decoder, Event, Packet, RawPacket
from gearspec.errors import ErrorCode, ProtocolError
from gearspec.export import event_as_data
from gearspec.spec import Magic, PacketType, Role
from gearspec.wire.pcap import FROM_SERVER, TO_SERVER

__all__ = ["CONTEXT_AFTER", "CONTEXT_BEFORE", "ConnectionChecker", "Observed", "Violation"]

CONTEXT_BEFORE = 3
CONTEXT_AFTER = 2

T = PacketType
_GRAB_REPLIES: dict[PacketType, frozenset[PacketType]] = {
    T.GRAB_JOB: frozenset({T.JOB_ASSIGN}),
    T.GRAB_JOB_UNIQ: frozenset({T.JOB_ASSIGN_UNIQ}),
    # gearmand answers GRAB_JOB_ALL with JOB_ASSIGN_UNIQ when the job has no reducer
    # (libgearman-server/server.cc gearman_server_run_command, case GRAB_JOB_ALL).
    T.GRAB_JOB_ALL: frozenset({T.JOB_ASSIGN_ALL, T.JOB_ASSIGN_UNIQ}),
}
_SIMPLE_REPLIES: dict[PacketType, PacketType] = {
    T.GET_STATUS: T.STATUS_RES,
    T.GET_STATUS_UNIQUE: T.STATUS_RES_UNIQUE,
    T.ECHO_REQ: T.ECHO_RES,
    T.OPTION_REQ: T.OPTION_RES,
}
_REPLY_TO = {reply: request for request, reply in _SIMPLE_REPLIES.items()}
_SUBMITS = frozenset(t for t in T if t.spec.submit is not None)
_WORK_UPDATES = frozenset(t for t in T if t.spec.work_update)
_TERMINAL = frozenset(t for t in T if t.spec.terminal)
_WORKER_ONLY = frozenset(t for t in T if t.spec.senders & Role.WORKER and not t.spec.senders & Role.CLIENT)
_CLIENT_ONLY = frozenset(t for t in T if t.spec.senders == Role.CLIENT)

_RULE_BY_CODE = {
    ErrorCode.INVALID_MAGIC: "wrong-magic",
    ErrorCode.INVALID_COMMAND: "unknown-type",
    ErrorCode.INVALID_PACKET: "malformed",
}


class Observed(NamedTuple):
    """One decoded event on a connection (a tuple: cheap to make for every packet)."""

    number: int  # position on the connection, both directions counted
    time: float
    direction: str  # TO_SERVER or FROM_SERVER
    event: Event
    offset: int  # byte offset of the event in its direction

    def describe(self) -> str:
        arrow = "->" if self.direction == TO_SERVER else "<-"
        return f"#{self.number} {arrow} {describe_event(self.event)}"

    def as_data(self) -> dict[str, Any]:
        out = event_as_data(self.event, self.offset)
        out.update(index=self.number, time=self.time, direction=self.direction)
        return out


@dataclass
class Violation:
    """A spec or state violation, with the packets around it."""

    rule: str
    severity: str  # "error" or "warning"
    message: str
    packet: Observed | None
    before: list[Observed] = field(default_factory=list)
    after: list[Observed] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "packet": self.packet.as_data() if self.packet else None,
            "before": [o.as_data() for o in self.before],
            "after": [o.as_data() for o in self.after],
        }

    def describe(self) -> str:
        lines = [f"{self.severity.upper()} [{self.rule}] {self.message}"]
        lines += [f"      {o.describe()}" for o in self.before]
        if self.packet is not None:
            lines.append(f"  >>> {self.packet.describe()}")
        lines += [f"      {o.describe()}" for o in self.after]
        return "\n".join(lines)


def _show(value: bytes, limit: int = 40) -> str:
    text = value.decode("utf-8", "backslashreplace")
    shown = repr(text) if text.isprintable() else repr(value)
    return shown if len(value) <= limit else repr(value[:limit]) + f"…({len(value)} bytes)"


def _raw_rule(event: RawPacket) -> str:
    """The rule a packet the decoder refused breaks."""
    if event.problem.code is ErrorCode.INVALID_COMMAND and event.type is not None and not event.type.spec.reserved:
        return "role"  # a known type that never travels in this direction
    return _RULE_BY_CODE.get(event.problem.code, "malformed")


def _role_name(role: Role) -> str:
    return (role.name or str(role)).lower()


def describe_event(event: Event) -> str:
    """A one-line human description of a decoded event."""
    if isinstance(event, Packet):
        args = " ".join(f"{k}={_show(v)}" for k, v in event.fields.items())
        return f"{event.magic.name} {event.type.name}" + (f" {args}" if args else "")
    if isinstance(event, RawPacket):
        return f"{event.magic!r} {event.name} payload={_show(event.payload)} ({event.problem.message})"
    return f"admin {_show(event.text)}"


@dataclass
class _Job:
    background: bool
    ended: bool = False


class ConnectionChecker:
    """Decodes and validates one connection; see the module docstring for the rules."""

    def __init__(self, *, max_packet_size: int = 64 * 1024 * 1024) -> None:
        self._decoders = {
            TO_SERVER: Decoder(Magic.REQ, lenient=True, max_packet_size=max_packet_size),
            FROM_SERVER: Decoder(Magic.RES, lenient=True, max_packet_size=max_packet_size),
        }
        self._lost: set[str] = set()
        self._count = 0
        self._recent: collections.deque[Observed] = collections.deque(maxlen=CONTEXT_BEFORE)
        self._waiting: list[tuple[Violation, int]] = []  # violation, packets still to collect
        self._ready: list[Violation] = []
        self.role: Role | None = None  # CLIENT or WORKER once the peer shows it
        # outstanding requests
        self._submits: collections.deque[Packet] = collections.deque()
        self._simple: collections.Counter[PacketType] = collections.Counter()
        self._echoes: collections.deque[bytes] = collections.deque()
        self._grabs: collections.deque[PacketType] = collections.deque()
        self._admin: collections.deque[AdminReplyReader] = collections.deque()
        self._slept = False
        # job state
        self._client_jobs: dict[bytes, _Job] = {}
        self._worker_jobs: dict[bytes, bool] = {}  # handle -> ended
        self._abilities: set[bytes] = set()
        self.violations: list[Violation] = []  # every violation so far, context filled as it comes

    # -- input --------------------------------------------------------------------------
    def feed(self, direction: str, data: bytes, time: float) -> list[Observed]:
        """Bytes seen in `direction` (b"" for its end); returns the events they completed."""
        if direction in self._lost:
            return []
        decoder = self._decoders[direction]
        decoder.receive_data(data)
        out: list[Observed] = []
        while True:
            offset = decoder.offset
            try:
                event = decoder.next_event()
            except ProtocolError as exc:
                self._lost.add(direction)
                self._report(
                    "framing-lost", "error",
                    f"{'peer' if direction == TO_SERVER else 'server'} stream cannot be decoded further: {exc}",
                    None,
                )
                break
            if not isinstance(event, (Packet, RawPacket, AdminLine)):
                break
            observed = Observed(self._count, time, direction, event, offset)
            self._count += 1
            out.append(observed)
            self._observe(observed)
        return out

    def close(self) -> list[Violation]:
        """The connection ended: end both directions and release every pending violation."""
        for direction in (TO_SERVER, FROM_SERVER):
            self.feed(direction, b"", 0.0)
        for violation, _ in self._waiting:
            self._ready.append(violation)
        self._waiting.clear()
        return self.take_violations()

    def take_violations(self) -> list[Violation]:
        """Violations whose context is complete, in order; each is returned once."""
        ready, self._ready = self._ready, []
        return ready

    # -- bookkeeping --------------------------------------------------------------------
    def _report(self, rule: str, severity: str, message: str, packet: Observed | None) -> None:
        violation = Violation(rule, severity, message, packet, before=list(self._recent))
        if packet is not None and violation.before and violation.before[-1] is packet:
            violation.before.pop()
        self.violations.append(violation)
        self._waiting.append((violation, CONTEXT_AFTER))

    def _observe(self, obs: Observed) -> None:
        if self._waiting:  # earlier violations collect this packet as context after them
            still = []
            for violation, wanted in self._waiting:
                violation.after.append(obs)
                if wanted > 1:
                    still.append((violation, wanted - 1))
                else:
                    self._ready.append(violation)
            self._waiting = still
        try:
            if obs.direction == TO_SERVER:
                self._from_peer(obs)
            else:
                self._from_server(obs)
        finally:
            self._recent.append(obs)

    def _error(self, rule: str, message: str, obs: Observed) -> None:
        self._report(rule, "error", message, obs)

    def _warn(self, rule: str, message: str, obs: Observed) -> None:
        self._report(rule, "warning", message, obs)

    # -- the peer's side ----------------------------------------------------------------
    def _from_peer(self, obs: Observed) -> None:
        event = obs.event
        if isinstance(event, AdminLine):
            if not event.text.strip():
                return
            match = match_admin_command(event.words)
            command = match[0] if match else None
            if command is not None and command.reply is ReplyFraming.NONE:
                return
            self._admin.append(AdminReplyReader(command))
            return
        if isinstance(event, RawPacket):
            self._error(_raw_rule(event), event.problem.message, obs)
            return
        ptype = event.type
        if ptype in _WORKER_ONLY or ptype in _CLIENT_ONLY:
            self._note_role(ptype, obs)
        if ptype in _SUBMITS:
            self._submits.append(event)
        elif ptype in _SIMPLE_REPLIES:
            self._simple[_SIMPLE_REPLIES[ptype]] += 1
            if ptype is T.ECHO_REQ:
                self._echoes.append(event.args[0])
        elif ptype in _GRAB_REPLIES:
            self._grabs.append(ptype)
        elif ptype is T.PRE_SLEEP:
            self._slept = True
        elif ptype in (T.CAN_DO, T.CAN_DO_TIMEOUT):
            self._abilities.add(event.args[0])
        elif ptype is T.CANT_DO:
            self._abilities.discard(event.args[0])
        elif ptype is T.RESET_ABILITIES:
            self._abilities.clear()
        elif ptype in _WORK_UPDATES:
            handle = event.args[0]
            ended = self._worker_jobs.get(handle)
            if ended is None:
                self._error(
                    "work-unassigned-handle",
                    f"{ptype.name} for handle {_show(handle)}, which this worker was never assigned", obs,
                )
            elif ended:
                self._error("work-after-end", f"{ptype.name} for handle {_show(handle)} after the job ended", obs)
            elif ptype in _TERMINAL:
                self._worker_jobs[handle] = True

    def _note_role(self, ptype: PacketType, obs: Observed) -> None:
        role = Role.WORKER if ptype in _WORKER_ONLY else Role.CLIENT if ptype in _CLIENT_ONLY else None
        if role is None:
            return
        if self.role is None:
            self.role = role
        elif role is not self.role:
            self._warn(
                "role-mix",
                f"{ptype.name} is a {_role_name(role)} packet on a connection that acted as a "
                f"{_role_name(self.role)} (gearmand allows it; most libraries never do it)", obs,
            )
            self.role = role

    # -- the server's side --------------------------------------------------------------
    def _from_server(self, obs: Observed) -> None:
        event = obs.event
        if isinstance(event, AdminLine):
            if not self._admin:
                self._error("unsolicited-reply", "admin reply line without an admin command", obs)
                return
            if self._admin[0].feed(event.text) is not None:
                self._admin.popleft()
            return
        if isinstance(event, RawPacket):
            self._error(_raw_rule(event), event.problem.message, obs)
            return
        # RES magic (checked by the decoder) already means a type the server may send.
        handler = _SERVER_HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event, obs)

    def _job_created(self, event: Packet, obs: Observed) -> None:
        if not self._submits:
            self._error("unsolicited-reply", "JOB_CREATED without an outstanding SUBMIT_JOB*", obs)
            return
        submit = self._submits.popleft()
        assert submit.spec.submit is not None
        handle = event.args[0]
        job = self._client_jobs.get(handle)
        if job is None or job.ended:
            self._client_jobs[handle] = _Job(submit.spec.submit.background)
        elif not submit.spec.submit.background:
            job.background = False  # a foreground submit joined a running job (coalescing)

    def _simple_reply(self, event: Packet, obs: Observed) -> None:
        ptype = event.type
        if self._simple[ptype] <= 0:
            self._error("unsolicited-reply", f"{ptype.name} without an outstanding {_REPLY_TO[ptype].name}", obs)
            return
        self._simple[ptype] -= 1
        if ptype is T.ECHO_RES:
            sent = self._echoes.popleft()
            if sent != event.args[0]:
                self._error("echo-mismatch", f"ECHO_RES carries {_show(event.args[0])}, the ECHO_REQ sent {_show(sent)}", obs)

    def _grab_reply(self, event: Packet, obs: Observed) -> None:
        ptype = event.type
        if not self._grabs:
            self._error("unsolicited-reply", f"{ptype.name} without an outstanding GRAB_JOB*", obs)
            return
        grab = self._grabs.popleft()
        if ptype is T.NO_JOB:
            return
        if ptype not in _GRAB_REPLIES[grab]:
            allowed = " or ".join(sorted(t.name for t in _GRAB_REPLIES[grab]))
            self._error("assign-type", f"{ptype.name} in answer to {grab.name} (expected {allowed})", obs)
        handle, function = event.args[0], event.args[1]
        if function not in self._abilities:
            self._error(
                "assign-unregistered-function",
                f"{ptype.name} for function {_show(function)}, which this worker has not registered with CAN_DO", obs,
            )
        if self._worker_jobs.get(handle) is False:
            self._error("assign-twice", f"{ptype.name} for handle {_show(handle)} that this worker already holds", obs)
        self._worker_jobs[handle] = False

    def _noop(self, event: Packet, obs: Observed) -> None:
        if not self._slept:
            self._error("noop-while-awake", "NOOP to a worker that sent no PRE_SLEEP since the last NOOP", obs)
        self._slept = False

    def _work_update(self, event: Packet, obs: Observed) -> None:
        handle = event.args[0]
        job = self._client_jobs.get(handle)
        name = event.type.name
        if job is None:
            self._error("update-unknown-handle", f"{name} for handle {_show(handle)}, which this client never got from JOB_CREATED", obs)
        elif job.ended:
            self._error("update-after-end", f"{name} for handle {_show(handle)} after the job ended", obs)
        elif job.background:
            self._error("update-background-job", f"{name} for background job {_show(handle)} (background jobs get only JOB_CREATED)", obs)
        elif event.type in _TERMINAL:
            job.ended = True

    def _error_packet(self, event: Packet, obs: Observed) -> None:
        # An ERROR answers whichever request failed; drop the oldest outstanding one so
        # later replies still line up.
        if self._submits:
            self._submits.popleft()
        elif self._grabs:
            self._grabs.popleft()
        else:
            for ptype in (T.OPTION_RES, T.STATUS_RES, T.STATUS_RES_UNIQUE, T.ECHO_RES):
                if self._simple[ptype] > 0:
                    self._simple[ptype] -= 1
                    if ptype is T.ECHO_RES:
                        self._echoes.popleft()
                    break


_SERVER_HANDLERS: dict[PacketType, Any] = {
    T.JOB_CREATED: ConnectionChecker._job_created,
    T.STATUS_RES: ConnectionChecker._simple_reply,
    T.STATUS_RES_UNIQUE: ConnectionChecker._simple_reply,
    T.ECHO_RES: ConnectionChecker._simple_reply,
    T.OPTION_RES: ConnectionChecker._simple_reply,
    T.NO_JOB: ConnectionChecker._grab_reply,
    T.JOB_ASSIGN: ConnectionChecker._grab_reply,
    T.JOB_ASSIGN_UNIQ: ConnectionChecker._grab_reply,
    T.JOB_ASSIGN_ALL: ConnectionChecker._grab_reply,
    T.NOOP: ConnectionChecker._noop,
    T.ERROR: ConnectionChecker._error_packet,
    **{t: ConnectionChecker._work_update for t in T if t.spec.work_update},
}


def check_events(events: Iterable[tuple[str, bytes]]) -> list[Violation]:
    """Convenience for tests: run (direction, bytes) pairs through a checker, return violations."""
    checker = ConnectionChecker()
    for direction, data in events:
        checker.feed(direction, data, 0.0)
    checker.close()
    return checker.violations
