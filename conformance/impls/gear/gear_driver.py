"""Driver for python `gear` (PyPI gear, OpenStack's Gearman library).

gear's client reports WORK_DATA, WORK_WARNING and WORK_COMPLETE data into one `job.data`
list (gear/__init__.py Client.handleWorkData / handleWorkComplete), so this driver
subclasses the client to tell them apart. gear sends OPTION_REQ "exceptions" only when asked
(Client.setOption); the driver asks only with --exceptions (the exception scenario), so the
other scenarios grade gear's default behaviour. gear's own server, geard, never answers
OPTION_REQ (gear/__init__.py: Server does not override BaseClientServer.handleOptionReq,
which only logs the packet), so the wait for OPTION_RES is bounded.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import gear
from gearspec.conformance.drivers import contract as c

G = TypeVar("G", bound=Any)
_OPTION_TIMEOUT = 2.0  # seconds to wait for OPTION_RES before going on without the option
_PRECEDENCE = {"high": gear.PRECEDENCE_HIGH, "normal": gear.PRECEDENCE_NORMAL, "low": gear.PRECEDENCE_LOW}


class _Client(gear.Client):
    def handleWorkData(self, packet: Any) -> Any:
        print(f"data: {packet.getArgument(1, True).decode('utf-8', 'replace')}", file=sys.stderr)
        return super().handleWorkData(packet)

    def handleWorkWarning(self, packet: Any) -> Any:
        print(f"warning: {packet.getArgument(1, True).decode('utf-8', 'replace')}", file=sys.stderr)
        return super().handleWorkWarning(packet)

    def handleWorkStatus(self, packet: Any) -> Any:
        num, den = packet.getArgument(1).decode(), packet.getArgument(2).decode()
        print(f"status: {num}/{den}", file=sys.stderr)
        return super().handleWorkStatus(packet)

    def handleWorkComplete(self, packet: Any) -> Any:
        job = packet.getJob()
        job.result = packet.getArgument(1, True)
        return super().handleWorkComplete(packet)


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)  # gear's client API offers no event to wait on
    return True


def _add_server(gearman: Any, args: c.ClientArgs | c.WorkerArgs) -> None:
    tls = args.tls
    if tls is None:
        gearman.addServer(args.host, args.port)
    elif tls.cert is None:  # gear speaks TLS only with all three files (gear/__init__.py Connection.__init__)
        c.unsupported("TLS without a client certificate")
    else:  # key and certificate as two paths (gear/__init__.py BaseClient.addServer)
        gearman.addServer(args.host, args.port, tls.key or tls.cert, tls.cert, tls.ca)


def _connect(kind: Callable[[str], G], args: c.ClientArgs | c.WorkerArgs) -> G | None:
    """A gear client or worker connected to the server, or None (said on stderr)."""
    gearman = kind("gearspec-driver")
    _add_server(gearman, args)
    try:
        gearman.waitForServer(timeout=max(2.0, min(args.timeout, 5.0)))
    except gear.TimeoutError:
        print(f"connection error: cannot connect to {args.host}:{args.port}", file=sys.stderr)
        gearman.shutdown()
        return None
    return gearman


def client(args: c.ClientArgs) -> int:
    gearman = _connect(_Client, args)
    if gearman is None:
        return c.EXIT_CONNECTION
    try:
        # gear sends no OPTION_REQ on its own (Client.setOption is opt-in).
        if args.exceptions and not (
            gearman.setOption("exceptions", timeout=min(args.timeout, _OPTION_TIMEOUT))
            and gearman.active_connections
            and all(b"exceptions" in conn.options for conn in gearman.active_connections)
        ):
            # setOption drops a connection whose server does not answer: start afresh without it.
            print("the server did not grant OPTION_REQ exceptions: going on without it", file=sys.stderr)
            gearman.shutdown()
            fresh = _connect(_Client, args)
            if fresh is None:
                return c.EXIT_CONNECTION
            gearman = fresh
        unique = args.unique.encode() if args.unique is not None else None
        job = gear.Job(args.function.encode(), args.data, unique=unique)
        job.result = b""
        gearman.submitJob(job, background=args.background, precedence=_PRECEDENCE[args.priority],
                          timeout=args.timeout)
        if args.background:
            print(job.handle.decode("latin-1"))
            return c.EXIT_OK
        if not _wait(lambda: job.complete, args.timeout):
            print(f"timed out after {args.timeout:g}s", file=sys.stderr)
            return c.EXIT_TIMEOUT
        if job.exception is not None:
            print(f"exception: {job.exception.decode('utf-8', 'replace')}", file=sys.stderr)
            return c.EXIT_EXCEPTION
        if job.failure:
            return c.EXIT_FAIL
        sys.stdout.buffer.write(job.result)
        sys.stdout.flush()
        return c.EXIT_OK
    except gear.TimeoutError:
        print(f"timed out after {args.timeout:g}s", file=sys.stderr)
        return c.EXIT_TIMEOUT
    except (gear.GearmanError, OSError) as exc:
        print(f"connection error: {exc}", file=sys.stderr)
        return c.EXIT_CONNECTION
    finally:
        gearman.shutdown()


def worker(args: c.WorkerArgs) -> int:
    gearman = _connect(gear.Worker, args)
    if gearman is None:
        return c.EXIT_CONNECTION
    gearman.registerFunction(args.function)
    done = 0
    # getJob blocks with no timeout; a timer interrupts it (Worker.stopWaitingForJobs).
    watchdog = threading.Timer(args.timeout, gearman.stopWaitingForJobs)
    watchdog.daemon = True
    watchdog.start()
    try:
        while args.count is None or done < args.count:
            try:
                job = gearman.getJob()
            except gear.InterruptedError:
                print(f"timed out after {args.timeout:g}s ({done} jobs done)", file=sys.stderr)
                return c.EXIT_TIMEOUT
            action = c.worker_action(job.arguments)
            if action.fail:
                job.sendWorkFail()
            else:
                if action.status:
                    job.sendWorkStatus(1, 2)
                    job.sendWorkData(b"partial")
                job.sendWorkComplete(action.result)
            done += 1
    finally:
        watchdog.cancel()
        gearman.shutdown()
    return c.EXIT_OK


def main() -> int:
    logging.basicConfig(level=logging.CRITICAL)  # gear logs every packet at DEBUG otherwise
    args = c.parse(prog="gear_driver")
    return client(args) if isinstance(args, c.ClientArgs) else worker(args)


if __name__ == "__main__":
    sys.exit(main())
