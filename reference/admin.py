"""The reference asyncio admin client: text admin commands with parsed replies.

    async with AdminClient("127.0.0.1:4730") as admin:
        for row in await admin.status():          # gearspec.admin.StatusRow
            print(row.function, row.total, row.running, row.workers)
        print(await admin.version())

Replies are cut out of the line stream by `gearspec.admin.AdminReplyReader` (the admin table
says whether a command answers with one line or a block ending in "."), and parsed by the
`gearspec.admin.parse_*` functions. An `ERR CODE text` reply raises `gearspec.admin.AdminError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from gearspec.reference.connection import (
    TLS_CLOSED_HINT,
    ConnectFailed,
    ConnectionLost,
    ServerAddress,
    connect_problem,
    open_stream,
    server_address,
)

from gearspec.admin import (
    AdminError,
    AdminReply,
    AdminReplyReader,
    JobRow,
    PriorityStatusRow,
    StatusRow,
    WorkerRow,
    encode_admin,
    match_admin_command,
    parse_ok,
    parse_prioritystatus,
    parse_show_jobs,
    parse_show_unique_jobs,
    parse_status,
    parse_workers,
)
from gearspec.codec import DEFAULT_MAX_LINE
from gearspec.errors import ErrorCode, RemoteProtocolError

__all__ = ["AdminClient", "AdminError"]

_MAX_REPLY_LINES = 1_000_000


class AdminClient:
    """One admin connection to a job server; commands run one at a time, in order."""

    def __init__(
        self, server: str | ServerAddress, *, connect_timeout: float = 5.0, timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        # `tls://HOST:PORT` connects over TLS, with `tls` or the system's CAs.
        self.address, self.tls = server_address(server, tls)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def __aenter__(self) -> AdminClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        if self._writer is not None:
            return
        host, port = self.address
        try:
            self._reader, self._writer = await asyncio.wait_for(
                open_stream(host, port, self.tls, limit=DEFAULT_MAX_LINE * 8), self.connect_timeout
            )
        except TimeoutError:
            raise ConnectFailed(f"{self.name}: no answer within {self.connect_timeout:g}s", self.address) from None
        except OSError as exc:
            raise ConnectFailed(f"{self.name}: cannot connect: {connect_problem(exc)}", self.address) from None

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def command(self, command: str, *args: object) -> AdminReply:
        """Send one command (e.g. ``"cancel job", handle``) and read its whole reply.

        Commands outside the admin table are sent as given and read as one line.
        """
        line = encode_admin(command, *args)
        # The words as sent: "show", "queue" is the command "show queue".
        matched = match_admin_command([*command.split(), *(str(a) for a in args)])
        reader_for = AdminReplyReader(matched[0] if matched else None)
        async with self._lock:
            await self.connect()
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(line)
                return await asyncio.wait_for(self._read_reply(self._reader, reader_for), self.timeout)
            except TimeoutError:
                await self.close()
                raise ConnectionLost(f"{self.name}: no complete reply to {command!r} within {self.timeout:g}s") from None
            except ssl.SSLError as exc:
                await self.close()
                raise ConnectionLost(f"{self.name}: {connect_problem(exc)}") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                await self.close()
                raise ConnectionLost(f"{self.name}: connection failed during {command!r}: {exc}") from None

    async def _read_reply(self, reader: asyncio.StreamReader, cut: AdminReplyReader) -> AdminReply:
        for count in range(_MAX_REPLY_LINES):
            try:
                raw = await reader.readline()
            except ConnectionResetError:
                if self.tls is None or count:
                    raise
                # The refusal of a missing client certificate, when the alert is lost to a reset.
                raise ConnectionLost(f"{self.name}: the server reset the connection{TLS_CLOSED_HINT}") from None
            if not raw:
                hint = TLS_CLOSED_HINT if self.tls is not None and not count else " before the reply ended"
                raise ConnectionLost(f"{self.name}: the server closed the connection{hint}")
            if raw[:1] == b"\0":
                raise RemoteProtocolError(
                    f"{self.name}: binary data where an admin reply line was expected: {raw[:16]!r}",
                    code=ErrorCode.INVALID_MAGIC,
                )
            reply = cut.feed(raw)
            if reply is not None:
                return reply
        raise RemoteProtocolError(f"{self.name}: admin reply longer than {_MAX_REPLY_LINES} lines")

    async def _ok(self, command: str, *args: object) -> str:
        return parse_ok(await self.command(command, *args))

    # -- parsed commands ------------------------------------------------------------------
    async def status(self) -> list[StatusRow]:
        return parse_status(await self.command("status"))

    async def prioritystatus(self) -> list[PriorityStatusRow]:
        return parse_prioritystatus(await self.command("prioritystatus"))

    async def workers(self) -> list[WorkerRow]:
        return parse_workers(await self.command("workers"))

    async def show_jobs(self) -> list[JobRow]:
        return parse_show_jobs(await self.command("show jobs"))

    async def show_unique_jobs(self) -> list[str]:
        return parse_show_unique_jobs(await self.command("show unique jobs"))

    async def version(self) -> str:
        """The server's version; Perl Gearman::Server answers a bare version line, no "OK"."""
        reply = await self.command("version")
        error = reply.error()
        if error is not None:
            raise error
        line = reply.lines[0] if reply.lines else ""
        return line[3:] if line.startswith("OK ") else line

    async def getpid(self) -> int:
        value = await self._ok("getpid")
        if not value.strip().isdigit():
            raise RemoteProtocolError(f"{self.name}: getpid answered {value!r}, not a number")
        return int(value)

    async def verbose(self) -> str:
        return await self._ok("verbose")

    async def cancel_job(self, handle: str | bytes) -> None:
        await self._ok("cancel job", handle)

    async def create_function(self, function: str) -> None:
        await self._ok("create function", function)

    async def drop_function(self, function: str) -> None:
        await self._ok("drop function", function)

    async def maxqueue(self, function: str, *sizes: int) -> None:
        """`maxqueue F` (default), `maxqueue F N` (all priorities) or `maxqueue F H N L`."""
        if len(sizes) not in (0, 1, 3):
            raise ValueError("maxqueue takes no size, one size, or three (high normal low)")
        await self._ok("maxqueue", function, *sizes)

    async def shutdown(self, graceful: bool = False) -> None:
        await self._ok("shutdown", *(["graceful"] if graceful else []))
