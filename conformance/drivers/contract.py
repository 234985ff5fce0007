"""The driver command-line contract, for drivers written in Python.

Every driver, whatever its language, accepts the same arguments and answers with the same
exit codes (conformance/drivers/README.md is the reference). This module parses them and
holds the worker's job behaviour so the Python drivers stay small and agree with each other.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_EXCEPTION",
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNSUPPORTED",
    "EXIT_USAGE",
    "ClientArgs",
    "TlsFiles",
    "WorkerAction",
    "WorkerArgs",
    "cannot_ask_exceptions",
    "client_argv",
    "parse",
    "unsupported",
    "worker_action",
    "worker_argv",
]

EXIT_OK = 0
EXIT_USAGE = 1  # bad command line, or an internal error of the driver
EXIT_CONNECTION = 2  # the server cannot be reached or the connection broke
EXIT_FAIL = 3  # the job ended with WORK_FAIL
EXIT_EXCEPTION = 4  # the job ended with WORK_EXCEPTION
EXIT_UNSUPPORTED = 5  # the library cannot do what was asked
EXIT_TIMEOUT = 6  # no result within --timeout seconds


@dataclass(frozen=True)
class TlsFiles:
    """`--tls-ca F [--tls-cert F] [--tls-key F]`: connect over TLS (drivers that can)."""

    ca: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class ClientArgs:
    host: str
    port: int
    function: str
    unique: str | None
    background: bool
    priority: str  # "high", "normal" or "low"
    data: bytes
    timeout: float
    tls: TlsFiles | None = None
    exceptions: bool = False  # ask for OPTION_REQ "exceptions"; otherwise the library's default


@dataclass(frozen=True)
class WorkerArgs:
    host: str
    port: int
    function: str
    count: int | None
    timeout: float
    tls: TlsFiles | None = None


@dataclass(frozen=True)
class WorkerAction:
    """What a contract worker does with one job's data."""

    fail: bool = False  # answer WORK_FAIL
    status: bool = False  # send WORK_STATUS 1/2 and WORK_DATA "partial" first
    result: bytes = b""  # the WORK_COMPLETE data


def client_argv(
    host: str, port: int, function: str, *, data: str = "", unique: str | None = None, background: bool = False,
    priority: str = "normal", timeout: float | None = None, exceptions: bool = False,
) -> list[str]:
    """The contract's `client` arguments (after the word `client`), as `parse` reads them back.

    The defaults are left out (`--priority normal`, no `--timeout`), so a program that only
    knows the basic options still runs the basic scenarios.
    """
    argv = ["--host", host, "--port", str(port), "--function", function, "--data", data]
    if unique is not None:
        argv += ["--unique", unique]
    if background:
        argv.append("--background")
    if priority != "normal":
        argv += ["--priority", priority]
    if exceptions:
        argv.append("--exceptions")
    if timeout is not None:
        argv += ["--timeout", f"{timeout:g}"]
    return argv


def worker_argv(host: str, port: int, function: str, *, count: int | None = None, timeout: float | None = None) -> list[str]:
    """The contract's `worker` arguments (after the word `worker`), as `parse` reads them back."""
    argv = ["--host", host, "--port", str(port), "--function", function]
    if count is not None:
        argv += ["--count", str(count)]
    if timeout is not None:
        argv += ["--timeout", f"{timeout:g}"]
    return argv


def worker_action(data: bytes) -> WorkerAction:
    """The contract's worker: "fail" fails, "status" streams then says "done", else reverse."""
    if data == b"fail":
        return WorkerAction(fail=True)
    if data == b"status":
        return WorkerAction(status=True, result=b"done")
    return WorkerAction(result=data[::-1])


def cannot_ask_exceptions(library: str) -> None:
    """Say that --exceptions cannot be honoured, and go on: WORK_EXCEPTION will arrive as
    WORK_FAIL, which the exception scenario grades non-strict."""
    print(f"note: {library} cannot ask for the exceptions option: WORK_EXCEPTION arrives as WORK_FAIL", file=sys.stderr)


def unsupported(what: str) -> NoReturn:
    """Say the library cannot do `what` and exit 5 (never ignore a feature silently)."""
    print(f"unsupported: {what}", file=sys.stderr)
    sys.exit(EXIT_UNSUPPORTED)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def parse(argv: Sequence[str] | None = None, prog: str | None = None) -> ClientArgs | WorkerArgs:
    """Parse `client ...` or `worker ...` as the contract defines them."""
    parser = _Parser(prog=prog)
    roles = parser.add_subparsers(dest="role", required=True, parser_class=_Parser)
    client = roles.add_parser("client")
    worker = roles.add_parser("worker")
    for sub in (client, worker):
        sub.add_argument("--host", required=True)
        sub.add_argument("--port", required=True, type=int)
        sub.add_argument("--function", required=True)
        sub.add_argument("--tls-ca", help="connect over TLS, trusting this CA (drivers that support TLS)")
        sub.add_argument("--tls-cert", help="client certificate (with --tls-ca)")
        sub.add_argument("--tls-key", help="its key (default: in --tls-cert)")
    client.add_argument("--unique")
    client.add_argument("--background", action="store_true")
    client.add_argument("--priority", choices=("high", "normal", "low"), default="normal")
    client.add_argument("--data", default="")
    client.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the result")
    client.add_argument("--exceptions", action="store_true", help="ask the server to forward WORK_EXCEPTION")
    worker.add_argument("--count", type=int)
    worker.add_argument("--timeout", type=float, default=60.0, help="seconds before the worker gives up")
    ns = parser.parse_args(argv)
    if (ns.tls_cert or ns.tls_key) and not ns.tls_ca:
        parser.error("--tls-cert and --tls-key need --tls-ca")
    tls = TlsFiles(ns.tls_ca, ns.tls_cert, ns.tls_key) if ns.tls_ca else None
    if ns.role == "client":
        return ClientArgs(
            ns.host, ns.port, ns.function, ns.unique, ns.background, ns.priority,
            ns.data.encode("utf-8", "surrogateescape"), ns.timeout, tls=tls, exceptions=ns.exceptions,
        )
    if ns.count is not None and ns.count < 1:
        parser.error("--count must be at least 1")
    return WorkerArgs(ns.host, ns.port, ns.function, ns.count, ns.timeout, tls)
