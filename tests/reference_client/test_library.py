"""The reference client and worker against real job servers: C gearmand and Perl
Gearman::Server (processes started on ephemeral ports by the fixtures in tests/conftest.py)."""

from __future__ import annotations

import asyncio

import pytest
from gearspec.conformance.servers import RunningServer, start_server
from gearspec.reference.admin import AdminClient
from gearspec.reference.client import (
    Client,
    JobException,
    JobFailed,
    JobTimeout,
    ServerError,
    WorkData,
    WorkStatus,
    WorkWarning,
)
from gearspec.reference.worker import Worker, WorkerJob, WorkFailed

from gearspec.spec import Priority
from tests.reference_client.helpers import run, wait_until

SERVERS = ["gearmand", "perl_server"]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> RunningServer:
    return request.getfixturevalue(request.param)


async def contract_handler(job: WorkerJob) -> bytes:
    if job.data == b"fail":
        raise WorkFailed()
    if job.data == b"boom":
        raise ValueError("boom happened")
    if job.data == b"status":
        job.send_status(1, 2)
        job.send_data(b"partial")
        job.send_warning(b"careful")
        return b"done"
    return job.data[::-1]


def test_foreground_background_echo_and_status(server: RunningServer) -> None:
    async def scenario() -> None:
        async with Client([server.address], timeout=5) as client:
            assert await client.echo(b"ping\0pong") == b"ping\0pong"
            background = await client.submit("bg_only", b"x", background=True)
            assert background.done() and background.handle
            status = await background.get_status()
            assert (status.known, status.running) == (True, False)
            async with Worker([server.address]) as worker:
                worker.register("rev", contract_handler)
                await worker.wait_connected()
                assert await client.run("rev", b"hello", timeout=10) == b"olleh"
                job = await client.submit("rev", b"\0binary\xff")
                assert await job.result(10) == b"\xffyranib\0"
                unknown = await client.get_status(b"H:nowhere:1")
                assert not unknown.known

    run(scenario())


def test_streaming_updates_arrive_in_order(server: RunningServer) -> None:
    async def scenario() -> list[object]:
        async with Worker([server.address]) as worker, Client([server.address], timeout=5) as client:
            worker.register("rev", contract_handler)
            await worker.wait_connected()
            job = await client.submit("rev", b"status")
            updates = [update async for update in job]
            assert await job == b"done"
            return updates

    updates = run(scenario())
    if server.name == "perl":
        # Perl Gearman::Server has no WORK_DATA / WORK_WARNING handlers (lib/Gearman/Server/Client.pm
        # defines no CMD_work_data or CMD_work_warning): it answers the worker with ERROR and
        # forwards only the status.
        assert updates == [WorkStatus(1, 2)]
    else:
        assert updates == [WorkStatus(1, 2), WorkData(b"partial"), WorkWarning(b"careful")]


def test_fail_and_exception(server: RunningServer) -> None:
    async def scenario() -> None:
        async with Worker([server.address]) as worker:
            worker.register("rev", contract_handler)
            await worker.wait_connected()
            async with Client([server.address], timeout=5) as client:
                with pytest.raises(JobFailed):
                    await client.run("rev", b"fail", timeout=10)
                with pytest.raises(JobException) as raised:
                    await client.run("rev", b"boom", timeout=10)
                assert raised.value.data == b"boom happened"
            if server.name == "gearmand":
                # Without OPTION_REQ exceptions, gearmand turns WORK_EXCEPTION into WORK_FAIL.
                async with Client([server.address], timeout=5, exceptions=False) as plain:
                    with pytest.raises(JobFailed):
                        await plain.run("rev", b"boom", timeout=10)

    run(scenario())


def test_priorities_are_served_high_normal_low(server: RunningServer) -> None:
    order: list[bytes] = []

    async def record(job: WorkerJob) -> bytes:
        order.append(job.data)
        return b""

    async def scenario() -> None:
        async with Client([server.address], timeout=5) as client:
            jobs = [
                await client.submit("prio", b"normal1"),
                await client.submit("prio", b"high1", priority=Priority.HIGH),
                await client.submit("prio", b"normal2"),
            ]
            if server.name == "perl":
                # Perl Gearman::Server has no SUBMIT_JOB_LOW (only CMD_submit_job, _bg and _high).
                with pytest.raises(ServerError):
                    await client.submit("prio", b"low1", priority="low")
            else:
                jobs.append(await client.submit("prio", b"low1", priority="low"))
                jobs.append(await client.submit("prio", b"high2", priority="high"))
            async with Worker([server.address], concurrency=1) as worker:
                worker.register("prio", record)
                for job in jobs:
                    await job.result(10)

    run(scenario())
    if server.name == "perl":
        assert order == [b"high1", b"normal1", b"normal2"]
    else:
        assert order == [b"high1", b"high2", b"normal1", b"normal2", b"low1"]


def test_coalescing_on_unique(server: RunningServer) -> None:
    seen: list[bytes] = []

    async def once(job: WorkerJob) -> bytes:
        seen.append(job.data)
        return b"shared result"

    async def scenario() -> None:
        async with Client([server.address], timeout=5) as first, Client([server.address], timeout=5) as second:
            a = await first.submit("co", b"payload", unique="same-key")
            b = await second.submit("co", b"payload", unique="same-key")
            c = await second.submit("co", b"payload", unique="other-key")
            assert a.handle == b.handle != c.handle
            async with Worker([server.address]) as worker:
                worker.register("co", once)
                assert [await a.result(10), await b.result(10), await c.result(10)] == [b"shared result"] * 3

    run(scenario())
    assert seen == [b"payload", b"payload"]  # one run for the two coalesced submits


