"""Framing and bad input: magic, packet types, argument counts, sizes, text and binary mixed.

Sources: gearmand `PROTOCOL` ("Binary Packet", "Administrative Protocol");
`libgearman-server/plugins/protocol/gear/protocol.cc` (`gearmand_packet_unpack_header`:
"invalid magic value", "invalid command value") and `libgearman-server/io.cc`
(`gearman_io_recv`: "protocol failure, closing connection");
`libgearman-server/server.cc` `gearman_server_run_command` (ERROR INVALID_MAGIC "Request
magic expected", ERROR INVALID_COMMAND "Command not expected");
`libgearman-server/text.cc` `server_run_text` (admin lines, `\\r` stripped).
"""

from __future__ import annotations

import struct

from gearspec.conformance.harness import Closed, Conn, Session, describe, is_barrier_reply
from gearspec.conformance.registry import INFO, MUST, SHOULD, case

from gearspec.codec import Packet, RawPacket
from gearspec.spec import PACKETS, Magic, PacketSpec
from gearspec.spec import PacketType as T

_PROTOCOL = "PROTOCOL (Binary Packet)"
_PARSER = (
    "gearmand libgearman-server/plugins/protocol/gear/protocol.cc gearmand_packet_unpack_header; "
    "libgearman-server/io.cc gearman_io_recv (closes the connection)"
)
_RUN = "gearmand libgearman-server/server.cc gearman_server_run_command"
_TEXT = "gearmand libgearman-server/text.cc server_run_text"


def _header(magic: bytes, code: int, size: int) -> bytes:
    return magic + struct.pack(">II", code, size)


def _raw(magic: bytes, code: int, payload: bytes = b"") -> bytes:
    return _header(magic, code, len(payload)) + payload


def _carried(s: Session, conn: Conn, data: bytes) -> bytes:
    """Send opaque `data` through the target and return what came back.

    ECHO_REQ -> ECHO_RES where the target answers ECHO; else as job data (SUBMIT_JOB_BG, then
    a worker's grab), since a server without ECHO must still carry any bytes a client sends.
    """
    if s.barrier == "echo":
        conn.send(T.ECHO_REQ, data)
        return conn.expect(T.ECHO_RES).data
    fn = s.name("carry")
    conn.submit(fn, data, type=T.SUBMIT_JOB_BG)
    return s.worker(fn).grab()["data"]


_MALFORMED = {"malformed-error": "refused with an ERROR packet that is not 'code NUL text' (e.g. a NUL inside the text)"}
_CLOSES = {"closes": "closed the connection where the cited source answers ERROR"}


def _refused(s: Session, conn: Conn, what: str, *, close_ok: bool, pending: bytes | None = None) -> None:
    """The server refuses a packet with ERROR or by closing; nothing else passes.

    `close_ok`: the case's source itself closes here (gearmand's parser, protocol.cc
    `gearmand_packet_unpack_header`, for a type it cannot frame) while its command layer
    (server.cc `gearman_server_run_command`) answers the same kind of refusal with ERROR, and
    PROTOCOL names neither: both are the refusal a client sees. Without it the source answers
    ERROR, and a close is the declared alternative "closes".
    An ERROR must come alone: the refused packet is not executed and nothing else is sent (a
    round trip follows; the connection closing after the ERROR is a refusal too). `pending`:
    the token of a barrier request the case already sent behind the packet.
    A malformed ERROR (e.g. an extra NUL) is graded non-strict "malformed-error": the refusal
    happened, in a shape a strict client cannot parse (framing/error/1 grades the shape).
    """
    event = conn.receive()
    if isinstance(event, Closed):
        s.check_alive(what)
        if not close_ok:
            s.non_strict("closes", f"after {what}")
        return
    malformed = isinstance(event, RawPacket) and event.code == T.ERROR
    if not malformed and not (isinstance(event, Packet) and event.type is T.ERROR):
        actual = "nothing (the packet was ignored)" if event is None else describe(event)
        s.fail(f"ERROR{' or the connection closed' if close_ok else ''} after {what}", actual)
    _nothing_after_refusal(s, conn, what, pending)
    if malformed:
        s.non_strict("malformed-error", describe(event))


