"""Writes packets.json, the golden wire vectors: `python -m gearspec.vectors._build`.

The bytes are put together here with `struct` alone, and the expected fields are written by
hand, so the vectors do not come from the codec they check. Offsets of expected errors are
computed from the pieces. tests/core/test_vectors.py fails when packets.json is stale.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("packets.json")

REQ, RES = b"\0REQ", b"\0RES"
TO_SERVER, FROM_SERVER, ANY = "to-server", "from-server", "any"

# (number, name, argument names) for every packet type that carries arguments or none.
TYPES: dict[str, tuple[int, tuple[str, ...]]] = {
    "CAN_DO": (1, ("function",)),
    "CANT_DO": (2, ("function",)),
    "RESET_ABILITIES": (3, ()),
    "PRE_SLEEP": (4, ()),
    "NOOP": (6, ()),
    "SUBMIT_JOB": (7, ("function", "unique", "data")),
    "JOB_CREATED": (8, ("handle",)),
    "GRAB_JOB": (9, ()),
    "NO_JOB": (10, ()),
    "JOB_ASSIGN": (11, ("handle", "function", "data")),
    "WORK_STATUS": (12, ("handle", "numerator", "denominator")),
    "WORK_COMPLETE": (13, ("handle", "data")),
    "WORK_FAIL": (14, ("handle",)),
    "GET_STATUS": (15, ("handle",)),
    "ECHO_REQ": (16, ("data",)),
    "ECHO_RES": (17, ("data",)),
    "SUBMIT_JOB_BG": (18, ("function", "unique", "data")),
    "ERROR": (19, ("code", "text")),
    "STATUS_RES": (20, ("handle", "known", "running", "numerator", "denominator")),
    "SUBMIT_JOB_HIGH": (21, ("function", "unique", "data")),
    "SET_CLIENT_ID": (22, ("client_id",)),
    "CAN_DO_TIMEOUT": (23, ("function", "timeout")),
    "ALL_YOURS": (24, ()),
    "WORK_EXCEPTION": (25, ("handle", "data")),
    "OPTION_REQ": (26, ("option",)),
    "OPTION_RES": (27, ("option",)),
    "WORK_DATA": (28, ("handle", "data")),
    "WORK_WARNING": (29, ("handle", "data")),
    "GRAB_JOB_UNIQ": (30, ()),
    "JOB_ASSIGN_UNIQ": (31, ("handle", "function", "unique", "data")),
    "SUBMIT_JOB_HIGH_BG": (32, ("function", "unique", "data")),
    "SUBMIT_JOB_LOW": (33, ("function", "unique", "data")),
    "SUBMIT_JOB_LOW_BG": (34, ("function", "unique", "data")),
    "SUBMIT_JOB_SCHED": (
        35, ("function", "unique", "minute", "hour", "day_of_month", "month", "day_of_week", "data"),
    ),
    "SUBMIT_JOB_EPOCH": (36, ("function", "unique", "epoch", "data")),
    "SUBMIT_REDUCE_JOB": (37, ("function", "unique", "reducer", "aggregator", "data")),
    "SUBMIT_REDUCE_JOB_BACKGROUND": (38, ("function", "unique", "reducer", "aggregator", "data")),
    "GRAB_JOB_ALL": (39, ()),
    "JOB_ASSIGN_ALL": (40, ("handle", "function", "unique", "reducer", "data")),
    "GET_STATUS_UNIQUE": (41, ("unique",)),
    "STATUS_RES_UNIQUE": (42, ("unique", "known", "running", "numerator", "denominator", "client_count")),
}


def frame(magic: bytes, code: int, payload: bytes) -> bytes:
    return magic + struct.pack(">II", code, len(payload)) + payload


def shown(value: bytes) -> str | dict[str, str]:
    """Printable UTF-8 as a string, anything else as {"hex": ...} (as gearspec.export does)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": value.hex()}
    if all(c.isprintable() or c == "\t" for c in text):
        return text
    return {"hex": value.hex()}


