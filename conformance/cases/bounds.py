"""Boundaries: every argument kind and admin line at, just below and just above the limits
real servers use, and payloads of many sizes through every submit and grab variant.

The limits, as found in the servers' sources:

- gearmand `libgearman-1.0/limits.h`: `GEARMAN_FUNCTION_MAX_SIZE` 512,
  `GEARMAN_MAX_UNIQUE_SIZE` 64, `GEARMAN_MAXIMUM_INTEGER_DISPLAY_LENGTH` 20;
  `libgearman-server/constants.h`: `GEARMAND_JOB_HANDLE_SIZE` 64, `GEARMAND_OPTION_SIZE` 64,
  `GEARMAND_SERVER_CON_ID_SIZE` 128, `GEARMAND_RECV_BUFFER_SIZE` 8192 (one NUL-terminated
  argument or one admin line must fit: `libgearman-server/plugins/protocol/gear/protocol.cc`
  `unpack`); `libgearman/command.cc` `gearmand_command_info_list` (an admin line has at most 5
  words: `GEARMAN_COMMAND_TEXT` argc 5; `libgearman-server/packet.cc` `gearmand_packet_create`
  refuses a sixth with `GEARMAND_TOO_MANY_ARGS`); `libgearman-server/server.cc`
  `gearman_server_run_command` (uniques over 64 bytes: ERROR ARGUMENT_TOO_LARGE; handles and
  uniques copied into 64-byte buffers with `snprintf`; epoch by `strtoll`, CAN_DO_TIMEOUT by
  `strtol` with LONG_MAX refused; WORK_STATUS numbers by `atoi` into `uint32_t`, the
  denominator through an 11-byte buffer).
- the reference server `reference/broker.py`: `MAX_FUNCTION_SIZE` 512, `MAX_UNIQUE_SIZE` 64,
  `MAX_NUMBER` 2**63 - 1 (larger numbers: ERROR ARGUMENT_TOO_LARGE), `MAX_CLIENT_ID_SIZE` 127.
- Perl Gearman::Server `lib/Gearman/Server/Client.pm`: no limit on any argument (one
  `MAX_READ_SIZE` of 512 KiB per read loop); python gear `gear/__init__.py`
  `Connection.readPacket`: no limit either (the size field is read as a signed int).

Above a limit a server may refuse (ERROR, or an ERR line for admin), but must not crash,
hang, or keep a truncated or wrapped value. A server that closes the connection instead is
graded non-strict, naming the limit it hit.
"""

from __future__ import annotations

from collections.abc import Sequence

from gearspec.conformance.cases._jobs import ASSIGN_TYPES, probe, read_status, settle, status_of, unique_grab
from gearspec.conformance.harness import Closed, Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, MUST, SHOULD, case

from gearspec.admin import parse_status, parse_workers
from gearspec.codec import AdminLine, Packet, RawPacket
from gearspec.spec import PacketType as T

_LIMITS = "gearmand libgearman-1.0/limits.h"
_CONST = "gearmand libgearman-server/constants.h"
_RUN = "gearmand libgearman-server/server.cc gearman_server_run_command"
_UNPACK = "gearmand libgearman-server/plugins/protocol/gear/protocol.cc unpack (GEARMAND_RECV_BUFFER_SIZE 8192)"
_REF = "reference/broker.py"
_CLOSES = {"closes": "the server closed the connection at this size instead of answering ERROR"}

# Sizes around the buffer sizes servers use: a 4 KiB page, gearmand's 8 KiB receive buffer,
# 64 KiB socket buffers; 0 and 1 for the edges.
PAYLOAD_SIZES = (0, 1, 4095, 4096, 4097, 8191, 8192, 8193, 65535, 65536, 65537)
LARGE_PAYLOAD = 1 << 20
# Longer names are left out of the end-of-run drain (it registers every name of the run on one
# connection, which gearmand closes at its 8 KiB buffer); the cases here finish their own jobs.
_DRAINABLE = 512


def _sized(s: Session, tag: str, size: int) -> str:
    """A name of exactly `size` bytes, unique to the case and run (padded `s.name(tag)`)."""
    base = s.name(tag)
    if size < len(base):
        raise ValueError(f"{size} bytes is too short for a unique name")
    name = base + "x" * (size - len(base) - 1) + "z"
    if size <= _DRAINABLE:
        s.names_used.add(name)
    return name


