"""`gearspec submit`, `gearspec work` and `gearspec admin`: the reference client, worker and
admin client on the command line, in the spirit of gearmand's `gearman` and `gearadmin`.

Exit codes (shared with the driver contract in conformance/drivers/README.md):
0 success, 2 connection or usage error, 3 the job failed (WORK_FAIL), 4 the job raised
(WORK_EXCEPTION), 6 timed out, 1 an admin ERR reply, 5 an admin table with rows that could
not be split into columns (printed as received; stderr names them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Sequence

from gearspec.reference.admin import AdminClient
from gearspec.reference.client import (
    Client,
    JobException,
    JobFailed,
    JobTimeout,
    RequestTimeout,
    WorkData,
    WorkStatus,
    WorkWarning,
)
from gearspec.reference.worker import Worker, WorkerJob, WorkFailed

from gearspec.admin import (
    AdminError,
    parse_prioritystatus,
    parse_show_jobs,
    parse_status,
    parse_workers,
)
from gearspec.cli import add_json_option, write_json
from gearspec.errors import GearspecError, RemoteProtocolError
from gearspec.spec import DEFAULT_PORT
from gearspec.wire.tls import add_client_options, context_from_options, split_scheme

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_EXCEPTION",
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "SUMMARIES",
    "configure_admin",
    "configure_submit",
    "configure_work",
    "run_admin",
    "run_submit",
    "run_work",
]

SUMMARIES = {
    "submit": "submit a job (like gearman's client mode)",
    "work": "run a worker that pipes jobs through a command",
    "admin": "send admin commands (like gearadmin)",
}

EXIT_OK = 0
EXIT_ADMIN_ERR = 1
EXIT_CONNECTION = 2
EXIT_FAIL = 3
EXIT_EXCEPTION = 4
EXIT_UNREADABLE_ROWS = 5
EXIT_TIMEOUT = 6


def _add_servers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s", "--server", action="append", metavar="HOST:PORT", dest="servers",
        help=f"job server, tls://HOST:PORT for TLS (repeat for several; default 127.0.0.1:{DEFAULT_PORT})",
    )
    add_client_options(parser, _TLS_SCOPE)


def _servers(args: argparse.Namespace) -> list[str]:
    return list(args.servers or [f"127.0.0.1:{DEFAULT_PORT}"])


_TLS_SCOPE = "tls://HOST:PORT servers (-s tls://HOST:PORT)"


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The SSL context for tls:// servers from --tls-*; ValueError (one line) when unusable."""
    return context_from_options(args, any(split_scheme(s)[0] for s in _servers(args)), _TLS_SCOPE)


def _bad_seconds(*options: tuple[str, float | None]) -> str | None:
    """The first option that is not a positive number of seconds, as a message."""
    for flag, value in options:
        if value is not None and not value > 0:
            return f"{flag} must be a positive number of seconds, not {value:g}"
    return None


def _fail(command: str, message: object, code: int) -> int:
    print(f"gearspec {command}: {message}", file=sys.stderr)
    return code


# -- submit -------------------------------------------------------------------------------