class Stream:
    """Bytes of one vector, with what a decoder must report for them, in order."""

    def __init__(self) -> None:
        self.data = b""
        self.expect: list[dict[str, Any]] = []

    def packet(self, magic: bytes, name: str, *args: bytes) -> Stream:
        code, names = TYPES[name]
        assert len(args) == len(names), name
        self.data += frame(magic, code, b"\0".join(args))
        self.expect.append(
            {"packet": {"magic": magic[1:].decode(), "type": code, "name": name,
                        "args": {n: shown(a) for n, a in zip(names, args, strict=True)}}}
        )
        return self

    def admin(self, text: bytes, terminator: bytes = b"\n") -> Stream:
        self.data += text + terminator
        self.expect.append({"admin": shown(text), "terminator": terminator.decode()})
        return self

    def bad(self, raw: bytes, code: str, offset_in_raw: int, fatal: bool = False) -> Stream:
        """Bytes a strict decoder refuses with `code` at `offset_in_raw` into `raw`."""
        at = len(self.data) + offset_in_raw
        self.data += raw
        self.expect.append({"error": {"code": code, "offset": at, "fatal": fatal}})
        return self


VECTORS: list[dict[str, Any]] = []


def vector(
    id: str, description: str, direction: str, stream: Stream, lenient: dict[str, Any] | str | None = None,
    source: str = "",
) -> None:
    row: dict[str, Any] = {
        "id": id,
        "description": description,
        "direction": direction,
        "hex": stream.data.hex(),
        "expect": stream.expect,
        # "roundtrip": a lenient decoder yields events whose bytes join to the input again.
        "lenient": lenient if lenient is not None else "roundtrip",
    }
    if source:
        row["source"] = source
    VECTORS.append(row)


def one(magic: bytes, name: str, *args: bytes, description: str, id_suffix: str = "", source: str = "") -> None:
    code = TYPES[name][0]
    direction = TO_SERVER if magic == REQ else FROM_SERVER
    if name.startswith("WORK_"):  # these travel both ways: one vector per direction
        id_suffix = id_suffix or direction
    suffix = f"/{id_suffix}" if id_suffix else ""
    vector(f"packet/{code:02d}-{name}{suffix}", description, direction, Stream().packet(magic, name, *args),
           source=source)


