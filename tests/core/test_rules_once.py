"""Each framing rule is defined once, in Python; the C hot path is handed it, never has its own.

The NUMBER rule is `gearspec.spec.is_number`; `gearspec.plans.NUMBER_BYTES` (the byte table
the C core checks numbers with) is derived from it. The large-payload threshold is
`gearspec.plans.LARGE_PAYLOAD`. A C core set up with a different table or threshold behaves
differently: it has no notion of either of its own.
"""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest

from gearspec import codec, plans
from gearspec.codec import NEED_DATA, Packet
from gearspec.events import CLOSED
from gearspec.spec import ArgKind, Magic, PacketType, is_number

ROOT = Path(__file__).resolve().parents[2]
needs_speedups = pytest.mark.skipif(not codec.ACCELERATED, reason="gearspec._speedups is not built here")


def test_number_table_is_the_number_rule() -> None:
    for b in range(256):
        assert bool(plans.NUMBER_BYTES[b]) == is_number(bytes([b])), b
    assert not is_number(b"") and is_number(b"0123456789") and not is_number("٣".encode())


def test_every_plan_marks_exactly_the_number_arguments() -> None:
    for plan in plans.PLANS.values():
        assert plan.numbers == tuple(i for i, a in enumerate(plan.spec.args) if a.kind is ArgKind.NUMBER)
    for keyed in plans.FRAME_PLANS.values():
        for key, plan in keyed.items():
            assert plan.magic is not None and key == plans.frame_key(plan.magic, plan.type)


def test_no_other_copy_of_the_rules_in_the_sources() -> None:
    """No digit loop or threshold literal of its own in the C core, the decoder, the server or the broker."""
    c_source = (ROOT / "gearspec" / "_speedups.c").read_text()
    assert not re.search(r"'0'|'9'", c_source), "the C core spells out digits"
    assert not re.search(r"\b(4096|8192|16384)\b", c_source.replace("own_cap : 4096", "")), "a threshold in C"
    for path in ("gearspec/decoder.py", "gearspec/events.py", "reference/server.py", "reference/broker.py"):
        text = (ROOT / path).read_text()
        assert ".isdigit()" not in text, path
        assert not re.search(r"\b(4096|16384)\b", text), path


class _Watched(codec.Decoder):  # type: ignore[valid-type,misc]
    """Counts the packets the C core hands to the pure-Python decoder."""

    handed_over = 0

    def _slow_next(self):  # type: ignore[no-untyped-def]
        self.handed_over += 1
        return super()._slow_next()


def _core_decoder(number_bytes: bytes, large: int) -> _Watched:
    decoder = _Watched(accept=Magic.REQ)
    decoder._core_setup(  # type: ignore[attr-defined]
        plans.FRAME_PLANS[Magic.REQ], decoder.max_packet_size, Packet, NEED_DATA, CLOSED, number_bytes, large
    )
    return decoder


@needs_speedups
def test_c_core_reads_the_number_rule_from_python() -> None:
    job = Packet.request(PacketType.SUBMIT_JOB_EPOCH, b"f", b"u", b"12", b"data").to_bytes()
    decoder = _core_decoder(plans.NUMBER_BYTES, plans.LARGE_PAYLOAD)
    decoder.receive_data(job)
    assert decoder.next_event() == Packet.request(PacketType.SUBMIT_JOB_EPOCH, b"f", b"u", b"12", b"data")
    assert decoder.handed_over == 0
    # With "2" no longer a digit, the C core does not take the packet: it hands it to Python.
    no_two = bytearray(plans.NUMBER_BYTES)
    no_two[ord("2")] = 0
    decoder = _core_decoder(bytes(no_two), plans.LARGE_PAYLOAD)
    decoder.receive_data(job)
    decoder.next_event()
    assert decoder.handed_over == 1


@needs_speedups
def test_c_core_reads_the_large_threshold_from_python() -> None:
    """A straddling packet at or over the threshold is assembled: its data argument is
    allocated whole as soon as its header and leading arguments are in. Under it, nothing is."""
    data = b"x" * 200_000
    job = Packet.request(PacketType.SUBMIT_JOB, b"f", b"u", data).to_bytes()
    for large, assembled in ((plans.LARGE_PAYLOAD, True), (len(job), False)):
        decoder = _core_decoder(plans.NUMBER_BYTES, large)
        tracemalloc.start()
        try:
            decoder.receive_data(job[:100])
            assert decoder.next_event() is NEED_DATA
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (held > len(data)) is assembled, (large, held)
        decoder.receive_data(job[100:])
        assert decoder.next_event() == Packet.request(PacketType.SUBMIT_JOB, b"f", b"u", data)
