"""Golden wire vectors: bytes on the wire with what a decoder must make of them.

The vectors live in ``packets.json`` (package data, one vector per line) so that the codec
tests, the scapy layer's tests, the tshark oracle and the conformance suite all read the
same cases. Each vector is a byte stream, the direction it travels, and the expected
outcome in order: packets, admin lines and errors (code, stream offset, fatal or not). A
strict decoder must report exactly that; a lenient decoder either gives back events whose
bytes join to the input again (``lenient_error is None``) or raises ``lenient_error``.

    from gearspec.vectors import load_vectors
    for vector in load_vectors():
        vector.id, vector.data, vector.direction, vector.expect

The file is written by ``python -m gearspec.vectors._build`` from hand-written fields and
`struct`, never by the codec it checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from gearspec.codec import AdminLine, Packet
from gearspec.errors import ErrorCode
from gearspec.spec import Magic, PacketType, packet_spec

__all__ = ["DIRECTIONS", "Expectation", "ExpectedError", "Vector", "load_vectors", "vector"]

# The names used in the file (and by `gearspec decode --direction`) for the magic expected.
DIRECTIONS: dict[str, Magic | None] = {"to-server": Magic.REQ, "from-server": Magic.RES, "any": None}


@dataclass(frozen=True, slots=True)
class ExpectedError:
    """A `ProtocolError` the decoder must raise: its code, stream offset and fatality."""

    code: ErrorCode
    offset: int
    fatal: bool


Expectation = Packet | AdminLine | ExpectedError


@dataclass(frozen=True, slots=True)
class Vector:
    """One golden case."""

    id: str  # stable, e.g. "packet/07-SUBMIT_JOB" or "malformed/bad-magic"
    description: str
    direction: Magic | None  # the magic the reading side expects; None reads either
    data: bytes
    expect: tuple[Expectation, ...]  # what a strict decoder reports, in stream order
    lenient_error: ExpectedError | None  # None: lenient decoding round-trips the bytes
    source: str = ""  # where the rule comes from, when it is not obvious

    @property
    def malformed(self) -> bool:
        """True when a strict decoder raises somewhere in this stream."""
        return any(isinstance(e, ExpectedError) for e in self.expect)

    @property
    def packets(self) -> tuple[Packet, ...]:
        return tuple(e for e in self.expect if isinstance(e, Packet))

    @property
    def direction_name(self) -> str:
        return next(name for name, magic in DIRECTIONS.items() if magic is self.direction)


def _bytes(value: str | dict[str, str]) -> bytes:
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return value.encode("utf-8")


def _error(raw: dict[str, Any]) -> ExpectedError:
    return ExpectedError(ErrorCode(raw["code"]), int(raw["offset"]), bool(raw["fatal"]))


def _expectation(raw: dict[str, Any]) -> Expectation:
    if "packet" in raw:
        item = raw["packet"]
        spec = packet_spec(int(item["type"]))
        if spec.name != item["name"] or [a.name for a in spec.args] != list(item["args"]):
            raise ValueError(f"vector packet does not match the table: {item}")
        return Packet(Magic[item["magic"]], PacketType(spec.code), tuple(_bytes(v) for v in item["args"].values()))
    if "admin" in raw:
        return AdminLine(_bytes(raw["admin"]), raw["terminator"].encode("latin-1"))
    if "error" in raw:
        return _error(raw["error"])
    raise ValueError(f"unknown expectation in vector file: {raw}")


@cache
def load_vectors() -> tuple[Vector, ...]:
    """Every golden vector, in file order."""
    text = resources.files(__name__).joinpath("packets.json").read_text(encoding="utf-8")
    out = []
    for raw in json.loads(text):
        lenient = raw.get("lenient", "roundtrip")
        out.append(
            Vector(
                id=raw["id"],
                description=raw["description"],
                direction=DIRECTIONS[raw["direction"]],
                data=bytes.fromhex(raw["hex"]),
                expect=tuple(_expectation(e) for e in raw["expect"]),
                lenient_error=None if lenient == "roundtrip" else _error(lenient["error"]),
                source=raw.get("source", ""),
            )
        )
    return tuple(out)


def vector(id: str) -> Vector:
    """One vector by its id."""
    for v in load_vectors():
        if v.id == id:
            return v
    raise KeyError(f"no golden vector {id!r}")
