"""tshark as an independent oracle for gearspec's decoding (issue 2's cross-check).

Golden vectors and generated packets of every type are written into a pcap, dissected by
both tshark (Wireshark's `packet-gearman.c`, Debian tshark 4.0) and `gearspec.wire.dissect`,
and every packet's magic, type, length and fields must agree, except where tshark's
dissector is wrong. Each such case is listed in `TSHARK_BUGS` with what tshark shows and
what is on the wire; the test asserts the bug is still there, so a fixed tshark shows up as
a failure to update the list rather than as silent agreement.

Verified on the wire (bytes written by these tests, decoded by tshark 4.0.17):
- GET_STATUS (15): tshark flags "Unknown command" and decodes no field, although the
  payload is a plain job handle (PROTOCOL: "GET_STATUS: handle").
- STATUS_RES_UNIQUE (42): tshark labels the first field `gearman.job.handle`; gearmand
  sends the unique id there (libgearman-server/server.cc gearman_server_run_command, case
  GET_STATUS_UNIQUE, builds the reply from `unique`).
- SUBMIT_REDUCE_JOB / _BACKGROUND (37, 38): tshark reads four fields (function, unique,
  reducer, data) and shows the empty aggregator field as the job's data, dropping the real
  data; libgearman/command.cc gearmand_command_info_list gives these types 4 NUL-terminated
  fields plus data.
- ERROR (19): tshark shows the code but not the text: it expects the text NUL-terminated,
  while gearmand (libgearman-server/server.cc `_server_error_packet`) sends it as the last,
  unterminated field as PROTOCOL describes.
- Framing: a TCP segment that starts with only 1-3 bytes of a packet (or such a tail after a
  reassembled packet) is taken for an admin text line; tshark then loses framing for the
  rest of the stream (packet-gearman.c dissect_gearman checks the whole magic first).
- Opaque data holding a NUL byte: tshark shows data as a string, which ends at the first NUL
  (a display limitation, not a framing error: its length field stays right).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from gearspec.codec import AdminLine, Packet
from gearspec.spec import PACKETS, ArgKind, Magic, PacketType
from gearspec.vectors import load_vectors
from gearspec.wire.dissect import dissect
from gearspec.wire.pcap import FROM_SERVER, TO_SERVER, PcapWriter, TcpConversation

from .tshark import TsharkPdu, run_tshark

T = PacketType


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def _get_status_bug(ours: Packet, theirs: TsharkPdu) -> dict[str, bytes]:
    assert theirs.unknown_command and not theirs.fields, "tshark now decodes GET_STATUS: update TSHARK_BUGS"
    return {}


def _status_res_unique_bug(ours: Packet, theirs: TsharkPdu) -> dict[str, bytes]:
    assert "unique" not in theirs.fields and theirs.fields.get("handle") == _text(ours["unique"]), (
        "tshark no longer shows STATUS_RES_UNIQUE's unique as a handle: update TSHARK_BUGS"
    )
    expected = dict(ours.fields)
    expected["handle"] = expected.pop("unique")
    return expected


def _reduce_bug(ours: Packet, theirs: TsharkPdu) -> dict[str, bytes]:
    assert theirs.fields.get("data", "") == _text(ours["aggregator"]), (
        "tshark no longer reads the reduce aggregator as data: update TSHARK_BUGS"
    )
    if ours["data"]:
        assert theirs.fields.get("data", "") != _text(ours["data"])
    expected = {k: v for k, v in ours.fields.items() if k not in ("aggregator", "data")}
    expected["data"] = ours["aggregator"]
    return expected


def _error_bug(ours: Packet, theirs: TsharkPdu) -> dict[str, bytes]:
    if ours["text"]:
        assert "text" not in theirs.fields, "tshark now shows ERROR text: update TSHARK_BUGS"
    return {"code": ours["code"]}


# Packet type -> a check that tshark's known bug is present; returns the fields tshark is
# then expected to show.
TSHARK_BUGS: dict[PacketType, Callable[[Packet, TsharkPdu], dict[str, bytes]]] = {
    T.GET_STATUS: _get_status_bug,
    T.STATUS_RES_UNIQUE: _status_res_unique_bug,
    T.SUBMIT_REDUCE_JOB: _reduce_bug,
    T.SUBMIT_REDUCE_JOB_BACKGROUND: _reduce_bug,
    T.ERROR: _error_bug,
}
# Arguments tshark has no field for at all.
NOT_SHOWN = {"aggregator"}


def _as_tshark_string(value: bytes) -> str | None:
    """What tshark shows for an argument, or None when its rendering is not comparable."""
    value = value.split(b"\0", 1)[0]  # tshark shows data as a string ending at the first NUL
    if all(32 <= b < 127 for b in value):
        return value.decode("ascii")
    return None  # non-printable bytes: tshark escapes them in its own way


def compare(ours: Packet, theirs: TsharkPdu) -> list[str]:
    """Differences between our decoding and tshark's, after known tshark bugs."""
    problems = []
    if theirs.magic != ours.magic.name or theirs.type != int(ours.type):
        return [f"tshark: {theirs.magic} {theirs.type}, ours: {ours.magic.name} {int(ours.type)}"]
    payload = len(ours.to_bytes()) - 12
    if theirs.size != payload:
        problems.append(f"{ours.name}: length {theirs.size} != {payload}")
    bug = TSHARK_BUGS.get(ours.type)
    expected = bug(ours, theirs) if bug else {k: v for k, v in ours.fields.items() if k not in NOT_SHOWN}
    for name, value in expected.items():
        want = _as_tshark_string(value)
        got = theirs.fields.get(name)
        if got is None and value == b"":
            continue  # tshark leaves an empty trailing field out
        if got is None:
            problems.append(f"{ours.name}: tshark lacks field {name!r}")
        elif want is not None and got != want:
            problems.append(f"{ours.name}: {name} tshark={got!r} ours={want!r}")
    extra = set(theirs.fields) - set(expected)
    if extra:
        problems.append(f"{ours.name}: tshark shows fields we do not have: {sorted(extra)}")
    return problems