def _nothing_after_refusal(s: Session, conn: Conn, what: str, pending: bytes | None) -> None:
    """After the ERROR: the next reply is the barrier's (nothing executed, no second ERROR),
    or the connection closes, or nothing comes at all (noted: the connection went quiet)."""
    if pending is None:
        if s.barrier is None:  # no round trip to order by: the ERROR alone is graded
            s.note(f"no round trip to show that nothing followed the ERROR for {what}")
            return
        pending = b"gs-after-" + s.token().encode()
        conn.send(s.barrier_request(pending))
    event = conn.receive()
    if isinstance(event, Closed) or is_barrier_reply(event, pending):
        return
    if event is None:
        s.note(f"after the ERROR for {what} the connection answered nothing more")
        return
    s.fail(f"only the ERROR for {what} (the packet not executed)", f"then {describe(event)}")


# -- magic ---------------------------------------------------------------------------------


@case(
    "framing/magic/1",
    "A REQ packet is answered with RES magic (ECHO_REQ -> ECHO_RES, or GET_STATUS -> STATUS_RES without ECHO)",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=_PROTOCOL,
)
def response_magic(s: Session) -> None:
    conn = s.client()
    conn.send(s.barrier_request(b"magic"))
    reply = conn.receive()
    if isinstance(reply, RawPacket) and reply.magic != Magic.RES.value:
        s.fail(f"{s.barrier_reply} with RES magic", describe(reply))
    conn.unread(reply)
    conn.round_trip(b"magic")


@case(
    "framing/magic/2",
    "A request sent with RES magic is refused with ERROR INVALID_MAGIC, not executed",
    level=SHOULD,
    packets=["ECHO_REQ", "ERROR"],
    source=f"{_PROTOCOL}; {_RUN} (ERROR INVALID_MAGIC 'Request magic expected')",
    alternatives={**_CLOSES, **_MALFORMED},
)
def request_with_response_magic(s: Session) -> None:
    conn = s.client()
    # The request is one the target answers when its magic is right (ECHO_REQ, else
    # GET_STATUS), so that silence here means "ignored", not "never answers this packet".
    request = s.barrier_request(b"wrong-magic")
    conn.send_raw(_raw(Magic.RES.value, request.type, b"\0".join(request.args)))
    _refused(s, conn, f"{request.name} with RES magic", close_ok=False)


@case(
    "framing/magic/3",
    "A packet with unknown magic (\\0XYZ) makes the server close the connection",
    packets=["ECHO_REQ"],
    source=f"{_PROTOCOL}; {_PARSER}",
    alternatives={"error-kept-open": "answered ERROR and kept the connection open"},
)
def unknown_magic(s: Session) -> None:
    conn = s.client()
    conn.send_raw(_raw(b"\0XYZ", T.ECHO_REQ, b"bad"))
    event = conn.receive()
    if isinstance(event, Closed):
        return
    if isinstance(event, (Packet, RawPacket)) and event.name == "ERROR":
        s.non_strict("error-kept-open", describe(event))
    s.fail("the connection closed (framing is lost after bad magic)", conn.describe_received(event))


@case(
    "framing/magic/5",
    "A valid request and a packet with unknown magic in one write: the request is answered before the server closes",
    level=SHOULD,
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{_PROTOCOL} (requests are answered in order); {_PARSER}",
)
def answered_before_bad_magic(s: Session) -> None:
    conn = s.client()
    token = b"gs-before-" + s.token().encode()
    conn.send_raw(s.barrier_request(token).to_bytes() + _raw(b"\0XYZ", T.ECHO_REQ, b"bad"), "a request, then bad magic")
    event = conn.receive()
    if isinstance(event, Closed):
        s.fail(f"the {s.barrier_reply} for the request before the bad packet, then the close", "the close alone: the reply was lost")
    s.check(is_barrier_reply(event, token), f"the {s.barrier_reply} for the request before the bad packet", conn.describe_received(event))