def _payload(s: Session, size: int) -> bytes:
    pattern = (s.token() + "\0").encode()
    return (pattern * (size // len(pattern) + 1))[:size]


def _answer(s: Session, conn: Conn, type: T, *args: object) -> Packet | None:
    """Send one request and a barrier: its one reply packet, None when the connection closed.

    No reply at all (silence before the barrier) fails the case with what was expected.
    """
    events = probe(s, conn, type, *args)
    if events is None:
        return None
    if len(events) != 1 or not isinstance(events[0], Packet):
        s.fail(
            f"one reply to {type.name}", "; ".join(describe(e) for e in events) or "nothing (before the barrier reply)"
        )
    return events[0]


def _silent_or_error(s: Session, conn: Conn, type: T, *args: object) -> Packet | str | None:
    """For requests with no reply: "ok" (silence), the ERROR packet, or None (closed)."""
    events = probe(s, conn, type, *args)
    if events is None:
        return None
    if not events:
        return "ok"
    first = events[0]
    if isinstance(first, Packet) and first.type is T.ERROR and len(events) == 1:
        return first
    return s.fail(f"no reply to {type.name} (or an ERROR)", "; ".join(describe(e) for e in events))


# -- function names ---------------------------------------------------------------------------


def _route(s: Session, fn: str, size_note: str) -> str:
    """Register `fn`, submit a job under it, grab and complete it. What happened, in a word:
    "served", "refused" (ERROR to CAN_DO or the submit), or "closed"."""
    worker = s.connect("worker")
    reg = _silent_or_error(s, worker, T.CAN_DO, fn)
    if reg is None:
        s.note(f"{size_note}: CAN_DO closed the connection")
        return "closed"
    client = s.client()
    reply = _answer(s, client, T.SUBMIT_JOB, fn, s.name("u"), b"payload")  # a unique: see _running
    if reply is None:
        s.note(f"{size_note}: SUBMIT_JOB closed the connection")
        return "closed"
    if reply.type is T.ERROR:
        s.note(f"{size_note}: SUBMIT_JOB refused: {describe(reply)}")
        if reg == "ok":  # a worker registered for a name no job can have
            s.fail(f"the {size_note} name refused by both CAN_DO and SUBMIT_JOB, or by neither",
                   f"CAN_DO accepted, SUBMIT_JOB got {describe(reply)}")
        return "refused"
    s.check(reply.type is T.JOB_CREATED, f"JOB_CREATED or ERROR for a {size_note} function name", reply)
    if reg != "ok":
        s.fail(
            f"the {size_note} name refused by both CAN_DO and SUBMIT_JOB, or by neither",
            f"CAN_DO got {describe(reg)}, SUBMIT_JOB got JOB_CREATED",
        )
    job = worker.grab()
    s.check(
        job["function"] == fn.encode() and job["data"] == b"payload",
        f"the job under its whole {size_note} function name",
        f"function of {len(job['function'])} bytes, equal: {job['function'] == fn.encode()}",
    )
    worker.work(T.WORK_COMPLETE, reply.handle, b"done")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"done", "result")
    return "served"


@case(
    "bounds/function/1",
    "Function names of 511 and 512 bytes (gearmand's GEARMAN_FUNCTION_MAX_SIZE) route a job to their worker, the name byte for byte",
    level=SHOULD,
    packets=["CAN_DO", "SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_LIMITS} GEARMAN_FUNCTION_MAX_SIZE; {_REF} MAX_FUNCTION_SIZE",
)
def function_at_limit(s: Session) -> None:
    for size in (511, 512):
        got = _route(s, _sized(s, "fn", size), f"{size}-byte")
        if got != "served":
            s.fail(f"the {size}-byte name served", got)


@case(
    "bounds/function/2",
    "A 513-byte function name (one over gearmand's limit) is served byte for byte or refused with ERROR; the server goes on",
    level=SHOULD,
    packets=["CAN_DO", "SUBMIT_JOB", "JOB_ASSIGN", "ERROR"],
    source=f"{_LIMITS} GEARMAN_FUNCTION_MAX_SIZE; {_REF} Broker._bad_name (ERROR above 512)",
    alternatives=_CLOSES,
)
def function_over_limit(s: Session) -> None:
    got = _route(s, _sized(s, "fn", 513), "513-byte")
    s.check_alive("a 513-byte function name")
    if got == "closed":
        s.non_strict("closes", "513-byte function name")


@case(
    "bounds/function/3",
    "Function names of 8191 and 8192 bytes (gearmand's 8 KiB receive buffer, NUL included) are served whole or refused with ERROR",
    level=SHOULD,
    packets=["CAN_DO", "SUBMIT_JOB", "JOB_ASSIGN", "ERROR"],
    source=f"{_UNPACK}: a NUL-terminated argument must fit the buffer (8191 bytes and its NUL); {_REF} MAX_FUNCTION_SIZE",
    alternatives=_CLOSES,
)
def function_around_buffer(s: Session) -> None:
    closed = [size for size in (8191, 8192) if _route(s, _sized(s, "fn", size), f"{size}-byte") == "closed"]
    s.check_alive("function names around 8 KiB")
    if closed:
        s.non_strict("closes", f"function names of {', '.join(map(str, closed))} bytes")


# -- unique ids ---------------------------------------------------------------------------------


def _unique_pair(s: Session, size: int) -> tuple[str, str]:
    """Two uniques of `size` bytes that differ only in their last byte."""
    base = _sized(s, "u", size)[:-1]
    first, second = base + "a", base + "b"
    s.names_used.update((first, second))
    return first, second


def _check_uniques(s: Session, fn: str, jobs: dict[bytes, str]) -> None:
    """Grab every queued job of `fn` with a unique-carrying grab; each has its whole unique."""
    # JOB_ASSIGN carries no unique: without a grab packet whose assignment does, the "whole
    # unique" half of the case cannot be seen (unsupported, not a pass).
    worker = s.worker(fn)
    for _ in jobs:
        job = unique_grab(s, worker)
        want = jobs.get(job.handle)
        s.check(want is not None, "a job this case queued", job)
        assert want is not None
        got = job["unique"]
        s.check(
            got == want.encode(),
            f"the {len(want)}-byte unique whole in {job.type.name}",
            f"{len(got)} bytes: {got[-8:]!r}",
        )
        worker.work(T.WORK_COMPLETE, job.handle, b"")
    worker.grab_nothing()


@case(
    "bounds/unique/1",
    "Uniques of 63 and 64 bytes (gearmand's GEARMAN_MAX_UNIQUE_SIZE) that differ only in the last byte make two jobs, each assigned with its whole unique",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "JOB_CREATED", "GRAB_JOB_UNIQ", "JOB_ASSIGN_UNIQ"],
    source=f"{_LIMITS} GEARMAN_MAX_UNIQUE_SIZE; {_RUN} (unique > 64: ERROR); {_REF} MAX_UNIQUE_SIZE",
)
def unique_at_limit(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    jobs: dict[bytes, str] = {}
    for size in (63, 64):
        first, second = _unique_pair(s, size)
        h1 = client.submit(fn, b"a", first, T.SUBMIT_JOB_BG)
        h2 = client.submit(fn, b"b", second, T.SUBMIT_JOB_BG)
        s.check(
            h1 != h2,
            f"two handles for {size}-byte uniques differing in the last byte",
            f"one handle {h1!r} (the unique was cut short?)",
        )
        again = client.submit(fn, b"c", first, T.SUBMIT_JOB_BG)
        if again != h1:
            s.note(
                f"the same {size}-byte unique again got a new handle (no coalescing; coalesce/unique/12 grades that)"
            )
            jobs[again] = first
        jobs.update({h1: first, h2: second})
    _check_uniques(s, fn, jobs)


@case(
    "bounds/unique/2",
    "A 65-byte unique (one over gearmand's limit) is refused with ERROR or kept whole: two differing only in byte 65 are two jobs",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "JOB_CREATED", "ERROR", "GRAB_JOB_UNIQ", "JOB_ASSIGN_UNIQ"],
    source=f"{_RUN} (arg_size > GEARMAN_UNIQUE_SIZE: ERROR ARGUMENT_TOO_LARGE 'Unique value too large'); {_REF} MAX_UNIQUE_SIZE",
    alternatives=_CLOSES,
)
def unique_over_limit(s: Session) -> None:
    fn = s.name("fn")
    first, second = _unique_pair(s, 65)
    client = s.client()
    reply = _answer(s, client, T.SUBMIT_JOB_BG, fn, first, b"a")
    if reply is None:
        s.check_alive("a 65-byte unique")
        s.non_strict("closes", "65-byte unique")
    assert reply is not None
    if reply.type is T.ERROR:
        s.note(f"refused: {describe(reply)}")
        client.expect_silence("the connection still usable after the refusal")
        return
    s.check(reply.type is T.JOB_CREATED, "JOB_CREATED or ERROR", reply)
    assert reply is not None
    h2 = client.submit(fn, b"b", second, T.SUBMIT_JOB_BG)
    s.check(
        h2 != reply.handle,
        "two handles for 65-byte uniques differing in byte 65",
        f"one handle {h2!r} (the unique was cut to 64 bytes)",
    )
    _check_uniques(s, fn, {reply.handle: first, h2: second})


@case(
    "bounds/unique/3",
    "GET_STATUS_UNIQUE finds queued jobs by uniques of 63 and 64 bytes (the longest a submit accepts)",
    level=EXTENSION,
    packets=["SUBMIT_JOB_BG", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=f"{_RUN} GET_STATUS_UNIQUE (copies the unique into a GEARMAN_MAX_UNIQUE_SIZE buffer with snprintf, so 64 bytes do not fit)",
)
def status_unique_at_limit(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    for size in (63, 64):
        unique = _sized(s, "u", size)
        client.submit(fn, b"x", unique, T.SUBMIT_JOB_BG)
        events = probe(s, client, T.GET_STATUS_UNIQUE, unique)
        first = events[0] if events else None
        if size == 63 and (events is None or not events or (isinstance(first, Packet) and first.type is T.ERROR)):
            s.unsupported(
                f"GET_STATUS_UNIQUE: {describe(first) if events else 'closed' if events is None else 'no reply'}"
            )
        if events is None:
            s.check_alive("GET_STATUS_UNIQUE of a 64-byte unique")
            s.fail(f"STATUS_RES_UNIQUE for the {size}-byte unique", "the connection closed")
        s.check(
            isinstance(first, (Packet, RawPacket)) and first.name == "STATUS_RES_UNIQUE" and len(events) == 1,
            f"one STATUS_RES_UNIQUE for the {size}-byte unique",
            "; ".join(describe(e) for e in events) or "nothing",
        )
        assert isinstance(first, (Packet, RawPacket))
        fields = first.args if isinstance(first, Packet) else tuple(first.payload.split(b"\0"))
        s.check(fields[:2] == (unique.encode(), b"1"), f"STATUS_RES_UNIQUE {size}-byte unique, known 1", first)


# -- handles ----------------------------------------------------------------------------------


@case(
    "bounds/handle/1",
    "GET_STATUS of made-up handles of 63, 64, 65 and 4096 bytes is answered STATUS_RES unknown (0 0) with the handle",
    level=SHOULD,
    packets=["GET_STATUS", "STATUS_RES"],
    source=f"{_CONST} GEARMAND_JOB_HANDLE_SIZE 64; {_RUN} GET_STATUS (a handle of 64 bytes or more: GEARMAND_MEMORY_ALLOCATION_FAILURE, the connection closes)",
    alternatives={
        "closes-long-handle": "the connection closed for handles of 64 bytes or more (longer than any handle the server makes)"
    },
)
def status_long_handle(s: Session) -> None:
    closed = []
    for size in (63, 64, 65, 4096):
        conn = s.client()
        handle = _sized(s, "h", size).encode()
        conn.send(T.GET_STATUS, handle)
        event = conn.receive()
        if isinstance(event, Closed) and size >= 64:
            closed.append(size)
            continue
        conn.unread(event) if event is not None else None
        fields = read_status(s, conn, handle)
        s.check(fields[:2] == (b"0", b"0"), f"known 0 running 0 for a made-up {size}-byte handle", repr(fields))
    s.check_alive("GET_STATUS of long handles")
    if closed:
        s.non_strict("closes-long-handle", f"closed for {', '.join(map(str, closed))} bytes")


@case(
    "bounds/handle/2",
    "WORK_FAIL for made-up handles of 63, 64 and 4096 bytes is refused with ERROR, and the connection goes on",
    level=SHOULD,
    packets=["WORK_FAIL", "ERROR"],
    source=f"{_RUN} WORK_FAIL (JOB_NOT_FOUND, or ARGUMENT_TOO_LARGE for 64 bytes or more); Perl Client.pm CMD_work_fail (not_worker)",
    alternatives={"ignored": "no reply to a WORK_FAIL for a job the worker does not hold", **_CLOSES},
)
def work_long_handle(s: Session) -> None:
    worker = s.worker(s.name("fn"))
    for size in (63, 64, 4096):
        reply = _silent_or_error(s, worker, T.WORK_FAIL, _sized(s, "h", size))
        if reply is None:
            s.check_alive(f"WORK_FAIL of a {size}-byte handle")
            s.non_strict("closes", f"WORK_FAIL with a {size}-byte handle")
        if reply == "ok":
            s.non_strict("ignored", f"{size}-byte handle")
        s.note(f"{size} bytes: {describe(reply)}")


# -- numbers ----------------------------------------------------------------------------------


def _running(s: Session) -> tuple[Conn, Conn, bytes]:
    fn = s.name("fn")
    client = s.client()
    # A unique id of its own: a server that coalesces on the empty unique (rustygeard) would
    # otherwise join an earlier job; coalesce/* grades that, not these cases.
    handle = client.submit(fn, b"x", s.name("u"))
    worker = s.worker(fn)
    s.check_equal(worker.grab().handle, handle, "assigned handle")
    return client, worker, handle


def _running_with_status(s: Session) -> tuple[Conn, Conn, bytes]:
    """`_running`, then a plain WORK_STATUS 1/2: a target that forwards none at all ends the case
    unsupported (work/forward/* grades that), as payload/8 does for WORK_DATA and WORK_WARNING."""
    client, worker, handle = _running(s)
    worker.work(T.WORK_STATUS, handle, 1, 2)
    settle(worker)
    got = client.sync()
    if not got:
        s.unsupported("WORK_STATUS 1/2 is not forwarded at all (see work/forward/*): not sized here")
    client.unread(*got)
    client.expect(T.WORK_STATUS)
    return client, worker, handle


def _forward_status(
    s: Session, client: Conn, worker: Conn, handle: bytes, num: bytes, den: bytes
) -> Packet | str | None:
    """WORK_STATUS num/den: the client's WORK_STATUS ("forwarded"), an ERROR to the worker, or None (closed)."""
    settle_events = probe(s, worker, T.WORK_STATUS, handle, num, den)
    if settle_events is None:
        return None
    errors = [e for e in settle_events if isinstance(e, Packet) and e.type is T.ERROR]
    if errors:
        return errors[0]
    got = client.expect(T.WORK_STATUS)
    s.check(
        (got.handle, got["numerator"], got["denominator"]) == (handle, num, den),
        f"WORK_STATUS {num.decode()}/{den.decode()} forwarded verbatim",
        got,
    )
    return "forwarded"


@case(
    "bounds/number/1",
    "WORK_STATUS numbers 0 (one digit), 4294967295 and 4294967296 (the 32-bit edge) reach the client verbatim",
    level=SHOULD,
    packets=["WORK_STATUS"],
    source=f"PROTOCOL (WORK_STATUS: numbers as text); {_RUN} WORK_STATUS (the packet is forwarded as sent); {_REF} MAX_NUMBER",
)
def status_numbers_forwarded(s: Session) -> None:
    client, worker, handle = _running_with_status(s)
    for num, den in ((b"0", b"0"), (b"4294967295", b"4294967295"), (b"4294967296", b"4294967297")):
        got = _forward_status(s, client, worker, handle, num, den)
        if got != "forwarded":
            s.fail(
                f"WORK_STATUS {num.decode()}/{den.decode()} forwarded",
                "the connection closed" if got is None else describe(got),
            )


@case(
    "bounds/number/2",
    "GET_STATUS reports the last WORK_STATUS numbers verbatim at the 32-bit edge (4294967296/4294967297)",
    level=SHOULD,
    packets=["WORK_STATUS", "GET_STATUS", "STATUS_RES"],
    source=f"{_RUN} WORK_STATUS (numerator by atoi into uint32_t, denominator through an 11-byte buffer); {_REF} MAX_NUMBER",
)
def status_numbers_kept(s: Session) -> None:
    client, worker, handle = _running_with_status(s)
    for num, den in ((b"4294967295", b"4294967295"), (b"4294967296", b"4294967297")):
        worker.work(T.WORK_STATUS, handle, num, den)
        client.expect(T.WORK_STATUS)
        fields = status_of(s, s.client(), handle)
        s.check(
            fields == (b"1", b"1", num, den),
            f"STATUS_RES known 1 running 1 {num.decode()}/{den.decode()}",
            "fields " + " ".join(f.decode("latin-1") for f in fields),
        )


@case(
    "bounds/number/3",
    "WORK_STATUS with 19-digit numbers (2**63 - 1) is forwarded verbatim; with 2**63 and 20 digits forwarded or refused with ERROR",
    level=SHOULD,
    packets=["WORK_STATUS", "ERROR"],
    source=f"{_REF} MAX_NUMBER (2**63 - 1; larger: ERROR ARGUMENT_TOO_LARGE); {_RUN} WORK_STATUS (denominator buffer of 11 bytes)",
    alternatives=_CLOSES,
)
def status_numbers_wide(s: Session) -> None:
    client, worker, handle = _running_with_status(s)
    top, over = str(2**63 - 1).encode(), str(2**63).encode()
    treated: dict[tuple[bytes, bytes], str] = {}
    for num, den, may_refuse in ((top, top, False), (over, b"1", True), (b"1", over, True), (b"1", b"9" * 20, True)):
        got = _forward_status(s, client, worker, handle, num, den)
        if got is None:
            s.check_alive("a WORK_STATUS with wide numbers")
            s.non_strict("closes", f"WORK_STATUS {num.decode()}/{den.decode()}")
        if got != "forwarded" and not may_refuse:
            s.fail(f"WORK_STATUS {num.decode()}/{den.decode()} forwarded", describe(got))
        if isinstance(got, Packet):
            s.note(f"{num.decode()}/{den.decode()}: {describe(got)}")
        treated[num, den] = "forwarded" if got == "forwarded" else "refused"
    # One rule for both numbers: 2**63 as the denominator goes the way it went as the numerator.
    s.check_equal(treated[b"1", over], treated[over, b"1"], "WORK_STATUS 1/2**63 handled as 2**63/1 was")


@case(
    "bounds/number/4",
    "CAN_DO_TIMEOUT with 19-digit timeouts (2**63 - 2, 2**63 - 1, the largest NUMBER) registers the function: its worker gets the job",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB", "JOB_ASSIGN", "ERROR"],
    source=f"{_RUN} CAN_DO_TIMEOUT (more than GEARMAN_MAXIMUM_INTEGER_DISPLAY_LENGTH digits, or strtol's LONG_MAX: refused by closing); {_REF} MAX_NUMBER",
    alternatives=_CLOSES,
)
def timeout_numbers_wide(s: Session) -> None:
    _timeouts(s, ((60000, False), (2**63 - 2, False), (2**63 - 1, False)))


@case(
    "bounds/number/6",
    "CAN_DO_TIMEOUT with a 20-digit timeout (beyond 64 bits) registers the function or is refused with ERROR; the server survives",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "ERROR"],
    source=f"{_RUN} CAN_DO_TIMEOUT (strtol ERANGE -> gearmand_log_perror); gearmand libgearman-server/log.cc gearmand_log_perror (snprintf(0, 0, format) without the format's argument); {_REF} MAX_NUMBER",
    alternatives=_CLOSES,
    destructive=True,
)
def timeout_number_overflow(s: Session) -> None:
    _timeouts(s, ((60000, False), (10**20 - 1, True)))


def _timeouts(s: Session, values: Sequence[tuple[int, bool]]) -> None:
    """Register with each timeout and run a job; the first value must work (else unsupported)."""
    closed = []
    for value, may_refuse in values:
        fn = s.name("fn")
        worker = s.connect("worker")
        reg = _silent_or_error(s, worker, T.CAN_DO_TIMEOUT, fn, value)
        if reg is None:
            closed.append(str(value))
            continue
        if reg != "ok":
            s.check(may_refuse, f"CAN_DO_TIMEOUT {value} accepted", reg)
            s.note(f"{value}: {describe(reg)}")
            continue
        client = s.client()
        handle = client.submit(fn, b"x")
        worker.send(s.grab_type)
        job = worker.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
        if value == values[0][0] and job.type is T.NO_JOB:
            s.unsupported(f"CAN_DO_TIMEOUT {value} did not register the function; see timeout/register/1")
        s.check(
            job.type is not T.NO_JOB and job.handle == handle,
            f"the job of a worker registered with timeout {value}",
            job,
        )
        worker.work(T.WORK_COMPLETE, handle, b"")
        client.expect(T.WORK_COMPLETE)
    s.check_alive("CAN_DO_TIMEOUT with wide numbers")
    if closed:
        s.non_strict("closes", f"CAN_DO_TIMEOUT {', '.join(closed)}")


@case(
    "bounds/number/5",
    "SUBMIT_JOB_EPOCH at 2**63 - 1 queues a job not handed out now; at 2**63 the job is refused or also not handed out (never wrapped into the past), and the next job is accepted",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "JOB_CREATED", "GRAB_JOB", "NO_JOB", "ERROR"],
    source=f"{_RUN} SUBMIT_JOB_EPOCH (strtoll: out of range closes the connection); {_REF} MAX_NUMBER",
    alternatives=_CLOSES,
)
def epoch_wide(s: Session) -> None:
    closed = []
    for epoch, may_refuse in ((2**63 - 1, False), (2**63, True)):
        fn = s.name("fn")
        client = s.client()
        events = probe(s, client, T.SUBMIT_JOB_EPOCH, fn, b"", epoch, b"x")
        if events is None:
            closed.append(str(epoch))
            continue
        if not events or (isinstance(events[0], Packet) and events[0].type is T.ERROR and not may_refuse):
            s.unsupported(f"SUBMIT_JOB_EPOCH: {describe(events[0]) if events else 'no reply'}; see epoch/*")
        first = events[0]
        if isinstance(first, Packet) and first.type is T.ERROR:
            s.note(f"{epoch}: {describe(first)}")
            continue
        s.check(isinstance(first, Packet) and first.type is T.JOB_CREATED, f"JOB_CREATED for epoch {epoch}", first)
        s.worker(fn).grab_nothing()
    s.check_alive("SUBMIT_JOB_EPOCH with wide epochs")
    # A refused epoch leaves nothing behind: the next background job is accepted at once.
    fn = s.name("fn")
    after = s.client()
    after.send(T.SUBMIT_JOB_BG, fn, b"", b"after")
    reply = after.expect(T.JOB_CREATED, T.ERROR, what="JOB_CREATED for a SUBMIT_JOB_BG after the wide epochs")
    s.check(reply.type is T.JOB_CREATED, "JOB_CREATED for a SUBMIT_JOB_BG after the wide epochs", describe(reply))
    s.worker(fn).grab()
    if closed:
        s.non_strict("closes", f"epoch {', '.join(closed)}")


# -- tokens: client ids, options -------------------------------------------------------------


@case(
    "bounds/client_id/1",
    "'workers' lists a 127-byte client id whole, and a 200-byte one whole or cut to no fewer than 127 bytes",
    level=SHOULD,
    packets=["SET_CLIENT_ID"],
    admin=["workers"],
    source=f"{_CONST} GEARMAND_SERVER_CON_ID_SIZE 128; gearmand libgearman-server/connection.cc gearman_server_con_set_id (truncates to 127); {_REF} MAX_CLIENT_ID_SIZE",
)
def client_id_sizes(s: Session) -> None:
    if not s.capabilities.admin:
        s.unsupported("needs the admin protocol ('workers')")
    ids = {size: _sized(s, "id", size) for size in (127, 200)}
    conns = []
    for cid in ids.values():
        conn = s.connect("worker")
        conn.send(T.SET_CLIENT_ID, cid)
        conns.append(conn)
    settle(*conns)
    rows = [row.client_id for row in parse_workers(s.connect("admin").admin("workers"))]
    for size, cid in ids.items():
        shown = [r for r in rows if r and cid.startswith(r) and len(r) >= 127]
        s.check(
            bool(shown),
            f"the {size}-byte client id listed (at least its first 127 bytes)",
            f"no such row; ids of that prefix: {[len(r) for r in rows if r[:40] == cid[:40]]}",
        )
        if size == 127:
            s.check(shown[0] == cid, "the 127-byte id whole", f"{len(shown[0])} bytes")
        elif shown[0] != cid:
            s.note(f"the {size}-byte id is listed cut to {len(shown[0])} bytes")


@case(
    "bounds/option/1",
    "OPTION_REQ with unknown option names of 63, 64 and 65 bytes (gearmand's GEARMAND_OPTION_SIZE) gets ERROR, and the connection goes on",
    level=SHOULD,
    packets=["OPTION_REQ", "ERROR"],
    source=f"{_CONST} GEARMAND_OPTION_SIZE 64; {_RUN} OPTION_REQ (UNKNOWN_OPTION)",
    alternatives={"ignored": "no reply to an unknown option", **_CLOSES},
)
def option_sizes(s: Session) -> None:
    conn = s.client()
    for size in (63, 64, 65):
        reply = _silent_or_error(s, conn, T.OPTION_REQ, _sized(s, "o", size))
        if reply is None:
            s.non_strict("closes", f"OPTION_REQ of {size} bytes")
        if reply == "ok":
            s.non_strict("ignored", f"{size}-byte option")


# -- admin lines --------------------------------------------------------------------------------


def _admin_reply(s: Session, line: bytes, silence_unsupported: bool = False) -> str | None:
    """Send one admin line on a new connection; its first reply line as text, None if closed."""
    if not s.capabilities.admin:
        s.unsupported("needs the admin protocol")
    conn = s.connect("admin")
    conn.send_raw(line, f"admin line of {len(line)} bytes: {line[:40]!r}...")
    event = conn.receive()
    if isinstance(event, Closed):
        return None
    if event is None:
        if silence_unsupported:
            s.unsupported(f"no reply to {line[:20]!r}... (see admin/unknown/1)")
        s.fail(f"a reply to an admin line of {len(line)} bytes", "nothing")
    if not isinstance(event, AdminLine):
        s.fail("an admin reply line", describe(event))
    return event.text.decode("latin-1")


@case(
    "bounds/admin/1",
    "Admin lines of 8191 and 8192 bytes (gearmand's receive buffer) are answered; one of 8193 bytes is answered or refused",
    level=SHOULD,
    admin=["cancel job"],
    source=f"{_UNPACK}; gearmand libgearman-server/text.cc server_run_text",
    alternatives=_CLOSES,
)
def admin_line_lengths(s: Session) -> None:
    closed = []
    for size in (8191, 8192, 8193):
        line = b"cancel job " + _sized(s, "h", size - 12).encode() + b"\n"
        text = _admin_reply(s, line)
        if text is None:
            if size <= 8192:
                s.fail(f"a reply to an admin line of {size} bytes", "the connection closed")
            closed.append(size)
            continue
        s.check(text.startswith("ERR"), "ERR (no such job)", text[:80])
    s.check_alive("long admin lines")
    if closed:
        s.non_strict("closes", f"admin line of {closed[0]} bytes")


@case(
    "bounds/admin/2",
    "An admin line of 5 words is answered, and one of 6 (one over gearmand's token limit) is answered with a reply or an ERR line",
    level=SHOULD,
    admin=["status"],
    source="gearmand libgearman/command.cc gearmand_command_info_list (GEARMAN_COMMAND_TEXT argc 5); libgearman-server/packet.cc gearmand_packet_create (GEARMAND_TOO_MANY_ARGS)",
    alternatives=_CLOSES,
)
def admin_token_counts(s: Session) -> None:
    replies = {}
    for words in (5, 6):
        text = _admin_reply(s, b"status" + b" x" * (words - 1) + b"\n")
        if text is None and words == 5:
            s.fail("a reply to 'status' with 4 extra words", "the connection closed")
        replies[words] = text
    s.check_alive("an admin line of 6 words")
    if replies[6] is None:
        s.non_strict("closes", "6 words")


@case(
    "bounds/admin/3",
    "'maxqueue F 1' limits a function with a 512-byte name as it does a short one: a second queued job is refused",
    level=EXTENSION,
    admin=["maxqueue"],
    packets=["SUBMIT_JOB_BG", "JOB_CREATED", "ERROR"],
    source=f"gearmand libgearman-server/text.cc server_run_text (maxqueue); {_LIMITS} GEARMAN_FUNCTION_MAX_SIZE; {_REF} Broker._admin_maxqueue",
)
def maxqueue_long_name(s: Session) -> None:
    client = s.client()
    # A short name first: how the target applies maxqueue is admin/maxqueue/1's business.
    for fn in (s.name("fn"), _sized(s, "fn", 512)):
        client.submit(fn, b"1", b"", T.SUBMIT_JOB_BG)  # gearmand applies maxqueue to known functions only
        text = _admin_reply(s, f"maxqueue {fn} 1\n".encode(), silence_unsupported=True)
        if text is None or not text.startswith("OK"):
            s.unsupported(f"maxqueue: {text if text is not None else 'the connection closed'}; see admin/maxqueue/*")
        reply = _answer(s, client, T.SUBMIT_JOB_BG, fn, b"", b"2")
        if len(fn) < 512 and (reply is None or reply.type is not T.ERROR):
            s.unsupported("maxqueue F 1 does not refuse a second job even for a short name; see admin/maxqueue/1")
        s.check(
            reply is not None and reply.type is T.ERROR,
            "ERROR for a second job over maxqueue 1 (the 512-byte name matched whole)",
            "the connection closed" if reply is None else reply,
        )


@case(
    "bounds/admin/4",
    "'create function F' with a 512-byte name (the function name limit) answers OK, and 'status' lists the whole name",
    level=EXTENSION,
    admin=["create function", "status"],
    source=f"gearmand libgearman-server/text.cc server_run_text (create function); {_LIMITS} GEARMAN_FUNCTION_MAX_SIZE; {_REF} Broker._admin_create",
)
def create_function_long_name(s: Session) -> None:
    # A short name first: how the target creates functions is admin/create_function/1's business.
    for fn in (s.name("fn"), _sized(s, "fn", 512)):
        text = _admin_reply(s, f"create function {fn}\n".encode(), silence_unsupported=True)
        if text is None or not text.startswith("OK"):
            if len(fn) < 512:
                s.unsupported(
                    f"create function: {text if text is not None else 'the connection closed'}; see admin/create_function/*"
                )
            s.fail(
                f"OK for 'create function' with a {len(fn)}-byte name",
                text if text is not None else "the connection closed",
            )
        rows = {row.function for row in parse_status(s.connect("admin").admin("status"))}
        if fn not in rows:
            if len(fn) < 512:
                s.unsupported(
                    "a created function is not listed whole even for a short name; see admin/create_function/1"
                )
            s.fail(
                f"a status row for the {len(fn)}-byte name",
                f"none; rows of that prefix: {[len(r) for r in rows if r[:40] == fn[:40]]}",
            )


# -- payloads ---------------------------------------------------------------------------------


def _through(s: Session, submit: T, grabs: Sequence[T], foreground: bool, epoch: bool = False) -> None:
    fn = s.name("fn")
    client, worker = s.client(), s.worker(fn)
    plan = [(grab, size) for grab in grabs for size in PAYLOAD_SIZES] + [(grabs[0], LARGE_PAYLOAD)]
    for grab, size in plan:
        data = _payload(s, size)
        if epoch:
            events = probe(s, client, submit, fn, b"", 1, data)
            first = events[0] if events else None
            if not (isinstance(first, Packet) and first.type is T.JOB_CREATED):
                s.unsupported(
                    f"{submit.name}: {describe(first) if events else 'no reply' if events is not None else 'closed'}; see epoch/*"
                )
            assert isinstance(first, Packet)
            handle = first.handle
            unique = None  # submitted empty: a server may make one up (grab/uniq/2 grades that)
        else:
            unique = s.name("u").encode()  # own unique: see _running
            handle = client.submit(fn, data, unique, submit)
        worker.send(grab)
        # Any assignment packet: which one a grab gets is graded by grab/* (gearmand answers
        # GRAB_JOB_ALL with JOB_ASSIGN_UNIQ for a plain job: grab/all/1); every field it has is checked.
        job = worker.expect(*ASSIGN_TYPES, ignore=[T.NOOP], what=f"a job for {grab.name}")
        s.check(
            job.handle == handle
            and job["data"] == data
            and (unique is None or job.fields.get("unique", unique) == unique),
            f"{job.type.name} with the handle, unique and the {size}-byte data sent",
            f"{describe(job)[:100]} (data of {len(job['data'])} bytes, equal: {job['data'] == data})",
        )
        worker.work(T.WORK_COMPLETE, handle, data[::-1])
        if foreground:
            reply = client.expect(T.WORK_COMPLETE)
            s.check(
                reply.handle == handle and reply["data"] == data[::-1],
                f"WORK_COMPLETE with the {size}-byte result",
                f"{describe(reply)[:80]}, data of {len(reply['data'])} bytes",
            )
    if not foreground:
        client.expect_silence("nothing to a background submitter")


def _payload_case(number: int, submit: T, foreground: bool) -> None:
    @case(
        f"bounds/payload/{number}",
        f"{submit.name} payloads of 0 B to 64 KiB + 1 and 1 MiB reach the worker intact through every grab packet the target serves"
        + (", and the results come back intact" if foreground else ""),
        level=MUST,
        packets=[
            submit,
            "JOB_CREATED",
            "GRAB_JOB",
            "GRAB_JOB_UNIQ",
            "GRAB_JOB_ALL",
            "JOB_ASSIGN",
            "JOB_ASSIGN_UNIQ",
            "JOB_ASSIGN_ALL",
            "WORK_COMPLETE",
        ],
        source="PROTOCOL (32-bit size field, opaque data); sizes around a 4 KiB page, gearmand's 8 KiB buffers (GEARMAND_RECV_BUFFER_SIZE, GEARMAND_SEND_BUFFER_SIZE) and 64 KiB socket buffers",
        timeout=20,
    )
    def run(s: Session) -> None:
        if submit not in s.capabilities.submits:
            s.unsupported(f"{submit.name} was refused in the run's probe; see submit/variant/*")
        _through(s, submit, s.capabilities.grabs or (s.grab_type,), foreground)

    run.__name__ = run.__qualname__ = f"payload_{submit.name.lower()}"


for _n, (_submit, _fg) in enumerate(
    (
        (T.SUBMIT_JOB, True),
        (T.SUBMIT_JOB_BG, False),
        (T.SUBMIT_JOB_HIGH, True),
        (T.SUBMIT_JOB_HIGH_BG, False),
        (T.SUBMIT_JOB_LOW, True),
        (T.SUBMIT_JOB_LOW_BG, False),
    ),
    start=1,
):
    _payload_case(_n, _submit, _fg)


@case(
    "bounds/payload/7",
    "SUBMIT_JOB_EPOCH (a time long past) payloads of 0 B to 64 KiB + 1 and 1 MiB reach the worker intact through every grab packet",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "JOB_CREATED", "JOB_ASSIGN", "JOB_ASSIGN_UNIQ", "JOB_ASSIGN_ALL"],
    source=f"{_RUN} SUBMIT_JOB_EPOCH; PROTOCOL (opaque data)",
    timeout=20,
)
def payload_epoch(s: Session) -> None:
    _through(s, T.SUBMIT_JOB_EPOCH, s.capabilities.grabs or (s.grab_type,), False, epoch=True)


