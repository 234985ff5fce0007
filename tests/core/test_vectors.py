"""The golden wire vectors (gearspec/vectors/packets.json) against the codec."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Packet, RawPacket
from gearspec.errors import ProtocolError
from gearspec.spec import PACKETS
from gearspec.vectors import Expectation, ExpectedError, Vector, _build, load_vectors

VECTORS = load_vectors()
IDS = [v.id for v in VECTORS]


def decode_strict(vector: Vector, chunks: Iterable[bytes] | None = None) -> list[Expectation]:
    """What a strict decoder reports for the stream: events and errors, as the vectors write them."""
    decoder = Decoder(vector.direction)
    out: list[Expectation] = []
    for chunk in [vector.data] if chunks is None else chunks:
        decoder.receive_data(chunk)
        out += _drain(decoder)
        if out and isinstance(out[-1], ExpectedError) and out[-1].fatal:
            return out
    decoder.receive_data(b"")
    out += _drain(decoder)
    return out


def _drain(decoder: Decoder) -> list[Expectation]:
    out: list[Expectation] = []
    while True:
        try:
            event = decoder.next_event()
        except ProtocolError as exc:
            assert exc.offset is not None
            out.append(ExpectedError(exc.code, exc.offset, exc.fatal))
            if exc.fatal:
                return out
            continue
        if event is NEED_DATA or event is CLOSED:
            return out
        assert isinstance(event, Packet | AdminLine)
        out.append(event)


def test_vector_file_is_current() -> None:
    """packets.json is what its builder writes (run `python -m gearspec.vectors._build`)."""
    path = _build.OUT
    assert path.read_text() == _build.render(_build.build())
    json.loads(path.read_text())  # and it is plain JSON


def test_ids_are_unique() -> None:
    assert len(IDS) == len(set(IDS))


def test_every_packet_type_has_a_vector() -> None:
    covered = {p.type.value for v in VECTORS for p in v.packets}
    usable = {row.code for row in PACKETS if not row.reserved}
    assert usable - covered == set()
    # Both directions of each packet that travels both ways.
    both = {row.code for row in PACKETS if len(row.magics) == 2}
    for code in both:
        magics = {p.magic for v in VECTORS for p in v.packets if p.type == code}
        assert len(magics) == 2, PACKETS[code].name


def test_required_malformed_cases_exist() -> None:
    wanted = {
        "malformed/bad-magic", "malformed/type-0", "malformed/type-43", "malformed/too-few-args",
        "malformed/truncated-header", "malformed/oversize-length", "admin/crlf", "malformed/nul-in-last-function",
        "malformed/non-numeric-number", "malformed/res-toward-server",
    }
    assert wanted <= set(IDS)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_strict_decoding(vector: Vector) -> None:
    assert decode_strict(vector) == list(vector.expect)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_strict_decoding_byte_by_byte(vector: Vector) -> None:
    """One byte at a time reports the same; bad magic may be reported before its payload arrives."""
    chunks = [vector.data[i:i + 1] for i in range(len(vector.data))]
    assert decode_strict(vector, chunks) == list(vector.expect)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_lenient_decoding(vector: Vector) -> None:
    decoder = Decoder(vector.direction, lenient=True)
    decoder.receive_data(vector.data)
    decoder.receive_data(b"")
    events: list[Packet | RawPacket | AdminLine] = []
    try:
        for event in decoder:
            events.append(event)
    except ProtocolError as exc:
        assert vector.lenient_error == ExpectedError(exc.code, exc.offset or 0, exc.fatal), exc
        # Everything before the unit that broke framing came back intact.
        assert b"".join(e.to_bytes() for e in events) == vector.data[:decoder.offset]
        assert decoder.offset <= (exc.offset or 0) < len(vector.data)
        return
    assert vector.lenient_error is None, "lenient decoding was expected to raise"
    assert b"".join(e.to_bytes() for e in events) == vector.data
    # Well-formed packets come back as packets; each strict error becomes one RawPacket.
    strict_errors = [e for e in vector.expect if isinstance(e, ExpectedError)]
    raws = [e for e in events if isinstance(e, RawPacket)]
    if all(not e.fatal for e in strict_errors):
        assert [(r.problem.code, r.problem.offset) for r in raws] == [(e.code, e.offset) for e in strict_errors]
        assert [e for e in events if not isinstance(e, RawPacket)] == [
            e for e in vector.expect if not isinstance(e, ExpectedError)
        ]


@pytest.mark.parametrize("vector", [v for v in VECTORS if not v.malformed], ids=[v.id for v in VECTORS if not v.malformed])
def test_encoding_gives_the_same_bytes(vector: Vector) -> None:
    """Building each expected packet from its named fields, with validation, gives the vector's bytes."""
    out = b""
    for item in vector.expect:
        if isinstance(item, Packet):
            build = Packet.request if item.magic.name == "REQ" else Packet.response
            out += build(item.type.name, **item.fields).to_bytes()
        else:
            assert isinstance(item, AdminLine)
            out += item.to_bytes()
    assert out == vector.data
