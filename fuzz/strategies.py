"""Near-valid and malformed Gearman input, derived from the spec tables.

Each *family* below (wrong magic, unknown types, wrong argument counts, lying lengths, ...)
is written once as a function of a `Chooser`, a tiny source of choices. Two choosers drive
them:

- `HypothesisChooser` inside `st.composite`: the families become Hypothesis strategies that
  shrink well (`near_valid()`, `malformed_streams()`, ...), for property tests here and in
  other projects;
- `RandomChooser(random.Random(seed))`: the network fuzzer draws cases from the same
  families quickly and reproducibly from a seed, without Hypothesis' per-example engine.

A family returns a `Case`: the bytes to send plus what a correct server may do with them.
Valid packets come from `gearspec.strategies` (and the table), so a new row in
`gearspec.spec.PACKETS` is fuzzed without new code here.

    from hypothesis import given
    from gearspec.fuzz.strategies import near_valid

    @given(near_valid())
    def test_my_parser(case):
        my_parse(case.data)
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from hypothesis import strategies as st

from gearspec.admin import ADMIN_COMMANDS
from gearspec.codec import Packet
from gearspec.spec import HEADER_SIZE, PACKETS, ArgKind, Magic, PacketSpec, PacketType
from gearspec.strategies import ARG_STRATEGIES, chunkings

__all__ = [
    "FAMILIES",
    "Case",
    "Chooser",
    "HypothesisChooser",
    "RandomChooser",
    "admin_lines",
    "chunkings",
    "cut_streams",
    "draw_arg",
    "family",
    "header",
    "malformed_streams",
    "near_valid",
    "valid_cases",
    "valid_packet",
]

T = TypeVar("T")
_HEADER = struct.Struct(">4sII")


def header(magic: bytes, code: int, size: int) -> bytes:
    """A 12-byte packet header with any (even wrong) magic, type and size."""
    return _HEADER.pack(magic, code & 0xFFFFFFFF, size & 0xFFFFFFFF)


@dataclass(frozen=True)
class Case:
    """Bytes to send to a parser or server, and what a correct one may do with them.

    `family` names the generator. `framed` is True when the bytes end on a packet or line
    boundary that a server can find, so a packet sent after them on the same connection must
    still be answered (unless the server closes the connection). `valid` is True for bytes
    the protocol allows.
    """

    family: str
    data: bytes
    framed: bool = True
    valid: bool = False
    note: str = ""


class Chooser(Protocol):
    """The choices a family makes; simplest values first so that shrinking helps."""

    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...

    def binary(self, max_size: int) -> bytes: ...

    def boolean(self) -> bool: ...

    def arg(self, kind: ArgKind) -> bytes: ...


class RandomChooser:
    """Choices from a seeded `random.Random` (fast; used by the network fuzzer)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        # Small values and the bounds are where parsers break: favour them.
        roll = self.rng.random()
        if roll < 0.1:
            return low
        if roll < 0.2:
            return high
        if roll < 0.5:
            return min(high, low + self.rng.randint(0, 8))
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def binary(self, max_size: int) -> bytes:
        size = self.integer(0, max_size)
        if self.rng.random() < 0.5:
            return bytes(self.rng.choice(b"abcxyz019_-:\0 ") for _ in range(size))
        return self.rng.randbytes(size)

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def arg(self, kind: ArgKind) -> bytes:
        return draw_arg(self, kind)


_WORDS = (b"f", b"fn", b"reverse", b"x" * 64, b"x" * 65, b"-", b"", b"H:lap:1", b"0", b"exceptions")


def draw_arg(chooser: Chooser, kind: ArgKind) -> bytes:
    """A valid wire value of one argument kind, from primitive choices."""
    if kind is ArgKind.NUMBER:
        return str(chooser.choice((0, 1, 2, 100, 2**31, 2**32, 2**63))).encode()
    if kind is ArgKind.DATA:
        return chooser.binary(64)
    if chooser.boolean():
        return chooser.choice(_WORDS)
    return chooser.binary(24).replace(b"\0", b"")