def _random_value(rng: random.Random, kind: ArgKind) -> bytes:
    if kind is ArgKind.NUMBER:
        return str(rng.choice([0, 1, 7, 100, 2**31, rng.randrange(10**6)])).encode()
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:."
    if kind in (ArgKind.DATA, ArgKind.TEXT):
        alphabet += " "
        size = rng.choice([0, 1, 5, 40, 3000])  # 3000 bytes spans several TCP segments
    else:
        size = rng.choice([1, 3, 12, 60])
    return "".join(rng.choice(alphabet) for _ in range(size)).encode()


def generated_packets(seed: int = 4730, per_type: int = 3) -> list[Packet]:
    """`per_type` packets of every type and magic with random printable arguments."""
    rng = random.Random(seed)
    out = []
    for spec in PACKETS:
        if spec.reserved:
            continue
        for magic in sorted(spec.magics, key=lambda m: m.name):
            for _ in range(per_type):
                args = [_random_value(rng, a.kind) for a in spec.args]
                if spec.code in (T.SUBMIT_REDUCE_JOB, T.SUBMIT_REDUCE_JOB_BACKGROUND):
                    args[3] = b""  # the aggregator is always empty in gearmand
                out.append(Packet._build(magic, spec.code, tuple(args), {}))
    return out


def _write(path: Path, items: list[tuple[str, bytes]], port: int, segment_size: int = 1460) -> None:
    with PcapWriter(path) as writer:
        conversation = TcpConversation(writer, ("10.0.0.1", 40001), ("10.0.0.2", port))
        for direction, data in items:
            conversation.send(direction, data, segment_size=segment_size)
        conversation.close()


def _direction(magic: Magic) -> str:
    return TO_SERVER if magic is Magic.REQ else FROM_SERVER


def _check_against_tshark(path: Path, port: int, expected_count: int) -> list[str]:
    (stream,) = dissect(path, port=port)
    assert not stream.violations or all(v.rule != "framing-lost" for v in stream.violations)
    ours = [o.event for o in stream.events]
    theirs = run_tshark(path, ports=(port,) if port != 4730 else ())
    assert len(ours) == expected_count
    assert len(theirs) == len(ours), f"tshark found {len(theirs)} PDUs, gearspec {len(ours)}"
    problems = []
    for event, pdu in zip(ours, theirs, strict=False):
        if isinstance(event, AdminLine):
            if pdu.admin != _text(event.text):
                problems.append(f"admin line: tshark={pdu.admin!r} ours={event.text!r}")
        else:
            assert isinstance(event, Packet), event
            problems += compare(event, pdu)
    return problems


def test_golden_vectors_agree_with_tshark(tmp_path: Path) -> None:
    vectors = [v for v in load_vectors() if v.id.startswith("packet/")]
    assert {int(p.type) for v in vectors for p in v.expect if isinstance(p, Packet)} == {
        s.code for s in PACKETS if not s.reserved
    }, "the golden vectors should cover every packet type"
    items = [(_direction(v.direction or Magic.REQ), v.data) for v in vectors]
    items += [(TO_SERVER, b"status\n"), (TO_SERVER, b"workers\n")]
    path = tmp_path / "vectors.pcap"
    _write(path, items, 4730)
    assert _check_against_tshark(path, 4730, len(items)) == []


