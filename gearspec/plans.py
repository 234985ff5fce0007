"""Every per-type plan the codec works from, derived from `gearspec.spec.PACKETS` once at import.

One shape, `Plan`, serves the encoder (`rules`), the decoders (`nargs`, `has_data`,
`numbers`) and the C hot path (which reads the same fields by name, once, at set-up). The
framing facts the hot paths share live here too: the header layouts, the one "large payload"
threshold, and the byte table of the NUMBER rule (derived from `gearspec.spec.is_number`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, NamedTuple, cast

from gearspec.spec import (  # the _-names: the validators the encoder inlines (see _check_for)
    KIND_RULES,
    PACKETS,
    Arg,
    Magic,
    PacketSpec,
    PacketType,
    _never,
    _no_nul,
    _number_problem,
    is_number,
)

__all__ = [
    "FRAME_PLANS",
    "HEADER",
    "KEY_AND_SIZE",
    "LARGE_PAYLOAD",
    "MAGIC_BY_BYTES",
    "NUMBER_BYTES",
    "PLANS",
    "ArgRule",
    "Plan",
    "frame_key",
]

HEADER: Final = struct.Struct(">4sII")  # magic, type, payload size
KEY_AND_SIZE: Final = struct.Struct(">QI")  # magic + type as one integer (a plan's key), then the payload size
MAGIC_BY_BYTES: Final = {m.value: m for m in Magic}

# Payload bytes from which a hot path treats a packet as bulk: arguments are cut out one by
# one (not sliced then split), a straddling packet's data is assembled straight from the
# receives (C), and the broker keeps the data as its own piece of a vectored write.
LARGE_PAYLOAD: Final = 8192

# The NUMBER rule as the C hot path reads it: byte b is a digit when NUMBER_BYTES[b] is 1.
NUMBER_BYTES: Final = bytes(is_number(bytes([b])) for b in range(256))
assert not is_number(b""), "the C hot path rejects an empty number, as the rule does"

# How the encoder checks one argument: the table's common validators, inlined. Plain ints,
# not an Enum: reading an Enum member costs a lookup through the metaclass on Python 3.11.
CHECK_ANY = 0  # opaque data in last place: anything goes
CHECK_NO_NUL = 1  # no NUL byte (the kind's rule, or the argument is not last)
CHECK_NUMBER = 2  # the NUMBER rule (whose digits hold no NUL, last or not)
CHECK_CALL = 3  # an unknown validator: call it, and refuse NUL (not last)
CHECK_CALL_LAST = 4  # an unknown validator in last place: call it


def _check_for(problem: Callable[[bytes], str | None], is_last: bool) -> int:
    # Identity with spec.py's validators keeps this exact: a new validator is simply called.
    if problem is _never:
        return CHECK_ANY if is_last else CHECK_NO_NUL
    if problem is _no_nul:
        return CHECK_NO_NUL
    if problem is _number_problem:
        return CHECK_NUMBER
    return CHECK_CALL_LAST if is_last else CHECK_CALL


class ArgRule(NamedTuple):
    """How the encoder turns one argument into bytes and checks it."""

    arg: Arg
    encode: Callable[[object], bytes]
    problem: Callable[[bytes], str | None]  # the kind's validator: words what is wrong
    check: int  # CHECK_*: the validator, inlined


class Plan(NamedTuple):
    """One packet type as the codec works it (with one magic, when keyed by header in FRAME_PLANS).

    The hot paths unpack the first five fields; keep them first.
    """

    magic: Magic | None  # the magic of a framing plan (FRAME_PLANS); None in PLANS
    type: PacketType
    nargs: int
    has_data: bool  # the last argument is opaque data (may hold NUL)
    numbers: tuple[int, ...]  # indices of the NUMBER arguments
    spec: PacketSpec
    magics: tuple[Magic, ...]  # every magic the type travels with
    rules: tuple[ArgRule, ...]  # per argument, for the encoder


def _plan(spec: PacketSpec) -> Plan:
    last = len(spec.args) - 1
    return Plan(
        magic=None,
        type=PacketType(spec.code),
        nargs=len(spec.args),
        has_data=spec.has_data,
        numbers=tuple(i for i, a in enumerate(spec.args) if KIND_RULES[a.kind].problem is _number_problem),
        spec=spec,
        magics=tuple(spec.magics),
        rules=tuple(
            ArgRule(arg, KIND_RULES[arg.kind].encode, KIND_RULES[arg.kind].problem,
                    _check_for(KIND_RULES[arg.kind].problem, i == last))
            for i, arg in enumerate(spec.args)
        ),
    )


PLANS: Final[dict[int, Plan]] = {spec.code: _plan(spec) for spec in PACKETS if not spec.reserved}


def frame_key(magic: Magic, code: int) -> int:
    """A plan's key in FRAME_PLANS: the first 8 header bytes (magic + type) as one big-endian integer."""
    return int.from_bytes(magic.value + code.to_bytes(4, "big"), "big")


# The hot paths' plans, keyed by the header's first 8 bytes read as one integer (no bytes
# object to allocate and hash), one table per accepted magic (None: either): one dict lookup
# replaces the magic, type, direction and sender checks.
FRAME_PLANS: Final[dict[Magic | None, dict[int, Plan]]] = {
    accept: {
        frame_key(magic, code): plan._replace(magic=magic)
        for code, plan in PLANS.items()
        for magic in plan.magics
        if accept is None or magic is accept
    }
    for accept in (None, Magic.REQ, Magic.RES)
}

# The same plans as exact tuples (same fields, same order; the rules too) for the pure-Python
# hot paths: CPython 3.11 unpacks an exact tuple with a specialised instruction, a NamedTuple
# through the generic path (about 10% of Packet.make). The C core reads FRAME_PLANS by name.
def _as_tuple(plan: Plan) -> Plan:
    return cast(Plan, (*plan[:-1], tuple(tuple(rule) for rule in plan.rules)))


PLAN_TUPLES: Final[dict[int, Plan]] = {code: _as_tuple(plan) for code, plan in PLANS.items()}
FRAME_PLAN_TUPLES: Final[dict[Magic | None, dict[int, Plan]]] = {
    accept: {key: _as_tuple(plan) for key, plan in keyed.items()} for accept, keyed in FRAME_PLANS.items()
}
