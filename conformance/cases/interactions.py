"""Interactions: pairs of features on one job, and each party's disconnect at each stage.

The single features have their own areas (priority, epoch, coalesce, timeout, status,
disconnect); these cases put two of them on the same job, where servers keep the most state:
priority levels with foreground and background submits, an epoch job among prioritised jobs,
coalescing across priorities and kinds, a CAN_DO_TIMEOUT expiry after WORK_STATUS, and a
client or worker that goes away after WORK_STATUS or WORK_DATA.

The disconnect matrix (party x stage), with the case that covers each cell:

| stage | client goes | worker goes |
|---|---|---|
| queued | disconnect/client/1 | disconnect/worker/4 (a sleeping worker) |
| assigned | disconnect/client/2 | disconnect/worker/1, disconnect/worker/2 |
| after WORK_STATUS | interact/disconnect/1 | interact/disconnect/2, interact/disconnect/4 (background) |
| after WORK_DATA | interact/disconnect/6 | interact/disconnect/3 |
| both gone | interact/disconnect/5 | interact/disconnect/5 |

Sources: gearmand `libgearman-server/server.cc` `gearman_server_run_command` (priority per
submit type; SUBMIT_JOB_EPOCH queues at NORMAL), `libgearman-server/job.cc`
`gearman_server_job_add_reducer` (coalescing on function and unique, whatever the priority
or kind of the later submit), `libgearman-server/gearmand_con.cc` `gearman_server_con_free`
(a worker's jobs requeued, a client's foreground jobs marked to be dropped), `gearman_server_job_peek`
(a dropped job is skipped); Perl Gearman::Server `lib/Gearman/Server/Client.pm` `close`.
"""

from __future__ import annotations

import time

from gearspec.conformance.cases._jobs import (
    ASSIGN_TYPES,
    close_and_wait_forgotten,
    first_to_speak,
    grab_any,
    probe,
    settle,
    start_job,
    status_of,
)
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, MUST, SHOULD, case

from gearspec.codec import Packet, RawPacket
from gearspec.spec import PacketType as T
from gearspec.spec import packet_spec

_RUN = "gearmand libgearman-server/server.cc gearman_server_run_command"
_ADD = "gearmand libgearman-server/job.cc gearman_server_job_add_reducer"
_FREE = "gearmand libgearman-server/gearmand_con.cc gearman_server_con_free"
_PERL = "Perl Gearman::Server lib/Gearman/Server/Client.pm close"


def _level(type: T) -> int:
    """The queue level of a submit packet (HIGH 0, NORMAL 1, LOW 2), from the packet table."""
    attrs = packet_spec(type).submit
    assert attrs is not None, type
    return int(attrs.priority)


def _take_in_order(s: Session, worker: Conn, expected: list[tuple[bytes, str]]) -> None:
    """Grab len(expected) jobs; they must come in the expected order (handle, label)."""
    got = []
    for _ in expected:
        job = worker.grab()
        got.append(job.handle)
        worker.work(T.WORK_COMPLETE, job.handle, b"")
    labels = {h: label for h, label in expected}
    if got != [h for h, _ in expected]:
        s.fail(" ".join(label for _, label in expected), " ".join(labels.get(h, repr(h)) for h in got))


# -- priority x kind, epoch x priority ----------------------------------------------------------


@case(
    "interact/priority/1",
    "Six submits interleaved (LOW_BG, JOB, HIGH_BG, LOW, BG, HIGH) are assigned by level, FIFO within it: HIGH_BG HIGH JOB BG LOW_BG LOW",
    level=MUST,
    packets=[
        "SUBMIT_JOB",
        "SUBMIT_JOB_BG",
        "SUBMIT_JOB_HIGH",
        "SUBMIT_JOB_HIGH_BG",
        "SUBMIT_JOB_LOW",
        "SUBMIT_JOB_LOW_BG",
        "JOB_ASSIGN",
    ],
    source=f"PROTOCOL (SUBMIT_JOB_HIGH, SUBMIT_JOB_LOW: queue levels shared by foreground and background jobs); {_RUN}",
)
def priority_by_kind(s: Session) -> None:
    order = [
        T.SUBMIT_JOB_LOW_BG,
        T.SUBMIT_JOB,
        T.SUBMIT_JOB_HIGH_BG,
        T.SUBMIT_JOB_LOW,
        T.SUBMIT_JOB_BG,
        T.SUBMIT_JOB_HIGH,
    ]
    usable = [t for t in order if t in s.capabilities.submits]
    skipped = [t.name for t in order if t not in usable]
    if len({_level(t) for t in usable}) < 2:
        s.unsupported(f"needs submits of two priority levels; the target refused {', '.join(skipped)}")
    if skipped:
        s.note(f"left out (refused in the run's probe): {', '.join(skipped)}")
    fn = s.name("fn")
    client = s.client()
    # Each job with a unique id of its own: rustygeard coalesces jobs on the empty unique (coalesce/* grades that).
    queued = [(client.submit(fn, t.name.encode(), s.name(f"u{i}"), t), t) for i, t in enumerate(usable)]
    expected = sorted(queued, key=lambda q: _level(q[1]))  # stable: FIFO within a level
    _take_in_order(s, s.worker(fn), [(h, t.name.removeprefix("SUBMIT_")) for h, t in expected])


