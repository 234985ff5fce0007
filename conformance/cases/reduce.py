"""Map/reduce submits: SUBMIT_REDUCE_JOB(_BACKGROUND), GRAB_JOB_ALL, JOB_ASSIGN_ALL.

gearmand extensions. Sources: gearmand `PROTOCOL` (SUBMIT_REDUCE_JOB: adds a reducer;
JOB_ASSIGN_ALL: JOB_ASSIGN_UNIQ plus the reducer); `libgearman-server/server.cc`
`gearman_server_run_command` (SUBMIT_REDUCE_JOB*: function, unique, reducer, then an
aggregator field and the data: five fields on the wire, as libgearman sends them; GRAB_JOB_ALL
answers JOB_ASSIGN_ALL when the job has a reducer); `libgearman-server/job.cc`
`gearman_server_job_add_reducer`.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import JOB_ADD, PROTOCOL, RUN, probe, refusal, settle, submit_or_unsupported
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (SUBMIT_REDUCE_JOB, JOB_ASSIGN_ALL); {RUN} (SUBMIT_REDUCE_JOB, GRAB_JOB_ALL); {JOB_ADD}"


def _submit_reduce(s: Session, client: Conn, fn: str, reducer: str, unique: str, data: bytes, bg: bool = False) -> bytes:
    type = T.SUBMIT_REDUCE_JOB_BACKGROUND if bg else T.SUBMIT_REDUCE_JOB
    return submit_or_unsupported(s, client, type, fn, unique, reducer, b"", data)


def _grab_all(s: Session, worker: Conn) -> Packet:
    events = probe(s, worker, T.GRAB_JOB_ALL)
    reason = refusal(events)
    if reason is not None:
        s.unsupported(f"GRAB_JOB_ALL: {reason}")
    assert events is not None
    job = events[0]
    if not (isinstance(job, Packet) and job.type is T.JOB_ASSIGN_ALL):
        s.fail("JOB_ASSIGN_ALL", describe(job))
    return job


@case(
    "reduce/submit/1",
    "SUBMIT_REDUCE_JOB is answered with JOB_CREATED",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB", "JOB_CREATED"],
    source=_RULE,
)
def submit_reduce(s: Session) -> None:
    handle = _submit_reduce(s, s.client(), s.name("fn"), s.name("r"), s.name("u"), b"1 2 3")
    s.check(len(handle) > 0, "a non-empty handle", "an empty handle")


@case(
    "reduce/submit/2",
    "SUBMIT_REDUCE_JOB_BACKGROUND is answered with JOB_CREATED",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB_BACKGROUND", "JOB_CREATED"],
    source=_RULE,
)
def submit_reduce_bg(s: Session) -> None:
    handle = _submit_reduce(s, s.client(), s.name("fn"), s.name("r"), s.name("u"), b"1 2 3", bg=True)
    s.check(len(handle) > 0, "a non-empty handle", "an empty handle")


@case(
    "reduce/assign/1",
    "GRAB_JOB_ALL for a reduce job gets JOB_ASSIGN_ALL with handle, function, unique, reducer and data",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB", "GRAB_JOB_ALL", "JOB_ASSIGN_ALL"],
    source=_RULE,
)
def assign_all(s: Session) -> None:
    fn, reducer, unique = s.name("fn"), s.name("r"), s.name("u")
    handle = _submit_reduce(s, s.client(), fn, reducer, unique, b"map\0me")
    job = _grab_all(s, s.worker(fn))
    s.check_equal(
        (job.handle, job["function"], job["unique"], job["reducer"], job["data"]),
        (handle, fn.encode(), unique.encode(), reducer.encode(), b"map\0me"),
        "JOB_ASSIGN_ALL fields",
    )


@case(
    "reduce/assign/3",
    "GRAB_JOB_ALL for a background reduce job (SUBMIT_REDUCE_JOB_BACKGROUND) gets JOB_ASSIGN_ALL with its reducer",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB_BACKGROUND", "GRAB_JOB_ALL", "JOB_ASSIGN_ALL"],
    source=f"{_RULE} (the background submit carries the reducer too)",
)
def assign_all_background(s: Session) -> None:
    fn, reducer, unique = s.name("fn"), s.name("r"), s.name("u")
    handle = _submit_reduce(s, s.client(), fn, reducer, unique, b"map\0me", bg=True)
    job = _grab_all(s, s.worker(fn))
    s.check_equal(
        (job.handle, job["function"], job["unique"], job["reducer"], job["data"]),
        (handle, fn.encode(), unique.encode(), reducer.encode(), b"map\0me"),
        "JOB_ASSIGN_ALL fields",
    )


@case(
    "reduce/assign/2",
    "A worker using plain GRAB_JOB is assigned a reduce job with JOB_ASSIGN (no reducer field)",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB_BACKGROUND", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{RUN} (GRAB_JOB: JOB_ASSIGN whatever the job)",
)
def plain_grab(s: Session) -> None:
    fn = s.name("fn")
    handle = _submit_reduce(s, s.client(), fn, s.name("r"), s.name("u"), b"data", bg=True)
    job = s.worker(fn).grab(T.GRAB_JOB)
    s.check_equal((job.handle, job["data"]), (handle, b"data"), "JOB_ASSIGN")


@case(
    "reduce/complete/1",
    "The foreground reduce submitter receives the worker's WORK_DATA and WORK_COMPLETE",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB", "GRAB_JOB_ALL", "WORK_DATA", "WORK_COMPLETE"],
    source=f"{_RULE}; gearmand libgearman-server/server.cc _server_queue_work_data",
)
def reduce_result(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = _submit_reduce(s, client, fn, s.name("r"), s.name("u"), b"x")
    worker = s.worker(fn)
    _grab_all(s, worker)
    worker.work(T.WORK_DATA, handle, b"partial")
    worker.work(T.WORK_COMPLETE, handle, b"reduced")
    s.check_equal(client.expect(T.WORK_DATA)["data"], b"partial", "WORK_DATA")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"reduced", "WORK_COMPLETE")


@case(
    "reduce/background/1",
    "The submitter of SUBMIT_REDUCE_JOB_BACKGROUND gets nothing when the job completes",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB_BACKGROUND", "WORK_COMPLETE"],
    source=f"{_RULE} (background: no server client)",
)
def reduce_background(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = _submit_reduce(s, client, fn, s.name("r"), s.name("u"), b"x", bg=True)
    worker = s.worker(fn)
    worker.grab()
    worker.work(T.WORK_COMPLETE, handle, b"done")
    settle(worker)
    client.expect_silence("nothing for a background reduce job")


@case(
    "reduce/coalesce/1",
    "Two SUBMIT_REDUCE_JOB with the same function and unique share one handle",
    level=EXTENSION,
    packets=["SUBMIT_REDUCE_JOB", "JOB_CREATED"],
    source=f"{JOB_ADD} (same unique lookup as SUBMIT_JOB)",
)
def reduce_coalesce(s: Session) -> None:
    fn, reducer, unique = s.name("fn"), s.name("r"), s.name("u")
    h1 = _submit_reduce(s, s.client(), fn, reducer, unique, b"x")
    h2 = _submit_reduce(s, s.client(), fn, reducer, unique, b"x")
    s.check_equal(h2, h1, "second handle")
