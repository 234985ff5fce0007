"""The sans-IO broker driven directly: time is an input, output is bytes per session."""

from __future__ import annotations

from gearspec.reference.broker import IDLE_FUNCTIONS_KEPT, Broker, Session

from gearspec.codec import Decoder, Packet
from gearspec.spec import Magic
from gearspec.spec import PacketType as T


def _sent(session: Session) -> list[Packet]:
    decoder = Decoder(accept=Magic.RES)
    decoder.receive_data(b"".join(session.out))
    session.out.clear()
    return [p for p in decoder if isinstance(p, Packet)]


def _call(broker: Broker, session: Session, type: T, *args: bytes, now: float = 1000.0) -> list[Packet]:
    broker.receive(session, type, list(args), now)
    return _sent(session)


def test_epoch_jobs_wait_for_tick_at_their_time() -> None:
    broker = Broker()
    client, worker = broker.connect(), broker.connect()
    _call(broker, worker, T.CAN_DO, b"f")
    (created,) = _call(broker, client, T.SUBMIT_JOB_EPOCH, b"f", b"", b"1010", b"d", now=1000.0)
    assert created.type == T.JOB_CREATED
    assert broker.next_deadline() == 1010
    assert [p.type for p in _call(broker, worker, T.GRAB_JOB, now=1005.0)] == [T.NO_JOB]
    _call(broker, worker, T.PRE_SLEEP, now=1005.0)
    broker.tick(1009.9)
    assert _sent(worker) == []
    broker.tick(1010.0)
    assert [p.type for p in _sent(worker)] == [T.NOOP]
    (assign,) = _call(broker, worker, T.GRAB_JOB, now=1010.0)
    assert assign.args == (created.handle, b"f", b"d")


def test_can_do_timeout_requeues_then_fails_within_job_retries() -> None:
    broker = Broker(job_retries=2)
    client, worker = broker.connect(), broker.connect()
    _call(broker, worker, T.CAN_DO_TIMEOUT, b"f", b"10")  # below the 1000 ms floor
    (created,) = _call(broker, client, T.SUBMIT_JOB, b"f", b"", b"d")
    _call(broker, worker, T.GRAB_JOB, now=1000.0)
    assert broker.next_deadline() == 1001.0
    broker.tick(1001.0)  # first expiry: requeued
    assert _sent(client) == []
    _call(broker, worker, T.GRAB_JOB, now=1002.0)
    broker.tick(1003.0)  # second: out of retries
    (fail,) = _sent(client)
    assert (fail.type, fail.args) == (T.WORK_FAIL, (created.handle,))
    assert broker.jobs == {}


def test_disconnect_cleans_every_index() -> None:
    broker = Broker()
    client, worker = broker.connect(), broker.connect()
    _call(broker, worker, T.CAN_DO, b"f")
    _call(broker, client, T.SUBMIT_JOB, b"f", b"u", b"d")
    _call(broker, worker, T.GRAB_JOB)
    broker.disconnect(client, 1000.0)
    broker.disconnect(worker, 1000.0)  # the job has no listener left: not rerun
    assert broker.jobs == {} and broker.by_key == {} and broker.by_unique == {} and broker.sessions == {}
    assert broker.can_do == {}
    function = broker.functions[b"f"]  # unused now: listed among the last IDLE_FUNCTIONS_KEPT, then forgotten
    assert (function.total, function.running, function.queued) == (0, 0, [0, 0, 0])


def test_unused_function_names_are_forgotten_past_the_idle_few() -> None:
    broker = Broker()
    worker = broker.connect()
    names = [b"n%d" % i for i in range(IDLE_FUNCTIONS_KEPT + 100)]
    for name in names:
        _call(broker, worker, T.CAN_DO, name)
    _call(broker, worker, T.CANT_DO, names[0])
    _call(broker, worker, T.RESET_ABILITIES)
    assert set(broker.functions) == set(names[100:])  # the newest idle ones; n0 (dropped first) is gone
    client = broker.connect()
    _call(broker, client, T.SUBMIT_JOB, names[-1], b"", b"d")  # in use again: not evicted while queued
    for name in (b"m%d" % i for i in range(IDLE_FUNCTIONS_KEPT)):
        _call(broker, worker, T.CAN_DO, name)
    _call(broker, worker, T.RESET_ABILITIES)
    assert names[-1] in broker.functions and names[-2] not in broker.functions
