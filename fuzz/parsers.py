"""Property-based fuzzing of Gearman parsers: gearspec's own codec, or anyone's.

Point the properties at another project's parser by giving a callable that takes the bytes
of a whole stream and the exceptions it may raise on bad input::

    from gearspec.fuzz.parsers import fuzz_parser

    def parse_all(data: bytes) -> list[object]:     # your parser, fed a complete stream
        return my_project.parse_packets(data)

    test_my_parser = fuzz_parser(parse_all, allowed=(my_project.ParseError,))

pytest collects `test_my_parser`. It feeds valid packets of every type, near-valid ones
(`gearspec.fuzz.strategies.near_valid`) and random bytes, and fails (with a shrunk input)
when the parser raises anything not in `allowed`. Give `check_valid` to also check what it
returns for valid streams (e.g. that it found the same packets as gearspec). A parser that
loops must be made to give up by its adapter (count iterations and raise); Hypothesis'
`deadline` reports slow inputs.

The `check_*` functions are the properties of `gearspec.codec.Decoder` itself; the tests in
tests/fuzz/ run them with Hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from gearspec.fuzz.strategies import HypothesisChooser, malformed_streams, near_valid, valid_packet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Event, Packet, RawPacket
from gearspec.errors import ProtocolError
from gearspec.spec import Magic

__all__ = [
    "ParserFailure",
    "check_any_split",
    "check_lenient_identity",
    "check_only_protocol_errors",
    "check_round_trip",
    "decode_all",
    "fuzz_parser",
    "parser_inputs",
    "valid_streams",
]


class ParserFailure(AssertionError):
    """A parser did something the properties forbid (raised an error not allowed, ...)."""


@st.composite
def valid_streams(draw: st.DrawFn, direction: Magic | None = Magic.REQ, max_packets: int = 6) -> list[Packet]:
    """Lists of valid packets from the table (REQ direction by default)."""
    chooser = HypothesisChooser(draw)
    return [valid_packet(chooser, direction) for _ in range(draw(st.integers(0, max_packets)))]


def parser_inputs() -> st.SearchStrategy[bytes]:
    """Whole streams for any parser: valid, near-valid, mixed, and random bytes."""
    return st.one_of(
        valid_streams().map(lambda ps: b"".join(p.to_bytes() for p in ps)),
        near_valid().map(lambda case: case.data),
        malformed_streams(),
        st.binary(max_size=200),
    )


def fuzz_parser(
    parse: Callable[[bytes], object],
    allowed: tuple[type[BaseException], ...] = (),
    *,
    check_valid: Callable[[list[Packet], object], None] | None = None,
    direction: Magic | None = Magic.REQ,
    max_examples: int = 300,
    derandomize: bool = True,
    deadline_ms: int | None = 2000,
) -> Callable[[], None]:
    """A test function (for pytest or a direct call) fuzzing `parse` with Hypothesis.

    `parse(data)` gets a complete byte stream; raising an exception in `allowed` is fine.
    `check_valid(packets, result)`, when given, is called for valid streams and should raise
    AssertionError when `result` does not describe `packets`. The run is derandomized and
    uses no example database by default, so CI is reproducible.
    """

    def run_one(data: bytes, packets: list[Packet] | None) -> None:
        try:
            result = parse(data)
        except allowed:
            if packets is not None:
                raise ParserFailure(f"valid stream rejected: {data!r}") from None
            return
        except Exception as exc:
            raise ParserFailure(f"{type(exc).__name__}: {exc} on input {data[:200]!r}") from exc
        if packets is not None and check_valid is not None:
            check_valid(packets, result)

    inputs = st.one_of(
        valid_streams(direction).map(lambda ps: (b"".join(p.to_bytes() for p in ps), ps)),
        parser_inputs().map(lambda data: (data, None)),
    )

    @settings(
        max_examples=max_examples,
        derandomize=derandomize,
        database=None,
        deadline=None if deadline_ms is None else timedelta(milliseconds=deadline_ms),
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(inputs)
    def test_parser(sample: tuple[bytes, list[Packet] | None]) -> None:
        run_one(*sample)

    test_parser.__name__ = f"test_fuzz_{getattr(parse, '__name__', 'parser')}"
    return test_parser


# -- gearspec's own codec --------------------------------------------------------------------


def decode_all(chunks: Sequence[bytes], accept: Magic | None = None, *, lenient: bool = False) -> list[Event]:
    """Decode a stream given in chunks (end of stream after the last); errors propagate."""
    decoder = Decoder(accept, lenient=lenient)
    events: list[Event] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        events.extend(decoder)
    decoder.receive_data(b"")
    while True:
        event = decoder.next_event()
        if event is CLOSED:
            return events
        if event is NEED_DATA:  # pragma: no cover - impossible after end of stream
            raise ParserFailure("decoder wants data after the end of the stream")
        events.append(event)


def check_round_trip(packets: Sequence[Packet], accept: Magic | None = Magic.REQ) -> None:
    """Encoding then decoding (strict and lenient) gives back the same packets."""
    data = b"".join(p.to_bytes() for p in packets)
    for lenient in (False, True):
        got = decode_all([data], accept, lenient=lenient)
        if got != list(packets):
            raise ParserFailure(f"round trip (lenient={lenient}) changed {list(packets)} into {got}")


def _events_or_error(chunks: Sequence[bytes], accept: Magic | None, lenient: bool) -> tuple[list[Event], str | None]:
    decoder = Decoder(accept, lenient=lenient)
    events: list[Event] = []
    try:
        for chunk in [*chunks, b""]:
            decoder.receive_data(chunk)
            while True:
                event = decoder.next_event()
                if event is NEED_DATA or event is CLOSED:
                    break
                events.append(event)
    except ProtocolError as exc:
        if not exc.fatal:
            raise ParserFailure(f"non-fatal error escaped the loop: {exc}") from exc
        return events, f"{exc.code.value}@{exc.offset}"
    return events, None


def _strict_events(chunks: Sequence[bytes], accept: Magic | None) -> list[object]:
    """Strict decoding, skipping over non-fatal errors (recorded as (code, offset))."""
    decoder = Decoder(accept)
    out: list[object] = []
    for chunk in [*chunks, b""]:
        decoder.receive_data(chunk)
        while True:
            try:
                event = decoder.next_event()
            except ProtocolError as exc:
                out.append((exc.code.value, exc.offset, exc.fatal))
                if exc.fatal:
                    return out
                continue
            if event is NEED_DATA or event is CLOSED:
                break
            out.append(event)
    return out


def check_any_split(data: bytes, chunks: Sequence[bytes], accept: Magic | None = Magic.REQ) -> None:
    """Decoding `data` in one piece or in `chunks` gives the same events and errors."""
    if b"".join(chunks) != data:
        raise ValueError("chunks must join to data")
    for lenient in (False, True):
        whole = _events_or_error([data], accept, lenient) if lenient else _strict_events([data], accept)
        split = _events_or_error(chunks, accept, lenient) if lenient else _strict_events(chunks, accept)
        if whole != split:
            raise ParserFailure(f"lenient={lenient}: whole {whole} != split {split} for {data!r} cut as {list(chunks)}")


def check_lenient_identity(data: bytes, accept: Magic | None = Magic.REQ) -> None:
    """Lenient decoding re-encodes byte-identical up to where framing was lost."""
    decoder = Decoder(accept, lenient=True)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    events: list[Event] = []
    try:
        for event in decoder:
            events.append(event)
    except ProtocolError as exc:
        if not exc.fatal:
            raise ParserFailure(f"lenient mode raised a non-fatal error: {exc}") from exc
    again = b"".join(e.to_bytes() for e in events)
    if again != data[: decoder.offset]:
        raise ParserFailure(f"lenient re-encoding differs: {again!r} != {data[:decoder.offset]!r}")
    for event in events:
        if not isinstance(event, (Packet, RawPacket, AdminLine)):  # pragma: no cover
            raise ParserFailure(f"unexpected event {event!r}")


def check_only_protocol_errors(data: bytes, accept: Magic | None = None) -> None:
    """Arbitrary bytes only ever raise `ProtocolError`, strict or lenient, and never loop."""
    for lenient in (False, True):
        decoder = Decoder(accept, lenient=lenient)
        decoder.receive_data(data)
        decoder.receive_data(b"")
        for _ in range(len(data) + 2):  # every event consumes at least one byte
            try:
                event = decoder.next_event()
            except ProtocolError as exc:
                if exc.fatal:
                    break
                continue
            except Exception as exc:
                raise ParserFailure(f"{type(exc).__name__} from {data!r} (lenient={lenient}): {exc}") from exc
            if event is CLOSED:
                break
            if event is NEED_DATA:
                raise ParserFailure(f"decoder wants data after the end of the stream: {data!r}")
        else:
            raise ParserFailure(f"decoder did not finish {data!r} (lenient={lenient})")
