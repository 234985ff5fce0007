"""Third-party Gearman clients and workers (every driver in gearspec.conformance.drivers)
against OUR server (`gearspec serve`, a separate process), each with a foreground and a
background job, plus failure, exceptions, streaming and priorities.

Where a library lacks a feature the driver registry says so, and the test asserts the
documented behaviour (or the driver's "unsupported" exit) instead of skipping; a library
that cannot run at all here is asserted to say so, then reported as an expected failure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from gearspec.conformance.drivers import (
    DRIVERS,
    EXIT_EXCEPTION,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_UNSUPPORTED,
    Driver,
    run_client,
    start_worker,
)
from gearspec.conformance.servers import RunningServer
from gearspec.reference.blocking import BlockingClient, BlockingWorker
from gearspec.reference.client import JobFailed, WorkData, WorkStatus
from gearspec.reference.worker import WorkerJob, WorkFailed

NAMES = sorted(DRIVERS)

# Libraries whose own bugs break this happy path (docs/findings.md has the sources); the test
# still runs and is reported as an expected failure, so a fixed library shows up as XPASS.
BROKEN: dict[tuple[str, str], str] = {
    ("gearman-java", "client"): "gearman-java 0.6's client spins after OPTION_RES exceptions and never submits",
    ("gearman-java", "worker"): "gearman-java 0.6's worker: see docs/findings.md",
    ("rustygear", "client"): "rustygear 0.15 drops a result that arrives right after JOB_CREATED (client.rs direct_submit)",
    ("rustygear", "worker"): "rustygear 0.15 sends WORK_STATUS and WORK_FAIL with RES magic (WorkerJob::work_status, work_fail)",
    ("gearman-worker-rs", "worker"): "gearman-worker 0.3 sends WORK_FAIL with an extra NUL and argument (Job::send_response)",
    ("abraxas", "worker"): "abraxas's task.error() sends WORK_EXCEPTION before WORK_FAIL; no WORK_DATA without its own server",
    ("aiogear", "worker"): "aiogear's worker answers every failure with WORK_EXCEPTION (aiogear/worker.py Worker.run)",
    # A refused connection: these libraries retry for ever instead of reporting it.
    ("abraxas", "refused"): "abraxas reconnects for ever on a refused connection (client-reconnect.js)",
    ("rustygear", "refused"): "rustygear's connect() returns without a connection and its submit waits",
    ("gearman-java", "timeout"): "gearman-java 0.6's client spins after OPTION_RES exceptions and ignores its timeout",
}


def _names(role: str, test: str | None = None) -> list[object]:
    """The drivers with `role`, those known broken in `test` (default: the role) marked xfail."""
    test = test or role
    return [
        pytest.param(name, marks=pytest.mark.xfail(reason=BROKEN[(name, test)], strict=False))
        if (name, test) in BROKEN
        else name
        for name in NAMES
        if role in DRIVERS[name].roles
    ]


CLIENTS = _names("client")
WORKERS = _names("worker")


def need(driver: Driver) -> None:
    """Skip locally when the library is not installed; under CI that is a failure."""
    why = driver.unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"driver {driver.name}: {why}")
        pytest.skip(f"driver {driver.name}: {why}")


def contract(job: WorkerJob) -> bytes:
    if job.data == b"fail":
        raise WorkFailed()
    if job.data == b"boom":
        raise ValueError("boom")
    if job.data == b"status":
        job.send_status(1, 2)
        job.send_data(b"partial")
        return b"done"
    return job.data[::-1]


class ReferenceWorker:
    """gearspec's worker in a thread, recording the data of every job it ran."""

    def __init__(self, address: str, function: str) -> None:
        self.seen: list[bytes] = []
        self._changed = threading.Condition()
        self._worker = BlockingWorker([address])

        def record(job: WorkerJob) -> bytes:
            with self._changed:
                self.seen.append(job.data)
                self._changed.notify_all()
            return contract(job)

        self._worker.register(function, record)
        self._thread = threading.Thread(target=self._worker.run, daemon=True)
        self._thread.start()

    def wait_for(self, data: bytes, timeout: float = 20.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: data in self.seen, timeout)

    def stop(self) -> None:
        self._worker.stop()
        self._thread.join(10)


@pytest.fixture
def reference_worker(reference_server: RunningServer) -> Iterator[ReferenceWorker]:
    worker = ReferenceWorker(reference_server.address, "rev")
    yield worker
    worker.stop()