@case(
    "interact/epoch/1",
    "A SUBMIT_JOB_EPOCH job whose time has passed queues at NORMAL: after a later HIGH job, before a later BG and LOW job",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "SUBMIT_JOB_HIGH", "SUBMIT_JOB_BG", "SUBMIT_JOB_LOW", "JOB_ASSIGN"],
    source=f"{_RUN} (SUBMIT_JOB_EPOCH: GEARMAN_JOB_PRIORITY_NORMAL, background)",
)
def epoch_among_priorities(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    events = probe(s, client, T.SUBMIT_JOB_EPOCH, fn, b"", 1, b"epoch")
    first = events[0] if events else None
    if not (isinstance(first, Packet) and first.type is T.JOB_CREATED):
        s.unsupported(
            f"SUBMIT_JOB_EPOCH: {describe(first) if events else 'no reply' if events is not None else 'closed'}; see epoch/*"
        )
    assert isinstance(first, Packet)
    queued = [(first.handle, "EPOCH", 1)]
    for type, label in ((T.SUBMIT_JOB_HIGH, "HIGH"), (T.SUBMIT_JOB_BG, "BG"), (T.SUBMIT_JOB_LOW, "LOW")):
        if type in s.capabilities.submits:
            queued.append((client.submit(fn, label.encode(), b"", type), label, _level(type)))
    expected = sorted(queued, key=lambda q: q[2])
    _take_in_order(s, s.worker(fn), [(h, label) for h, label, _ in expected])


# -- coalescing x priority, coalescing x kind -------------------------------------------------


@case(
    "interact/coalesce/1",
    "A SUBMIT_JOB_HIGH with the unique of a queued NORMAL job joins it: one handle, one assignment, both clients get WORK_COMPLETE",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SUBMIT_JOB_HIGH", "JOB_CREATED", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_ADD} (looked up by function and unique before the priority is used); PROTOCOL (SUBMIT_JOB: unique)",
    alternatives={"separate": "the HIGH submit made a second job (the server coalesces only within one priority)"},
)
def coalesce_across_priority(s: Session) -> None:
    if T.SUBMIT_JOB_HIGH not in s.capabilities.submits:
        s.unsupported("SUBMIT_JOB_HIGH was refused in the run's probe")
    fn, unique = s.name("fn"), s.name("u")
    first, second = s.client(), s.client()
    ahead = first.submit(fn, b"ahead", s.name("u"))
    h1 = first.submit(fn, b"normal", unique)
    h2 = second.submit(fn, b"high", unique, T.SUBMIT_JOB_HIGH)
    worker = s.worker(fn)
    if h2 != h1:
        probe_h = s.client().submit(fn, b"probe", unique)
        if probe_h not in (h1, h2):
            s.unsupported(f"the server does not coalesce (handles {h1!r}, {h2!r}, {probe_h!r}); see coalesce/unique/1")
        s.non_strict("separate", f"handles {h1!r} (NORMAL) and {h2!r} (HIGH)")
    order = []
    for _ in range(2):
        job = worker.grab()
        order.append(job.handle)
        worker.work(T.WORK_COMPLETE, job.handle, job["data"])
    s.check(
        sorted(order) == sorted([ahead, h1]), "the coalesced job assigned once, and the job ahead of it", repr(order)
    )
    s.note(
        "the joined job ran "
        + ("first: the HIGH submit raised it" if order[0] == h1 else "after the job ahead: it kept its NORMAL place")
    )
    for conn in (first, second):
        results = [conn.expect(T.WORK_COMPLETE) for _ in range(2 if conn is first else 1)]
        s.check(
            any(r.handle == h1 and r["data"] == b"normal" for r in results),
            "WORK_COMPLETE of the coalesced job with the first submit's data",
            "; ".join(map(describe, results)),
        )
    worker.grab_nothing()


@case(
    "interact/coalesce/2",
    "A SUBMIT_JOB_BG with the unique of a queued foreground job joins it: the foreground client gets the result, the background submitter nothing",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "JOB_CREATED", "WORK_COMPLETE"],
    source=f"{_ADD} (a background submit attaches no client); PROTOCOL (SUBMIT_JOB_BG)",
)
def background_joins_foreground(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    fg, bg = s.client(), s.client()
    h1 = fg.submit(fn, b"fg", unique)
    h2 = bg.submit(fn, b"bg", unique, T.SUBMIT_JOB_BG)
    worker = s.worker(fn)
    if h2 != h1:
        s.unsupported(f"no coalescing across kinds (handles {h1!r}, {h2!r}); see coalesce/unique/9")
    job = worker.grab()
    s.check_equal(job.handle, h1, "assigned handle")
    worker.work(T.WORK_COMPLETE, h1, b"done")
    s.check_equal(fg.expect(T.WORK_COMPLETE)["data"], b"done", "foreground result")
    worker.grab_nothing()
    bg.expect_silence("nothing to the background submitter")


@case(
    "interact/coalesce/4",
    "A queued foreground job that a SUBMIT_JOB_BG joined still runs after its foreground client disconnects: the background submitter was told it is queued",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "JOB_CREATED", "JOB_ASSIGN"],
    source=f"{_ADD} (a background submit attaches no client); PROTOCOL (SUBMIT_JOB_BG: JOB_CREATED means queued); {_FREE}",
    alternatives={"dropped": "the job went with its foreground client although a background submit had joined it"},
)
def background_join_outlives_client(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    fg, bg = s.client(), s.client()
    fg_id = s.name("fg")
    fg.send(T.SET_CLIENT_ID, fg_id)
    h1 = fg.submit(fn, b"fg", unique)
    h2 = bg.submit(fn, b"bg", unique, T.SUBMIT_JOB_BG)
    if h2 != h1:
        s.unsupported(f"no coalescing across kinds (handles {h1!r}, {h2!r}); see coalesce/unique/9")
    close_and_wait_forgotten(s, fg, fg_id)
    worker = s.worker(fn)
    job = grab_any(s, worker)
    if job.type is T.NO_JOB:
        s.non_strict("dropped", "GRAB got NO_JOB after the foreground client left")
    s.check_equal(job.handle, h1, "assigned handle")
    worker.work(T.WORK_COMPLETE, h1, b"done")
    bg.expect_silence("nothing to the background submitter")


@case(
    "interact/coalesce/3",
    "Two background submits of different priorities with one unique make one job: one handle, assigned once",
    level=SHOULD,
    packets=["SUBMIT_JOB_HIGH_BG", "SUBMIT_JOB_BG", "SUBMIT_JOB_LOW_BG", "JOB_CREATED", "JOB_ASSIGN", "NO_JOB"],
    source=_ADD,
    alternatives={"separate": "the second priority made a second job"},
)
def background_priorities_coalesce(s: Session) -> None:
    kinds = [t for t in (T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_LOW_BG) if t in s.capabilities.submits]
    if len(kinds) < 2:
        s.unsupported("needs background submits of two priority levels")
    fn, unique = s.name("fn"), s.name("u")
    client = s.client()
    h1 = client.submit(fn, b"1", unique, kinds[0])
    h2 = client.submit(fn, b"2", unique, kinds[-1])
    worker = s.worker(fn)
    if h1 != h2:
        if client.submit(fn, b"3", unique, kinds[0]) != h1:
            s.unsupported("the server does not coalesce background jobs; see coalesce/unique/12")
        for _ in range(2):
            worker.work(T.WORK_COMPLETE, worker.grab().handle, b"")
        s.non_strict("separate", f"{kinds[0].name} {h1!r}, {kinds[-1].name} {h2!r}")
    s.check_equal(worker.grab().handle, h1, "assigned handle")
    worker.work(T.WORK_COMPLETE, h1, b"")
    worker.grab_nothing()


# -- timeout x status -------------------------------------------------------------------------


@case(
    "interact/timeout/1",
    "After WORK_STATUS and a CAN_DO_TIMEOUT expiry, GET_STATUS agrees with what the client was told: unknown after WORK_FAIL, queued (running 0) after a requeue",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "WORK_STATUS", "GET_STATUS", "STATUS_RES", "WORK_FAIL", "NOOP"],
    source="PROTOCOL (CAN_DO_TIMEOUT); gearmand libgearman-server/connection.cc _server_job_timeout (requeue); Perl Client.pm CMD_grab_job (WORK_FAIL)",
    timeout=15,
)
def timeout_after_status(s: Session) -> None:
    fn = s.name("fn")
    slow = s.connect("worker")
    slow.send(T.CAN_DO_TIMEOUT, fn, 1)  # 1 s (Perl), 1000 ms (gearmand's minimum), 1 ms literally
    started = time.monotonic()
    client = s.client()
    handle = client.submit(fn, b"slow", s.name("u"))  # own unique: see _client_gone_after
    slow.send(s.grab_type)
    job = slow.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
    if job.type is T.NO_JOB:
        s.unsupported("CAN_DO_TIMEOUT did not register the function; see timeout/register/1")
    slow.work(T.WORK_STATUS, handle, 1, 2)
    settle(slow)
    got = client.sync()
    if not got:  # work/forward/* grades that; this case is about the timeout
        s.unsupported("WORK_STATUS is not forwarded to the client; see work/forward/*")
    client.unread(*got)
    client.expect(T.WORK_STATUS)
    standby = s.worker(fn)
    standby.send(T.PRE_SLEEP)
    settle(slow, standby)
    checker = s.client()
    for _ in range(20):
        who = first_to_speak(s, [client, standby], timeout=1.5)
        if who is client:
            event = client.receive()
            s.check(_is_fail(event) and event.args[0] == handle, "WORK_FAIL for the job", describe(event))
            fields = status_of(s, checker, handle)
            s.check(fields[:2] == (b"0", b"0"), "GET_STATUS: unknown (known 0) after WORK_FAIL", _fields(fields))
            return
        if who is standby:
            standby.expect(T.NOOP)
        fields = status_of(s, checker, handle)
        if fields[:2] == (b"1", b"0"):
            s.note(
                f"requeued{'' if who else ' without a NOOP (timeout/expiry/1 grades that)'}; numbers {fields[2].decode('latin-1')}/{fields[3].decode('latin-1')}"
            )
            again = standby.grab()
            s.check_equal(again.handle, handle, "requeued handle")
            standby.work(T.WORK_COMPLETE, handle, b"")
            return
        if fields[0] == b"0":
            s.fail(
                "WORK_FAIL to the client, or the job requeued",
                f"GET_STATUS unknown ({_fields(fields)}) and the client told nothing",
            )
        if who is None and time.monotonic() - started > 3.0:
            s.unsupported(
                f"no expiry within 3 s of a 1 s CAN_DO_TIMEOUT (GET_STATUS {_fields(fields)}); see timeout/expiry/1"
            )
        # Woken without the job (Perl wakes sleepers on a timer): stay awake; GET_STATUS
        # after the next wait shows a requeue all the same.
    s.fail("the job failed or requeued", "twenty waits without it")


