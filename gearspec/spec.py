"""The Gearman binary protocol as one declarative table.

Every packet type 0-42 is one `PacketSpec` row in `PACKETS`. The encoder, the decoder, the
JSON export, the Hypothesis strategies and the scapy layer are all derived from these rows;
no other module spells out a packet's arguments.

Sources cited in `source` are gearmand's (github gearman/gearmand): `PROTOCOL` (the
protocol description), `libgearman-1.0/protocol.h` (`gearman_command_t`),
`libgearman/command.cc` (`gearmand_command_info_list`: argument count and whether the last
argument is opaque data) and `libgearman-server/server.cc` (`gearman_server_run_command`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_PORT",
    "HEADER_SIZE",
    "KIND_RULES",
    "PACKETS",
    "Arg",
    "ArgKind",
    "KindRule",
    "Magic",
    "PacketSpec",
    "PacketType",
    "Priority",
    "Role",
    "SubmitAttrs",
    "is_number",
    "packet_spec",
]

HEADER_SIZE = 12
DEFAULT_PORT = 4730


class Magic(enum.Enum):
    """The four magic bytes that open every binary packet."""

    REQ = b"\0REQ"  # toward the job server
    RES = b"\0RES"  # from the job server


class Role(enum.Flag):
    """Who may send a packet."""

    CLIENT = enum.auto()
    WORKER = enum.auto()
    SERVER = enum.auto()


class ArgKind(enum.Enum):
    """What an argument holds; each kind has one encoder, validator and strategy."""

    FUNCTION = "function"  # a function name: any bytes but NUL
    UNIQUE = "unique"  # a client-chosen unique id: any bytes but NUL
    HANDLE = "handle"  # a server-chosen job handle: any bytes but NUL
    NUMBER = "number"  # an unsigned ASCII decimal number
    TOKEN = "token"  # a short word: error code, option name, client id, schedule field
    TEXT = "text"  # human-readable text, not terminated (only last)
    DATA = "data"  # opaque bytes, may contain NUL (only last)


@dataclass(frozen=True, slots=True)
class KindRule:
    """How values of one `ArgKind` are encoded and checked."""

    encode: Callable[[object], bytes]
    problem: Callable[[bytes], str | None]  # None when valid, else what is wrong
    only_last: bool = False


def _to_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")


def _number_to_bytes(value: object) -> bytes:
    if isinstance(value, bool):
        raise TypeError("expected an int, bytes or str, got bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a Gearman number cannot be negative: {value}")
        return str(value).encode("ascii")
    return _to_bytes(value)


def _no_nul(value: bytes) -> str | None:
    return "contains a NUL byte" if b"\0" in value else None


# The NUMBER kind's rule, the only definition of it: one or more ASCII digits 0-9.
# (bytes.isdigit is ASCII-only and false for b"".) The encoder and the decoders call it, and
# gearspec.plans derives from it the byte table the C hot path checks numbers with.
is_number: Callable[[bytes], bool] = bytes.isdigit


def _number_problem(value: bytes) -> str | None:
    return None if is_number(value) else f"is not a decimal number: {value[:20]!r}"


def _never(value: bytes) -> str | None:
    return None


KIND_RULES: dict[ArgKind, KindRule] = {
    ArgKind.FUNCTION: KindRule(_to_bytes, _no_nul),
    ArgKind.UNIQUE: KindRule(_to_bytes, _no_nul),
    ArgKind.HANDLE: KindRule(_to_bytes, _no_nul),
    ArgKind.NUMBER: KindRule(_number_to_bytes, _number_problem),
    ArgKind.TOKEN: KindRule(_to_bytes, _no_nul),
    ArgKind.TEXT: KindRule(_to_bytes, _no_nul, only_last=True),
    ArgKind.DATA: KindRule(_to_bytes, _never, only_last=True),
}


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a packet, in wire order."""

    name: str
    kind: ArgKind
    max_size: int | None = None  # a limit servers enforce (gearmand's), not the framing
    note: str = ""


