"""Hypothesis strategies derived from the packet table (import needs `hypothesis`).

`ARG_STRATEGIES` maps every `ArgKind` to a strategy of valid wire values, simplest first so
that shrinking gives small examples; `packets()` builds valid packets of any type from the
table, so a new row is covered without new code. Other projects may import these.
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from gearspec.codec import Packet
from gearspec.spec import PACKETS, ArgKind, Magic, PacketSpec, PacketType

__all__ = ["ARG_STRATEGIES", "arg_values", "chunkings", "near_headers", "packet_streams", "packet_types", "packets"]

_NO_NUL = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b""))
_WORDISH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.:", max_size=24).map(str.encode)

ARG_STRATEGIES: dict[ArgKind, st.SearchStrategy[bytes]] = {
    ArgKind.FUNCTION: st.one_of(_WORDISH, _NO_NUL),
    ArgKind.UNIQUE: st.one_of(_WORDISH, _NO_NUL.map(lambda b: b[:64])),
    ArgKind.HANDLE: st.one_of(_WORDISH, _NO_NUL),
    ArgKind.NUMBER: st.integers(min_value=0, max_value=2**63).map(lambda n: str(n).encode()),
    ArgKind.TOKEN: st.one_of(_WORDISH, _NO_NUL),
    ArgKind.TEXT: _NO_NUL,
    ArgKind.DATA: st.binary(max_size=300),
}


def arg_values(spec: PacketSpec) -> st.SearchStrategy[tuple[bytes, ...]]:
    """Valid argument tuples for one packet type."""
    return st.tuples(*(ARG_STRATEGIES[a.kind] for a in spec.args))


_USABLE = [row for row in PACKETS if not row.reserved]


def packet_types(direction: Magic | None = None) -> st.SearchStrategy[PacketSpec]:
    rows = [r for r in _USABLE if direction is None or direction in r.magics]
    return st.sampled_from(rows)


@st.composite
def packets(draw: st.DrawFn, direction: Magic | None = None) -> Packet:
    """A valid packet of any type (optionally only those sent with `direction` magic)."""
    spec = draw(packet_types(direction))
    magic = direction if direction is not None else draw(st.sampled_from(sorted(spec.magics, key=lambda m: m.name)))
    return Packet(magic, PacketType(spec.code), draw(arg_values(spec)))


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` cut at arbitrary points."""
    if not data:
        return []
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(data) - 1)), max_size=12)))
    bounds = [0, *[c for c in cuts if c < len(data)], len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def near_headers() -> st.SearchStrategy[bytes]:
    """12-byte headers near the valid ones, for garbage: real and bent magic, small and
    huge types and sizes (a decoder's edge cases lie there)."""
    return st.builds(
        lambda magic, code, size: magic + code.to_bytes(4, "big") + size.to_bytes(4, "big"),
        st.sampled_from([b"\0REQ", b"\0RES", b"\0REX", b"\0\0\0\0"]),
        st.one_of(st.integers(0, 45), st.integers(0, 2**32 - 1)),
        st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)),
    )


def packet_streams(direction: Magic | None = None, max_size: int = 12) -> st.SearchStrategy[list[Packet]]:
    return st.lists(packets(direction), max_size=max_size)
