"""Driver for gearspec's own reference client and worker (gearspec.reference)."""

from __future__ import annotations

import asyncio
import ssl
import sys

from gearspec.conformance.drivers import contract as c
from gearspec.reference.client import (
    Client,
    ConnectFailed,
    ConnectionLost,
    JobException,
    JobFailed,
    JobTimeout,
    NoServerAvailable,
    RequestTimeout,
    ServerError,
    WorkData,
    WorkStatus,
    WorkWarning,
)
from gearspec.reference.worker import Worker, WorkerJob, WorkFailed

from gearspec.wire.tls import client_context


def _server(args: c.ClientArgs | c.WorkerArgs) -> str:
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"{'tls://' if args.tls else ''}{host}:{args.port}"


def _tls(args: c.ClientArgs | c.WorkerArgs) -> ssl.SSLContext | None:
    return client_context(args.tls.ca, args.tls.cert, args.tls.key) if args.tls else None


async def client(args: c.ClientArgs) -> int:
    async with Client([_server(args)], connect_timeout=5.0, timeout=args.timeout, tls=_tls(args)) as gearman:
        try:
            job = await gearman.submit(
                args.function, args.data, unique=args.unique, background=args.background, priority=args.priority
            )
            if args.background:
                print(job.handle.decode("latin-1"))
                return c.EXIT_OK
            async with asyncio.timeout(args.timeout):
                async for update in job:
                    if isinstance(update, WorkData):
                        print(f"data: {update.data.decode('utf-8', 'replace')}", file=sys.stderr)
                    elif isinstance(update, WorkWarning):
                        print(f"warning: {update.data.decode('utf-8', 'replace')}", file=sys.stderr)
                    elif isinstance(update, WorkStatus):
                        print(f"status: {update.numerator}/{update.denominator}", file=sys.stderr)
            result = await job.result(0.001)
        except JobFailed:
            return c.EXIT_FAIL
        except JobException as exc:
            print(f"exception: {exc.data.decode('utf-8', 'replace')}", file=sys.stderr)
            return c.EXIT_EXCEPTION
        except (JobTimeout, RequestTimeout, TimeoutError):
            print(f"timed out after {args.timeout:g}s", file=sys.stderr)
            return c.EXIT_TIMEOUT
        except (NoServerAvailable, ConnectFailed, ConnectionLost) as exc:
            print(f"connection error: {exc}", file=sys.stderr)
            return c.EXIT_CONNECTION
        except ServerError as exc:
            # The server refused the submit with an ERROR packet: report it, no traceback.
            print(f"error: {exc}", file=sys.stderr)
            return c.EXIT_USAGE
    sys.stdout.buffer.write(result)
    sys.stdout.flush()
    return c.EXIT_OK


async def worker(args: c.WorkerArgs) -> int:
    gearman = Worker([_server(args)], connect_timeout=5.0, tls=_tls(args))

    async def handle(job: WorkerJob) -> bytes:
        action = c.worker_action(job.data)
        if action.fail:
            raise WorkFailed()
        if action.status:
            job.send_status(1, 2)
            job.send_data(b"partial")
        return action.result

    gearman.register(args.function, handle)
    await gearman.start()
    try:
        await gearman.wait_connected(max(2.0, min(args.timeout, 5.0)))
    except TimeoutError:
        await gearman.stop()
        print(f"connection error: cannot connect to {args.host}:{args.port}", file=sys.stderr)
        return c.EXIT_CONNECTION
    try:
        await asyncio.wait_for(gearman.run(count=args.count), args.timeout)
    except TimeoutError:
        print(f"timed out after {args.timeout:g}s ({gearman.jobs_done} jobs done)", file=sys.stderr)
        return c.EXIT_TIMEOUT
    return c.EXIT_OK


def main() -> int:
    args = c.parse(prog="reference_driver")
    if isinstance(args, c.ClientArgs):
        return asyncio.run(client(args))
    return asyncio.run(worker(args))


if __name__ == "__main__":
    sys.exit(main())
