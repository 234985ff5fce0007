"""Job semantics of `gearspec serve` over real sockets: submit, grab, work updates, status."""

from __future__ import annotations

import time

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

from .conftest import Conn, start_server, wait_for


def _worker(connect, function: bytes, client_id: bytes | None = None) -> Conn:
    worker = connect()
    if client_id:
        worker.send(T.SET_CLIENT_ID, client_id)
    worker.send(T.CAN_DO, function)
    return worker


def test_foreground_round_trip_forwards_every_work_update(connect) -> None:
    client, worker = connect(), _worker(connect, b"fg")
    client.send(T.SUBMIT_JOB, b"fg", b"", b"payload\0with nul")
    handle = client.expect(T.JOB_CREATED).handle
    worker.send(T.GRAB_JOB)
    assign = worker.expect(T.JOB_ASSIGN)
    assert assign.args == (handle, b"fg", b"payload\0with nul")
    worker.send(T.WORK_DATA, handle, b"d1")
    worker.send(T.WORK_WARNING, handle, b"w1")
    worker.send(T.WORK_STATUS, handle, b"1", b"2")
    worker.send(T.WORK_COMPLETE, handle, b"done\0!")
    client.expect(T.WORK_DATA, handle, b"d1")
    client.expect(T.WORK_WARNING, handle, b"w1")
    client.expect(T.WORK_STATUS, handle, b"1", b"2")
    client.expect(T.WORK_COMPLETE, handle, b"done\0!")
    # The job is gone: its handle is unknown now.
    client.send(T.GET_STATUS, handle)
    client.expect(T.STATUS_RES, handle, b"0", b"0", b"0", b"0")
    worker.send(T.WORK_COMPLETE, handle, b"again")
    assert worker.recv().type == T.ERROR


def test_every_submit_variant_is_served(connect) -> None:
    client, worker = connect(), _worker(connect, b"variants")
    variants = [T.SUBMIT_JOB, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH, T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_LOW,
                T.SUBMIT_JOB_LOW_BG]
    handles = []
    for i, variant in enumerate(variants):
        client.send(variant, b"variants", b"", b"%d" % i)
        handles.append(client.expect(T.JOB_CREATED).handle)
    assert len(set(handles)) == len(variants)
    got = []
    for _ in variants:
        worker.send(T.GRAB_JOB_UNIQ)
        got.append(worker.expect(T.JOB_ASSIGN_UNIQ).args[3])
    # HIGH (2, 3), then NORMAL (0, 1), then LOW (4, 5); FIFO within a level.
    assert got == [b"2", b"3", b"0", b"1", b"4", b"5"]
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)


def test_priority_order_across_functions_and_fifo(connect) -> None:
    client = connect()
    for function, variant, data in [
        (b"pa", T.SUBMIT_JOB_LOW_BG, b"low1"), (b"pb", T.SUBMIT_JOB_BG, b"normal1"),
        (b"pa", T.SUBMIT_JOB_HIGH_BG, b"high1"), (b"pb", T.SUBMIT_JOB_LOW_BG, b"low2"),
        (b"pb", T.SUBMIT_JOB_HIGH_BG, b"high2"), (b"pa", T.SUBMIT_JOB_BG, b"normal2"),
    ]:
        client.send(variant, function, b"", data)
        client.expect(T.JOB_CREATED)
    worker = _worker(connect, b"pa")
    worker.send(T.CAN_DO, b"pb")
    order = []
    for _ in range(6):
        worker.send(T.GRAB_JOB)
        order.append(worker.expect(T.JOB_ASSIGN).args[2])
    # Priority is global across the worker's functions; within a level, functions are tried
    # in CAN_DO order and each function's queue is FIFO.
    assert order == [b"high1", b"high2", b"normal2", b"normal1", b"low1", b"low2"]


def test_coalescing_three_submitters_share_one_job(connect) -> None:
    clients = [connect() for _ in range(3)]
    handles = set()
    for c in clients:
        c.send(T.SUBMIT_JOB, b"merge", b"same-unique", b"data")
        handles.add(c.expect(T.JOB_CREATED).handle)
    assert len(handles) == 1
    (handle,) = handles
    probe = connect()
    probe.send(T.GET_STATUS_UNIQUE, b"same-unique")
    probe.expect(T.STATUS_RES_UNIQUE, b"same-unique", b"1", b"0", b"0", b"0", b"3")
    worker = _worker(connect, b"merge")
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN, handle, b"merge", b"data")
    # Joining while it runs still coalesces (byte for byte; another unique does not).
    late = connect()
    late.send(T.SUBMIT_JOB, b"merge", b"same-unique", b"other data")
    late.expect(T.JOB_CREATED, handle)
    late.send(T.SUBMIT_JOB, b"merge", b"Same-unique", b"data")
    assert late.expect(T.JOB_CREATED).handle != handle
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN)
    worker.send(T.WORK_COMPLETE, handle, b"result")
    for c in [*clients, late]:
        c.expect(T.WORK_COMPLETE, handle, b"result")
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)


