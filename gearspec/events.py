"""The codec's events: what a decoder yields and what the encoder builds.

`Packet` (a well-formed binary packet), `RawPacket` (one kept as it came, lenient mode),
`AdminLine` (a line of the text admin protocol), and the sentinels `NEED_DATA` and `CLOSED`.
`Packet.request`/`response`/`make` build packets with their arguments checked against the
table, through `gearspec.plans`.
"""

from __future__ import annotations

import enum
from typing import Final

from gearspec.errors import ErrorCode, LocalProtocolError, ProtocolError
from gearspec.plans import CHECK_ANY, CHECK_CALL_LAST, CHECK_NO_NUL, CHECK_NUMBER, HEADER, PLAN_TUPLES
from gearspec.spec import Magic, PacketSpec, PacketType, is_number, packet_spec

__all__ = ["CLOSED", "NEED_DATA", "AdminLine", "Event", "Packet", "RawPacket"]

# Imported names rebound by assignment: CPython 3.11.7 calls a method of a name bound by an
# import statement without the LOAD_METHOD shortcut (it may be a module), about 10% of to_bytes.
_PLANS = PLAN_TUPLES
_pack_header = HEADER.pack

class Packet:
    """A well-formed binary packet: magic, type and its arguments as bytes, in wire order.

    Arguments can be read by name: ``packet.handle`` or ``packet["handle"]``.
    """

    __slots__ = ("args", "magic", "type")

    magic: Magic
    type: PacketType
    args: tuple[bytes, ...]

    def __init__(self, magic: Magic, type: PacketType, args: tuple[bytes, ...] = ()) -> None:
        self.magic = magic
        self.type = type
        self.args = args

    # -- construction with validation ---------------------------------------------------
    @classmethod
    def request(cls, type: PacketType | int | str, *args: object, **named: object) -> Packet:
        """A packet toward the server (REQ magic), arguments checked against the table."""
        return cls._build(Magic.REQ, type, args, named)

    @classmethod
    def response(cls, type: PacketType | int | str, *args: object, **named: object) -> Packet:
        """A packet from the server (RES magic), arguments checked against the table."""
        return cls._build(Magic.RES, type, args, named)

    @classmethod
    def make(cls, type: PacketType | int | str, *args: object, **named: object) -> Packet:
        """A packet with the only magic its type has (WORK_* need `request`/`response`)."""
        spec = _spec_or_local_error(type)
        if len(spec.magics) != 1:
            raise LocalProtocolError(
                f"{spec.name} travels both ways: use Packet.request or Packet.response",
                code=ErrorCode.INVALID_MAGIC,
            )
        (magic,) = spec.magics
        return cls._build(magic, spec.code, args, named)

    @classmethod
    def _build(
        cls, magic: Magic, type: PacketType | int | str, args: tuple[object, ...], named: dict[str, object]
    ) -> Packet:
        plan = _PLANS.get(type) if type.__class__ is not str else None  # type: ignore[arg-type]
        if plan is None:
            spec = _spec_or_local_error(type)
            if spec.reserved:
                raise LocalProtocolError(
                    f"packet type {spec.code} ({spec.name}) is reserved", code=ErrorCode.INVALID_COMMAND
                )
            plan = _PLANS[spec.code]
        _, ptype, _, _, _, spec, magics, rules = plan
        if magic not in magics:
            raise LocalProtocolError(
                f"{spec.name} is never sent with {magic.name} magic", code=ErrorCode.INVALID_MAGIC
            )
        values = list(args)
        if named:
            if len(values) > len(spec.args):
                raise LocalProtocolError(_count_message(spec, len(values)), code=ErrorCode.INVALID_PACKET)
            for arg in spec.args[len(values):]:
                if arg.name not in named:
                    raise LocalProtocolError(f"{spec.name} needs argument {arg.name!r}")
                values.append(named.pop(arg.name))
            if named:
                raise LocalProtocolError(f"{spec.name} has no argument named {sorted(named)[0]!r}")
        if len(values) != len(rules):
            raise LocalProtocolError(_count_message(spec, len(values)), code=ErrorCode.INVALID_PACKET)
        encoded = []
        for (arg, to_bytes, problem_of, check), value in zip(rules, values, strict=True):
            if value.__class__ is bytes:
                raw = value  # what every kind's encoder returns for bytes; skip the call
            else:
                try:
                    raw = to_bytes(value)
                except (TypeError, ValueError) as exc:
                    raise LocalProtocolError(f"{spec.name} argument {arg.name!r}: {exc}") from None
            # The common validators are checked inline (see _check_for); the kind's own
            # validator words the problem, and runs for any validator not known here.
            if check == CHECK_NO_NUL:
                ok = b"\0" not in raw
            elif check == CHECK_ANY:
                ok = True
            elif check == CHECK_NUMBER:
                ok = is_number(raw)
            else:
                ok = problem_of(raw) is None and (check == CHECK_CALL_LAST or b"\0" not in raw)
            if not ok:
                problem = problem_of(raw) or "contains a NUL byte"
                raise LocalProtocolError(f"{spec.name} argument {arg.name!r} {problem}")
            encoded.append(raw)
        return cls(magic, ptype, tuple(encoded))

    # -- reading ------------------------------------------------------------------------
    @property
    def spec(self) -> PacketSpec:
        return self.type.spec

    @property
    def name(self) -> str:
        return self.type.name

    @property
    def fields(self) -> dict[str, bytes]:
        """Arguments as a name → value map, in wire order."""
        return {arg.name: value for arg, value in zip(self.type.spec.args, self.args, strict=False)}

    def __getitem__(self, name: str) -> bytes:
        try:
            return self.args[self.type.spec.arg_index[name]]
        except KeyError:
            raise KeyError(f"{self.type.name} has no argument {name!r}") from None

    def __getattr__(self, name: str) -> bytes:
        # Only reached for names that are not slots: the packet's argument names. Dunder
        # and unset-slot lookups (copy, pickle) must fail plainly, not recurse.
        if name.startswith("__") or name in Packet.__slots__:
            raise AttributeError(name)
        try:
            return self.args[self.type.spec.arg_index[name]]
        except (KeyError, AttributeError):
            raise AttributeError(f"{type(self).__name__} {self.type.name} has no argument {name!r}") from None

    def to_bytes(self) -> bytes:
        payload = b"\0".join(self.args)
        return _pack_header(self.magic.value, self.type, len(payload)) + payload

    __bytes__ = to_bytes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return self.magic is other.magic and self.type == other.type and self.args == other.args

    def __hash__(self) -> int:
        return hash((self.magic, int(self.type), self.args))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.fields.items())
        return f"<{self.magic.name} {self.type.name}({shown})>"


