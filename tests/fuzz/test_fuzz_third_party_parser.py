"""The parser properties pointed at a third-party parser: python gear's packet reader.

gear's server reads packets with `Connection.readPacket` (gear/__init__.py), which unpacks
the size field as a *signed* 32-bit integer (`struct.unpack('!4sii', ...)`). A size of
2**31 or more becomes negative, the packet "ends" before it starts, and the same bytes are
returned as a packet again and again. The fuzzer must find that; valid streams must pass.
"""

from __future__ import annotations

import os

import pytest
from gearspec.fuzz.parsers import ParserFailure, fuzz_parser, valid_streams
from hypothesis import given, settings

from gearspec.codec import Packet

try:
    import gear
except ImportError:  # a peer missing locally may skip; under CI it must fail (tests/conftest.py)
    if os.environ.get("CI"):
        raise
    pytest.skip("python gear is not installed (pip install gear)", allow_module_level=True)


class _BytesSocket:
    """Just enough of a socket for gear's reader: hands out the bytes, then end of stream."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def setblocking(self, flag: bool) -> None:
        pass

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def gear_server_parse(data: bytes) -> list[tuple[bytes, int, bytes]]:
    """Every binary packet gear's server-side reader finds in `data`, as (magic, type, payload)."""
    connection = gear.ServerConnection(("127.0.0.1", 0), _BytesSocket(data), False, None)
    found: list[tuple[bytes, int, bytes]] = []
    for _ in range(len(data) + 2):  # each packet or line consumes at least one byte
        item = connection.readPacket()
        if item is None:
            return found
        if isinstance(item, gear.Packet):
            found.append((bytes(item.code), item.ptype, bytes(item.data)))
    raise RuntimeError(f"gear's reader made no progress on {data[:40]!r}")


def same_packets(packets: list[Packet], result: object) -> None:
    assert result == [(p.magic.value, int(p.type), b"\0".join(p.args)) for p in packets]


def test_gear_reads_valid_streams_like_gearspec() -> None:
    @settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @given(valid_streams())
    def valid(packets: list[Packet]) -> None:
        same_packets(packets, gear_server_parse(b"".join(map(bytes, packets))))

    valid()


def test_fuzzer_finds_gears_signed_size_bug() -> None:
    test = fuzz_parser(gear_server_parse, allowed=(gear.InvalidDataError,), max_examples=500)
    with pytest.raises(ParserFailure, match="no progress"):
        test()