def test_empty_unique_never_merges_and_dash_keys_on_data(connect) -> None:
    client = connect()
    seen = []
    for unique, data in [(b"", b"x"), (b"", b"x"), (b"-", b"k1"), (b"-", b"k1"), (b"-", b"k2")]:
        client.send(T.SUBMIT_JOB_BG, b"dash", unique, data)
        seen.append(client.expect(T.JOB_CREATED).handle)
    assert seen[0] != seen[1]
    assert seen[2] == seen[3] != seen[4]
    rows = client.admin("status").lines
    assert "dash\t4\t0\t0" in rows


def test_get_status_and_work_status_numbers(connect) -> None:
    client, worker = connect(), _worker(connect, b"stat")
    client.send(T.SUBMIT_JOB_BG, b"stat", b"u-stat", b"")
    handle = client.expect(T.JOB_CREATED).handle
    client.send(T.GET_STATUS, handle)
    client.expect(T.STATUS_RES, handle, b"1", b"0", b"0", b"0")
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN)
    worker.send(T.WORK_STATUS, handle, b"3", b"7")
    worker.barrier()
    client.send(T.GET_STATUS, handle)
    client.expect(T.STATUS_RES, handle, b"1", b"1", b"3", b"7")
    client.send(T.GET_STATUS_UNIQUE, b"u-stat")
    client.expect(T.STATUS_RES_UNIQUE, b"u-stat", b"1", b"1", b"3", b"7", b"0")
    client.send(T.GET_STATUS_UNIQUE, b"nope")
    client.expect(T.STATUS_RES_UNIQUE, b"nope", b"0", b"0", b"0", b"0", b"0")
    worker.send(T.WORK_FAIL, handle)
    worker.barrier()
    client.send(T.GET_STATUS, handle)
    client.expect(T.STATUS_RES, handle, b"0", b"0", b"0", b"0")


def test_pre_sleep_gets_one_noop_per_sleep_cycle(connect) -> None:
    client, worker = connect(), _worker(connect, b"sleepy")
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)
    worker.send(T.PRE_SLEEP)
    assert worker.barrier() == []
    client.send(T.SUBMIT_JOB_BG, b"sleepy", b"", b"1")
    client.send(T.SUBMIT_JOB_BG, b"sleepy", b"", b"2")
    client.expect(T.JOB_CREATED)
    client.expect(T.JOB_CREATED)
    woken = worker.barrier()
    assert [p.type for p in woken] == [T.NOOP]  # one NOOP for two jobs
    # PRE_SLEEP while work waits: an immediate NOOP.
    worker.send(T.PRE_SLEEP)
    worker.expect(T.NOOP)
    for _ in range(2):
        worker.send(T.GRAB_JOB)
        handle = worker.expect(T.JOB_ASSIGN).handle
        worker.send(T.WORK_COMPLETE, handle, b"")
    worker.send(T.PRE_SLEEP)
    assert worker.barrier() == []


def test_can_do_cant_do_reset_abilities(connect) -> None:
    client, worker = connect(), connect()
    client.send(T.SUBMIT_JOB_BG, b"abil", b"", b"")
    client.expect(T.JOB_CREATED)
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)
    worker.send(T.CAN_DO, b"abil")
    worker.send(T.CANT_DO, b"abil")
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)
    worker.send(T.CAN_DO, b"abil")
    worker.send(T.RESET_ABILITIES)
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)
    worker.send(T.CAN_DO, b"abil")
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN)


