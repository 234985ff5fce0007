"""Pcap files for Gearman traffic: write synthetic TCP conversations, read and reassemble them.

Pure Python, no scapy: the dissector, the proxy's pcap output and the tshark cross-check all
use this module.

Writing: `PcapWriter` writes classic pcap (Ethernet, IPv4, TCP, checksums filled in) and
`TcpConversation` turns "the client sent these bytes" into a handshake, data segments of any
size, acknowledgements and a closing FIN exchange, so that Wireshark reassembles it as a
real connection.

Reading: `read_frames` reads classic pcap (either byte order, micro- or nanosecond stamps)
and pcapng (what dumpcap and tshark write by default) with Ethernet, Linux cooked (v1, v2),
raw IP and BSD loopback link layers, IPv4 and IPv6. `reassemble` groups TCP segments into
connections and puts each direction back in sequence order (out-of-order segments,
retransmissions and overlaps handled), yielding `Chunk` values with the time of the segment
that delivered them.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gearspec.errors import GearspecError
from gearspec.spec import DEFAULT_PORT

__all__ = [
    "FROM_SERVER",
    "SUPPORTED_LINKTYPES",
    "TO_SERVER",
    "Chunk",
    "Frame",
    "PcapError",
    "PcapWriter",
    "Segment",
    "TcpConversation",
    "TcpStream",
    "read_frames",
    "read_segments",
    "reassemble",
]

TO_SERVER = "to_server"  # client or worker -> job server
FROM_SERVER = "from_server"  # job server -> client or worker

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2}
)

_TCP_FIN, _TCP_SYN, _TCP_RST, _TCP_PSH, _TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class PcapError(GearspecError):
    """A capture file that cannot be read (not pcap/pcapng, truncated header, ...)."""


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: its time (seconds since the epoch), link type and bytes."""

    number: int  # 1-based, as Wireshark numbers frames
    time: float
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment taken out of a frame."""

    frame: int
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    flags: int
    payload: bytes

    @property
    def syn(self) -> bool:
        return bool(self.flags & _TCP_SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & _TCP_FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & _TCP_RST)


def read_frames(source: str | Path | BinaryIO) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            yield from _read_frames(fh)
    else:
        yield from _read_frames(source)


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise PcapError(f"file ends inside the {what} ({len(data)} of {n} bytes)")
    return data


def _read_frames(fh: BinaryIO) -> Iterator[Frame]:
    head = fh.read(4)
    if len(head) < 4:
        raise PcapError("not a capture file: fewer than 4 bytes")
    (magic_le,) = struct.unpack("<I", head)
    (magic_be,) = struct.unpack(">I", head)
    if magic_le == _PCAPNG_SHB:
        yield from _read_pcapng(fh, head)
        return
    for endian, value in (("<", magic_le), (">", magic_be)):
        if value in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
            scale = 1e-6 if value == _PCAP_MAGIC_US else 1e-9
            rest = _read_exact(fh, 20, "pcap file header")
            linktype = struct.unpack(endian + "HHiIII", rest)[5] & 0x0FFFFFFF
            record = struct.Struct(endian + "IIII")
            number = 0
            while True:
                raw = fh.read(16)
                if not raw:
                    return
                if len(raw) < 16:
                    raise PcapError(f"file ends inside the header of frame {number + 1}")
                sec, frac, caplen, _ = record.unpack(raw)
                number += 1
                yield Frame(number, sec + frac * scale, linktype, _read_exact(fh, caplen, f"frame {number}"))
    raise PcapError(f"not a pcap or pcapng file (magic {head.hex()})")


def _read_pcapng(fh: BinaryIO, head: bytes) -> Iterator[Frame]:
    endian = "<"
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per timestamp unit)
    number = 0
    block_type_raw = head
    while True:
        if not block_type_raw:
            return
        if len(block_type_raw) < 4:
            raise PcapError("file ends inside a pcapng block header")
        length_raw = _read_exact(fh, 4, "pcapng block header")
        if struct.unpack("<I", block_type_raw)[0] == _PCAPNG_SHB:
            bom = _read_exact(fh, 4, "section header")
            endian = "<" if struct.unpack("<I", bom)[0] == 0x1A2B3C4D else ">"
            (length,) = struct.unpack(endian + "I", length_raw)
            _read_exact(fh, length - 12, "section header")
            interfaces = []
            block_type_raw = fh.read(4)
            continue
        (block_type,) = struct.unpack(endian + "I", block_type_raw)
        (length,) = struct.unpack(endian + "I", length_raw)
        if length < 12 or length % 4:
            raise PcapError(f"bad pcapng block length {length}")
        body = _read_exact(fh, length - 8, "pcapng block")[:-4]
        if block_type == 1:  # interface description
            linktype = struct.unpack(endian + "H", body[:2])[0]
            interfaces.append((linktype, _if_tsresol(body[8:], endian)))
        elif block_type in (6, 3):  # enhanced / simple packet
            if block_type == 6:
                iface, hi, lo, caplen, _ = struct.unpack(endian + "IIIII", body[:20])
                data = body[20:20 + caplen]
                if iface >= len(interfaces):
                    raise PcapError(f"packet refers to undeclared interface {iface}")
                linktype, unit = interfaces[iface]
                stamp = ((hi << 32) | lo) * unit
            else:
                linktype, _ = interfaces[0] if interfaces else (LINKTYPE_ETHERNET, 1e-6)
                data, stamp = body[4:], 0.0
            number += 1
            yield Frame(number, stamp, linktype, data)
        block_type_raw = fh.read(4)


def _if_tsresol(options: bytes, endian: str) -> float:
    pos = 0
    while pos + 4 <= len(options):
        code, size = struct.unpack(endian + "HH", options[pos:pos + 4])
        if code == 0:
            break
        if code == 9 and size >= 1:
            value = options[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        pos += 4 + ((size + 3) & ~3)
    return 1e-6


def _ip_payload(frame: Frame) -> bytes | None:
    data, link = frame.data, frame.linktype
    if link == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, pos = struct.unpack(">H", data[12:14])[0], 14
        while ethertype in (0x8100, 0x88A8) and len(data) >= pos + 4:  # VLAN tags
            ethertype, pos = struct.unpack(">H", data[pos + 2:pos + 4])[0], pos + 4
        return data[pos:] if ethertype in (0x0800, 0x86DD) else None
    if link == LINKTYPE_LINUX_SLL:
        return data[16:] if len(data) >= 16 and data[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if link == LINKTYPE_LINUX_SLL2:
        return data[20:] if len(data) >= 20 and data[0:2] in (b"\x08\x00", b"\x86\xdd") else None
    if link in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return data
    if link == LINKTYPE_NULL:
        return data[4:]
    return None


def _tcp_segment(frame: Frame) -> Segment | None:
    ip = _ip_payload(frame)
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4:
        if len(ip) < 20:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6 or struct.unpack(">H", ip[6:8])[0] & 0x1FFF:  # not TCP, or a later fragment
            return None
        src, dst = str(ipaddress.IPv4Address(ip[12:16])), str(ipaddress.IPv4Address(ip[16:20]))
        tcp = ip[ihl:total] if total else ip[ihl:]  # total 0: TSO-offloaded capture
    elif version == 6:
        if len(ip) < 40 or ip[6] != 6:
            return None
        src, dst = str(ipaddress.IPv6Address(ip[8:24])), str(ipaddress.IPv6Address(ip[24:40]))
        plen = struct.unpack(">H", ip[4:6])[0]
        tcp = ip[40:40 + plen] if plen else ip[40:]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq, _, off_flags = struct.unpack(">HHIIH", tcp[:14])
    offset = (off_flags >> 12) * 4
    return Segment(frame.number, frame.time, (src, sport), (dst, dport), seq, off_flags & 0x3F, tcp[offset:])


def read_segments(source: str | Path | BinaryIO) -> Iterator[Segment]:
    """Every TCP segment in a capture (other frames are skipped)."""
    for frame in read_frames(source):
        segment = _tcp_segment(frame)
        if segment is not None:
            yield segment


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes newly in order on one direction of one connection."""

    stream: int
    direction: str  # TO_SERVER or FROM_SERVER
    time: float
    frame: int
    data: bytes  # b"" marks the end of this direction (FIN or RST)