# -- disconnects after WORK_STATUS / WORK_DATA ----------------------------------------------------


def _update(s: Session, client: Conn, worker: Conn, handle: bytes, update: T, first: bool) -> None:
    """The worker sends `update`; the client must get it. The first update of a case ends it
    unsupported when the target refuses or drops that packet type (work/* grade that)."""
    worker.work(update, handle, *((1, 2) if update is T.WORK_STATUS else (b"part",)))
    settle(worker)
    refused = [e for e in worker.unread_events if isinstance(e, (Packet, RawPacket)) and e.name == "ERROR"]
    if first and refused:
        s.unsupported(f"{update.name} refused ({describe(refused[0])}); see work/*")
    if first:
        got = client.sync()
        if not got:
            s.unsupported(f"{update.name} is not forwarded to the client; see work/forward/*")
        client.unread(*got)
    client.expect(update)


def _fields(fields: tuple[bytes, ...]) -> str:
    return " ".join(f.decode("latin-1") for f in fields) or "(none)"


def _client_gone_after(s: Session, update: T) -> None:
    fn = s.name("fn")
    # A unique id of its own: rustygeard coalesces jobs on the empty unique (coalesce/* grades that).
    client, worker, handle, _ = start_job(s, fn, b"x", s.name("u"))
    _update(s, client, worker, handle, update, first=True)
    client.close()
    checker = s.client()
    settle(worker)
    fields = status_of(s, checker, handle)
    s.check(
        fields[:2] == (b"1", b"1"),
        "GET_STATUS: known 1 running 1 while the worker still holds the job",
        _fields(fields),
    )
    worker.work(update, handle, *((2, 2) if update is T.WORK_STATUS else (b"more",)))
    worker.work(T.WORK_COMPLETE, handle, b"done")
    worker.expect_silence("no ERROR for updates about a job whose client has gone")
    fields = status_of(s, checker, handle)
    s.check(fields[:2] == (b"0", b"0"), "GET_STATUS: unknown once the job completed", _fields(fields))


