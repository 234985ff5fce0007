"""A blocking facade over the asyncio client, worker and admin client, for scripts.

    from gearspec.reference.blocking import BlockingClient
    with BlockingClient(["127.0.0.1:4730"]) as client:
        print(client.run("reverse", "hello"))
        job = client.submit("resize", data)
        for update in job.updates():          # WorkData / WorkWarning / WorkStatus
            print(update)
        print(job.result(timeout=10))

Each facade owns an event loop running in a background daemon thread and hands every call
to it, so the protocol code is the asyncio code, not a second copy. Errors are the same
exception classes as in `gearspec.reference.client`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from gearspec.reference.admin import AdminClient
from gearspec.reference.client import Client, Job, JobStatus, JobUpdate, UniqueStatus
from gearspec.reference.connection import ServerAddress
from gearspec.reference.worker import Worker, WorkerJob

from gearspec.admin import JobRow, PriorityStatusRow, StatusRow, WorkerRow
from gearspec.spec import Priority

__all__ = ["BlockingAdmin", "BlockingClient", "BlockingJob", "BlockingWorker"]

R = TypeVar("R")


class _LoopThread:
    """An event loop in a daemon thread; `call` runs a coroutine there and waits."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, R], timeout: float | None = None) -> R:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking facade cannot be called from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


async def _build(factory: Callable[[], R]) -> R:
    # asyncio objects must be made on the loop that will use them.
    return factory()


class BlockingJob:
    """A submitted job, seen from a blocking script."""

    def __init__(self, job: Job, runner: _LoopThread) -> None:
        self._job = job
        self._runner = runner

    @property
    def handle(self) -> bytes:
        return self._job.handle

    @property
    def server(self) -> str:
        return self._job.server

    @property
    def background(self) -> bool:
        return self._job.background

    def done(self) -> bool:
        return self._job.done()

    def result(self, timeout: float | None = None) -> bytes:
        """The WORK_COMPLETE data (raises JobFailed, JobException, JobTimeout, ConnectionLost)."""
        return self._runner.call(self._job.result(timeout))

    def updates(self, timeout: float | None = None) -> Iterator[JobUpdate]:
        """WORK_DATA / WORK_WARNING / WORK_STATUS as they arrive, until the job ends."""
        iterator = self._job.__aiter__()
        while True:
            try:
                yield self._runner.call(iterator.__anext__(), timeout)
            except StopAsyncIteration:
                return

    def get_status(self, timeout: float | None = None) -> JobStatus:
        return self._runner.call(self._job.get_status(timeout))

    def __repr__(self) -> str:
        return repr(self._job).replace("<Job", "<BlockingJob", 1)


class BlockingClient:
    """`gearspec.reference.client.Client` for code without an event loop (same arguments)."""

    def __init__(self, servers: Sequence[str | ServerAddress] | str, **options: Any) -> None:
        self._runner = _LoopThread("gearspec-client")
        self._client = self._runner.call(_build(lambda: Client(servers, **options)))

    def submit(
        self,
        function: str | bytes,
        data: str | bytes = b"",
        *,
        unique: str | bytes | None = None,
        background: bool = False,
        priority: Priority | str = Priority.NORMAL,
        epoch: int | None = None,
        timeout: float | None = None,
    ) -> BlockingJob:
        job = self._runner.call(
            self._client.submit(
                function, data, unique=unique, background=background, priority=priority, epoch=epoch, timeout=timeout
            )
        )
        return BlockingJob(job, self._runner)

    def run(
        self,
        function: str | bytes,
        data: str | bytes = b"",
        *,
        unique: str | bytes | None = None,
        priority: Priority | str = Priority.NORMAL,
        timeout: float | None = None,
    ) -> bytes:
        return self._runner.call(self._client.run(function, data, unique=unique, priority=priority, timeout=timeout))

    def echo(self, data: str | bytes, **options: Any) -> bytes:
        return self._runner.call(self._client.echo(data, **options))

    def get_status(self, handle: str | bytes, **options: Any) -> JobStatus:
        return self._runner.call(self._client.get_status(handle, **options))

    def get_status_unique(self, unique: str | bytes, **options: Any) -> UniqueStatus:
        return self._runner.call(self._client.get_status_unique(unique, **options))

    def close(self) -> None:
        try:
            self._runner.call(self._client.close(), 10)
        finally:
            self._runner.stop()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlockingWorker:
    """`gearspec.reference.worker.Worker` for scripts: plain-function handlers, blocking `run`.

    Handlers run in worker threads (not on the loop), so they may block; `job.send_*` is
    safe from there. `stop()` may be called from another thread or a handler.
    """

    def __init__(self, servers: Sequence[str | ServerAddress] | str, **options: Any) -> None:
        self._runner = _LoopThread("gearspec-worker")
        self._worker = self._runner.call(_build(lambda: Worker(servers, **options)))

    def register(
        self,
        name: str | bytes,
        handler: Callable[[WorkerJob], bytes | str | Awaitable[bytes | str | None] | None],
        *,
        timeout: int | None = None,
    ) -> None:
        self._worker.register(name, handler, timeout=timeout)

    def run(self, count: int | None = None) -> None:
        """Serve jobs until `stop()` (or until `count` jobs are done)."""
        try:
            self._runner.call(self._worker.run(count=count))
        finally:
            self._runner.stop()

    def stop(self) -> None:
        """Ask `run` to return once running jobs have finished."""
        self._runner.loop.call_soon_threadsafe(self._worker._request_stop)

    @property
    def jobs_done(self) -> int:
        return self._worker.jobs_done


class BlockingAdmin:
    """`gearspec.reference.admin.AdminClient` for scripts."""

    def __init__(self, server: str | ServerAddress, **options: Any) -> None:
        self._runner = _LoopThread("gearspec-admin")
        self._admin = self._runner.call(_build(lambda: AdminClient(server, **options)))

    def status(self) -> list[StatusRow]:
        return self._runner.call(self._admin.status())

    def prioritystatus(self) -> list[PriorityStatusRow]:
        return self._runner.call(self._admin.prioritystatus())

    def workers(self) -> list[WorkerRow]:
        return self._runner.call(self._admin.workers())

    def show_jobs(self) -> list[JobRow]:
        return self._runner.call(self._admin.show_jobs())

    def version(self) -> str:
        return self._runner.call(self._admin.version())

    def command(self, command: str, *args: object) -> list[str]:
        return list(self._runner.call(self._admin.command(command, *args)).lines)

    def close(self) -> None:
        try:
            self._runner.call(self._admin.close(), 10)
        finally:
            self._runner.stop()

    def __enter__(self) -> BlockingAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
