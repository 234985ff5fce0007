"""Table-driven encoder and sans-IO incremental decoder: the codec's public face.

Nothing here is written per packet type: both directions interpret `gearspec.spec.PACKETS`.

    decoder = Decoder(accept=Magic.REQ)      # what a server reads
    decoder.receive_data(chunk)              # any chunking; b"" means end of stream
    for event in decoder:                    # Packet, AdminLine (RawPacket when lenient)
        ...                                  # stops when more bytes are needed

Binary packets and admin text lines share a connection: a NUL first byte starts a packet,
any other byte starts a text line ending in "\\n" (one "\\r" before it is dropped).

The work is done by one module per job, re-exported here: `gearspec.events` (Packet,
RawPacket, AdminLine, NEED_DATA, CLOSED), `gearspec.plans` (every per-type plan, derived
from the table), `gearspec.decoder` (the pure-Python decoder) and `gearspec.accelerated`
(the hand-off to the C hot path).
"""

from __future__ import annotations

from gearspec.accelerated import ACCELERATED, Decoder
from gearspec.decoder import DEFAULT_MAX_LINE, DEFAULT_MAX_PACKET_SIZE, PythonDecoder
from gearspec.events import CLOSED, NEED_DATA, AdminLine, Event, Packet, RawPacket
from gearspec.spec import Magic, PacketType

__all__ = [
    "ACCELERATED",
    "CLOSED",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_PACKET_SIZE",
    "NEED_DATA",
    "AdminLine",
    "Decoder",
    "Event",
    "Packet",
    "PacketType",
    "PythonDecoder",
    "RawPacket",
    "decode",
    "encode",
]


def encode(type: PacketType | int | str, *args: object, magic: Magic | None = None, **named: object) -> bytes:
    """Bytes of one packet, arguments checked against the table.

    The magic defaults to the only one the type has; WORK_* packets travel both ways and
    need it given.
    """
    if magic is None:
        return Packet.make(type, *args, **named).to_bytes()
    return Packet._build(magic, type, args, named).to_bytes()


def decode(data: bytes, accept: Magic | None = None, *, lenient: bool = False) -> list[Event]:
    """Every event in a complete byte string; raises if it ends inside a packet."""
    decoder = Decoder(accept, lenient=lenient)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    return list(decoder)  # the end of stream raises if bytes were left over