class HypothesisChooser:
    """Choices drawn from Hypothesis (inside `st.composite`), so cases shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(min_value=low, max_value=high))

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))

    def binary(self, max_size: int) -> bytes:
        return self.draw(st.binary(max_size=max_size))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def arg(self, kind: ArgKind) -> bytes:
        return self.draw(ARG_STRATEGIES[kind])


_USABLE: tuple[PacketSpec, ...] = tuple(row for row in PACKETS if not row.reserved)
_REQUESTS: tuple[PacketSpec, ...] = tuple(row for row in _USABLE if Magic.REQ in row.magics)
_RESERVED: tuple[int, ...] = tuple(row.code for row in PACKETS if row.reserved)
_FIRST_UNKNOWN = max(row.code for row in PACKETS) + 1
# Names inside packets without opaque data: a NUL there cannot be read as a legal shift of
# the following fields into the data, so every parser must notice it.
_WITH_NAMES = tuple(
    row for row in _REQUESTS if not row.has_data and any(a.kind in (ArgKind.FUNCTION, ArgKind.UNIQUE, ArgKind.HANDLE) for a in row.args)
)


def valid_packet(chooser: Chooser, direction: Magic | None = Magic.REQ) -> Packet:
    """A valid packet of any type from the table (REQ packets by default)."""
    rows = _USABLE if direction is None else tuple(r for r in _USABLE if direction in r.magics)
    spec = chooser.choice(rows)
    magic = direction if direction is not None else chooser.choice(sorted(spec.magics, key=lambda m: m.name))
    return Packet(magic, PacketType(spec.code), tuple(chooser.arg(a.kind) for a in spec.args))


# -- the families ---------------------------------------------------------------------------


def _valid(c: Chooser) -> Case:
    packet = valid_packet(c)
    return Case("valid", packet.to_bytes(), valid=True, note=packet.name)


def _wrong_magic(c: Chooser) -> Case:
    packet = valid_packet(c)
    magic = c.choice((b"\0RES", b"\0REq", b"\0\0\0\0", b"\0RE", b"\0XYZ"))
    if magic == b"\0RE":  # three bytes of magic: everything after shifts by one
        data = magic + packet.to_bytes()[4:]
        return Case("wrong_magic", data, framed=False, note=f"short magic on {packet.name}")
    return Case("wrong_magic", magic + packet.to_bytes()[4:], framed=magic == b"\0RES", note=packet.name)


def _unknown_type(c: Chooser) -> Case:
    code = c.choice((*_RESERVED, _FIRST_UNKNOWN, _FIRST_UNKNOWN + 1, 255, 2**16, 2**31, 2**32 - 1))
    payload = c.binary(16)
    return Case("unknown_type", header(Magic.REQ.value, code, len(payload)) + payload, note=f"type {code}")


def _response_type(c: Chooser) -> Case:
    # A type only the server sends (NOOP, JOB_CREATED, ...) arriving with REQ magic.
    rows = tuple(r for r in _USABLE if Magic.REQ not in r.magics)
    spec = c.choice(rows)
    packet = Packet(Magic.RES, PacketType(spec.code), tuple(c.arg(a.kind) for a in spec.args))
    return Case("response_type", Magic.REQ.value + packet.to_bytes()[4:], note=spec.name)


def _arg_count(c: Chooser) -> Case:
    # Too few: drop trailing arguments (needs 2+, one empty argument is still one).
    # Too many: add NUL-separated extras (only where the last argument is not opaque data,
    # which would swallow the extra NULs legally).
    fewer = tuple(r for r in _REQUESTS if len(r.args) >= 2)
    more = tuple(r for r in _REQUESTS if not r.has_data)
    if c.boolean():
        spec = c.choice(fewer)
        values = [c.arg(a.kind) for a in spec.args][: c.integer(1, len(spec.args) - 1)]
        how = "too few"
    else:
        spec = c.choice(more)
        values = [c.arg(a.kind) for a in spec.args] + [c.arg(ArgKind.FUNCTION) for _ in range(c.integer(1, 3))]
        how = "too many"
    payload = b"\0".join(values) if spec.args or how == "too few" else b"\0" + b"\0".join(values)
    return Case("arg_count", header(Magic.REQ.value, spec.code, len(payload)) + payload, note=f"{how} for {spec.name}")


def _bad_number(c: Chooser) -> Case:
    rows = tuple(r for r in _REQUESTS if any(a.kind is ArgKind.NUMBER for a in r.args))
    spec = c.choice(rows)
    values = [c.arg(a.kind) for a in spec.args]
    i = next(i for i, a in enumerate(spec.args) if a.kind is ArgKind.NUMBER)
    values[i] = c.choice((b"", b"-1", b"1e3", b" 7", b"0x10", b"\xff", b"+1"))
    payload = b"\0".join(values)
    return Case("bad_number", header(Magic.REQ.value, spec.code, len(payload)) + payload, note=spec.name)


def _nul_in_name(c: Chooser) -> Case:
    spec = c.choice(_WITH_NAMES)
    values = [c.arg(a.kind) for a in spec.args]
    i = next(i for i, a in enumerate(spec.args) if a.kind in (ArgKind.FUNCTION, ArgKind.UNIQUE, ArgKind.HANDLE))
    cut = c.integer(0, len(values[i]))
    values[i] = values[i][:cut] + b"\0" + values[i][cut:]
    payload = b"\0".join(values)
    return Case(
        "nul_in_name", header(Magic.REQ.value, spec.code, len(payload)) + payload,
        note=f"NUL inside {spec.args[i].name} of {spec.name}",
    )


def _lying_length(c: Chooser) -> Case:
    packet = valid_packet(c)
    payload = b"\0".join(packet.args)
    lie = len(payload) + c.choice((-1, 1, 2, 12, -len(payload)))
    if lie == len(payload):
        lie += 1
    data = header(Magic.REQ.value, int(packet.type), max(lie, 0)) + payload
    # Too large a size leaves the server waiting for more; too small leaves the rest of the
    # payload to be read as the start of a text line or packet. Either way no boundary.
    return Case("lying_length", data, framed=False, note=f"{packet.name} says {lie}, has {len(payload)}")


def _oversize(c: Chooser) -> Case:
    spec = c.choice(_REQUESTS)
    size = c.choice((2**24, 2**26 + 1, 2**31 - 1, 2**31, 2**32 - 1))
    data = header(Magic.REQ.value, spec.code, size) + c.binary(32)
    return Case("oversize", data, framed=False, note=f"{spec.name} claims {size} bytes")


def _long_argument(c: Chooser) -> Case:
    # A single NUL-terminated argument longer than gearmand's 8 KiB argument buffer.
    spec = c.choice(tuple(r for r in _REQUESTS if len(r.args) > 1))
    values = [c.arg(a.kind) for a in spec.args]
    values[0] = b"n" * c.choice((65, 8191, 8192, 8193, 20000))
    payload = b"\0".join(values)
    return Case("long_argument", header(Magic.REQ.value, spec.code, len(payload)) + payload, note=spec.name)


_ADMIN_WORDS = tuple(cmd.name for cmd in ADMIN_COMMANDS)
_ODD_TOKENS = ("", " ", "\t", "  ", "\0", "\x7f", "\xff", "é", "%s", "+", ".", "-1", "99999999999", "x" * 300)
_ENDINGS = (b"\n", b"\r\n", b"\n\r", b"\r\r\n", b"\r", b"")


def admin_line(c: Chooser, *, allow_shutdown: bool = False) -> Case:
    """An admin text line with known or odd words, odd tokens and odd line endings."""
    words = tuple(w for w in _ADMIN_WORDS if allow_shutdown or w != "shutdown")
    command = c.choice(words)
    if c.boolean():
        command = c.choice((command.upper(), command.title(), command.replace(" ", "  "), command[:3], "x" + command))
    tokens = [c.choice(_ODD_TOKENS) for _ in range(c.integer(0, 6))]
    text = " ".join([command, *tokens]).encode("utf-8")
    if text[:1] == b"\0":
        text = b"x" + text
    ending = c.choice(_ENDINGS)
    # Without "\n" the server is still waiting for the end of the line.
    return Case("admin", text + ending, framed=ending.endswith(b"\n"), valid=ending in (b"\n", b"\r\n"), note=command)


def _admin(c: Chooser) -> Case:
    return admin_line(c)


def _cut_stream(c: Chooser) -> Case:
    stream = b"".join(valid_packet(c).to_bytes() for _ in range(c.integer(1, 3)))
    cut = c.integer(0, len(stream))
    return Case("cut_stream", stream[:cut], framed=False, note=f"cut at {cut} of {len(stream)}")


def _mutated(c: Chooser) -> Case:
    data = bytearray(valid_packet(c).to_bytes())
    for _ in range(c.integer(1, 4)):
        op = c.choice(("flip", "set", "insert", "delete", "duplicate"))
        at = c.integer(0, max(len(data) - 1, 0))
        if op == "flip" and data:
            data[at] ^= 1 << c.integer(0, 7)
        elif op == "set" and data:
            data[at] = c.choice((0, 0xFF, 0x7F, 0x0A, 0x0D, 0x80))
        elif op == "insert":
            data[at:at] = c.choice((b"\0", b"\n", b"\r\n", b"\xff"))
        elif op == "delete" and data:
            del data[at]
        elif op == "duplicate":
            data[at:at] = data[at:at + c.integer(1, 16)]
    return Case("mutated", bytes(data), framed=False)


FAMILIES: dict[str, Callable[[Chooser], Case]] = {
    "valid": _valid,
    "wrong_magic": _wrong_magic,
    "unknown_type": _unknown_type,
    "response_type": _response_type,
    "arg_count": _arg_count,
    "bad_number": _bad_number,
    "nul_in_name": _nul_in_name,
    "lying_length": _lying_length,
    "oversize": _oversize,
    "long_argument": _long_argument,
    "admin": _admin,
    "cut_stream": _cut_stream,
    "mutated": _mutated,
}
"""Every family of generated input, by name. `valid` is the only one the protocol allows."""


# -- Hypothesis strategies ---------------------------------------------------------------


def family(name: str) -> st.SearchStrategy[Case]:
    """Cases from one family, e.g. ``family("lying_length")``."""
    make = FAMILIES[name]

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        return make(HypothesisChooser(draw))

    return cases()


def near_valid(names: Sequence[str] | None = None) -> st.SearchStrategy[Case]:
    """Cases from every malformed family (or the ones named): almost-right packets and lines."""
    chosen = [n for n in FAMILIES if n != "valid"] if names is None else list(names)
    return st.one_of([family(n) for n in chosen])


def valid_cases() -> st.SearchStrategy[Case]:
    """Valid REQ packets of every type in the table, as cases."""
    return family("valid")


def admin_lines(allow_shutdown: bool = False) -> st.SearchStrategy[Case]:
    """Admin text lines, known and odd, with odd endings."""

    @st.composite
    def lines(draw: st.DrawFn) -> Case:
        return admin_line(HypothesisChooser(draw), allow_shutdown=allow_shutdown)

    return lines()


@st.composite
def cut_streams(draw: st.DrawFn, direction: Magic | None = Magic.REQ, max_packets: int = 6) -> tuple[bytes, int]:
    """A stream of valid packets and a cut point anywhere inside it: (stream, cut)."""
    chooser = HypothesisChooser(draw)
    stream = b"".join(valid_packet(chooser, direction).to_bytes() for _ in range(draw(st.integers(0, max_packets))))
    return stream, draw(st.integers(min_value=0, max_value=len(stream)))


def malformed_streams(max_cases: int = 6) -> st.SearchStrategy[bytes]:
    """Byte streams made of valid and malformed cases back to back."""
    return st.lists(st.one_of(valid_cases(), near_valid()), max_size=max_cases).map(
        lambda cases: b"".join(case.data for case in cases)
    )


assert HEADER_SIZE == _HEADER.size