def test_failover_when_one_of_two_servers_dies(gearmand: RunningServer) -> None:
    second = start_server("gearmand")
    try:
        async def scenario() -> None:
            addresses = [gearmand.address, second.address]
            async with Worker(addresses) as worker, Client(addresses, timeout=5, retry_interval=30) as client:
                worker.register("rev", contract_handler)
                await worker.wait_connected()
                used = {(await client.submit("rev", b"ab")).server for _ in range(4)}
                assert used == set(addresses)  # round-robin touched both
                gearmand.kill()
                gearmand.process.wait(5)
                for i in range(4):
                    job = await client.submit("rev", f"n{i}")
                    assert job.server == second.address
                    assert await job.result(10) == f"{i}n".encode()

        run(scenario(), timeout=40)
    finally:
        second.stop()


def test_hash_strategy_sends_equal_unique_ids_to_one_server(gearmand: RunningServer) -> None:
    second = start_server("gearmand")
    try:
        async def scenario() -> None:
            async with Client([gearmand.address, second.address], strategy="hash", timeout=5) as client:
                servers = {(await client.submit("h", b"", unique="key-1", background=True)).server for _ in range(5)}
                assert len(servers) == 1

        run(scenario())
    finally:
        second.stop()


def test_worker_stop_finishes_running_jobs(server: RunningServer) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: WorkerJob) -> bytes:
        started.set()
        await release.wait()
        return b"finished"

    async def scenario() -> None:
        worker = Worker([server.address])
        worker.register("slow", slow)
        await worker.start()
        await worker.wait_connected()
        async with Client([server.address], timeout=5) as client:
            job = await client.submit("slow", b"")
            await started.wait()
            stopping = asyncio.create_task(worker.stop(timeout=10))
            await asyncio.sleep(0)  # let stop() begin while the job runs
            assert not stopping.done()
            release.set()
            await stopping
            assert await job.result(5) == b"finished"

    run(scenario())


def test_concurrency_runs_jobs_in_parallel(gearmand: RunningServer) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def parallel(job: WorkerJob) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if peak == 3:
            gate.set()
        await asyncio.wait_for(gate.wait(), 10)
        running -= 1
        return b"ok"

    async def scenario() -> None:
        async with Worker([gearmand.address], concurrency=3) as worker, Client([gearmand.address]) as client:
            worker.register("par", parallel)
            jobs = [await client.submit("par", str(i)) for i in range(3)]
            assert [await job.result(10) for job in jobs] == [b"ok"] * 3

    run(scenario())
    assert peak == 3


def test_job_timeout_is_a_clear_error(gearmand: RunningServer) -> None:
    async def scenario() -> None:
        async with Client([gearmand.address]) as client:
            job = await client.submit("nobody_serves_this", b"")
            with pytest.raises(JobTimeout, match=r"did not finish within 0\.2s"):
                await job.result(0.2)
            assert not job.done()

    run(scenario())


def test_get_status_unique_and_admin_views(gearmand: RunningServer) -> None:
    async def scenario() -> None:
        async with Client([gearmand.address]) as client:
            await client.submit("queued", b"", unique="u-42", background=True)
            status = await client.get_status_unique("u-42")
            assert (status.unique, status.known, status.running) == (b"u-42", True, False)
        async with Worker([gearmand.address], client_id="reference-worker") as worker:
            worker.register("other", contract_handler, timeout=5000)
            await worker.wait_connected()
            async with AdminClient(gearmand.address) as admin:
                await wait_until(lambda: True)
                rows = {row.function: row for row in await admin.status()}
                assert rows["queued"].total == 1
                workers = await admin.workers()
                assert any(w.client_id == "reference-worker" and "other" in w.functions for w in workers)
                assert (await admin.version()).startswith("1.")
                assert await admin.getpid() == gearmand.process.pid

    run(scenario())


def test_blocking_facade(gearmand: RunningServer) -> None:
    from gearspec.reference.blocking import BlockingAdmin, BlockingClient, BlockingWorker

    worker = BlockingWorker([gearmand.address])

    def plain(job: WorkerJob) -> bytes:  # a plain function: runs in a thread
        if job.data == b"status":
            job.send_status(1, 2)
            return b"done"
        return job.data.upper()

    worker.register("up", plain)
    import threading

    serving = threading.Thread(target=worker.run, kwargs={"count": 3})
    serving.start()
    try:
        with BlockingClient([gearmand.address]) as client:
            assert client.run("up", "abc", timeout=10) == b"ABC"
            job = client.submit("up", "status")
            assert list(job.updates(timeout=10)) == [WorkStatus(1, 2)]
            assert job.result(10) == b"done"
            assert client.submit("up", "bg", background=True).handle
        with BlockingAdmin(gearmand.address) as admin:
            assert admin.version()
    finally:
        serving.join(15)
        if serving.is_alive():
            worker.stop()
            serving.join(5)
    assert not serving.is_alive()
    assert worker.jobs_done == 3


def test_epoch_jobs_and_their_argument_checks(gearmand: RunningServer) -> None:
    import time

    async def scenario() -> None:
        async with Client([gearmand.address]) as client:
            with pytest.raises(ValueError, match="background"):
                await client.submit("e", b"", epoch=1)
            job = await client.submit("e", b"due", epoch=int(time.time()) - 1, background=True)
            assert job.handle
            async with AdminClient(gearmand.address) as admin:
                rows = {row.function: row for row in await admin.status()}
                assert rows["e"].total == 1

    run(scenario())
