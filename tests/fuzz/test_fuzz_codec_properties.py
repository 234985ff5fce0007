"""gearspec's own codec under the fuzz properties (derandomized, no example database)."""

from __future__ import annotations

import pytest
from gearspec.fuzz.parsers import (
    check_any_split,
    check_lenient_identity,
    check_only_protocol_errors,
    check_round_trip,
    valid_streams,
)
from gearspec.fuzz.strategies import Case, chunkings, cut_streams, family, malformed_streams, near_valid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gearspec.codec import Decoder, Packet
from gearspec.errors import ProtocolError
from gearspec.spec import Magic

SETTINGS = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(valid_streams(direction=None))
def test_round_trip_both_directions(packets: list[Packet]) -> None:
    check_round_trip(packets, accept=None)


@SETTINGS
@given(valid_streams(direction=Magic.RES))
def test_round_trip_responses(packets: list[Packet]) -> None:
    check_round_trip(packets, accept=Magic.RES)


@SETTINGS
@given(st.data())
def test_any_split_decodes_the_same(data: st.DataObject) -> None:
    stream = data.draw(st.one_of(malformed_streams(), valid_streams().map(lambda ps: b"".join(map(bytes, ps)))))
    chunks = data.draw(chunkings(stream))
    check_any_split(stream, chunks)


@SETTINGS
@given(st.one_of(malformed_streams(), st.binary(max_size=300)))
def test_lenient_reencodes_byte_identical(stream: bytes) -> None:
    check_lenient_identity(stream)
    check_lenient_identity(stream, accept=None)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), malformed_streams(), near_valid().map(lambda c: c.data)))
def test_arbitrary_bytes_only_raise_protocol_error(stream: bytes) -> None:
    check_only_protocol_errors(stream)
    check_only_protocol_errors(stream, accept=Magic.REQ)


@SETTINGS
@given(cut_streams())
def test_cut_stream_decodes_whole_packets_then_waits(sample: tuple[bytes, int]) -> None:
    stream, cut = sample
    decoder = Decoder(Magic.REQ)
    decoder.receive_data(stream[:cut])
    decoded = b"".join(bytes(e) for e in decoder)
    assert stream[:cut].startswith(decoded)
    assert decoder.buffered == cut - len(decoded)


# Families whose every case is off-spec (lying lengths leave the decoder waiting instead).
REFUSED_FAMILIES = ["wrong_magic", "unknown_type", "response_type", "arg_count", "bad_number", "nul_in_name", "oversize"]


@pytest.mark.parametrize("name", REFUSED_FAMILIES)
def test_malformed_families_are_refused_by_the_strict_decoder(name: str) -> None:
    # Otherwise the family would not be testing what its name says.
    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(family(name))
    def judge(case: Case) -> None:
        decoder = Decoder(Magic.REQ, max_packet_size=1 << 20)
        decoder.receive_data(case.data)
        with pytest.raises(ProtocolError):
            list(decoder)

    judge()
