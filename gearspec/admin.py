"""The text admin protocol as a table, with reply framing and parsers.

Admin commands are text lines sent on the job server's port (`status\\n`). A reply is either
one line (`OK ...` or `ERR CODE text`) or a block of lines closed by a lone `.`. The table
says which; `AdminReplyReader` uses it to cut a reply out of a line stream and the `parse_*`
functions turn replies into rows. Replies are accepted with `\\n` or `\\r\\n` endings
(gearmand ends OK/ERR lines with `\\r\\n` and block lines with `\\n`).

Source: gearmand `libgearman-server/text.cc` `server_run_text`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from gearspec.errors import ErrorCode, GearspecError, RemoteProtocolError

__all__ = [
    "ADMIN_COMMANDS",
    "AdminArg",
    "AdminCommand",
    "AdminError",
    "AdminReply",
    "AdminReplyReader",
    "JobRow",
    "PriorityStatusRow",
    "ReplyFraming",
    "StatusRow",
    "WorkerRow",
    "admin_command",
    "encode_admin",
    "match_admin_command",
    "parse_ok",
    "parse_prioritystatus",
    "parse_show_jobs",
    "parse_show_unique_jobs",
    "parse_status",
    "parse_workers",
]

_TEXT_SOURCE = "libgearman-server/text.cc server_run_text"


class ReplyFraming(enum.Enum):
    LINE = "line"  # one line: OK ... or ERR ...
    BLOCK = "block"  # lines, then a lone "." (or a single ERR line)
    NONE = "none"  # the server closes the connection (shutdown)


@dataclass(frozen=True, slots=True)
class AdminArg:
    name: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class AdminCommand:
    """One admin command: its words, arguments and how its reply is framed."""

    name: str  # the command words, e.g. "show unique jobs"
    args: tuple[AdminArg, ...]
    reply: ReplyFraming
    summary: str
    reply_format: str
    origin: str = "gearmand"
    source: str = _TEXT_SOURCE
    note: str = ""

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())

    def usage(self) -> str:
        parts = [self.name] + [f"[{a.name}]" if a.optional else a.name for a in self.args]
        return " ".join(parts)


_A = AdminArg
ADMIN_COMMANDS: tuple[AdminCommand, ...] = (
    AdminCommand(
        "workers", (), ReplyFraming.BLOCK, "every connection with its functions",
        "FD IP CLIENT_ID : FUNCTION... per connection",
    ),
    AdminCommand(
        "status", (), ReplyFraming.BLOCK, "queued, running and worker counts per function",
        "FUNCTION\\tTOTAL\\tRUNNING\\tAVAILABLE_WORKERS per function",
    ),
    AdminCommand(
        "prioritystatus", (), ReplyFraming.BLOCK, "queued jobs per priority per function",
        "FUNCTION\\tHIGH\\tNORMAL\\tLOW\\tWORKERS per function",
    ),
    AdminCommand(
        "show jobs", (), ReplyFraming.BLOCK, "every job the server holds",
        "HANDLE\\tRETRIES\\tIGNORED\\tPERSISTED per job",
    ),
    AdminCommand(
        "show unique jobs", (), ReplyFraming.BLOCK, "the unique id of every job", "UNIQUE per job",
    ),
    AdminCommand(
        "cancel job", (_A("handle"),), ReplyFraming.LINE, "remove a queued background job",
        "OK, or ERR UNKNOWN_JOB",
    ),
    AdminCommand(
        "create function", (_A("function"),), ReplyFraming.LINE, "register a function name",
        "OK, or ERR CREATE_FUNCTION",
    ),
    AdminCommand(
        "drop function", (_A("function"),), ReplyFraming.LINE,
        "forget a function that has no workers and no running jobs", "OK, or ERR ...",
    ),
    AdminCommand(
        "maxqueue", (_A("function"), _A("size", True), _A("normal", True), _A("low", True)),
        ReplyFraming.LINE,
        "limit a function's queue (one size for all priorities, or HIGH NORMAL LOW)", "OK",
        note="with one size it applies to every priority; no size means the default (unlimited)",
    ),
    AdminCommand("getpid", (), ReplyFraming.LINE, "the server's process id", "OK PID"),
    AdminCommand("verbose", (), ReplyFraming.LINE, "the server's log level", "OK LEVEL"),
    AdminCommand("version", (), ReplyFraming.LINE, "the server's version", "OK VERSION"),
    AdminCommand(
        "shutdown", (_A("graceful", True),), ReplyFraming.LINE, "stop the server",
        "OK, then the server stops",
        origin="core",
        source="gearmand before 1.1.15 (libgearman-server/text.cc); Perl Gearman::Server",
        note="removed from gearmand in 1.1.15; older servers accept it; gearspec serve only with "
        "--enable-shutdown (off by default, since any peer on the port could stop the server)",
    ),
    AdminCommand(
        "show queue", (), ReplyFraming.BLOCK, "the durable queue's state",
        "NAME\\tVALUE lines: queue (its --queue), state (ok, not durable, or failing: WHY), refused (jobs not stored)",
        origin="gearspec",
        source="gearspec serve (reference/broker.py Broker._show_queue; docs/server.md, Durability)",
        note="gearspec's own: other servers answer ERR UNKNOWN_COMMAND",
    ),
)

_BY_WORDS = {cmd.words: cmd for cmd in ADMIN_COMMANDS}


def admin_command(name: str) -> AdminCommand:
    """The table row for a command given by its words (case-insensitive)."""
    try:
        return _BY_WORDS[tuple(name.lower().split())]
    except KeyError:
        raise KeyError(f"no admin command {name!r}") from None


def match_admin_command(words: Sequence[str]) -> tuple[AdminCommand, list[str]] | None:
    """Split a tokenised command line into its table row and its arguments (longest match)."""
    lowered = [w.lower() for w in words]
    for size in (3, 2, 1):
        cmd = _BY_WORDS.get(tuple(lowered[:size]))
        if cmd is not None and len(lowered) >= size:
            return cmd, list(words[size:])
    return None


def encode_admin(command: str, *args: object, crlf: bool = False) -> bytes:
    """One admin command line, e.g. ``encode_admin("cancel job", handle)``."""
    line = " ".join([command, *(a.decode("latin-1") if isinstance(a, bytes) else str(a) for a in args)])
    if "\n" in line or "\r" in line:
        raise ValueError("an admin command cannot contain a line break")
    return line.encode("latin-1") + (b"\r\n" if crlf else b"\n")


class AdminError(GearspecError):
    """An `ERR CODE text` reply."""

    def __init__(self, code: str, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"ERR {code} {text}".rstrip())


@dataclass(frozen=True, slots=True)
class AdminReply:
    """A complete reply: its lines without endings, and whether it is an ERR line."""

    command: AdminCommand | None
    lines: tuple[str, ...]

    @property
    def is_error(self) -> bool:
        return len(self.lines) == 1 and _is_err_line(self.lines[0])

    def error(self) -> AdminError | None:
        if not self.is_error:
            return None
        _, _, rest = self.lines[0].partition(" ")
        code, _, text = rest.partition(" ")
        return AdminError(code, text.replace("+", " "))


def _is_err_line(line: str) -> bool:
    # "ERR CODE text" (gearmand text.cc); a function named "ERRATA" in a block is not one.
    return line == "ERR" or line.startswith("ERR ")


class AdminReplyReader:
    """Cuts one reply out of a stream of lines, using the command's framing.

    Feed lines (str or bytes, endings optional) with `feed`; it returns the `AdminReply`
    once the reply is complete, else None. An ERR line ends any reply.
    """

    def __init__(self, command: AdminCommand | str | None) -> None:
        if isinstance(command, str):
            command = admin_command(command)
        self.command = command
        self._lines: list[str] = []

    def feed(self, line: str | bytes) -> AdminReply | None:
        if isinstance(line, bytes):
            line = line.decode("latin-1")
        line = line.rstrip("\n")
        if line.endswith("\r"):
            line = line[:-1]
        framing = self.command.reply if self.command else ReplyFraming.LINE
        if framing is ReplyFraming.BLOCK and not (not self._lines and _is_err_line(line)):
            if line == ".":
                lines, self._lines = tuple(self._lines), []  # ready for the next reply
                return AdminReply(self.command, lines)
            self._lines.append(line)
            return None
        return AdminReply(self.command, (line,))


# -- reply rows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusRow:
    function: str
    total: int
    running: int
    workers: int


@dataclass(frozen=True, slots=True)
class PriorityStatusRow:
    function: str
    high: int
    normal: int
    low: int
    workers: int


@dataclass(frozen=True, slots=True)
class WorkerRow:
    fd: str
    ip: str
    client_id: str
    functions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobRow:
    handle: str
    retries: int
    ignored: int
    persisted: int


def _bad(message: str, line: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{message}: {line[:80]!r}", code=ErrorCode.INVALID_PACKET)


def _tab_row(line: str, width: int, what: str) -> tuple[str, list[int]]:
    # Split from the right: the numbers never hold a tab, the name may (gearmand accepts any
    # bytes but NUL in a function name and prints it as is, like gearadmin does).
    cells = line.rsplit("\t", width - 1)
    if len(cells) != width:
        raise _bad(f"{what} line needs {width} tab-separated columns, has {len(cells)}", line)
    try:
        return cells[0], [int(c) for c in cells[1:]]
    except ValueError:
        raise _bad(f"{what} line has a column that is not a number", line) from None


def _lines(reply: AdminReply | Sequence[str]) -> Sequence[str]:
    if isinstance(reply, AdminReply):
        err = reply.error()
        if err is not None:
            raise err
        return reply.lines
    return reply


def parse_status(reply: AdminReply | Sequence[str]) -> list[StatusRow]:
    rows = []
    for line in _lines(reply):
        name, (total, running, workers) = _tab_row(line, 4, "status")
        rows.append(StatusRow(name, total, running, workers))
    return rows


def parse_prioritystatus(reply: AdminReply | Sequence[str]) -> list[PriorityStatusRow]:
    rows = []
    for line in _lines(reply):
        name, (high, normal, low, workers) = _tab_row(line, 5, "prioritystatus")
        rows.append(PriorityStatusRow(name, high, normal, low, workers))
    return rows


def parse_workers(reply: AdminReply | Sequence[str]) -> list[WorkerRow]:
    rows = []
    for line in _lines(reply):
        head, colon, tail = line.partition(" :")
        parts = head.split(" ", 2)  # a client id may hold spaces (SET_CLIENT_ID takes any bytes)
        if not colon or len(parts) != 3:
            raise _bad("workers line needs 'FD IP CLIENT_ID : FUNCTION...'", line)
        rows.append(WorkerRow(parts[0], parts[1], parts[2], tuple(tail.split())))
    return rows


def parse_show_jobs(reply: AdminReply | Sequence[str]) -> list[JobRow]:
    rows = []
    for line in _lines(reply):
        handle, (retries, ignored, persisted) = _tab_row(line, 4, "show jobs")
        rows.append(JobRow(handle, retries, ignored, persisted))
    return rows


def parse_show_unique_jobs(reply: AdminReply | Sequence[str]) -> list[str]:
    return list(_lines(reply))


def parse_ok(reply: AdminReply | Sequence[str]) -> str:
    """The value of an `OK [value]` reply; raises `AdminError` for an ERR reply."""
    lines = _lines(reply)
    if len(lines) != 1 or not (lines[0] == "OK" or lines[0].startswith("OK ")):
        raise _bad("expected an 'OK' line", lines[0] if lines else "")
    return lines[0][3:]