class Priority(enum.IntEnum):
    """Job priority; a lower value is served first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


@dataclass(frozen=True, slots=True)
class SubmitAttrs:
    """Family attributes shared by the submit packets."""

    background: bool
    priority: Priority
    scheduled: str | None = None  # "epoch" or "cron" when the job waits for a time
    reduce: bool = False


@dataclass(frozen=True, slots=True)
class PacketSpec:
    """One row of the table: everything the protocol says about one packet type."""

    code: int
    name: str
    magics: frozenset[Magic]
    senders: Role
    args: tuple[Arg, ...]
    origin: str  # "core" (in PROTOCOL) or "gearmand" (an extension)
    source: str
    reserved: bool = False
    submit: SubmitAttrs | None = None
    grab: bool = False  # a worker asking for a job
    assign: bool = False  # the server handing a worker a job
    work_update: bool = False  # WORK_* a worker sends and the server forwards to clients
    terminal: bool = False  # a work update that ends the job
    served_by_gearmand: bool = True
    note: str = ""
    arg_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arg_index", {a.name: i for i, a in enumerate(self.args)})

    @property
    def has_data(self) -> bool:
        """True when the last argument is opaque data that may contain NULs."""
        return bool(self.args) and self.args[-1].kind is ArgKind.DATA

    @property
    def sent_to_server(self) -> bool:
        return Magic.REQ in self.magics

    @property
    def sent_by_server(self) -> bool:
        return Magic.RES in self.magics


_REQ = frozenset({Magic.REQ})
_RES = frozenset({Magic.RES})
_BOTH = frozenset({Magic.REQ, Magic.RES})
_NONE: frozenset[Magic] = frozenset()
C, W, S = Role.CLIENT, Role.WORKER, Role.SERVER

_FUNCTION = Arg("function", ArgKind.FUNCTION)
_UNIQUE = Arg("unique", ArgKind.UNIQUE, max_size=64, note="gearmand refuses more than 64 bytes")
_HANDLE = Arg("handle", ArgKind.HANDLE, max_size=64)
_DATA = Arg("data", ArgKind.DATA)
_SUBMIT_ARGS = (_FUNCTION, _UNIQUE, _DATA)

_PROTO = "PROTOCOL; libgearman/command.cc gearmand_command_info_list"
_EXT = "libgearman-1.0/protocol.h gearman_command_t; libgearman/command.cc gearmand_command_info_list"
_SERVER = "libgearman-server/server.cc gearman_server_run_command"


def _submit(
    code: int,
    name: str,
    background: bool,
    priority: Priority,
    origin: str = "core",
) -> PacketSpec:
    return PacketSpec(
        code,
        name,
        _REQ,
        C,
        _SUBMIT_ARGS,
        origin,
        _PROTO,
        submit=SubmitAttrs(background, priority),
    )


def _work(code: int, name: str, args: tuple[Arg, ...], terminal: bool, origin: str = "core") -> PacketSpec:
    return PacketSpec(
        code,
        name,
        _BOTH,
        W | S,
        args,
        origin,
        _PROTO + "; " + _SERVER,
        work_update=True,
        terminal=terminal,
    )


_STATUS_NUMBERS = (
    Arg("known", ArgKind.NUMBER, note="1 when the server knows the job"),
    Arg("running", ArgKind.NUMBER, note="1 when a worker has it"),
    Arg("numerator", ArgKind.NUMBER),
    Arg("denominator", ArgKind.NUMBER),
)

PACKETS: tuple[PacketSpec, ...] = (
    PacketSpec(
        0, "TEXT", _NONE, Role(0), (), "gearmand", "libgearman-1.0/protocol.h GEARMAN_COMMAND_TEXT",
        reserved=True,
        note="gearmand's internal number for an admin text line; never valid as a binary packet "
        "(gearmand closes the connection)",
    ),
    PacketSpec(1, "CAN_DO", _REQ, W, (_FUNCTION,), "core", _PROTO),
    PacketSpec(2, "CANT_DO", _REQ, W, (_FUNCTION,), "core", _PROTO),
    PacketSpec(3, "RESET_ABILITIES", _REQ, W, (), "core", _PROTO),
    PacketSpec(4, "PRE_SLEEP", _REQ, W, (), "core", _PROTO),
    PacketSpec(
        5, "UNUSED", _NONE, Role(0), (), "core", "libgearman-1.0/protocol.h GEARMAN_COMMAND_UNUSED",
        reserved=True, note="reserved; PROTOCOL lists no packet with this number",
    ),
    PacketSpec(6, "NOOP", _RES, S, (), "core", _PROTO),
    _submit(7, "SUBMIT_JOB", False, Priority.NORMAL),
    PacketSpec(8, "JOB_CREATED", _RES, S, (_HANDLE,), "core", _PROTO),
    PacketSpec(9, "GRAB_JOB", _REQ, W, (), "core", _PROTO, grab=True),
    PacketSpec(10, "NO_JOB", _RES, S, (), "core", _PROTO),
    PacketSpec(11, "JOB_ASSIGN", _RES, S, (_HANDLE, _FUNCTION, _DATA), "core", _PROTO, assign=True),
    _work(
        12, "WORK_STATUS",
        (_HANDLE, Arg("numerator", ArgKind.NUMBER), Arg("denominator", ArgKind.NUMBER)),
        terminal=False,
    ),
    _work(13, "WORK_COMPLETE", (_HANDLE, _DATA), terminal=True),
    _work(14, "WORK_FAIL", (_HANDLE,), terminal=True),
    PacketSpec(15, "GET_STATUS", _REQ, C, (_HANDLE,), "core", _PROTO),
    PacketSpec(16, "ECHO_REQ", _REQ, C | W, (_DATA,), "core", _PROTO),
    PacketSpec(17, "ECHO_RES", _RES, S, (_DATA,), "core", _PROTO),
    _submit(18, "SUBMIT_JOB_BG", True, Priority.NORMAL),
    PacketSpec(
        19, "ERROR", _RES, S, (Arg("code", ArgKind.TOKEN), Arg("text", ArgKind.TEXT)), "core",
        _PROTO + "; " + _SERVER + " _server_error_packet",
    ),
    PacketSpec(20, "STATUS_RES", _RES, S, (_HANDLE, *_STATUS_NUMBERS), "core", _PROTO),
    _submit(21, "SUBMIT_JOB_HIGH", False, Priority.HIGH),
    PacketSpec(
        22, "SET_CLIENT_ID", _REQ, C | W, (Arg("client_id", ArgKind.TOKEN),), "core", _PROTO,
        note="PROTOCOL lists it for workers; gearmand accepts it on any connection",
    ),
    PacketSpec(
        23, "CAN_DO_TIMEOUT", _REQ, W,
        (_FUNCTION, Arg("timeout", ArgKind.NUMBER, note="milliseconds in gearmand >= 1.1.19; seconds in PROTOCOL")),
        "core", _PROTO,
        note="on expiry PROTOCOL says the job fails; gearmand requeues it (connection.cc "
        "_server_job_timeout). gearspec serve requeues too, bounded by --job-retries: a worker that "
        "stalls is treated like one that vanished, so no job is lost to a slow worker",
    ),
    PacketSpec(
        24, "ALL_YOURS", _REQ, W, (), "core", _PROTO, served_by_gearmand=False,
        note="PROTOCOL: not yet implemented; gearmand answers ERROR",
    ),
    _work(25, "WORK_EXCEPTION", (_HANDLE, _DATA), terminal=True),
    PacketSpec(26, "OPTION_REQ", _REQ, C | W, (Arg("option", ArgKind.TOKEN, max_size=64),), "core", _PROTO),
    PacketSpec(27, "OPTION_RES", _RES, S, (Arg("option", ArgKind.TOKEN),), "core", _PROTO),
    _work(28, "WORK_DATA", (_HANDLE, _DATA), terminal=False),
    _work(29, "WORK_WARNING", (_HANDLE, _DATA), terminal=False),
    PacketSpec(30, "GRAB_JOB_UNIQ", _REQ, W, (), "core", _PROTO, grab=True),
    PacketSpec(
        31, "JOB_ASSIGN_UNIQ", _RES, S, (_HANDLE, _FUNCTION, _UNIQUE, _DATA), "core", _PROTO, assign=True,
    ),
    _submit(32, "SUBMIT_JOB_HIGH_BG", True, Priority.HIGH),
    _submit(33, "SUBMIT_JOB_LOW", False, Priority.LOW),
    _submit(34, "SUBMIT_JOB_LOW_BG", True, Priority.LOW),
    PacketSpec(
        35, "SUBMIT_JOB_SCHED", _REQ, C,
        (
            _FUNCTION, _UNIQUE,
            Arg("minute", ArgKind.TOKEN), Arg("hour", ArgKind.TOKEN), Arg("day_of_month", ArgKind.TOKEN),
            Arg("month", ArgKind.TOKEN), Arg("day_of_week", ArgKind.TOKEN),
            _DATA,
        ),
        "gearmand", _EXT, submit=SubmitAttrs(True, Priority.NORMAL, scheduled="cron"),
        served_by_gearmand=False,
        note="defined by gearmand (7 fields before the data) but refused by its server; gearspec serve "
        "refuses it too (ERROR INVALID_COMMAND): no implementation defines its cron semantics",
    ),
    PacketSpec(
        36, "SUBMIT_JOB_EPOCH", _REQ, C,
        (_FUNCTION, _UNIQUE, Arg("epoch", ArgKind.NUMBER, note="Unix time before which no worker gets it"), _DATA),
        "gearmand", _EXT, submit=SubmitAttrs(True, Priority.NORMAL, scheduled="epoch"),
    ),
    PacketSpec(
        37, "SUBMIT_REDUCE_JOB", _REQ, C,
        (_FUNCTION, _UNIQUE, Arg("reducer", ArgKind.FUNCTION), Arg("aggregator", ArgKind.TOKEN, note="unused; empty"), _DATA),
        "gearmand", _EXT, submit=SubmitAttrs(False, Priority.NORMAL, reduce=True),
        note="5 fields on the wire as gearmand sends and parses them (command.cc argc 4 + data); "
        "PROTOCOL lists 4. We follow gearmand because it is the only implementation",
    ),
    PacketSpec(
        38, "SUBMIT_REDUCE_JOB_BACKGROUND", _REQ, C,
        (_FUNCTION, _UNIQUE, Arg("reducer", ArgKind.FUNCTION), Arg("aggregator", ArgKind.TOKEN, note="unused; empty"), _DATA),
        "gearmand", _EXT, submit=SubmitAttrs(True, Priority.NORMAL, reduce=True),
        note="as SUBMIT_REDUCE_JOB",
    ),
    PacketSpec(
        39, "GRAB_JOB_ALL", _REQ, W, (), "gearmand", _EXT + "; " + _SERVER, grab=True,
        note="gearmand answers JOB_ASSIGN_ALL only for jobs with a reducer, else JOB_ASSIGN_UNIQ",
    ),
    PacketSpec(
        40, "JOB_ASSIGN_ALL", _RES, S,
        (_HANDLE, _FUNCTION, _UNIQUE, Arg("reducer", ArgKind.FUNCTION), _DATA),
        "gearmand", _EXT, assign=True,
    ),
    PacketSpec(41, "GET_STATUS_UNIQUE", _REQ, C, (_UNIQUE,), "gearmand", _EXT),
    PacketSpec(
        42, "STATUS_RES_UNIQUE", _RES, S,
        (_UNIQUE, *_STATUS_NUMBERS, Arg("client_count", ArgKind.NUMBER)),
        "gearmand", _EXT + "; " + _SERVER,
        note="the first field is the unique id, as gearmand sends it; PROTOCOL calls it a handle",
    ),
)


class PacketType(enum.IntEnum):
    """Packet type numbers, by name (derived from `PACKETS`)."""

    # The members are created below from the table; these annotations are for type checkers.
    TEXT = 0
    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    UNUSED = 5
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42

    @property
    def spec(self) -> PacketSpec:
        return _BY_CODE[self.value]


_BY_CODE: dict[int, PacketSpec] = {row.code: row for row in PACKETS}
_BY_NAME: dict[str, PacketSpec] = {row.name: row for row in PACKETS}

# The enum above repeats the table's names for type checkers and IDEs; this keeps them honest.
if {m.name: m.value for m in PacketType} != {row.name: row.code for row in PACKETS}:  # pragma: no cover
    raise AssertionError("PacketType and PACKETS disagree")


def packet_spec(key: int | str | PacketType) -> PacketSpec:
    """The table row for a packet type given by number, name or `PacketType`."""
    if isinstance(key, str):
        try:
            return _BY_NAME[key.upper()]
        except KeyError:
            raise KeyError(f"no Gearman packet type named {key!r}") from None
    try:
        return _BY_CODE[int(key)]
    except KeyError:
        raise KeyError(f"no Gearman packet type number {int(key)}") from None
