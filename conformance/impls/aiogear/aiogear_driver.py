"""Driver for PyPI aiogear 0.2.x (sardok/aiogear), an asyncio Gearman client and worker.

Written as the library is meant to be used: its `Client` and `Worker` are asyncio protocols,
connected with `loop.create_connection(factory, host, port)`; `await client.submit_job(name,
data, uuid=...)` returns JOB_CREATED and `await client.wait_job(handle)` the WORK_COMPLETE,
WORK_FAIL or WORK_EXCEPTION that ends the job; a worker is `Worker((function, name), loop=...)`
whose function gets a JobInfo and returns the result. The contract: conformance/drivers/README.md.

What the library cannot do, as seen in its source (.peers/python/aiogear/aiogear):
- its client waits only for JOB_CREATED and the job's end (client.py Client._submit_job):
  WORK_DATA and WORK_STATUS are logged as unexpected and dropped (mixin.py data_received);
- its worker answers a raised exception with WORK_EXCEPTION (worker.py Worker.run) and has
  no way for a function to send WORK_FAIL, WORK_STATUS or WORK_DATA;
- job data is decoded as UTF-8 on the way in and encoded as ASCII on the way out
  (mixin.py _deserializers, _join), so the driver hands it bytes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from gearspec.conformance.drivers import contract as c

PRIORITIES = {
    ("normal", False): "submit_job",
    ("normal", True): "submit_job_bg",
    ("high", False): "submit_job_high",
    ("high", True): "submit_job_high_bg",
    ("low", False): "submit_job_low",
    ("low", True): "submit_job_low_bg",
}


async def _connect(factory: Any, host: str, port: int) -> Any:
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_connection(factory, host, port)
    except OSError as exc:
        print(f"connection error: {exc}", file=sys.stderr)
        raise SystemExit(c.EXIT_CONNECTION) from None
    return protocol


async def _client(args: c.ClientArgs) -> int:
    import aiogear  # type: ignore[import-not-found,import-untyped,unused-ignore]

    loop = asyncio.get_running_loop()
    client = await _connect(lambda: aiogear.Client(loop=loop), args.host, args.port)
    try:
        return await _submit(client, args)
    finally:
        if client.transport is not None:  # else Client.__del__ closes it after the loop has gone
            await client.close()


async def _submit(client: Any, args: c.ClientArgs) -> int:
    if args.exceptions:
        await client.option_req("exceptions")
    submit = getattr(client, PRIORITIES[(args.priority, args.background)])
    kwargs = {} if args.unique is None else {"uuid": args.unique}
    created = await submit(args.function, args.data, **kwargs)
    if args.background:
        print(created.handle)
        return c.EXIT_OK
    done = await client.wait_job(created.handle)
    kind = type(done).__name__
    if kind == "WorkFail":
        return c.EXIT_FAIL
    if kind == "WorkException":
        print(f"exception: {done.exception}", file=sys.stderr)
        return c.EXIT_EXCEPTION
    result = done.result
    sys.stdout.buffer.write(result.encode("utf-8", "surrogateescape") if isinstance(result, str) else result)
    sys.stdout.flush()
    return c.EXIT_OK


def _finish(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


async def _worker(args: c.WorkerArgs) -> int:
    import aiogear

    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    done = 0

    def handle(job: Any) -> bytes:
        nonlocal done
        data = job.workload.encode("utf-8", "surrogateescape") if isinstance(job.workload, str) else job.workload
        action = c.worker_action(data or b"")
        done += 1
        if args.count is not None and done >= args.count and not finished.done():
            # Worker.run sends the answer in this same step, before any call_soon callback.
            loop.call_soon(_finish, finished)
        if action.fail:
            raise RuntimeError("fail")  # aiogear answers with WORK_EXCEPTION: its only failure
        if action.status:
            print("unsupported: WORK_STATUS/WORK_DATA (aiogear's Worker has no way to send them)", file=sys.stderr)
            raise RuntimeError("unsupported")
        return action.result

    worker = await _connect(lambda: aiogear.Worker((handle, args.function), loop=loop), args.host, args.port)
    closed = loop.create_future()
    lost = worker.connection_lost

    def connection_lost(exc: Exception | None) -> None:
        lost(exc)
        if not closed.done():
            closed.set_result(exc)

    worker.connection_lost = connection_lost
    await asyncio.wait([finished, closed], return_when=asyncio.FIRST_COMPLETED)
    if finished.done():
        worker.transport.close()  # flushes the last answer
        await asyncio.wait([closed], timeout=5)
        return c.EXIT_OK
    print("connection error: the server closed the connection", file=sys.stderr)
    return c.EXIT_CONNECTION


def main() -> int:
    try:
        import aiogear  # noqa: F401
    except ImportError:
        print(
            "aiogear_driver: no `aiogear` module (pip install --target .peers/python/aiogear aiogear)", file=sys.stderr
        )
        return c.EXIT_USAGE
    args = c.parse(prog="aiogear_driver")
    if args.tls:
        c.unsupported("TLS (aiogear has no TLS)")
    run = _client(args) if isinstance(args, c.ClientArgs) else _worker(args)

    async def bounded() -> int:
        try:
            return await asyncio.wait_for(run, args.timeout)
        except TimeoutError:
            print(f"timed out after {args.timeout:g}s", file=sys.stderr)
            return c.EXIT_TIMEOUT

    return asyncio.run(bounded())


if __name__ == "__main__":
    sys.exit(main())