class RawPacket:
    """A binary packet kept as it came (lenient mode): re-encodes to the identical bytes.

    `problem` is the error strict mode would have raised for it.
    """

    __slots__ = ("code", "magic", "payload", "problem")

    def __init__(self, magic: bytes, code: int, payload: bytes, problem: ProtocolError) -> None:
        self.magic = magic
        self.code = code
        self.payload = payload
        self.problem = problem

    @property
    def type(self) -> PacketType | None:
        try:
            return PacketType(self.code)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        known = self.type
        return known.name if known is not None else f"UNKNOWN_{self.code}"

    def to_bytes(self) -> bytes:
        return _pack_header(self.magic, self.code, len(self.payload)) + self.payload

    __bytes__ = to_bytes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawPacket):
            return NotImplemented
        return (self.magic, self.code, self.payload) == (other.magic, other.code, other.payload)

    def __hash__(self) -> int:
        return hash((self.magic, self.code, self.payload))

    def __repr__(self) -> str:
        return f"<RawPacket {self.magic!r} {self.name} {_short(self.payload)}: {self.problem.message}>"


class AdminLine:
    """One line of the text admin protocol: a command to the server or a reply line."""

    __slots__ = ("terminator", "text")

    def __init__(self, text: bytes, terminator: bytes = b"\n") -> None:
        self.text = text
        self.terminator = terminator

    @property
    def words(self) -> list[str]:
        """Space-separated tokens (gearmand splits on spaces), decoded losslessly as latin-1."""
        return self.text.decode("latin-1").split()

    def to_bytes(self) -> bytes:
        return self.text + self.terminator

    __bytes__ = to_bytes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AdminLine):
            return NotImplemented
        return (self.text, self.terminator) == (other.text, other.terminator)

    def __hash__(self) -> int:
        return hash((self.text, self.terminator))

    def __repr__(self) -> str:
        ending = "" if self.terminator == b"\n" else f" {self.terminator!r}"
        return f"<AdminLine {self.text!r}{ending}>"


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = _Sentinel.NEED_DATA  # feed more bytes before the next event
CLOSED: Final = _Sentinel.CLOSED  # the peer ended the stream cleanly

Event = Packet | RawPacket | AdminLine


def _spec_or_local_error(type: PacketType | int | str) -> PacketSpec:
    try:
        return packet_spec(type)
    except KeyError as exc:
        raise LocalProtocolError(str(exc.args[0]), code=ErrorCode.INVALID_COMMAND) from None


def _count_message(spec: PacketSpec, got: int) -> str:
    names = ", ".join(a.name for a in spec.args) or "none"
    return f"{spec.name} takes {len(spec.args)} arguments ({names}), got {got}"


def _short(value: bytes, limit: int = 32) -> str:
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"...({len(value)} bytes)"