@case(
    "framing/magic/4",
    "Every packet of a whole job round (JOB_CREATED, JOB_ASSIGN*, NO_JOB, NOOP, WORK_COMPLETE) carries RES magic",
    packets=["SUBMIT_JOB", "JOB_CREATED", "CAN_DO", "PRE_SLEEP", "NOOP", "NO_JOB", "WORK_COMPLETE"],
    source=_PROTOCOL,
)
def res_magic_everywhere(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    worker.grab_nothing()
    worker.send(T.PRE_SLEEP)
    client = s.client()
    handle = client.submit(fn, b"payload")
    worker.expect(T.NOOP)  # lenient decoding: REQ magic here would be a RawPacket and fail
    job = worker.grab()
    worker.work(T.WORK_COMPLETE, job.handle, b"done")
    done = client.expect(T.WORK_COMPLETE)
    s.check_equal(done.handle, handle, "WORK_COMPLETE handle")


# -- packet types ----------------------------------------------------------------------------


def _bad_type_case(
    number: int, code: int, label: str, source: str, close_ok: bool, destructive: bool = False
) -> None:
    @case(
        f"framing/type/{number}",
        f"A packet of {label} is refused with ERROR{' or by closing the connection' if close_ok else ''}, and the server lives on",
        level=MUST,
        packets=["ECHO_REQ"],
        source=source,
        destructive=destructive,
        alternatives=_MALFORMED if close_ok else {**_CLOSES, **_MALFORMED},
    )
    def bad_type(s: Session) -> None:
        conn = s.client()
        conn.send_raw(_raw(Magic.REQ.value, code, b""))
        _refused(s, conn, f"type {code}", close_ok=close_ok)

    bad_type.__name__ = bad_type.__qualname__ = f"bad_type_{number}"


# Types gearmand's parser cannot frame (0, past the table) are refused by closing there
# (close_ok); a reserved type inside the table gets ERROR INVALID_COMMAND from server.cc.
_bad_type_case(
    1, 0, "type 0 (TEXT, never a binary packet)", f"libgearman-1.0/protocol.h GEARMAN_COMMAND_TEXT; {_PARSER}", True
)
_bad_type_case(2, 5, "reserved type 5", f"libgearman-1.0/protocol.h GEARMAN_COMMAND_UNUSED; {_RUN}", False)
_bad_type_case(3, len(PACKETS), f"unknown type {len(PACKETS)} (one past the table)", _PARSER, True)
# Destructive: gearmand 1.1.20 dies of SIGSEGV on this one, which would end the whole run.
_bad_type_case(4, 0xFFFFFFFF, "unknown type 0xFFFFFFFF", _PARSER, True, destructive=True)


@case(
    "framing/type/5",
    "After refusing reserved type 5 with ERROR the connection still answers a round trip (ECHO_REQ or GET_STATUS)",
    level=SHOULD,
    packets=["ECHO_REQ", "ECHO_RES", "ERROR"],
    source=f"{_RUN} (ERROR is not fatal)",
    alternatives={"closes": "closed the connection instead of answering ERROR"},
)
def usable_after_error(s: Session) -> None:
    conn = s.client()
    conn.send_raw(_raw(Magic.REQ.value, 5, b""))
    event = conn.receive()
    if isinstance(event, Closed):
        s.non_strict("closes")
    if not isinstance(event, (Packet, RawPacket)) or event.name != "ERROR":
        s.fail("ERROR", conn.describe_received(event))
    conn.send(s.barrier_request(b"still-there"))
    conn.round_trip(b"still-there")


@case(
    "framing/type/6",
    "ALL_YOURS (defined, never implemented) is refused or ignored and the connection stays usable",
    level=SHOULD,
    packets=["ALL_YOURS"],
    source=f"PROTOCOL (ALL_YOURS: not yet implemented); {_RUN} (ERROR INVALID_COMMAND)",
)
def all_yours(s: Session) -> None:
    conn = s.worker(s.name("fn"))
    conn.send(T.ALL_YOURS)
    # ERROR and silence both conform: PROTOCOL defines ALL_YOURS without a response ("not yet
    # implemented"), and gearmand's server.cc answers ERROR INVALID_COMMAND. A close does not.
    extra = conn.sync()
    for event in extra:
        if not (isinstance(event, (Packet, RawPacket)) and event.name == "ERROR"):
            s.fail("ERROR or nothing before the barrier reply", describe(event))
    if extra:
        s.note(f"answered {describe(extra[0])}")


# Packets only the server sends, sent toward it with REQ magic: refused, never acted on.
_SERVER_ONLY = [row for row in PACKETS if not row.reserved and row.magics == frozenset({Magic.RES})]
for _n, _row in enumerate(_SERVER_ONLY, start=1):

    def _make(row: PacketSpec = _row, n: int = _n) -> None:
        @case(
            f"framing/direction/{n}",
            f"{row.name}, which only a server sends, is refused with ERROR when a client sends it (REQ magic)",
            level=SHOULD,
            packets=[row.name],
            source=f"{_RUN} (ERROR INVALID_COMMAND 'Command not expected')",
            alternatives={**_CLOSES, **_MALFORMED},
        )
        def server_packet_from_client(s: Session) -> None:
            conn = s.client()
            payload = b"\0".join(b"0" if a.kind.value == "number" else b"x" for a in row.args)
            conn.send_raw(_raw(Magic.REQ.value, row.code, payload))
            _refused(s, conn, f"{row.name} from a client", close_ok=False)

        server_packet_from_client.__name__ = server_packet_from_client.__qualname__ = f"direction_{row.name.lower()}"

    _make()


# -- arguments -------------------------------------------------------------------------------


@case(
    "framing/args/1",
    "Opaque data with NUL bytes survives a round trip byte for byte (ECHO_REQ -> ECHO_RES, or job data)",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{_PROTOCOL}: the last argument runs to the end of the payload",
)
def data_with_nuls(s: Session) -> None:
    data = b"\0a\0\0b\0" + bytes(range(256))
    s.check_equal(_carried(s, s.client(), data), data, "data carried back")


@case(
    "framing/args/2",
    "A zero-length payload is decoded: an empty ECHO_REQ (or GET_STATUS without ECHO) gets an empty-token reply",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=_PROTOCOL,
)
def empty_echo(s: Session) -> None:
    conn = s.client()
    conn.send(s.barrier_request(b""))
    conn.round_trip(b"")


@case(
    "framing/args/3",
    "SUBMIT_JOB with too few arguments (no NUL after the unique) is refused, not queued",
    level=SHOULD,
    packets=["SUBMIT_JOB", "ERROR", "ECHO_REQ"],
    source=f"{_PROTOCOL}; libgearman/command.cc gearmand_command_info_list (SUBMIT_JOB argc 2 + data)",
    alternatives=_MALFORMED,
)
def too_few_arguments(s: Session) -> None:
    conn = s.client()
    conn.send_raw(_raw(Magic.REQ.value, T.SUBMIT_JOB, s.name("fn").encode() + b"\0unique-only"))
    # gearmand only notices once more bytes arrive (it closes then): follow with a round trip.
    conn.send(s.barrier_request(b"after-short-submit"))
    _refused(s, conn, "a 2-field SUBMIT_JOB", close_ok=True, pending=b"after-short-submit")


@case(
    "framing/args/4",
    "Empty unique and empty data are legal: SUBMIT_JOB_BG with both empty gets JOB_CREATED",
    packets=["SUBMIT_JOB_BG", "JOB_CREATED"],
    source=f"{_PROTOCOL} (arguments may be empty)",
)
def empty_arguments(s: Session) -> None:
    conn = s.client()
    handle = conn.submit(s.name("fn"), b"", b"", type=T.SUBMIT_JOB_BG)
    s.check(bool(handle), "a non-empty job handle", "an empty handle")


@case(
    "framing/args/5",
    "Job data with NUL bytes reaches the worker byte for byte (SUBMIT_JOB -> JOB_ASSIGN*)",
    packets=["SUBMIT_JOB", "JOB_CREATED", "CAN_DO", "GRAB_JOB", "JOB_ASSIGN"],
    source=_PROTOCOL,
)
def job_data_with_nuls(s: Session) -> None:
    fn = s.name("fn")
    data = b"\0x\0y\0\0" + bytes(range(1, 256))
    s.client().submit(fn, data)
    job = s.worker(fn).grab()
    s.check_equal(job.data, data, "job data")


@case(
    "framing/args/6",
    "A packet that takes no arguments but carries a payload (GRAB_JOB + 2 bytes): behaviour recorded",
    level=INFO,
    packets=["GRAB_JOB", "NO_JOB"],
    source=f"{_PROTOCOL}; libgearman/command.cc gearmand_command_info_list (GRAB_JOB argc 0)",
)
def payload_on_no_argument_packet(s: Session) -> None:
    conn = s.worker(s.name("fn"))
    conn.send_raw(_raw(Magic.REQ.value, T.GRAB_JOB, b"xx"))
    event = conn.receive()
    s.note(f"answered {conn.describe_received(event)}")


@case(
    "framing/args/7",
    "A NUL inside the last non-data argument (GET_STATUS handle 'h\\0x'): behaviour recorded",
    level=INFO,
    packets=["GET_STATUS", "STATUS_RES"],
    source=f"{_PROTOCOL}; libgearman/command.cc gearmand_command_info_list (GET_STATUS argc 1, no data)",
)
def nul_inside_handle(s: Session) -> None:
    conn = s.client()
    conn.send_raw(_raw(Magic.REQ.value, T.GET_STATUS, b"gs-no-such-handle\0x"))
    event = conn.receive()
    s.note(f"answered {conn.describe_received(event)}")


@case(
    "framing/error/1",
    "ERROR packets have exactly two arguments: an error code token and a text (no trailing NUL)",
    level=SHOULD,
    packets=["OPTION_REQ", "ERROR"],
    source=f"{_PROTOCOL} (ERROR); {_RUN} _server_error_packet",
)
def error_shape(s: Session) -> None:
    conn = s.client()
    conn.send(T.OPTION_REQ, b"gs-no-such-option")
    event = conn.receive()
    if isinstance(event, RawPacket) and event.code == T.ERROR:
        s.fail("ERROR code NUL text", f"{describe(event)}")
    if not isinstance(event, Packet) or event.type is not T.ERROR:
        s.fail("ERROR for an unknown option", conn.describe_received(event))
    s.check(bool(event.code) and b" " not in event.code, "a non-empty error code without spaces", describe(event))


# -- sizes -----------------------------------------------------------------------------------


@case(
    "framing/size/1",
    "A 1 MiB payload comes back whole (ECHO_REQ, or job data without ECHO)",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{_PROTOCOL} (32-bit size field)",
)
def one_mebibyte_echo(s: Session) -> None:
    data = bytes(s.rng.getrandbits(8) for _ in range(1024)) * 1024
    back = _carried(s, s.client(), data)
    s.check(back == data, "the same 1 MiB back", f"{len(back)} bytes, equal={back == data}")


@case(
    "framing/size/2",
    "A 256 KiB job payload reaches the worker intact",
    packets=["SUBMIT_JOB_BG", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_PROTOCOL} (32-bit size field)",
)
def large_job(s: Session) -> None:
    fn = s.name("fn")
    data = s.token().encode() * (256 * 1024 // 8)
    s.client().submit(fn, data, type=T.SUBMIT_JOB_BG)
    job = s.worker(fn).grab()
    s.check(job.data == data, "the same 256 KiB", f"{len(job.data)} bytes, equal={job.data == data}")


@case(
    "framing/size/5",
    "Payloads of 4095, 4096, 4097 and 16384 bytes, each packet in one write, pass intact through every grab packet the target serves, and back in WORK_COMPLETE",
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "JOB_ASSIGN_UNIQ", "JOB_ASSIGN_ALL", "WORK_COMPLETE"],
    source=f"{_PROTOCOL} (32-bit size field); servers switch buffer strategies around a 4 KiB page",
)
def sizes_around_a_page(s: Session) -> None:
    fn = s.name("fn")
    client, worker = s.client(), s.worker(fn)
    for grab in s.capabilities.grabs or (s.grab_type,):
        for size in (4095, 4096, 4097, 16384):
            data, unique = (s.token().encode() * (size // 8 + 1))[:size], s.name("u").encode()
            handle = client.submit(fn, data, unique)
            worker.send(grab)  # any assignment packet: which one a grab gets is grab/*'s business
            job = worker.expect(T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL, ignore=[T.NOOP], what=f"a job for {grab.name}")
            got = (job.handle, job["data"], job.fields.get("unique", unique))
            if got != (handle, data, unique):
                s.fail(
                    f"{job.type.name} with the handle, unique and {size}-byte data sent",
                    f"{describe(job)[:100]} (data equal: {job['data'] == data})",
                )
            worker.work(T.WORK_COMPLETE, handle, data[::-1])
            reply = client.expect(T.WORK_COMPLETE)
            s.check(
                reply.handle == handle and reply["data"] == data[::-1], f"WORK_COMPLETE with the {size}-byte result",
                f"{describe(reply)[:80]}, equal={reply['data'] == data[::-1]}",
            )


@case(
    "framing/size/3",
    "A header announcing a 4 GiB - 1 payload, then silence: the server's limit is recorded",
    level=INFO,
    packets=["ECHO_REQ"],
    source=f"{_PROTOCOL} (32-bit size field); gearmand has no maximum packet size constant",
)
def huge_size_field(s: Session) -> None:
    conn = s.client()
    conn.send_raw(_header(Magic.REQ.value, T.ECHO_REQ, 0xFFFFFFFF) + b"x" * 1024)
    event = conn.receive(timeout=min(s.wait, 1.0))
    if event is None:
        s.note("waits for the rest of the payload (no early size check)")
    else:
        s.note(f"answered {describe(event)}")


@case(
    "framing/size/4",
    "An admin line longer than 8 KiB without a newline: the server's limit is recorded",
    level=INFO,
    admin=["status"],
    source=f"{_TEXT}; gearmand 8192-byte receive buffer (libgearman-server/io.cc)",
)
def long_admin_line(s: Session) -> None:
    conn = s.client()
    conn.send_raw(b"status" + b" " * 16384)
    event = conn.receive(timeout=min(s.wait, 1.0))
    if event is None:
        s.note("waits for the newline (no line limit within 16 KiB)")
    else:
        s.note(f"answered {describe(event)}")


# -- split and pipelined input ---------------------------------------------------------------


@case(
    "framing/split/1",
    "A packet written one byte at a time is decoded",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{_PROTOCOL} (TCP is a byte stream)",
)
def byte_by_byte(s: Session) -> None:
    conn = s.client()
    request = s.barrier_request(b"split")
    data = request.to_bytes()
    for i in range(len(data)):
        conn.send_raw(data[i : i + 1], f"byte {i} of {request.name}")
    conn.round_trip(b"split")


@case(
    "framing/split/2",
    "A header and its payload in separate writes, the payload split mid-argument, are decoded",
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{_PROTOCOL} (TCP is a byte stream)",
)
def header_then_payload(s: Session) -> None:
    conn = s.client()
    data = Packet.request(T.SUBMIT_JOB, s.name("fn"), s.name("u"), b"payload").to_bytes()
    conn.send_raw(data[:12], "header of SUBMIT_JOB")
    conn.send_raw(data[12:20], "payload part 1")
    conn.send_raw(data[20:], "payload part 2")
    conn.expect(T.JOB_CREATED)


@case(
    "framing/pipeline/1",
    "Several requests in one write are all answered, in order",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{_PROTOCOL}",
)
def pipelined_echoes(s: Session) -> None:
    conn = s.client()
    tokens = [f"p{i}".encode() for i in range(20)]
    conn.send_raw(b"".join(s.barrier_request(t).to_bytes() for t in tokens))
    for token in tokens:
        conn.round_trip(token)


@case(
    "framing/pipeline/2",
    "Pipelined SUBMIT_JOB_BG packets get one JOB_CREATED each, with distinct handles",
    packets=["SUBMIT_JOB_BG", "JOB_CREATED"],
    source=f"{_PROTOCOL}",
)
def pipelined_submits(s: Session) -> None:
    conn = s.client()
    fn = s.name("fn")
    conn.send_raw(b"".join(Packet.request(T.SUBMIT_JOB_BG, fn, f"u{i}", b"").to_bytes() for i in range(10)))
    handles = [conn.expect(T.JOB_CREATED).handle for _ in range(10)]
    s.check_equal(len(set(handles)), 10, "distinct handles")


# -- text and binary on one connection -------------------------------------------------------


@case(
    "framing/text/1",
    "An admin line ending in LF is answered on the job port",
    admin=["status"],
    source=f"PROTOCOL (Administrative Protocol); {_TEXT}",
)
def admin_lf(s: Session) -> None:
    s.client().admin("status")


@case(
    "framing/text/2",
    "An admin line ending in CRLF is answered like one ending in LF",
    level=SHOULD,
    admin=["status"],
    source=f"{_TEXT} (a trailing \\r is stripped); gearadmin sends CRLF",
)
def admin_crlf(s: Session) -> None:
    s.client().admin("status", crlf=True)


@case(
    "framing/text/3",
    "A binary packet after an admin line on the same connection is answered",
    packets=["ECHO_REQ", "ECHO_RES"],
    admin=["status"],
    source=f"PROTOCOL (Administrative Protocol: same port); {_TEXT}",
)
def binary_after_text(s: Session) -> None:
    conn = s.client()
    conn.admin("status")
    conn.send(s.barrier_request(b"after-text"))
    conn.round_trip(b"after-text")


@case(
    "framing/text/4",
    "An admin line after a binary packet on the same connection is answered",
    packets=["ECHO_REQ", "ECHO_RES"],
    admin=["status"],
    source=f"PROTOCOL (Administrative Protocol: same port); {_TEXT}",
)
def text_after_binary(s: Session) -> None:
    conn = s.client()
    conn.send(s.barrier_request(b"before-text"))
    conn.round_trip(b"before-text")
    conn.admin("status")


@case(
    "framing/text/5",
    "Binary packets and admin lines pipelined in one write are answered in order",
    packets=["ECHO_REQ", "ECHO_RES"],
    admin=["status"],
    source=f"PROTOCOL (Administrative Protocol); {_TEXT}",
)
def mixed_pipeline(s: Session) -> None:
    conn = s.client()
    conn.send_raw(s.barrier_request(b"one").to_bytes() + b"status\n" + s.barrier_request(b"two").to_bytes())
    conn.round_trip(b"one")
    conn.expect_admin("status")
    conn.round_trip(b"two")


@case(
    "framing/text/6",
    "An admin line split across writes is answered once the newline arrives",
    admin=["status"],
    source=f"{_TEXT}",
)
def split_admin_line(s: Session) -> None:
    conn = s.client()
    conn.send_raw(b"sta", "admin line part 1")
    conn.send_raw(b"tus\n", "admin line part 2")
    conn.expect_admin("status")