@case(
    "interact/disconnect/1",
    "When the client leaves after a WORK_STATUS, the job still runs (GET_STATUS running), its worker's updates get no ERROR, and it is forgotten once complete",
    level=SHOULD,
    packets=["WORK_STATUS", "WORK_DATA", "WORK_COMPLETE", "GET_STATUS", "STATUS_RES"],
    source=f"{_FREE} (a client's jobs keep running); {_RUN} WORK_STATUS, WORK_COMPLETE",
)
def client_gone_after_status(s: Session) -> None:
    _client_gone_after(s, T.WORK_STATUS)


@case(
    "interact/disconnect/6",
    "When the client leaves after a WORK_DATA, the job still runs (GET_STATUS running), its worker's updates get no ERROR, and it is forgotten once complete",
    level=SHOULD,
    packets=["WORK_DATA", "WORK_STATUS", "WORK_COMPLETE", "GET_STATUS", "STATUS_RES"],
    source=f"{_FREE} (a client's jobs keep running); {_RUN} WORK_DATA",
)
def client_gone_after_data(s: Session) -> None:
    _client_gone_after(s, T.WORK_DATA)


def _is_fail(event: object) -> bool:
    return isinstance(event, (Packet, RawPacket)) and event.name == "WORK_FAIL"


def _worker_gone_after(s: Session, update: T, background: bool = False) -> tuple[Conn, Conn, bytes, tuple[bytes, ...]]:
    """Run a job to `update`, then drop its worker while a standby sleeps.

    Returns (client, standby, handle, GET_STATUS fields once the job is back in the queue).
    Ends non-strict "fail" when the client is sent WORK_FAIL instead of a requeue (the magic
    of that WORK_FAIL is framing/magic's business); fails when the job is lost silently.
    A sleeping worker's wake-up is disconnect/worker/2's business: a requeue seen by
    GET_STATUS without a NOOP is noted, not failed.
    """
    fn = s.name("fn")
    # A unique id of its own: rustygeard coalesces jobs on the empty unique (coalesce/* grades that).
    client, worker, handle, _ = start_job(s, fn, b"x", s.name("u"), T.SUBMIT_JOB_BG if background else T.SUBMIT_JOB)
    if background:
        worker.work(update, handle, *((1, 2) if update is T.WORK_STATUS else (b"part1",)))
    else:
        _update(s, client, worker, handle, update, first=True)
    standby = s.worker(fn)
    standby.send(T.PRE_SLEEP)
    settle(worker, standby)
    worker.close()
    checker = s.client()
    for _ in range(20):
        who = first_to_speak(s, [client, standby], timeout=min(s.wait, 1.0))
        if who is client:
            event = client.receive()
            if _is_fail(event):
                s.non_strict("fail", f"after {update.name}: {describe(event)}")
            s.fail("nothing for the client while the job is retried", describe(event))
        if who is standby:
            standby.expect(T.NOOP)
        fields = status_of(s, checker, handle)
        if fields[:2] == (b"1", b"0"):
            if who is None:
                s.note("requeued without a NOOP to the sleeping worker (disconnect/worker/2 grades that)")
            return client, standby, handle, fields
        if fields[0] == b"0":
            if (
                not background
                and first_to_speak(s, [client], timeout=s.wait) is client
                and _is_fail(event := client.receive())
            ):
                s.non_strict("fail", f"after {update.name}: {describe(event)}")
            s.fail(
                "the job requeued after its worker left",
                f"GET_STATUS says unknown ({_fields(fields)}), and the client was told nothing",
            )
        if who is None:
            s.fail("the job requeued after its worker left", f"GET_STATUS still says running ({_fields(fields)})")
        # Woken before the requeue (Perl wakes sleepers on a timer): stay awake; GET_STATUS
        # after the next wait shows the requeue all the same.
    return s.fail("the job requeued after its worker left", "twenty waits without it")


