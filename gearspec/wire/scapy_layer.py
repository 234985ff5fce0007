"""A scapy layer for Gearman, generated from `gearspec.spec.PACKETS`.

scapy is GPL-2.0, so it is an optional extra (`pip install gearspec[scapy]`) and imported
only when the layer is asked for:

    from gearspec.wire.scapy_layer import layers, gearman_packets
    L = layers()                               # builds the classes, binds TCP port 4730
    pkt = L.Gearman(b"\\0REQ\\0\\0\\0\\x07...")   # header fields, then per-type argument fields
    pkt[L.args["SUBMIT_JOB"]].function         # b"reverse"
    raw = bytes(L.Gearman(magic=b"\\0REQ", type=7) / L.args["SUBMIT_JOB"](function=b"f", unique=b"", data=b"x"))
    for item in gearman_packets(rdpcap("capture.pcap")):   # reassembled per TCP direction
        item.stream, item.direction, item.time, item.packet

`Gearman` dispatches on the first byte: NUL starts a binary packet (`Gearman`), anything
else is an admin text line (`GearmanAdmin`). Scapy dissects one TCP segment at a time, so a
segment holding half a packet or several packets cannot be decoded right by the TCP binding
alone; `gearman_packets` reassembles each direction first (gearspec.wire.pcap) and cuts it
with gearspec's decoder, then hands each packet's bytes to the layer.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gearspec.codec import AdminLine, Decoder
from gearspec.errors import ProtocolError
from gearspec.spec import DEFAULT_PORT, PACKETS
from gearspec.wire.pcap import Segment, read_segments, reassemble

__all__ = ["GearmanItem", "ScapyMissing", "gearman_packets", "layers"]


class ScapyMissing(ImportError):
    """scapy is not installed; the message says how to get it."""


@cache
def layers(port: int = DEFAULT_PORT) -> Any:
    """The scapy classes (built once): Gearman, GearmanAdmin and `args[name]` per type."""
    try:
        from scapy.fields import IntEnumField, IntField, StrField, StrFixedLenField, StrNullField
        from scapy.layers.inet import TCP
        from scapy.packet import Packet, Raw, bind_layers
    except ImportError as exc:
        raise ScapyMissing(
            "the Gearman scapy layer needs scapy (GPL-2.0, an optional extra): pip install 'gearspec[scapy]'"
            f" ({exc})"
        ) from None

    type_names = {spec.code: spec.name for spec in PACKETS}

    class GearmanAdmin(Packet):
        """One admin text line (its terminator kept so the bytes round-trip)."""

        name = "Gearman admin line"
        fields_desc = [StrField("line", b"")]

    class Gearman(Packet):
        """The 12-byte header; the payload is the per-type argument layer."""

        name = "Gearman"
        fields_desc = [
            StrFixedLenField("magic", b"\0REQ", 4),
            IntEnumField("type", 16, type_names),
            IntField("length", None),
        ]

        @classmethod
        def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kwargs: Any) -> type:
            if _pkt and _pkt[:1] != b"\0":
                return GearmanAdmin
            return cls

        def post_build(self, pkt: bytes, pay: bytes) -> bytes:
            if self.length is None:
                pkt = pkt[:8] + len(pay).to_bytes(4, "big") + pkt[12:]
            return pkt + pay

        def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
            size = self.length or 0
            return s[:size], s[size:]

        def do_dissect_payload(self, s: bytes) -> None:
            # scapy adds no layer for an empty payload; every known type gets its argument
            # layer anyway (empty fields), so `pkt[args["NOOP"]]` always works.
            if not s:
                layer = args.get(type_names.get(self.type, ""))
                if layer is not None:
                    self.add_payload(layer(b""))
                return
            super().do_dissect_payload(s)

    args: dict[str, type] = {}
    for spec in PACKETS:
        if spec.reserved:
            continue
        fields: list[Any] = [StrNullField(a.name, b"") for a in spec.args[:-1]]
        if spec.args:
            fields.append(StrField(spec.args[-1].name, b""))
        layer = type(
            f"Gearman_{spec.name}", (Packet,),
            {"name": f"Gearman {spec.name}", "fields_desc": fields, "__doc__": f"Arguments of {spec.name} ({spec.code})."},
        )
        args[spec.name] = layer
        bind_layers(Gearman, layer, type=spec.code)
    bind_layers(Gearman, Raw)  # reserved or unknown types keep their payload as bytes
    bind_layers(TCP, Gearman, dport=port)
    bind_layers(TCP, Gearman, sport=port)
    return types.SimpleNamespace(Gearman=Gearman, GearmanAdmin=GearmanAdmin, args=args, port=port)


@dataclass(frozen=True)
class GearmanItem:
    """One Gearman packet or admin line of a capture, as a scapy packet."""

    stream: int
    direction: str  # "to_server" or "from_server"
    time: float
    packet: Any  # a scapy Gearman or GearmanAdmin packet


def _segments_from_scapy(packets: Iterable[Any]) -> Iterator[Segment]:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    for number, pkt in enumerate(packets, 1):
        if TCP not in pkt:
            continue
        ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
        if ip is None:
            continue
        tcp = pkt[TCP]
        payload = bytes(tcp.payload)
        if ip.version == 4 and ip.len:  # drop Ethernet padding
            payload = payload[: max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)]
        yield Segment(number, float(pkt.time), (ip.src, tcp.sport), (ip.dst, tcp.dport), tcp.seq, int(tcp.flags), payload)


def gearman_packets(source: str | Path | Iterable[Any], port: int = DEFAULT_PORT) -> Iterator[GearmanItem]:
    """Each Gearman packet and admin line of a capture (a file, or scapy packets from
    rdpcap/sniff), decoded right across TCP segment boundaries."""
    layer = layers(port)
    segments = read_segments(source) if isinstance(source, (str, Path)) else _segments_from_scapy(source)
    decoders: dict[tuple[int, str], Decoder] = {}
    lost: set[tuple[int, str]] = set()
    for stream, chunk in reassemble(segments, port):
        key = (stream.index, chunk.direction)
        if key in lost:
            continue
        decoder = decoders.setdefault(key, Decoder(lenient=True))
        decoder.receive_data(chunk.data)
        try:
            for event in decoder:
                raw = bytes(event)
                packet = layer.GearmanAdmin(raw) if isinstance(event, AdminLine) else layer.Gearman(raw)
                yield GearmanItem(stream.index, chunk.direction, chunk.time, packet)
        except ProtocolError:
            lost.add(key)  # framing lost in this direction; `gearspec dissect` reports why