@dataclass
class TcpStream:
    """One TCP connection between a Gearman peer and a job server."""

    index: int
    client: tuple[str, int]
    server: tuple[str, int]
    first_time: float
    _next: dict[str, int | None] = field(default_factory=lambda: {TO_SERVER: None, FROM_SERVER: None})
    _pending: dict[str, dict[int, tuple[bytes, float, int]]] = field(
        default_factory=lambda: {TO_SERVER: {}, FROM_SERVER: {}}
    )
    _fin_seq: dict[str, int | None] = field(default_factory=lambda: {TO_SERVER: None, FROM_SERVER: None})
    ended: set[str] = field(default_factory=set)
    gaps: dict[str, int] = field(default_factory=lambda: {TO_SERVER: 0, FROM_SERVER: 0})

    def label(self) -> str:
        return f"{self.client[0]}:{self.client[1]} -> {self.server[0]}:{self.server[1]}"


_SEQ_MOD = 1 << 32


def _seq_after(a: int, b: int) -> int:
    """a - b in sequence space (negative when a is before b)."""
    d = (a - b) % _SEQ_MOD
    return d - _SEQ_MOD if d >= 1 << 31 else d


def reassemble(segments: Iterable[Segment], port: int = DEFAULT_PORT) -> Iterator[tuple[TcpStream, Chunk]]:
    """Put each direction of each TCP connection to or from `port` back in order.

    The side using `port` is the job server. Connections are numbered in order of first
    appearance (as Wireshark's tcp.stream). A capture that starts mid-connection is picked
    up at its first segment in each direction. Data that never became contiguous (a gap in
    the capture) is delivered at the end after the gap, and counted in `TcpStream.gaps`.
    """
    streams: dict[tuple[tuple[str, int], tuple[str, int]], TcpStream] = {}
    count = 0
    for seg in segments:
        if seg.dst[1] == port:
            key, direction = (seg.src, seg.dst), TO_SERVER
        elif seg.src[1] == port:
            key, direction = (seg.dst, seg.src), FROM_SERVER
        else:
            continue
        stream = streams.get(key)
        if stream is not None and seg.syn and not seg.flags & _TCP_ACK and stream.ended:
            stream = None  # port reuse: a new connection on the same addresses
        if stream is None:
            stream = TcpStream(count, key[0], key[1], seg.time)
            streams[key] = stream
            count += 1
        yield from ((stream, c) for c in _accept(stream, direction, seg))
    for stream in streams.values():
        for direction in (TO_SERVER, FROM_SERVER):
            yield from ((stream, c) for c in _flush(stream, direction))