def configure_submit(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec submit -f reverse hello
  echo data | gearspec submit -s 127.0.0.1:4730 -f resize -b

exit status:
  0    the job completed (or was queued, with -b)
  2    connection or usage error
  3    the job failed (WORK_FAIL)
  4    the job raised (WORK_EXCEPTION)
  6    no result within --timeout
"""
    _add_servers(parser)
    parser.add_argument("-f", "--function", required=True, help="function name")
    parser.add_argument("data", nargs="?", help="job data (default: read standard input)")
    parser.add_argument("-b", "--background", action="store_true", help="submit a background job; print its handle")
    parser.add_argument("-p", "--priority", choices=("high", "normal", "low"), default="normal")
    parser.add_argument("-u", "--unique", help="unique id (equal ids coalesce)")
    parser.add_argument("--epoch", type=int, help="run no earlier than this Unix time (background only)")
    parser.add_argument("--hash", action="store_true", help="pick the server by a hash of the unique id")
    parser.add_argument("-t", "--timeout", type=float, default=None, help="seconds to wait for the result")
    parser.add_argument("--connect-timeout", type=float, default=5.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="print status and warnings on stderr")


def run_submit(args: argparse.Namespace) -> int:
    if args.epoch is not None and not args.background:
        return _fail("submit", "--epoch needs --background", EXIT_CONNECTION)
    problem = _bad_seconds(("--timeout", args.timeout), ("--connect-timeout", args.connect_timeout))
    if problem:
        return _fail("submit", problem, EXIT_CONNECTION)
    data = args.data.encode("utf-8", "surrogateescape") if args.data is not None else sys.stdin.buffer.read()
    try:
        return asyncio.run(_submit(args, data))
    except (ValueError, OSError) as exc:
        return _fail("submit", exc, EXIT_CONNECTION)


async def _submit(args: argparse.Namespace, data: bytes) -> int:
    out = sys.stdout.buffer
    async with Client(
        _servers(args), strategy="hash" if args.hash else "round_robin",
        connect_timeout=args.connect_timeout, timeout=args.timeout or 30.0, tls=_tls(args),
    ) as client:
        try:
            job = await client.submit(
                args.function, data, unique=args.unique, background=args.background,
                priority=args.priority, epoch=args.epoch,
            )
            if args.background:
                out.write(job.handle + b"\n")
                out.flush()
                return EXIT_OK
            # --timeout bounds the whole wait, updates included (no worker means no update).
            async with asyncio.timeout(args.timeout):
                async for update in job:
                    if isinstance(update, WorkData):
                        out.write(update.data)
                        out.flush()
                    elif args.verbose and isinstance(update, WorkStatus):
                        print(f"status: {update.numerator}/{update.denominator}", file=sys.stderr)
                    elif args.verbose and isinstance(update, WorkWarning):
                        print(f"warning: {update.data.decode('utf-8', 'replace')}", file=sys.stderr)
                result = await job.result(args.timeout)
        except JobFailed as exc:
            return _fail("submit", exc, EXIT_FAIL)
        except JobException as exc:
            return _fail("submit", exc, EXIT_EXCEPTION)
        except (JobTimeout, RequestTimeout) as exc:
            return _fail("submit", exc, EXIT_TIMEOUT)
        except TimeoutError:
            return _fail("submit", f"no result within {args.timeout:g} s", EXIT_TIMEOUT)
        except GearspecError as exc:
            return _fail("submit", exc, EXIT_CONNECTION)
        out.write(result)
        if result and not result.endswith(b"\n") and out.isatty():
            out.write(b"\n")
        out.flush()
        return EXIT_OK


# -- work ---------------------------------------------------------------------------------


def configure_work(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec work -f reverse -- rev
  gearspec work -f upper -c 10 -- tr a-z A-Z

exit status:
  0    stopped gracefully (SIGINT/SIGTERM: running jobs finish first) or --count jobs done
  2    connection or usage error
"""
    _add_servers(parser)
    parser.add_argument("-f", "--function", action="append", required=True, dest="functions",
                        help="function to serve (repeat for several)")
    parser.add_argument("-c", "--count", type=int, default=None, help="exit after this many jobs")
    parser.add_argument("-j", "--concurrency", type=int, default=1, help="jobs run at once")
    parser.add_argument("--timeout", type=int, default=None, help="send CAN_DO_TIMEOUT with this value")
    parser.add_argument("--client-id", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- CMD ARGS...: job data goes to its stdin, its stdout is the result")


def run_work(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        return _fail("work", "give the command to run after --, e.g. gearspec work -f rev -- rev", EXIT_CONNECTION)
    if args.count is not None and args.count < 1:
        return _fail("work", "--count must be at least 1", EXIT_CONNECTION)
    try:
        return asyncio.run(_work(args, command))
    except (ValueError, OSError) as exc:
        return _fail("work", exc, EXIT_CONNECTION)


async def _pipe_through(command: Sequence[str], job: WorkerJob) -> bytes:
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            # Its own process group: Ctrl-C at the terminal signals the worker's group, and the
            # worker stops gracefully, letting the running job finish (not WORK_FAIL).
            process_group=0,
            env={**os.environ, "GEARMAN_FUNCTION": job.function.decode("latin-1"),
                 "GEARMAN_HANDLE": job.handle.decode("latin-1"), "GEARMAN_UNIQUE": job.unique.decode("latin-1")},
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
    stdout, _ = await process.communicate(job.data)
    if process.returncode != 0:
        print(f"gearspec work: {command[0]} {_exit_reason(process.returncode or 0)} for job "
              f"{job.handle.decode('latin-1')}: WORK_FAIL", file=sys.stderr)
        raise WorkFailed()
    return stdout


def _exit_reason(returncode: int) -> str:
    """"exited with status 3" or "was killed by signal 9 (SIGKILL)" (asyncio's -9)."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = f" ({signal.Signals(-returncode).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-returncode}{name}"


async def _work(args: argparse.Namespace, command: list[str]) -> int:
    # The worker reports lost servers and reconnects through logging; show those lines plainly.
    logging.basicConfig(format="gearspec work: %(message)s", level=logging.WARNING)
    worker = Worker(_servers(args), concurrency=args.concurrency, client_id=args.client_id, tls=_tls(args))

    async def handler(job: WorkerJob) -> bytes:
        return await _pipe_through(command, job)

    for name in args.functions:
        worker.register(name, handler, timeout=args.timeout)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker._request_stop)
    await worker.run(count=args.count)
    return EXIT_OK


# -- admin --------------------------------------------------------------------------------

_TABLES: dict[str, tuple[str, ...]] = {
    "status": ("FUNCTION", "TOTAL", "RUNNING", "WORKERS"),
    "prioritystatus": ("FUNCTION", "HIGH", "NORMAL", "LOW", "WORKERS"),
    "workers": ("FD", "IP", "CLIENT_ID", "FUNCTIONS"),
    "show jobs": ("HANDLE", "RETRIES", "IGNORED", "PERSISTED"),
    "show unique jobs": ("UNIQUE",),
}


def configure_admin(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec admin status
  gearspec admin -s 127.0.0.1:4730 workers --json
  gearspec admin cancel job H:host:42

exit status:
  0    ok
  1    the server answered ERR
  2    connection or usage error
  5    rows that could not be split into columns (printed as received, named on stderr)
"""
    _add_servers(parser)
    parser.add_argument("words", nargs="+", metavar="COMMAND",
                        help="status, workers, prioritystatus, version, getpid, verbose, show jobs, "
                        "show unique jobs, cancel job H, maxqueue F [N], create function F, drop function F, ...")
    add_json_option(parser, "the reply")
    parser.add_argument("--timeout", type=float, default=10.0)


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [list(header), *rows]]
    return "\n".join(lines)


def run_admin(args: argparse.Namespace) -> int:
    servers = _servers(args)
    if len(servers) != 1:
        return _fail("admin", "admin commands go to one server: give a single -s", EXIT_CONNECTION)
    problem = _bad_seconds(("--timeout", args.timeout))
    if problem:
        return _fail("admin", problem, EXIT_CONNECTION)
    try:
        return asyncio.run(_admin(servers[0], args))
    except ValueError as exc:
        return _fail("admin", exc, EXIT_CONNECTION)


async def _admin(server: str, args: argparse.Namespace) -> int:
    name = " ".join(args.words[:3]).lower()
    for known in _TABLES:
        if name.startswith(known):
            name = known
            break
    try:
        async with AdminClient(server, timeout=args.timeout, tls=_tls(args)) as admin:
            rows: list[list[str]]
            unreadable: list[str] = []
            if name in _TABLES:
                reply = await admin.command(*name.split())
                error = reply.error()
                if error is not None:
                    raise error
                rows, unreadable = _split_rows(name, reply.lines)
            elif name == "version":
                print(await admin.version())
                return EXIT_OK
            else:
                reply = await admin.command(args.words[0], *args.words[1:])
                error = reply.error()
                if error is not None:
                    raise error
                if args.json:
                    write_json(args.json, {"command": " ".join(args.words), "lines": list(reply.lines)})
                else:
                    print("\n".join(reply.lines))
                return EXIT_OK
    except AdminError as exc:
        return _fail("admin", f"{server}: {exc}", EXIT_ADMIN_ERR)
    except GearspecError as exc:
        return _fail("admin", exc, EXIT_CONNECTION)
    header = _TABLES[name]
    if args.json:
        data: list[dict[str, str]] = [dict(zip((h.lower() for h in header), row, strict=False)) for row in rows]
        write_json(args.json, data + [{"unreadable": line} for line in unreadable])
    else:
        print(_table(header, [[_visible(cell) for cell in row] for row in rows]))
        for line in unreadable:
            print(line)  # as received, the way gearadmin prints every row
    if unreadable:
        shown = "; ".join(_visible(line) for line in unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
        return _fail("admin", f"{len(unreadable)} '{name}' row(s) could not be split into columns, printed as received: {shown}", EXIT_UNREADABLE_ROWS)
    return EXIT_OK


_ROW_PARSERS: dict[str, Callable[[Sequence[str]], list[list[str]]]] = {
    "status": lambda lines: [[r.function, str(r.total), str(r.running), str(r.workers)] for r in parse_status(lines)],
    "prioritystatus": lambda lines: [
        [r.function, str(r.high), str(r.normal), str(r.low), str(r.workers)] for r in parse_prioritystatus(lines)
    ],
    "workers": lambda lines: [[r.fd, r.ip, r.client_id, " ".join(r.functions)] for r in parse_workers(lines)],
    "show jobs": lambda lines: [[r.handle, str(r.retries), str(r.ignored), str(r.persisted)] for r in parse_show_jobs(lines)],
    "show unique jobs": lambda lines: [[line] for line in lines],
}


def _split_rows(name: str, lines: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """The rows of an admin table, and the lines that could not be split (kept, not fatal)."""
    rows: list[list[str]] = []
    unreadable: list[str] = []
    for line in lines:
        try:
            rows += _ROW_PARSERS[name]([line])
        except RemoteProtocolError:
            unreadable.append(line)
    return rows, unreadable


def _visible(text: str) -> str:
    """Control characters (a TAB in a function name) shown as escapes, so columns line up."""
    return text.translate(_ESCAPES)


_ESCAPES = {i: ("\\t" if i == 9 else f"\\x{i:02x}") for i in (*range(32), 127)}