@pytest.mark.parametrize("name", CLIENTS)
def test_client(name: str, reference_server: RunningServer, reference_worker: ReferenceWorker) -> None:
    driver = DRIVERS[name]
    need(driver)
    host, port = reference_server.host, reference_server.port

    broken = driver.limitation("client.foreground")
    if broken is not None:
        result = run_client(driver, host, port, "rev", data="hello")
        assert result.exit == EXIT_UNSUPPORTED and "unsupported:" in result.stderr, result.describe()
        pytest.xfail(f"{name} client cannot run here: {broken}")

    result = run_client(driver, host, port, "rev", data="hello")
    assert (result.exit, result.stdout) == (EXIT_OK, b"olleh"), result.describe()

    result = run_client(driver, host, port, "rev", data="background-job", background=True)
    background = driver.supports("client.background")
    if not background:  # documented: the driver says it cannot
        assert result.exit == EXIT_UNSUPPORTED and "unsupported:" in result.stderr, result.describe()
    else:
        assert result.exit == EXIT_OK and result.stdout.strip(), result.describe()
        handle = result.stdout.strip()
        assert b"\n" not in handle

    result = run_client(driver, host, port, "rev", data="fail")
    assert result.exit == EXIT_FAIL, result.describe()

    result = run_client(driver, host, port, "rev", data="boom", exceptions=True)
    if driver.supports("client.exception"):
        assert result.exit == EXIT_EXCEPTION and "boom" in result.stderr, result.describe()
    else:  # documented: the library does not ask for exceptions, so the server sends WORK_FAIL
        assert result.exit == EXIT_FAIL, result.describe()

    result = run_client(driver, host, port, "rev", data="status")
    assert result.exit == EXIT_OK, result.describe()
    if driver.supports("client.stream"):
        assert result.stdout == b"done", result.describe()
        assert "status: 1/2" in result.stderr and "data: partial" in result.stderr, result.describe()
    else:  # documented: updates are mixed into stdout (abraxas, gearman-cli) or dropped (aiogear)
        assert b"done" in result.stdout, result.describe()

    for priority in ("high", "low"):
        result = run_client(driver, host, port, "rev", data=f"{priority}-job", priority=priority, unique=f"u-{priority}")
        if not driver.supports("client.priority"):  # documented: the driver says it cannot
            assert result.exit == EXIT_UNSUPPORTED and "unsupported:" in result.stderr, result.describe()
            continue
        assert (result.exit, result.stdout) == (EXIT_OK, f"{priority}-job"[::-1].encode()), result.describe()

    # The background job reached the worker too (it may run after the foreground ones).
    assert not background or reference_worker.wait_for(b"background-job"), reference_worker.seen


@pytest.mark.parametrize("name", WORKERS)
def test_worker(name: str, reference_server: RunningServer) -> None:
    driver = DRIVERS[name]
    need(driver)
    broken = driver.limitation("worker.complete")
    process = start_worker(driver, reference_server.host, reference_server.port, "rev", count=4, timeout=30)
    try:
        with BlockingClient([reference_server.address], timeout=20) as client:
            if broken is not None:
                # A background job, so nothing waits on it: the server requeues what the broken
                # worker drops.
                client.submit("rev", "hello", background=True)
                _, err = process.communicate(timeout=30)
                assert process.returncode == EXIT_UNSUPPORTED and b"unsupported:" in err, err
                pytest.xfail(f"{name} worker cannot run here: {broken}")

            assert client.run("rev", "hello", timeout=20) == b"olleh"

            job = client.submit("rev", "status")
            if driver.supports("worker.status"):
                assert list(job.updates(timeout=20)) == [WorkStatus(1, 2), WorkData(b"partial")]
                assert job.result(20) == b"done"
            else:  # documented: the driver fails the job rather than ignore the request
                with pytest.raises(JobFailed):
                    job.result(20)

            with pytest.raises(JobFailed):
                client.run("rev", "fail", timeout=20)

            background = client.submit("rev", "bg", background=True)
            assert background.handle
        # The worker exits by itself after its 4th job: the background one.
        out, err = process.communicate(timeout=30)
        assert process.returncode == EXIT_OK, (out, err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("name", _names("client", "refused"))
def test_client_against_a_refused_port_exits_2(name: str) -> None:
    """The contract's connection error: exit 2 with a message, never a hang or exit 0."""
    import socket

    driver = DRIVERS[name]
    need(driver)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_client(driver, "127.0.0.1", port, "rev", data="x", timeout=2)
    assert result.exit == 2 and result.stderr.strip(), result.describe()


@pytest.mark.parametrize("name", _names("client", "timeout"))
def test_timeouts_exit_6(name: str, reference_server: RunningServer) -> None:
    """--timeout bounds a client waiting on a job nobody serves, and an idle worker's life."""
    driver = DRIVERS[name]
    need(driver)
    if driver.limitation("client.foreground") is not None:
        pytest.xfail(f"{name} cannot run here: {driver.limitation('client.foreground')}")
    host, port = reference_server.host, reference_server.port
    result = run_client(driver, host, port, "nobody_serves_this", data="x", timeout=2)
    assert result.exit == 6, result.describe()
    process = start_worker(driver, host, port, "idle", count=1, timeout=2)
    try:
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 6, err