_NO_RETRY = {"fail": "the client was sent WORK_FAIL instead of a retry (see disconnect/worker/1)"}


@case(
    "interact/disconnect/2",
    "When a worker leaves after WORK_STATUS, the job is requeued (GET_STATUS known 1, running 0), the client gets no WORK_FAIL, and the next worker's result reaches it",
    level=SHOULD,
    packets=["WORK_STATUS", "GET_STATUS", "STATUS_RES", "PRE_SLEEP", "NOOP", "WORK_COMPLETE"],
    source=f"{_FREE} (requeue); {_PERL}",
    alternatives=_NO_RETRY,
)
def worker_gone_after_status(s: Session) -> None:
    client, standby, handle, fields = _worker_gone_after(s, T.WORK_STATUS)
    s.note(f"numbers after the requeue: {fields[2].decode('latin-1')}/{fields[3].decode('latin-1')}")
    job = standby.grab()
    s.check_equal(job.handle, handle, "requeued handle")
    standby.work(T.WORK_COMPLETE, handle, b"second")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"second", "result")


@case(
    "interact/disconnect/3",
    "When a worker leaves after WORK_DATA, the client sees that WORK_DATA once, then only the next worker's packets: WORK_DATA, WORK_COMPLETE",
    level=SHOULD,
    packets=["WORK_DATA", "PRE_SLEEP", "NOOP", "WORK_COMPLETE"],
    source=f"{_FREE} (requeue); {_PERL}",
    alternatives=_NO_RETRY,
)
def worker_gone_after_data(s: Session) -> None:
    client, standby, handle, _ = _worker_gone_after(s, T.WORK_DATA)
    job = standby.grab()
    s.check_equal(job.handle, handle, "requeued handle")
    standby.work(T.WORK_DATA, handle, b"part2")
    standby.work(T.WORK_COMPLETE, handle, b"done")
    got = [client.expect(T.WORK_DATA, T.WORK_COMPLETE, T.WORK_FAIL) for _ in range(2)]
    s.check(
        [(p.type, p["data"]) for p in got] == [(T.WORK_DATA, b"part2"), (T.WORK_COMPLETE, b"done")],
        "WORK_DATA part2, WORK_COMPLETE done",
        "; ".join(map(describe, got)),
    )
    client.expect_silence("nothing more for the client")