@case(
    "bounds/payload/8",
    "WORK_DATA, WORK_WARNING and WORK_COMPLETE payloads of 0 B, 8 KiB + 1, 64 KiB + 1 and 1 MiB reach the client intact",
    level=MUST,
    packets=["WORK_DATA", "WORK_WARNING", "WORK_COMPLETE"],
    source=f"PROTOCOL (WORK_DATA, WORK_WARNING, WORK_COMPLETE: opaque data); {_RUN} (forwarded to every listener)",
    timeout=20,
)
def payload_work(s: Session) -> None:
    client, worker, handle = _running(s)
    forwarded = []
    for type in (T.WORK_DATA, T.WORK_WARNING):  # a server that drops one is graded by work/*
        worker.work(type, handle, b"1")
        settle(worker)
        if client.sync():
            forwarded.append(type)
        else:
            s.note(f"{type.name} is not forwarded at all (see work/*): not sized here")
    for size in (0, 8193, 65537, LARGE_PAYLOAD):
        data = _payload(s, size)
        for type in forwarded:
            worker.work(type, handle, data)
            got = client.expect(type)
            s.check(
                got.handle == handle and got["data"] == data,
                f"{type.name} with the {size}-byte data",
                f"{describe(got)[:80]}, data of {len(got['data'])} bytes",
            )
    data = _payload(s, LARGE_PAYLOAD + 1)
    worker.work(T.WORK_COMPLETE, handle, data)
    got = client.expect(T.WORK_COMPLETE)
    s.check(got["data"] == data, "WORK_COMPLETE with the 1 MiB + 1 result", f"{len(got['data'])} bytes")
