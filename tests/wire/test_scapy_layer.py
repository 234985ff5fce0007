"""The scapy layer generated from the spec: golden vectors, round trips, reassembly."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from gearspec.codec import AdminLine, Packet
from gearspec.spec import PACKETS, Magic
from gearspec.vectors import load_vectors
from gearspec.wire.dissect import dissect

from .test_tshark_oracle import _cut, _write_pieces, generated_packets

scapy = pytest.importorskip("scapy", reason="scapy is an optional extra (pip install 'gearspec[scapy]')")

from gearspec.wire.scapy_layer import gearman_packets, layers  # noqa: E402


def _fields(layer_packet: object, name: str) -> dict[str, bytes]:
    L = layers()
    args = layer_packet[L.args[name]]  # type: ignore[index]
    return {f.name: getattr(args, f.name) for f in args.fields_desc}


def test_every_golden_vector_decodes_and_rebuilds() -> None:
    L = layers()
    vectors = [v for v in load_vectors() if v.id.startswith("packet/")]
    for vector in vectors:
        (expected,) = vector.expect
        assert isinstance(expected, Packet)
        decoded = L.Gearman(vector.data)
        assert decoded.magic == expected.magic.value and decoded.type == int(expected.type), vector.id
        assert decoded.length == len(vector.data) - 12
        if expected.args:
            assert _fields(decoded, expected.name) == expected.fields, vector.id
        rebuilt = L.Gearman(magic=expected.magic.value, type=int(expected.type))
        if expected.args:
            rebuilt = rebuilt / L.args[expected.name](**expected.fields)
        assert bytes(rebuilt) == vector.data, vector.id


def test_the_layer_has_every_type_and_argument_of_the_spec() -> None:
    L = layers()
    for spec in PACKETS:
        if spec.reserved:
            assert spec.name not in L.args
            continue
        assert [f.name for f in L.args[spec.name].fields_desc] == [a.name for a in spec.args]


def test_generated_packets_round_trip() -> None:
    L = layers()
    for packet in generated_packets(seed=11, per_type=2):
        decoded = L.Gearman(packet.to_bytes())
        if packet.args:
            assert _fields(decoded, packet.name) == packet.fields
        assert bytes(decoded) == packet.to_bytes()


def test_admin_lines_are_recognised() -> None:
    L = layers()
    line = L.Gearman(b"workers\r\n")
    assert isinstance(line, L.GearmanAdmin) and line.line == b"workers\r\n"


@pytest.mark.parametrize("seed", [5, 6])
def test_reassembly_helper_matches_the_dissector(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    packets = [p for p in generated_packets(seed=seed, per_type=1) if len(p.to_bytes()) < 400]
    to_server = [p for p in packets if p.magic is Magic.REQ]
    from_server = [p for p in packets if p.magic is Magic.RES]
    path = tmp_path / "cut.pcap"
    # Cuts anywhere, inside magics too: several packets per segment, packets over segments.
    _write_pieces(path, {
        "to_server": [*_cut(to_server, rng, avoid_magic=False), b"status\n"],
        "from_server": _cut(from_server, rng, avoid_magic=False),
    })
    (stream,) = dissect(path)
    ours = [bytes(o.event) for o in stream.events]
    from_file = list(gearman_packets(path))
    assert [bytes(item.packet) for item in from_file] == ours
    assert isinstance(stream.events[len(to_server)].event, AdminLine)
    from scapy.utils import rdpcap

    from_scapy = list(gearman_packets(rdpcap(str(path))))
    assert [bytes(item.packet) for item in from_scapy] == ours
    assert [item.direction for item in from_scapy] == [o.direction for o in stream.events]


def test_tcp_port_binding_dissects_whole_segments(tmp_path: Path) -> None:
    from scapy.utils import rdpcap

    L = layers()
    packet = Packet.request("SUBMIT_JOB", "reverse", "u", b"hello")
    path = tmp_path / "one.pcap"
    _write_pieces(path, {"to_server": [packet.to_bytes()]})
    frames = [f for f in rdpcap(str(path)) if L.Gearman in f]
    assert len(frames) == 1
    assert _fields(frames[0], "SUBMIT_JOB") == packet.fields


def test_missing_scapy_gives_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['scapy'] = None; sys.modules['scapy.fields'] = None\n"
        "from gearspec.wire.scapy_layer import ScapyMissing, layers\n"
        "try:\n    layers()\nexcept ScapyMissing as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "pip install 'gearspec[scapy]'" in done.stdout and "GPL" in done.stdout