def build() -> list[dict[str, Any]]:
    VECTORS.clear()
    # -- one well-formed packet of every type ---------------------------------------------
    one(REQ, "CAN_DO", b"reverse", description="a worker announces a function")
    one(REQ, "CANT_DO", b"reverse", description="a worker withdraws a function")
    one(REQ, "RESET_ABILITIES", description="a worker withdraws every function")
    one(REQ, "PRE_SLEEP", description="a worker goes to sleep until NOOP")
    one(RES, "NOOP", description="the server wakes a sleeping worker")
    one(REQ, "SUBMIT_JOB", b"reverse", b"u-1", b"hello", description="a foreground job")
    one(REQ, "SUBMIT_JOB", b"reverse", b"", b"", description="empty unique and empty data are legal",
        id_suffix="empty")
    one(REQ, "SUBMIT_JOB", b"reverse", b"u-2", b"a\0b\0\0c",
        description="the data argument runs to the end of the payload and may hold NULs", id_suffix="nul-data")
    one(RES, "JOB_CREATED", b"H:host:1", description="the server names a new job")
    one(REQ, "GRAB_JOB", description="a worker asks for a job")
    one(RES, "NO_JOB", description="no job for the worker")
    one(RES, "JOB_ASSIGN", b"H:host:1", b"reverse", b"hello", description="a job handed to a worker")
    one(REQ, "WORK_STATUS", b"H:host:1", b"1", b"4", description="a worker reports progress")
    one(RES, "WORK_STATUS", b"H:host:1", b"1", b"4", description="progress forwarded to the client")
    one(REQ, "WORK_COMPLETE", b"H:host:1", b"olleh", description="a worker finishes a job")
    one(RES, "WORK_COMPLETE", b"H:host:1", b"olleh", description="the result forwarded to the client")
    one(REQ, "WORK_FAIL", b"H:host:1", description="a worker fails a job")
    one(RES, "WORK_FAIL", b"H:host:1", description="the failure forwarded to the client")
    one(REQ, "GET_STATUS", b"H:host:1", description="a client asks for a job's status")
    one(REQ, "ECHO_REQ", b"ping", description="echo request")
    one(RES, "ECHO_RES", b"ping", description="echo reply")
    one(REQ, "SUBMIT_JOB_BG", b"reverse", b"u-3", b"hello", description="a background job")
    one(RES, "ERROR", b"INVALID_MAGIC", b"Request magic expected",
        description="gearmand's answer to RES magic toward it",
        source="libgearman-server/server.cc gearman_server_run_command")
    one(RES, "STATUS_RES", b"H:host:1", b"1", b"1", b"3", b"10", description="status of a running job")
    one(RES, "STATUS_RES", b"H:host:9", b"0", b"0", b"0", b"0", description="status of an unknown job",
        id_suffix="unknown")
    one(REQ, "SUBMIT_JOB_HIGH", b"reverse", b"u-4", b"hello", description="a high-priority job")
    one(REQ, "SET_CLIENT_ID", b"worker-7", description="a connection names itself")
    one(REQ, "CAN_DO_TIMEOUT", b"reverse", b"5000", description="a function with a timeout")
    one(REQ, "ALL_YOURS", description="defined in PROTOCOL, not served by gearmand")
    one(REQ, "WORK_EXCEPTION", b"H:host:1", b"Traceback", description="a worker reports an exception")
    one(RES, "WORK_EXCEPTION", b"H:host:1", b"Traceback", description="the exception forwarded to the client")
    one(REQ, "OPTION_REQ", b"exceptions", description="a client asks for WORK_EXCEPTION forwarding")
    one(RES, "OPTION_RES", b"exceptions", description="the server accepts the option")
    one(REQ, "WORK_DATA", b"H:host:1", b"\x00\x01\xff", description="a worker streams partial data")
    one(RES, "WORK_DATA", b"H:host:1", b"\x00\x01\xff", description="partial data forwarded to the client")
    one(REQ, "WORK_WARNING", b"H:host:1", b"careful", description="a worker sends a warning")
    one(RES, "WORK_WARNING", b"H:host:1", b"careful", description="a warning forwarded to the client")
    one(REQ, "GRAB_JOB_UNIQ", description="a worker asks for a job with its unique id")
    one(RES, "JOB_ASSIGN_UNIQ", b"H:host:1", b"reverse", b"u-1", b"hello", description="a job with its unique id")
    one(REQ, "SUBMIT_JOB_HIGH_BG", b"reverse", b"u-5", b"hello", description="a high-priority background job")
    one(REQ, "SUBMIT_JOB_LOW", b"reverse", b"u-6", b"hello", description="a low-priority job")
    one(REQ, "SUBMIT_JOB_LOW_BG", b"reverse", b"u-7", b"hello", description="a low-priority background job")
    one(REQ, "SUBMIT_JOB_SCHED", b"reverse", b"u-8", b"30", b"2", b"*", b"*", b"1", b"hello",
        description="a cron-scheduled job (defined by gearmand, refused by its server)",
        source="libgearman/command.cc gearmand_command_info_list")
    one(REQ, "SUBMIT_JOB_EPOCH", b"reverse", b"u-9", b"1767225600", b"hello",
        description="a job held until a Unix time")
    one(REQ, "SUBMIT_REDUCE_JOB", b"map", b"u-10", b"reduce", b"", b"a b c",
        description="a map/reduce job: 5 fields, the aggregator empty",
        source="libgearman/command.cc gearmand_command_info_list")
    one(REQ, "SUBMIT_REDUCE_JOB_BACKGROUND", b"map", b"u-11", b"reduce", b"", b"a b c",
        description="a background map/reduce job")
    one(REQ, "GRAB_JOB_ALL", description="a worker asks for a job with unique id and reducer")
    one(RES, "JOB_ASSIGN_ALL", b"H:host:1", b"reverse", b"u-1", b"", b"hello",
        description="a job with unique id and (empty) reducer")
    one(REQ, "GET_STATUS_UNIQUE", b"u-1", description="a client asks for a job's status by unique id")
    one(RES, "STATUS_RES_UNIQUE", b"u-1", b"1", b"0", b"0", b"0", b"2",
        description="status by unique id; gearmand puts the unique first",
        source="libgearman-server/server.cc gearman_server_run_command")

    # -- streams ----------------------------------------------------------------------------
    vector(
        "stream/client-session", "a client's side of a job, several packets back to back", FROM_SERVER,
        Stream()
        .packet(RES, "JOB_CREATED", b"H:host:2")
        .packet(RES, "WORK_DATA", b"H:host:2", b"part")
        .packet(RES, "WORK_STATUS", b"H:host:2", b"1", b"2")
        .packet(RES, "WORK_COMPLETE", b"H:host:2", b"done"),
    )
    vector(
        "stream/admin-and-binary", "admin lines and binary packets interleave on one connection", TO_SERVER,
        Stream()
        .admin(b"status")
        .packet(REQ, "ECHO_REQ", b"x")
        .admin(b"workers", b"\r\n")
        .admin(b"version"),
    )
    vector("admin/lf", "an admin command ending in \\n", TO_SERVER, Stream().admin(b"status"))
    vector("admin/crlf", "an admin command ending in \\r\\n (gearadmin sends these)", TO_SERVER,
           Stream().admin(b"show unique jobs", b"\r\n"))
    vector("admin/reply-block", "a status reply block as gearmand sends it", FROM_SERVER,
           Stream().admin(b"reverse\t1\t0\t1").admin(b"."))
    vector("admin/reply-err", "an ERR reply line with \\r\\n", FROM_SERVER,
           Stream().admin(b"ERR UNKNOWN_COMMAND Unknown+server+command", b"\r\n"))
    vector("admin/empty-line", "an empty line is a (blank) admin line", TO_SERVER, Stream().admin(b"", b"\r\n"))

    # -- malformed -----------------------------------------------------------------------------
    vector(
        "malformed/bad-magic", "a NUL first byte but neither \\0REQ nor \\0RES: framing is lost", ANY,
        Stream().bad(frame(b"\0REX", 16, b"ping"), "INVALID_MAGIC", 0, fatal=True),
        lenient="roundtrip",  # lenient keeps the whole packet as raw bytes
    )
    vector(
        "malformed/bad-magic-after-packet", "a good packet, then bad magic with no payload yet", TO_SERVER,
        Stream().packet(REQ, "GRAB_JOB").bad(b"\0GET / HTTP", "INVALID_MAGIC", 0, fatal=True),
        lenient={"error": {"code": "LOST_CONNECTION", "offset": 12, "fatal": True}},
    )
    vector(
        "malformed/type-0", "type 0 is reserved (gearmand's TEXT); the packet is consumed", TO_SERVER,
        Stream().bad(frame(REQ, 0, b""), "INVALID_COMMAND", 4).packet(REQ, "GRAB_JOB"),
    )
    vector(
        "malformed/type-5", "type 5 is reserved", TO_SERVER,
        Stream().bad(frame(REQ, 5, b"x"), "INVALID_COMMAND", 4),
    )
    vector(
        "malformed/type-43", "the first type number past the table", TO_SERVER,
        Stream().bad(frame(REQ, 43, b"abc"), "INVALID_COMMAND", 4).packet(REQ, "ECHO_REQ", b"after"),
    )
    vector(
        "malformed/type-max", "type 0xffffffff", FROM_SERVER,
        Stream().bad(frame(RES, 0xFFFFFFFF, b""), "INVALID_COMMAND", 4),
    )
    vector(
        "malformed/too-few-args", "SUBMIT_JOB with two fields instead of three", TO_SERVER,
        Stream().bad(frame(REQ, 7, b"reverse\0u-1"), "INVALID_PACKET", 8).packet(REQ, "PRE_SLEEP"),
    )
    vector(
        "malformed/no-args-for-two", "WORK_COMPLETE with an empty payload (one field)", TO_SERVER,
        Stream().bad(frame(REQ, 13, b""), "INVALID_PACKET", 8),
    )
    vector(
        "malformed/payload-on-empty-type", "NOOP with a payload", FROM_SERVER,
        Stream().bad(frame(RES, 6, b"xyz"), "INVALID_PACKET", 12),
    )
    vector(
        "malformed/truncated-header", "the stream ends inside a header", TO_SERVER,
        Stream().packet(REQ, "GRAB_JOB").bad(b"\0REQ\0\0", "LOST_CONNECTION", 0, fatal=True),
        lenient={"error": {"code": "LOST_CONNECTION", "offset": 12, "fatal": True}},
    )
    vector(
        "malformed/truncated-payload", "the size says 10, 5 bytes follow, then the end", FROM_SERVER,
        Stream().bad(RES + struct.pack(">II", 17, 10) + b"12345", "LOST_CONNECTION", 0, fatal=True),
        lenient={"error": {"code": "LOST_CONNECTION", "offset": 0, "fatal": True}},
    )
    vector(
        "malformed/oversize-length", "a size over the decoder's maximum is refused when the header is in",
        TO_SERVER,
        Stream().bad(REQ + struct.pack(">II", 16, 0xFFFFFFFF), "DATA_TOO_LARGE", 8, fatal=True),
        lenient={"error": {"code": "DATA_TOO_LARGE", "offset": 8, "fatal": True}},
    )
    vector(
        "malformed/nul-in-last-function", "CAN_DO whose function holds a NUL (it is not data)", TO_SERVER,
        Stream().bad(frame(REQ, 1, b"rev\0erse"), "INVALID_PACKET", 12 + 3),
    )
    vector(
        "malformed/nul-in-error-text", "ERROR whose text holds a NUL (text is not data)", FROM_SERVER,
        Stream().bad(frame(RES, 19, b"CODE\0some\0text"), "INVALID_PACKET", 12 + 9),
    )
    vector(
        "malformed/non-numeric-number", "WORK_STATUS with a numerator that is not a number", TO_SERVER,
        Stream().bad(frame(REQ, 12, b"H:host:1\0" + b"1x\0" + b"4"), "INVALID_PACKET", 12 + 9),
    )
    vector(
        "malformed/empty-number", "STATUS_RES with an empty 'running' field", FROM_SERVER,
        Stream().bad(frame(RES, 20, b"H:host:1\0" + b"1\0" + b"\0" + b"0\0" + b"0"), "INVALID_PACKET", 12 + 11),
    )
    vector(
        "malformed/res-toward-server", "RES magic on a packet sent to a server (gearmand: ERROR INVALID_MAGIC)",
        TO_SERVER,
        Stream().bad(frame(RES, 17, b"ping"), "INVALID_MAGIC", 0).packet(REQ, "ECHO_REQ", b"ping"),
        source="libgearman-server/server.cc gearman_server_run_command",
    )
    vector(
        "malformed/req-toward-client", "REQ magic on a packet read by a client", FROM_SERVER,
        Stream().bad(frame(REQ, 16, b"ping"), "INVALID_MAGIC", 0),
    )
    vector(
        "malformed/wrong-magic-for-type", "NOOP is only ever sent with RES magic", ANY,
        Stream().bad(frame(REQ, 6, b""), "INVALID_COMMAND", 0),
    )
    vector(
        "malformed/admin-line-too-long", "an admin line over 8192 bytes (gearmand's buffer)", TO_SERVER,
        Stream().bad(b"x" * 8193 + b"\n", "DATA_TOO_LARGE", 0, fatal=True),
        lenient={"error": {"code": "DATA_TOO_LARGE", "offset": 0, "fatal": True}},
    )
    vector(
        "malformed/admin-line-unterminated", "the stream ends inside an admin line", TO_SERVER,
        Stream().admin(b"status", b"\r\n").bad(b"work", "LOST_CONNECTION", 0, fatal=True),
        lenient="roundtrip",  # lenient returns the tail as a line without terminator
    )
    return VECTORS


def render(vectors: list[dict[str, Any]]) -> str:
    """A JSON array with one vector per line: valid JSON that diffs line by line."""
    lines = [json.dumps(v, ensure_ascii=True, sort_keys=False) for v in vectors]
    return "[\n" + ",\n".join(lines) + "\n]\n"


if __name__ == "__main__":
    OUT.write_text(render(build()))
    print(f"wrote {len(VECTORS)} vectors to {OUT}")