def test_grab_job_uniq_and_reduce_jobs_with_grab_job_all(connect) -> None:
    client, worker = connect(), _worker(connect, b"red")
    client.send(T.SUBMIT_REDUCE_JOB, b"red", b"ru", b"reducer-fn", b"", b"map me")
    handle = client.expect(T.JOB_CREATED).handle
    client.send(T.SUBMIT_JOB_BG, b"red", b"plain", b"plain data")
    plain = client.expect(T.JOB_CREATED).handle
    worker.send(T.GRAB_JOB_ALL)
    worker.expect(T.JOB_ASSIGN_ALL, handle, b"red", b"ru", b"reducer-fn", b"map me")
    worker.send(T.GRAB_JOB_ALL)  # not a reduce job: JOB_ASSIGN_UNIQ, as gearmand
    worker.expect(T.JOB_ASSIGN_UNIQ, plain, b"red", b"plain", b"plain data")
    worker.send(T.WORK_COMPLETE, handle, b"reduced")
    client.expect(T.WORK_COMPLETE, handle, b"reduced")
    client.send(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"red", b"", b"r2", b"", b"bg")
    client.expect(T.JOB_CREATED)


def test_exceptions_option(connect) -> None:
    plain, wants, worker = connect(), connect(), _worker(connect, b"exc")
    wants.send(T.OPTION_REQ, b"ExCePtIoNs")
    wants.expect(T.OPTION_RES, b"ExCePtIoNs")
    wants.send(T.OPTION_REQ, b"bogus")
    error = wants.expect(T.ERROR)
    assert error.args[0] == b"UNKNOWN_OPTION"
    for c in (plain, wants):
        c.send(T.SUBMIT_JOB, b"exc", b"exc-u", b"")
        handle = c.expect(T.JOB_CREATED).handle
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN)
    worker.send(T.WORK_EXCEPTION, handle, b"boom")
    wants.expect(T.WORK_EXCEPTION, handle, b"boom")
    plain.expect(T.WORK_FAIL, handle)


def test_echo_and_set_client_id(connect) -> None:
    worker = _worker(connect, b"echo-fn", client_id=b"my-worker")
    worker.send(T.ECHO_REQ, b"ping\0pong")
    worker.expect(T.ECHO_RES, b"ping\0pong")
    rows = [line for line in connect().admin("workers").lines if "my-worker" in line]
    assert rows and rows[0].endswith("my-worker : echo-fn")


def test_worker_disconnect_requeues(connect) -> None:
    client, first = connect(), _worker(connect, b"requeue")
    client.send(T.SUBMIT_JOB, b"requeue", b"", b"job")
    handle = client.expect(T.JOB_CREATED).handle
    first.send(T.GRAB_JOB)
    first.expect(T.JOB_ASSIGN, handle, b"requeue", b"job")
    second = _worker(connect, b"requeue")
    second.send(T.PRE_SLEEP)
    second.barrier()
    first.close()
    second.expect(T.NOOP)
    second.send(T.GRAB_JOB)
    second.expect(T.JOB_ASSIGN, handle, b"requeue", b"job")
    second.send(T.WORK_COMPLETE, handle, b"ok")
    client.expect(T.WORK_COMPLETE, handle, b"ok")


def test_client_disconnect_drops_unshared_foreground_jobs(connect) -> None:
    leaver, stayer, admin = connect(), connect(), connect()
    leaver.send(T.SUBMIT_JOB, b"drop", b"", b"alone")
    leaver.expect(T.JOB_CREATED)
    leaver.send(T.SUBMIT_JOB, b"drop", b"shared", b"shared")
    leaver.expect(T.JOB_CREATED)
    stayer.send(T.SUBMIT_JOB, b"drop", b"shared", b"shared")
    stayer.expect(T.JOB_CREATED)
    assert "drop\t2\t0\t0" in admin.admin("status").lines
    leaver.close()
    wait_for(lambda: "drop\t1\t0\t0" in admin.admin("status").lines, "the unshared job to be dropped")
    worker = _worker(connect, b"drop")
    worker.send(T.GRAB_JOB)
    assert worker.expect(T.JOB_ASSIGN).args[2] == b"shared"


def test_job_retries_limit_then_work_fail() -> None:
    server = start_server("--queue", "memory", "--job-retries", "2")
    try:
        client = Conn(server)
        client.send(T.SUBMIT_JOB, b"flaky", b"", b"x")
        handle = client.expect(T.JOB_CREATED).handle
        admin = Conn(server)
        row = handle.decode() + "\t1\t"

        def requeued_once() -> bool:
            return any(r.startswith(row) for r in admin.admin("show jobs").lines)

        for attempt in range(2):
            worker = Conn(server)
            worker.send(T.CAN_DO, b"flaky")
            worker.send(T.GRAB_JOB)
            worker.expect(T.JOB_ASSIGN, handle, b"flaky", b"x")
            worker.close()
            if attempt == 0:
                wait_for(requeued_once, "the job to be requeued with one retry")
        client.expect(T.WORK_FAIL, handle)
        client.send(T.GET_STATUS, handle)
        client.expect(T.STATUS_RES, handle, b"0", b"0", b"0", b"0")
    finally:
        server.stop()