@case(
    "interact/disconnect/4",
    "When a worker leaves a background job after WORK_STATUS, the job is requeued: GET_STATUS known 1, running 0, and the next worker gets it",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "WORK_STATUS", "GET_STATUS", "STATUS_RES", "NOOP"],
    source=f"{_FREE} (requeue); {_PERL}",
)
def worker_gone_background(s: Session) -> None:
    _client, standby, handle, fields = _worker_gone_after(s, T.WORK_STATUS, background=True)
    s.note(f"numbers after the requeue: {fields[2].decode('latin-1')}/{fields[3].decode('latin-1')}")
    s.check_equal(standby.grab().handle, handle, "requeued handle")
    standby.work(T.WORK_COMPLETE, handle, b"")


@case(
    "interact/disconnect/5",
    "When the client of a running foreground job leaves and then its worker leaves too, the job is not handed to another worker",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "GRAB_JOB", "NO_JOB", "GET_STATUS"],
    source=f"{_FREE} (the client's job marked ignore_job, the worker's requeued); gearmand libgearman-server/gearmand_con.cc gearman_server_job_peek (ignored jobs dropped)",
    alternatives={"rerun": "the orphaned job was handed to another worker (wasted work, nobody gets the result)"},
)
def both_gone(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _ = start_job(s, fn, b"orphan", s.name("u"))  # own unique: see _client_gone_after
    client.close()
    standby = s.worker(fn)
    settle(worker, standby)
    worker.close()
    # The requeue (if any) is asynchronous: wait until GET_STATUS no longer says running.
    checker = s.client()
    for _ in range(200):
        known, running = status_of(s, checker, handle)[:2]
        if running == b"0":
            break
    standby.send(s.grab_type)
    reply = standby.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
    if reply.type is not T.NO_JOB:
        s.check_equal(reply.handle, handle, "handle")
        standby.work(T.WORK_COMPLETE, handle, b"")
        s.non_strict("rerun")
    s.note(f"GET_STATUS after both left: known {known.decode('latin-1')}")