def test_generated_packets_of_every_type_agree_with_tshark_on_another_port(tmp_path: Path) -> None:
    packets = generated_packets()
    path = tmp_path / "generated.pcap"
    _write(path, [(_direction(p.magic), p.to_bytes()) for p in packets], 7003)
    assert _check_against_tshark(path, 7003, len(packets)) == []


def _cut(packets: list[Packet], rng: random.Random, *, avoid_magic: bool) -> list[bytes]:
    """The packets' bytes joined and cut at random points (optionally never inside a magic)."""
    blob = b"".join(p.to_bytes() for p in packets)
    starts, at = set(), 0
    for p in packets:
        starts.add(at)
        at += len(p.to_bytes())
    inside_magic = {s + i for s in starts for i in (1, 2, 3)}
    cuts = sorted(
        c for c in rng.sample(range(1, len(blob)), min(len(blob) - 1, len(blob) // 7))
        if not (avoid_magic and c in inside_magic)
    )
    return [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=False)]


def _write_pieces(path: Path, pieces: dict[str, list[bytes]]) -> None:
    with PcapWriter(path) as writer:
        conversation = TcpConversation(writer, ("10.0.0.1", 40002), ("10.0.0.2", 4730))
        for direction, chunks in pieces.items():
            for chunk in chunks:
                conversation.send(direction, chunk, ack=False)
        conversation.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_split_and_coalesced_packets_agree_with_tshark(tmp_path: Path, seed: int) -> None:
    # Packets cut at random points (several packets sharing a segment, one packet over
    # several segments): both decoders must reassemble the same packets. Cuts inside a
    # 4-byte magic are left to the next test, because tshark cannot handle them.
    rng = random.Random(seed)
    packets = [p for p in generated_packets(seed=seed, per_type=1) if len(p.to_bytes()) < 500]
    to_server = [p for p in packets if p.magic is Magic.REQ]
    from_server = [p for p in packets if p.magic is Magic.RES]
    path = tmp_path / "split.pcap"
    _write_pieces(path, {
        TO_SERVER: _cut(to_server, rng, avoid_magic=True),
        FROM_SERVER: _cut(from_server, rng, avoid_magic=True),
    })
    (stream,) = dissect(path)
    ours = [o.event for o in stream.events]
    assert ours == to_server + from_server
    theirs = run_tshark(path)
    assert [(t.magic, t.type, t.size) for t in theirs] == [
        (p.magic.name, int(p.type), len(p.to_bytes()) - 12) for p in to_server + from_server
    ]


def test_tshark_loses_framing_when_fewer_than_four_magic_bytes_start_its_input(tmp_path: Path) -> None:
    # tshark bug, verified here on the wire: packet-gearman.c `dissect_gearman` decides
    # "binary or admin text" by looking for the whole 4-byte magic at the start of the bytes
    # it is handed. When those bytes are only 1-3 bytes of a packet (a segment that small,
    # or the tail of a segment after a packet reassembled from earlier segments), it takes
    # them for an admin line ("[MGR]") and never finds the packet boundaries again.
    # gearspec reassembles the byte stream first and decodes all three packets.
    first, second, third = (
        Packet.request("ECHO_REQ", b"one" * 10), Packet.request("SUBMIT_JOB", "f", "u", b"two"),
        Packet.request("ECHO_REQ", b"three"),
    )
    blob = first.to_bytes() + second.to_bytes() + third.to_bytes()
    end = len(first.to_bytes())
    for cuts in ([20, end + 2], [end, end + 2], [2]):
        pieces = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=False)]
        path = tmp_path / f"magic-split-{cuts[0]}.pcap"
        _write_pieces(path, {TO_SERVER: pieces})
        (stream,) = dissect(path)
        assert [o.event for o in stream.events] == [first, second, third]
        assert stream.violations == []
        theirs = run_tshark(path)
        assert [t.type for t in theirs] != [16, 7, 16], f"tshark now copes with cuts {cuts}: update this test"
        assert any(t.admin is not None for t in theirs), cuts
    # The same split with 4 magic bytes together is fine for both.
    path = tmp_path / "magic-whole.pcap"
    _write_pieces(path, {TO_SERVER: [blob[:20], blob[20:end + 4], blob[end + 4:]]})
    assert [t.type for t in run_tshark(path)] == [16, 7, 16]
