"""The C hot path (gearspec._speedups) decodes exactly as the pure-Python decoder does.

`Decoder` is the accelerated subclass when the extension is built; `PythonDecoder` is always
the pure-Python one. Every step of a random drive -- feeding chunks, next_event, iteration --
must give the same events, the same errors (type, code, offset, fatality) and the same
offset/buffered figures from both.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gearspec import codec
from gearspec.codec import CLOSED, NEED_DATA, Decoder, Packet, PythonDecoder
from gearspec.errors import ProtocolError
from gearspec.spec import Magic
from gearspec.strategies import chunkings, near_headers, packets

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

needs_speedups = pytest.mark.skipif(not codec.ACCELERATED, reason="gearspec._speedups is not built here")


def test_speedups_are_built_where_required() -> None:
    """CI sets GEARSPEC_REQUIRE_SPEEDUPS: a silently failed C build must not pass as pure Python."""
    if os.environ.get("GEARSPEC_REQUIRE_SPEEDUPS"):
        assert codec.ACCELERATED, "gearspec._speedups did not build or import"
    assert (Decoder is PythonDecoder) is not codec.ACCELERATED


def test_pure_python_build_is_selectable() -> None:
    """GEARSPEC_PURE_PYTHON=1 gives the pure-Python decoder, which decodes the golden vectors."""
    code = (
        "import gearspec.codec as c\n"
        "assert not c.ACCELERATED and c.Decoder is c.PythonDecoder\n"
        "from gearspec.vectors import load_vectors\n"
        "print(len(load_vectors()))\n"
    )
    env = {**os.environ, "GEARSPEC_PURE_PYTHON": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 40


# A stream of well-formed packets (some with bulk data that spans many receives), admin
# lines, and garbage: bad magic, unknown types, wrong argument counts, oversize headers.
_bulk = st.builds(
    lambda magic, handle, size: Packet(magic, codec.PacketType.WORK_DATA, (handle, bytes([size % 251]) * size)).to_bytes(),
    st.sampled_from([Magic.REQ, Magic.RES]),
    st.binary(min_size=1, max_size=8).filter(lambda b: b"\0" not in b),
    st.integers(0, 70_000),
)
_stream = st.lists(
    st.one_of(
        packets().map(lambda p: p.to_bytes()),
        _bulk,
        near_headers(),
        st.binary(max_size=30),
        st.sampled_from([b"\0", b"\n", b"\r\n", b"status\n", b"\0REQ", b"\0RES\0\0\0", b"workers\r\n"]),
    ),
    max_size=14,
).map(b"".join)


_AS = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}


def _drive(cls: type, chunks: list[bytes], steps: list[bool], accept: Magic | None, lenient: bool,
           limit: int, kinds: list[str] = ()) -> list[object]:  # type: ignore[assignment]
    decoder = cls(accept, lenient=lenient, max_packet_size=limit)
    trace: list[object] = []
    step = iter(steps)
    kind = iter(kinds)
    for chunk in [*chunks, b""]:
        decoder.receive_data(_AS[next(kind, "bytes")](chunk) if chunk else chunk)
        trace.append(("fed", decoder.offset, decoder.buffered))
        while True:
            by_iteration = next(step, False)
            try:
                if by_iteration:
                    trace.append(("iter", list(decoder)))
                    trace.append((decoder.offset, decoder.buffered))
                    break
                event = decoder.next_event()
            except ProtocolError as exc:
                trace.append((type(exc), exc.code, exc.offset, exc.fatal, str(exc)))
                if exc.fatal:
                    with pytest.raises(ProtocolError):  # the error is sticky
                        decoder.next_event()
                    return trace
                continue
            trace.append((event, decoder.offset, decoder.buffered))
            if event is NEED_DATA or event is CLOSED:
                break
    return trace


@needs_speedups
@SETTINGS
@given(
    wire=_stream,
    data=st.data(),
    steps=st.lists(st.booleans(), max_size=40),
    lenient=st.booleans(),
    accept=st.sampled_from([None, Magic.REQ, Magic.RES]),
    limit=st.sampled_from([codec.DEFAULT_MAX_PACKET_SIZE, 65_536, 100, 0]),
)
def test_accelerated_and_pure_decoders_agree(
    wire: bytes, data: st.DataObject, steps: list[bool], lenient: bool, accept: Magic | None, limit: int
) -> None:
    chunks = data.draw(chunkings(wire))
    assert _drive(Decoder, chunks, steps, accept, lenient, limit) == _drive(
        PythonDecoder, chunks, steps, accept, lenient, limit
    )


def _well_formed(magic: Magic) -> st.SearchStrategy[bytes]:
    """Packets one side sends, many with bulk data well past the assembly threshold."""
    bulk = st.builds(
        lambda name, size: Packet(magic, codec.PacketType[name], (b"H:1", bytes([size % 251]) * size)).to_bytes(),
        st.sampled_from(["WORK_DATA", "WORK_COMPLETE", "WORK_WARNING"]),
        st.integers(0, 100_000),
    )
    return st.lists(st.one_of(packets(magic).map(lambda p: p.to_bytes()), bulk), max_size=8).map(b"".join)


@needs_speedups
@SETTINGS
@given(
    magic=st.sampled_from([Magic.REQ, Magic.RES]),
    data=st.data(),
    steps=st.lists(st.booleans(), max_size=40),
    kinds=st.lists(st.sampled_from(sorted(_AS)), max_size=40),
    eof_early=st.booleans(),
)
def test_agree_on_large_packets_in_many_receives(
    magic: Magic, data: st.DataObject, steps: list[bool], kinds: list[str], eof_early: bool
) -> None:
    """Bulk packets straddling receives (assembled by the C path), fed as bytes, bytearray or
    memoryview, possibly cut short by the end of the stream."""
    wire = data.draw(_well_formed(magic))
    if eof_early and wire:
        wire = wire[: data.draw(st.integers(0, len(wire) - 1))]
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(wire) - 1)), max_size=40)))
    bounds = [0, *[c for c in cuts if c < len(wire)], len(wire)]
    chunks = [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    accept = data.draw(st.sampled_from([magic, None]))
    limit = codec.DEFAULT_MAX_PACKET_SIZE
    assert _drive(Decoder, chunks, steps, accept, False, limit, kinds) == _drive(
        PythonDecoder, chunks, steps, accept, False, limit, kinds
    )


@needs_speedups
def test_limit_set_after_construction_applies() -> None:
    decoder = Decoder(Magic.REQ)
    decoder.max_packet_size = 4
    decoder.receive_data(Packet.make("ECHO_REQ", b"12345").to_bytes())
    with pytest.raises(ProtocolError) as err:
        decoder.next_event()
    assert err.value.code.value == "DATA_TOO_LARGE" and decoder.max_packet_size == 4


@needs_speedups
def test_no_references_leak() -> None:
    """Decoding and dropping many packets returns every object the C code took or made."""
    wire = b"".join(
        Packet.make(name, *args).to_bytes()
        for name, args in [("JOB_ASSIGN_UNIQ", ("H:1", "fn", "u", b"x" * 100)), ("NOOP", ()), ("JOB_CREATED", ("H:2",))]
    ) * 200
    magic, ptype = Magic.RES, codec.PacketType.NOOP

    def run() -> None:
        decoder = Decoder(Magic.RES)
        for i in range(0, len(wire), 1000):  # chunks that cut packets: the owned buffer is used
            decoder.receive_data(wire[i:i + 1000])
            for _ in decoder:
                pass
        decoder.receive_data(b"")
        assert list(decoder) == []

    run()
    gc.collect()
    before = (sys.getrefcount(magic), sys.getrefcount(ptype), sys.getallocatedblocks())
    for _ in range(20):
        run()
    gc.collect()
    after = (sys.getrefcount(magic), sys.getrefcount(ptype), sys.getallocatedblocks())
    assert after[:2] == before[:2]
    assert after[2] - before[2] < 100, (before, after)


@needs_speedups
def test_c_hot_path_is_clean_under_addresssanitizer(tmp_path: Path) -> None:
    """Builds gearspec/_speedups.c with AddressSanitizer and runs this file's agreement tests
    on that build: an out-of-bounds read or write, or a use after free, aborts the run."""
    gcc, asan = shutil.which("gcc"), None
    if gcc is not None:
        asan = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if gcc is None or not asan or not Path(asan).is_file():
        pytest.skip("no gcc with AddressSanitizer here")
    source = Path(codec.__file__).with_name("_speedups.c")
    module = tmp_path / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    build = subprocess.run(
        [gcc, "-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1", "-fPIC", "-shared",
         f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(module)],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    # Load the sanitized build as gearspec._speedups before gearspec imports the installed one.
    runner = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('gearspec._speedups', {str(module)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "sys.modules['gearspec._speedups'] = mod\n"
        "import gearspec.codec\n"
        "import gearspec.accelerated\n"
        "assert gearspec.codec.ACCELERATED and gearspec.accelerated.DecoderCore is mod.DecoderCore\n"
        "import pytest\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'not addresssanitizer', {__file__!r}]))\n"
    )
    env = {**os.environ, "LD_PRELOAD": asan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "PYTHONMALLOC": "malloc"}  # every object from malloc, where the sanitizer sees its bounds
    env.pop("GEARSPEC_PURE_PYTHON", None)
    result = subprocess.run([sys.executable, "-c", runner], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "AddressSanitizer" not in result.stderr
