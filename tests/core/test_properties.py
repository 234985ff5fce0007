"""Hypothesis properties of the codec, derived from the table (seeded: derandomize=True)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Event, Packet, RawPacket, decode
from gearspec.errors import ProtocolError
from gearspec.spec import PACKETS, Magic, PacketType
from gearspec.strategies import arg_values, chunkings, near_headers, packet_streams, packets

SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROWS = [row for row in PACKETS if not row.reserved]


def events_of(chunks: list[bytes], accept: Magic | None = None, lenient: bool = False) -> list[object]:
    """Every event and error for a chunked stream (errors as (type, code, offset, fatal))."""
    decoder = Decoder(accept, lenient=lenient)
    out: list[object] = []
    for chunk in [*chunks, b""]:
        decoder.receive_data(chunk)
        while True:
            try:
                event = decoder.next_event()
            except ProtocolError as exc:
                out.append((type(exc), exc.code, exc.offset, exc.fatal))
                if exc.fatal:
                    return out
                continue
            if event is NEED_DATA or event is CLOSED:
                break
            out.append(event)
    return out


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
@settings(SETTINGS, max_examples=40)  # per type: 41 types x 40 examples x each magic
@given(data=st.data())
def test_round_trip_every_type(row, data: st.DataObject) -> None:
    """Validated construction, encoding and decoding give back the same packet, for each type."""
    args = data.draw(arg_values(row))
    for magic in sorted(row.magics, key=lambda m: m.name):
        built = (Packet.request if magic is Magic.REQ else Packet.response)(row.code, *args)
        wire = built.to_bytes()
        assert wire[:4] == magic.value and int.from_bytes(wire[4:8], "big") == row.code
        assert int.from_bytes(wire[8:12], "big") == len(wire) - 12
        assert decode(wire, magic) == [built]
        assert decode(wire) == [built]
        assert built.fields == {a.name: v for a, v in zip(row.args, args, strict=True)}


@SETTINGS
@given(stream=packet_streams(), data=st.data())
def test_any_split_decodes_the_same(stream: list[Packet], data: st.DataObject) -> None:
    wire = b"".join(p.to_bytes() for p in stream)
    chunks = data.draw(chunkings(wire))
    assert events_of(chunks) == stream
    assert events_of([wire]) == stream


@SETTINGS
@given(
    items=st.lists(
        st.one_of(
            packets(Magic.REQ),
            st.builds(AdminLine, st.binary(max_size=30).map(lambda b: b"a" + b.replace(b"\n", b"").replace(b"\r", b"")),
                      st.sampled_from([b"\n", b"\r\n"])),
        ),
        max_size=10,
    ),
    data=st.data(),
)
def test_admin_lines_and_packets_interleave(items: list[Event], data: st.DataObject) -> None:
    wire = b"".join(e.to_bytes() for e in items)
    assert events_of(data.draw(chunkings(wire)), Magic.REQ) == items


# Garbage biased toward near-valid packets: real magic, small types and sizes, NULs.
_garbage = st.lists(
    st.one_of(
        st.binary(max_size=40),
        near_headers(),
        st.sampled_from([b"\0", b"\n", b"\r\n", b"1", b"status\n", b"\0REQ", b"\xff\xfe"]),
        packets().map(lambda p: p.to_bytes()),
    ),
    max_size=12,
).map(b"".join)


@SETTINGS
@given(wire=_garbage, data=st.data(), lenient=st.booleans(), accept=st.sampled_from([None, Magic.REQ, Magic.RES]))
def test_garbage_only_raises_protocol_errors(wire: bytes, data: st.DataObject, lenient: bool, accept: Magic | None) -> None:
    """Arbitrary bytes never raise anything but ProtocolError, and error offsets lie in the stream."""
    chunks = data.draw(chunkings(wire))
    out = events_of(chunks, accept, lenient)  # any other exception fails the test
    for item in out:
        if isinstance(item, tuple):
            _, _, offset, _ = item
            assert offset is not None and 0 <= offset < len(wire)
        if isinstance(item, RawPacket):
            assert 0 <= (item.problem.offset or 0) < len(wire)
    # Splitting never changes the verdict.
    assert out == events_of([wire], accept, lenient)
    if lenient and not any(isinstance(i, tuple) for i in out):
        assert b"".join(e.to_bytes() for e in out) == wire  # type: ignore[attr-defined]


@SETTINGS
@given(wire=st.binary(max_size=200), lenient=st.booleans())
def test_random_bytes_only_raise_protocol_errors(wire: bytes, lenient: bool) -> None:
    try:
        events = decode(wire, lenient=lenient)
    except ProtocolError as exc:
        assert exc.offset is not None and 0 <= exc.offset < len(wire)
    else:
        if lenient:
            assert b"".join(e.to_bytes() for e in events) == wire


@SETTINGS
@given(packet=packets())
def test_packet_value_semantics(packet: Packet) -> None:
    import copy
    import pickle

    assert copy.copy(packet) == packet and hash(copy.deepcopy(packet)) == hash(packet)
    assert pickle.loads(pickle.dumps(packet)) == packet
    assert bytes(packet) == packet.to_bytes()
    for name, value in packet.fields.items():
        assert packet[name] == getattr(packet, name) == value
    assert repr(packet).startswith(f"<{packet.magic.name} {packet.name}")
    with pytest.raises(KeyError):
        packet["no_such_argument"]
    with pytest.raises(AttributeError):
        packet.no_such_argument  # noqa: B018


def test_sticky_fatal_error_and_eof_rules() -> None:
    decoder = Decoder()
    decoder.receive_data(b"\0BAD")
    with pytest.raises(ProtocolError) as first:
        decoder.next_event()
    with pytest.raises(ProtocolError) as again:
        decoder.next_event()
    assert again.value is first.value and first.value.fatal
    decoder = Decoder()
    decoder.receive_data(b"")
    assert decoder.next_event() is CLOSED
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"x")


def test_max_packet_size_is_checked_on_the_header() -> None:
    decoder = Decoder(Magic.REQ, max_packet_size=10)
    decoder.receive_data(Packet.make(PacketType.ECHO_REQ, b"x" * 11).to_bytes()[:12])  # header only
    with pytest.raises(ProtocolError) as err:
        decoder.next_event()
    assert err.value.code.value == "DATA_TOO_LARGE" and err.value.offset == 8
    small = Packet.make(PacketType.ECHO_REQ, b"x" * 10)
    decoder = Decoder(Magic.REQ, max_packet_size=10)
    decoder.receive_data(small.to_bytes())
    assert decoder.next_event() == small


def test_non_fatal_errors_let_decoding_go_on() -> None:
    good = Packet.make("GRAB_JOB")
    wire = Packet.response("WORK_FAIL", "H:1").to_bytes() + good.to_bytes()
    decoder = Decoder(Magic.REQ)
    decoder.receive_data(wire)
    with pytest.raises(ProtocolError) as err:
        decoder.next_event()
    assert not err.value.fatal and err.value.code.value == "INVALID_MAGIC"
    assert decoder.next_event() == good
    assert decoder.offset == len(wire) and decoder.buffered == 0


def _by_next_event(chunks: list[bytes], accept: Magic | None, lenient: bool) -> list[object]:
    return events_of(chunks, accept, lenient)


def _by_iteration(chunks: list[bytes], accept: Magic | None, lenient: bool) -> list[object]:
    decoder = Decoder(accept, lenient=lenient)
    out: list[object] = []
    for chunk in [*chunks, b""]:
        decoder.receive_data(chunk)
        while True:
            try:
                out.extend(decoder)
                break
            except ProtocolError as exc:
                out.append((type(exc), exc.code, exc.offset, exc.fatal))
                if exc.fatal:
                    return out
    return out


@SETTINGS
@given(wire=_garbage, data=st.data(), lenient=st.booleans(), accept=st.sampled_from([None, Magic.REQ, Magic.RES]))
def test_iteration_and_next_event_agree(wire: bytes, data: st.DataObject, lenient: bool, accept: Magic | None) -> None:
    """Iteration has its own copy of the hot path; it must decide exactly as next_event does."""
    chunks = data.draw(chunkings(wire))
    assert _by_iteration(chunks, accept, lenient) == _by_next_event(chunks, accept, lenient)


def test_decoded_packets_are_ordinary_packets() -> None:
    """The hot path builds packets without __init__; they must behave like built ones."""
    built = Packet.make("JOB_ASSIGN_UNIQ", "H:1", "fn", "u", b"d\0ata")
    (decoded,) = decode(built.to_bytes())
    assert type(decoded) is Packet and decoded == built and hash(decoded) == hash(built)
    assert decoded.unique == b"u" and decoded.fields == built.fields and repr(decoded) == repr(built)
    decoder = Decoder()
    decoder.receive_data(built.to_bytes() * 2)
    first = decoder.next_event()
    assert first == built and list(decoder) == [built]