def _accept(stream: TcpStream, direction: str, seg: Segment) -> Iterator[Chunk]:
    if direction in stream.ended:
        return
    seq = seg.seq
    if seg.syn:
        stream._next[direction] = (seq + 1) % _SEQ_MOD
        seq = (seq + 1) % _SEQ_MOD
    expected = stream._next[direction]
    if expected is None:  # capture started mid-connection
        expected = stream._next[direction] = seq
    if seg.fin:
        stream._fin_seq[direction] = (seq + len(seg.payload)) % _SEQ_MOD
    if seg.payload:
        pending = stream._pending[direction]
        old = pending.get(seq)
        if old is None or len(old[0]) < len(seg.payload):
            pending[seq] = (seg.payload, seg.time, seg.frame)
    yield from _drain(stream, direction)
    if seg.rst:
        yield from _flush(stream, direction)


def _drain(stream: TcpStream, direction: str) -> Iterator[Chunk]:
    pending = stream._pending[direction]
    while pending:
        expected = stream._next[direction]
        assert expected is not None
        progressed = False
        for seq in sorted(pending, key=lambda s: _seq_after(s, expected)):
            delta = _seq_after(seq, expected)
            if delta > 0:
                break
            payload, time, frame = pending.pop(seq)
            fresh = payload[-delta:] if delta < 0 else payload
            if delta < 0 and -delta >= len(payload):
                continue  # a retransmission of bytes already delivered
            stream._next[direction] = (expected + len(fresh)) % _SEQ_MOD
            yield Chunk(stream.index, direction, time, frame, fresh)
            progressed = True
            break
        if not progressed:
            break
    if stream._fin_seq[direction] is not None and stream._next[direction] == stream._fin_seq[direction] and not pending:
        stream.ended.add(direction)
        yield Chunk(stream.index, direction, 0.0, 0, b"")


def _flush(stream: TcpStream, direction: str) -> Iterator[Chunk]:
    """End of capture (or RST): deliver what is left after any gap, then end the direction."""
    if direction in stream.ended:
        return
    pending = stream._pending[direction]
    while pending:
        expected = stream._next[direction]
        assert expected is not None
        seq = min(pending, key=lambda s: _seq_after(s, expected))
        gap = _seq_after(seq, expected)
        if gap > 0:
            stream.gaps[direction] += gap
            stream._next[direction] = seq
        yield from _drain(stream, direction)
    stream.ended.add(direction)
    yield Chunk(stream.index, direction, 0.0, 0, b"")


