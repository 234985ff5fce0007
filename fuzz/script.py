"""Replayable conversations with a live job server.

A `Session` talks to one target over several named connections (`c0`, `w1`, ...) and checks
what comes back against `Expect` patterns. Every step it takes is recorded, so a failing
run (the stateful model's shrunk example) prints as a script that `replay` (and
`gearspec fuzz --replay FILE --target HOST:PORT`) runs again against any server.

A script is JSON: ``{"format": "gearspec-replay/1", "options": {...}, "steps": [...]}``
(options: tolerances the run used, e.g. ``allow_trailing_nul``); each step is one of

- ``{"op": "open", "conn": "c0"}`` / ``{"op": "close", "conn": "c0"}``
- ``{"op": "send", "conn": "c0", "packet": {"type": "SUBMIT_JOB", "args": ["f", "u", "x"]}}``
  (or ``"raw": {"hex": "..."}`` for bytes that are not a valid packet); a handle argument
  may be ``{"var": "h1"}``: the handle the server sent earlier in this run
- ``{"op": "expect", "conn": "c0", "one_of": [PATTERN, ...]}``: the next packet on c0
- ``{"op": "sync", "conn": "w0", "expect": [PATTERN...], "optional": [PATTERN...]}``:
  ECHO round trip on w0; everything that arrived before the echo must be exactly `expect`
  (in order), plus at most the `optional` ones

A PATTERN is ``{"type": "JOB_CREATED", "args": [ARG...]}`` where ARG is a string (UTF-8),
``{"hex": ".."}``, ``{"var": "h1"}`` (bound to the value the first time it is seen, then
compared) or ``{"any": true}``.

Anywhere a string may stand, ``{"fresh": "f0"}`` is a name unique to one replay (a function
name): each replay makes up a new prefix for it, so a replay never meets jobs that an earlier
run left queued on the same server.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Packet, RawPacket
from gearspec.errors import ProtocolError
from gearspec.export import show_bytes
from gearspec.spec import ArgKind, Magic, PacketType, packet_spec

__all__ = [
    "ANY",
    "SCRIPT_FORMAT",
    "Expect",
    "Mismatch",
    "Session",
    "TargetDown",
    "Var",
    "fresh_prefix",
    "load_script",
    "replay",
]

SCRIPT_FORMAT = "gearspec-replay/1"


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
"""Matches any argument value."""


@dataclass(frozen=True)
class Var:
    """A value learned from the server (a job handle): bound when first seen, then compared."""

    name: str


Arg = bytes | Var | _Any


@dataclass(frozen=True)
class Expect:
    """A packet pattern: a type name and its arguments (bytes, `Var` or `ANY`)."""

    type: str
    args: tuple[Arg, ...] = ()

    def to_data(self) -> dict[str, Any]:
        def arg(a: Arg) -> Any:
            if isinstance(a, Var):
                return {"var": a.name}
            if isinstance(a, _Any):
                return {"any": True}
            return show_bytes(a)

        return {"type": self.type, "args": [arg(a) for a in self.args]}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Expect:
        return cls(data["type"], tuple(_arg_from_data(a) for a in data.get("args", [])))

    def __str__(self) -> str:
        shown = ", ".join(
            f"${a.name}" if isinstance(a, Var) else "*" if isinstance(a, _Any) else _text(a) for a in self.args
        )
        return f"{self.type}({shown})"


def _text(value: bytes) -> str:
    """Bytes as messages show them: '0', not b'0'."""
    return repr(value)[1:]


def _show(packet: Packet) -> str:
    """A packet as messages show it, in the same form as an `Expect`."""
    return f"{packet.name}({', '.join(_text(a) for a in packet.args)})"


def _arg_from_data(value: Any) -> Arg:
    if isinstance(value, str):
        return value.encode("utf-8")
    if "var" in value:
        return Var(value["var"])
    if value.get("any"):
        return ANY
    return bytes.fromhex(value["hex"])


def _bytes_from_data(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes.fromhex(value["hex"])


class Mismatch(AssertionError):
    """The target answered differently from what the model (or script) expects."""


class TargetDown(ConnectionError):
    """The target refused a connection, closed one unexpectedly or did not answer in time."""


@dataclass
class _Connection:
    sock: socket.socket
    decoder: Decoder
    pending: list[Packet] = field(default_factory=list)


class Session:
    """Named connections to one target, with recorded, checked steps.

    `timeout` bounds every wait for a reply. `bindings` holds the values of `Var`s seen so far.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 3.0,
        record: bool = True,
        allow_trailing_nul: bool = False,
        allow_empty_numbers: bool = False,
        fresh_prefix: str = "",
    ) -> None:
        self.host = host
        self.fresh_prefix = fresh_prefix  # names starting with it are saved as {"fresh": rest}
        self.allow_trailing_nul = allow_trailing_nul
        self.allow_empty_numbers = allow_empty_numbers
        self.deviations: list[str] = []
        self.port = port
        self.timeout = timeout
        self.record = record
        self.steps: list[dict[str, Any]] = []
        self.bindings: dict[str, bytes] = {}
        self._conns: dict[str, _Connection] = {}
        self._echo_counter = 0

    # -- connections -------------------------------------------------------------------
    def open(self, name: str) -> None:
        if name in self._conns:
            raise ValueError(f"connection {name} is already open")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise TargetDown(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conns[name] = _Connection(sock, Decoder(Magic.RES, lenient=True, admin=False))
        self._log({"op": "open", "conn": name})

    def close(self, name: str) -> None:
        conn = self._conns.pop(name)
        conn.sock.close()
        self._log({"op": "close", "conn": name})

    def close_all(self) -> None:
        for conn in self._conns.values():
            conn.sock.close()
        self._conns.clear()

    def is_open(self, name: str) -> bool:
        return name in self._conns

    # -- steps ---------------------------------------------------------------------------
    def send(self, name: str, packet: Packet | bytes) -> None:
        conn = self._conns[name]
        if isinstance(packet, Packet):
            self._log({"op": "send", "conn": name, "packet": {"type": packet.name, "args": self._args_as_data(packet)}})
            data = packet.to_bytes()
        else:
            self._log({"op": "send", "conn": name, "raw": show_bytes(packet)})
            data = packet
        try:
            conn.sock.sendall(data)
        except OSError as exc:
            raise TargetDown(f"{name}: send failed: {exc}") from None

    def expect(self, name: str, *alternatives: Expect) -> Packet:
        """The next packet on `name` must match one of `alternatives`; returns it."""
        self._log({"op": "expect", "conn": name, "one_of": [e.to_data() for e in alternatives]})
        packet = self._next_packet(name, time.monotonic() + self.timeout)
        if packet is None:
            raise Mismatch(f"{name}: connection closed while expecting {' or '.join(map(str, alternatives))}")
        for pattern in alternatives:
            if self._match(pattern, packet, bind=False):
                self._match(pattern, packet, bind=True)
                return packet
        raise Mismatch(f"{name}: got {_show(packet)}, expected {' or '.join(map(str, alternatives))}")

    def request(self, name: str, packet: Packet, *alternatives: Expect) -> Packet:
        self.send(name, packet)
        return self.expect(name, *alternatives)

    def sync(self, name: str, expected: Sequence[Expect] = (), optional: Sequence[Expect] = ()) -> list[Packet]:
        """ECHO round trip on `name`: what arrived before must be `expected` (+ `optional`).

        Packets caused by other connections may lag behind our echo in a threaded server, so
        missing expected packets are waited for until the timeout before failing.
        """
        self._log(
            {"op": "sync", "conn": name, "expect": [e.to_data() for e in expected], "optional": [e.to_data() for e in optional]}
        )
        self._echo_counter += 1
        token = f"sync-{self._echo_counter}".encode()
        conn = self._conns[name]
        try:
            conn.sock.sendall(Packet.request(PacketType.ECHO_REQ, token).to_bytes())
        except OSError as exc:
            raise TargetDown(f"{name}: send failed: {exc}") from None
        deadline = time.monotonic() + self.timeout
        arrived: list[Packet] = []
        echoed = False
        while True:
            got = self._match_list(list(expected), list(optional), arrived)
            if got == "extra":
                shown = ", ".join(map(_show, arrived))
                raise Mismatch(
                    f"{name}: unexpected packets [{shown}]; expected [{', '.join(map(str, expected))}]"
                    + (f" (optional: {', '.join(map(str, optional))})" if optional else "")
                )
            if echoed and got == "complete":
                break
            packet = self._next_packet(name, deadline)
            if packet is None:
                raise Mismatch(
                    f"{name}: got [{', '.join(map(_show, arrived))}] then closed/timed out; "
                    f"expected [{', '.join(map(str, expected))}]"
                )
            if packet.type == PacketType.ECHO_RES and packet.args[0] == token:
                echoed = True
                continue
            arrived.append(packet)
        # Bind variables in the order they arrived.
        remaining = list(expected)
        for packet in arrived:
            for i, pattern in enumerate(remaining):
                if self._match(pattern, packet, bind=False):
                    self._match(pattern, packet, bind=True)
                    del remaining[i]
                    break
        return arrived

    def _match_list(self, expected: list[Expect], optional: list[Expect], arrived: list[Packet]) -> str:
        """'extra' when `arrived` cannot be explained, 'complete' when all expected are there."""
        todo = list(expected)
        spare = list(optional)
        for packet in arrived:
            for bucket in (todo, spare):
                hit = next((i for i, p in enumerate(bucket) if self._match(p, packet, bind=False)), None)
                if hit is not None:
                    del bucket[hit]
                    break
            else:
                return "extra"
        return "complete" if not todo else "waiting"

    def _match(self, pattern: Expect, packet: Packet, *, bind: bool) -> bool:
        if pattern.type != packet.name or len(pattern.args) != len(packet.args):
            return False
        new: dict[str, bytes] = {}
        for want, got in zip(pattern.args, packet.args, strict=True):
            if isinstance(want, _Any):
                continue
            if isinstance(want, Var):
                known = self.bindings.get(want.name, new.get(want.name))
                if known is None:
                    new[want.name] = got
                elif known != got:
                    return False
            elif want != got:
                return False
        if bind:
            self.bindings.update(new)
        return True

    def _next_packet(self, name: str, deadline: float) -> Packet | None:
        conn = self._conns[name]
        while True:
            try:
                event = conn.decoder.next_event()
            except ProtocolError as exc:
                raise Mismatch(f"{name}: the server sent bytes that do not decode: {exc}") from None
            if isinstance(event, Packet):
                return event
            if event is CLOSED:
                return None
            if isinstance(event, RawPacket):
                fixed = self._without_trailing_nul(event)
                if fixed is not None:
                    self.deviations.append(f"{fixed.name} with a NUL after its last argument")
                    return fixed
                fixed = self._with_zero_numbers(event)
                if fixed is not None:
                    self.deviations.append(f"{fixed.name} with empty numbers")
                    return fixed
                raise Mismatch(f"{name}: the server sent a packet that does not decode: {event.problem}")
            if isinstance(event, AdminLine):  # pragma: no cover - admin lines are off
                raise Mismatch(f"{name}: unexpected {event!r}")
            assert event is NEED_DATA
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            conn.sock.settimeout(left)
            try:
                data = conn.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            conn.decoder.receive_data(data)

    def _without_trailing_nul(self, raw: RawPacket) -> Packet | None:
        # gearmand 1.1.20 sends some packets with the C string terminator of their last
        # argument included (WORK_FAIL made from WORK_EXCEPTION: server.cc
        # _server_queue_work_data copies arg_size[0], which counts the NUL).
        if not self.allow_trailing_nul or not raw.payload.endswith(b"\0"):
            return None
        decoder = Decoder(Magic.RES, admin=False)
        decoder.receive_data(raw.to_bytes()[:4] + raw.to_bytes()[4:8] + len(raw.payload[:-1]).to_bytes(4, "big") + raw.payload[:-1])
        try:
            event = decoder.next_event()
        except ProtocolError:
            return None
        return event if isinstance(event, Packet) else None

    def _with_zero_numbers(self, raw: RawPacket) -> Packet | None:
        # Perl Gearman::Server sends STATUS_RES with empty numerator and denominator
        # (Gearman/Server/Client.pm CMD_get_status); read them as 0 when allowed.
        spec = raw.type.spec if raw.type is not None else None
        if not self.allow_empty_numbers or spec is None or raw.magic != Magic.RES.value:
            return None
        args = raw.payload.split(b"\0", len(spec.args) - 1) if spec.args else []
        if len(args) != len(spec.args):
            return None
        fixed = [b"0" if a.kind is ArgKind.NUMBER and v == b"" else v for a, v in zip(spec.args, args, strict=True)]
        if any(a.kind is ArgKind.NUMBER and not v.isdigit() for a, v in zip(spec.args, fixed, strict=True)):
            return None
        return Packet(Magic.RES, PacketType(spec.code), tuple(fixed))

    def _args_as_data(self, packet: Packet) -> list[Any]:
        # Handles are the server's: a replay must send the ones *its* server assigned.
        by_value = {value: var for var, value in self.bindings.items()}
        out: list[Any] = []
        for arg, value in zip(packet.spec.args, packet.args, strict=True):
            var = by_value.get(value) if arg.kind is ArgKind.HANDLE else None
            out.append({"var": var} if var is not None else show_bytes(value))
        return out

    def _log(self, step: dict[str, Any]) -> None:
        if self.record:
            self.steps.append(step)

    # -- scripts -------------------------------------------------------------------------
    def script(self) -> str:
        """The steps so far as a replayable JSON script (one step per line)."""
        lines = ",\n  ".join(json.dumps(self._symbolic(s), sort_keys=False) for s in self.steps)
        options = json.dumps(
            {"allow_trailing_nul": self.allow_trailing_nul, "allow_empty_numbers": self.allow_empty_numbers}
        )
        return f'{{"format": "{SCRIPT_FORMAT}", "options": {options}, "steps": [\n  {lines}\n]}}\n'


    def _symbolic(self, value: Any) -> Any:
        """`value` with this run's fresh names written as {"fresh": ...}."""
        prefix = self.fresh_prefix
        if isinstance(value, str) and prefix and value.startswith(prefix):
            return {"fresh": value[len(prefix):]}
        if isinstance(value, list):
            return [self._symbolic(v) for v in value]
        if isinstance(value, dict):
            return {k: self._symbolic(v) for k, v in value.items()}
        return value


def fresh_prefix() -> str:
    """A prefix for names unique to one run or replay (other runs may share the server)."""
    return f"gs{os.getpid():x}{os.urandom(3).hex()}_"


def _with_fresh_names(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"fresh"}:
            return prefix + str(value["fresh"])
        return {k: _with_fresh_names(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_fresh_names(v, prefix) for v in value]
    return value


def load_script(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The steps and session options of a replay script."""
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for binary files
        raise ValueError(f"not a gearspec replay script (not JSON: line {getattr(exc, 'lineno', 1)})") from None
    if isinstance(data, dict) and data.get("format") == SCRIPT_FORMAT:
        return list(data["steps"]), dict(data.get("options", {}))
    raise ValueError(f"not a gearspec replay script (expected format {SCRIPT_FORMAT!r})")


def _packet_from_data(data: dict[str, Any], bindings: dict[str, bytes]) -> Packet:
    def value(arg: Any) -> bytes:
        if isinstance(arg, dict) and "var" in arg:
            try:
                return bindings[arg["var"]]
            except KeyError:
                raise ValueError(f"variable {arg['var']!r} is used before the server sent it") from None
        return _bytes_from_data(arg)

    return Packet.request(packet_spec(data["type"]).code, *(value(a) for a in data["args"]))


def replay(
    steps: Iterable[dict[str, Any]],
    host: str,
    port: int,
    *,
    timeout: float = 3.0,
    allow_trailing_nul: bool = False,
    allow_empty_numbers: bool = False,
) -> Session:
    """Run a script's steps against a target; raises `Mismatch` or `TargetDown` on failure."""
    session = Session(
        host, port, timeout=timeout, allow_trailing_nul=allow_trailing_nul, allow_empty_numbers=allow_empty_numbers
    )
    prefix = fresh_prefix()
    try:
        for step in _with_fresh_names(list(steps), prefix):
            op, name = step["op"], step.get("conn", "")
            if op == "open":
                session.open(name)
            elif op == "close":
                session.close(name)
            elif op == "send":
                session.send(
                    name,
                    _packet_from_data(step["packet"], session.bindings) if "packet" in step else _bytes_from_data(step["raw"]),
                )
            elif op == "expect":
                session.expect(name, *(Expect.from_data(e) for e in step["one_of"]))
            elif op == "sync":
                session.sync(
                    name,
                    [Expect.from_data(e) for e in step.get("expect", [])],
                    [Expect.from_data(e) for e in step.get("optional", [])],
                )
            else:
                raise ValueError(f"unknown step {op!r}")
    finally:
        session.close_all()
    return session