def test_submit_job_epoch_is_held_until_its_time(connect) -> None:
    client, worker = connect(), _worker(connect, b"later")
    when = int(time.time()) + 2
    client.send(T.SUBMIT_JOB_EPOCH, b"later", b"", b"%d" % when, b"timed")
    handle = client.expect(T.JOB_CREATED).handle
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)
    worker.send(T.PRE_SLEEP)
    worker.expect(T.NOOP, timeout=5)
    assert time.time() >= when
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN, handle, b"later", b"timed")


def test_can_do_timeout_expiry_requeues_the_job(connect) -> None:
    """Our choice (gearmand's): on expiry the job is requeued, not failed."""
    client, slow = connect(), connect()
    slow.send(T.CAN_DO_TIMEOUT, b"timed-fn", b"1000")
    client.send(T.SUBMIT_JOB, b"timed-fn", b"", b"t")
    handle = client.expect(T.JOB_CREATED).handle
    slow.send(T.GRAB_JOB)
    slow.expect(T.JOB_ASSIGN)
    started = time.monotonic()
    other = _worker(connect, b"timed-fn")
    other.send(T.PRE_SLEEP)
    other.expect(T.NOOP, timeout=5)
    assert time.monotonic() - started >= 0.9
    other.send(T.GRAB_JOB)
    other.expect(T.JOB_ASSIGN, handle, b"timed-fn", b"t")
    slow.send(T.WORK_COMPLETE, handle, b"late")
    assert slow.expect(T.ERROR).args[0] == b"JOB_NOT_FOUND"
    other.send(T.WORK_COMPLETE, handle, b"on time")
    client.expect(T.WORK_COMPLETE, handle, b"on time")


def test_maxqueue_refuses_submits_when_full(connect) -> None:
    client = connect()
    assert client.admin("maxqueue mq 2").lines == ("OK",)
    for i in range(2):
        client.send(T.SUBMIT_JOB_BG, b"mq", b"", b"%d" % i)
        client.expect(T.JOB_CREATED)
    client.send(T.SUBMIT_JOB_BG, b"mq", b"", b"3")
    error = client.expect(T.ERROR)
    assert error.args[0] == b"QUEUE_ERROR"
    client.send(T.SUBMIT_JOB_BG, b"mq", b"", b"4")  # the connection still works
    assert client.expect(T.ERROR).args[0] == b"QUEUE_ERROR"
    assert client.admin("maxqueue mq 0").lines == ("OK",)  # 0: no limit again
    client.send(T.SUBMIT_JOB_BG, b"mq", b"", b"5")
    client.expect(T.JOB_CREATED)


def test_large_payloads_round_trip_byte_for_byte(connect) -> None:
    client, worker = connect(), _worker(connect, b"big")
    data = bytes(range(256)) * 400 + b"\0end"  # > 100 KiB, NULs inside
    client.send(T.SUBMIT_JOB, b"big", b"big-u", data)
    handle = client.expect(T.JOB_CREATED).handle
    worker.send(T.GRAB_JOB_UNIQ)
    worker.expect(T.JOB_ASSIGN_UNIQ, handle, b"big", b"big-u", data)
    worker.send(T.WORK_DATA, handle, data[::-1])
    worker.send(T.WORK_COMPLETE, handle, data + data)
    client.expect(T.WORK_DATA, handle, data[::-1])
    client.expect(T.WORK_COMPLETE, handle, data + data)
    worker.send(T.ECHO_REQ, data)
    worker.expect(T.ECHO_RES, data)
    # A large packet with a NUL where the spec allows none still gets a clean ERROR.
    worker.send_raw(Packet.request(T.CAN_DO, b"x" * 5000).to_bytes()[:-1] + b"\0")
    assert worker.expect(T.ERROR).args[0] == b"INVALID_PACKET"
    worker.send_raw(b"\0REQ" + (12).to_bytes(4, "big") + (5003).to_bytes(4, "big") + b"h\0" + b"1" * 5000 + b"\0x")
    assert worker.expect(T.ERROR).args[0] == b"INVALID_PACKET"  # WORK_STATUS with a non-number