# -- writing ------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """Writes a classic pcap file (microsecond stamps, Ethernet link layer)."""

    def __init__(self, target: str | Path | BinaryIO, snaplen: int = 262144) -> None:
        if isinstance(target, (str, Path)):
            self._fh: BinaryIO = open(target, "wb")
            self._owns = True
        else:
            self._fh, self._owns = target, False
        self._fh.write(struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        self._ip_id = 0

    def write_frame(self, time: float, data: bytes) -> None:
        sec = int(time)
        usec = min(round((time - sec) * 1e6), 999_999)
        self._fh.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)

    def write_tcp(
        self, time: float, src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
        payload: bytes = b"",
    ) -> None:
        """One Ethernet/IPv4/TCP frame with correct checksums."""
        sip, dip = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
        header = struct.pack(">HHIIBBHHH", src[1], dst[1], seq % _SEQ_MOD, ack % _SEQ_MOD, 5 << 4, flags, 65535, 0, 0)
        pseudo = sip + dip + struct.pack(">BBH", 0, 6, len(header) + len(payload))
        tcp_sum = _checksum(pseudo + header + payload)
        tcp = header[:16] + struct.pack(">H", tcp_sum) + header[18:] + payload
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self._ip_id, 0x4000, 64, 6, 0, sip, dip)
        ip = ip[:10] + struct.pack(">H", _checksum(ip)) + ip[12:]
        ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
        self.write_frame(time, ether + ip + tcp)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if self._owns:
            self._fh.close()
        else:
            self._fh.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpConversation:
    """A synthetic TCP connection written into a `PcapWriter`.

    `send(TO_SERVER, data)` writes the bytes as one segment (or several of at most
    `segment_size` bytes) followed by the peer's ACK. Time advances by `step` per frame
    unless `time` is given.
    """

    def __init__(
        self, writer: PcapWriter, client: tuple[str, int], server: tuple[str, int], *,
        start: float = 1_700_000_000.0, step: float = 0.001, handshake: bool = True,
    ) -> None:
        self.writer = writer
        self.client, self.server = client, server
        self.time = start
        self.step = step
        self._seq = {TO_SERVER: 1000, FROM_SERVER: 500_000}
        self.frames = 0
        if handshake:
            self._frame(TO_SERVER, _TCP_SYN, b"", syn=True)
            self._frame(FROM_SERVER, _TCP_SYN | _TCP_ACK, b"", syn=True)
            self._frame(TO_SERVER, _TCP_ACK, b"")

    def _ends(self, direction: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (self.client, self.server) if direction == TO_SERVER else (self.server, self.client)

    def _frame(self, direction: str, flags: int, payload: bytes, syn: bool = False, time: float | None = None) -> None:
        other = FROM_SERVER if direction == TO_SERVER else TO_SERVER
        src, dst = self._ends(direction)
        ack = self._seq[other] if flags & _TCP_ACK else 0
        self.time = self.time + self.step if time is None else time
        self.writer.write_tcp(self.time, src, dst, self._seq[direction], ack, flags, payload)
        self._seq[direction] += len(payload) + (1 if syn or flags & _TCP_FIN else 0)
        self.frames += 1

    def send(
        self, direction: str, data: bytes, *, segment_size: int | None = None, ack: bool = True,
        time: float | None = None,
    ) -> None:
        """Write `data` travelling in `direction`, cut into segments of `segment_size`."""
        size = segment_size or max(len(data), 1)
        for start in range(0, len(data), size):
            self._frame(direction, _TCP_PSH | _TCP_ACK, data[start:start + size], time=time)
            time = None
        if ack and data:
            other = FROM_SERVER if direction == TO_SERVER else TO_SERVER
            self._frame(other, _TCP_ACK, b"")

    def retransmit(self, direction: str, data: bytes) -> None:
        """Write `data` again at the position it was first sent (a TCP retransmission)."""
        self._seq[direction] -= len(data)
        self._frame(direction, _TCP_PSH | _TCP_ACK, data)

    def close(self) -> None:
        """FIN from the client, FIN from the server, final ACK."""
        self._frame(TO_SERVER, _TCP_FIN | _TCP_ACK, b"")
        self._frame(FROM_SERVER, _TCP_FIN | _TCP_ACK, b"")
        self._frame(TO_SERVER, _TCP_ACK, b"")
