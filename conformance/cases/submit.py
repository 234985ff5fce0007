"""Submitting jobs: every SUBMIT_JOB variant, JOB_CREATED, and what reaches the worker.

Sources: gearmand `PROTOCOL` ("Client Requests": SUBMIT_JOB and its BG/HIGH/LOW variants,
"Client Responses": JOB_CREATED); `libgearman-server/server.cc` `gearman_server_run_command`
(background variants get no server client, so nothing is forwarded to the submitter);
`libgearman-server/job.cc` `gearman_server_job_add`.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import JOB_ADD, PROTOCOL, RUN, settle, start_job, unique_grab
from gearspec.conformance.harness import Session
from gearspec.conformance.registry import MUST, SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PACKETS
from gearspec.spec import PacketType as T

_CLIENT_REQUESTS = f"{PROTOCOL} (Client Requests: SUBMIT_JOB...)"

# The six classic submit packets, in table order: all are core PROTOCOL.
_VARIANTS = [
    row for row in PACKETS if row.submit is not None and row.submit.scheduled is None and not row.submit.reduce
]


def _variant_case(number: int, type: T, background: bool) -> None:
    kind = "background" if background else "foreground"

    @case(
        f"submit/variant/{number}",
        f"{type.name} ({kind}) is answered with JOB_CREATED carrying a non-empty handle, and a worker gets the job",
        level=MUST,
        packets=[type.name, "JOB_CREATED", "GRAB_JOB", "JOB_ASSIGN"],
        source=f"{_CLIENT_REQUESTS}; {RUN}",
    )
    def variant(s: Session) -> None:
        fn = s.name("fn")
        client = s.client()
        handle = client.submit(fn, b"variant-data", s.name("u"), type)
        s.check(len(handle) > 0, "a non-empty handle", "an empty handle")
        worker = s.worker(fn)
        job = worker.grab()
        s.check_equal(job.handle, handle, "assigned handle")
        s.check_equal(job["data"], b"variant-data", "assigned data")

    variant.__name__ = variant.__qualname__ = f"variant_{type.name.lower()}"


for _n, _row in enumerate(_VARIANTS, start=1):
    assert _row.submit is not None
    _variant_case(_n, T(_row.code), _row.submit.background)


@case(
    "submit/assign/1",
    "The worker's assignment carries the submitted function name and the data byte for byte",
    packets=["SUBMIT_JOB", "JOB_CREATED", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (JOB_ASSIGN); {RUN} (GRAB_JOB)",
)
def assign_carries_function_and_data(s: Session) -> None:
    fn = s.name("fn")
    data = bytes(range(256))  # every byte value, NULs included
    _client, _worker, _handle, job = start_job(s, fn, data)
    s.check_equal(job["function"], fn.encode(), "assigned function")
    s.check_equal(job["data"], data, "assigned data")


@case(
    "submit/assign/2",
    "A job with empty data is assigned with empty data",
    packets=["SUBMIT_JOB", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (Binary Packet: the last argument may be empty)",
)
def empty_data(s: Session) -> None:
    fn = s.name("fn")
    _client, _worker, _handle, job = start_job(s, fn, b"")
    s.check_equal(job["data"], b"", "assigned data")


@case(
    "submit/assign/3",
    "A 256 KiB job payload reaches the worker intact",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (Binary Packet: 32-bit size field)",
)
def large_payload(s: Session) -> None:
    fn = s.name("fn")
    data = s.rng.randbytes(256 * 1024)
    _client, _worker, _handle, job = start_job(s, fn, data)
    s.check(job["data"] == data, "the 256 KiB payload unchanged", f"{len(job['data'])} bytes, differing")


@case(
    "submit/foreground/1",
    "A foreground submitter receives WORK_COMPLETE with the worker's result",
    packets=["SUBMIT_JOB", "WORK_COMPLETE"],
    source=f"{PROTOCOL} (Client Responses: WORK_*); {RUN} (WORK_COMPLETE)",
)
def foreground_gets_result(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn, b"in")
    worker.work(T.WORK_COMPLETE, handle, b"result")
    done = client.expect(T.WORK_COMPLETE)
    s.check_equal(done.handle, handle, "WORK_COMPLETE handle")
    s.check_equal(done["data"], b"result", "WORK_COMPLETE data")


def _background_silent_case(number: int, type: T) -> None:
    @case(
        f"submit/background/{number}",
        f"After {type.name} the submitter gets JOB_CREATED and nothing else, even when the job completes",
        packets=[type.name, "JOB_CREATED", "WORK_DATA", "WORK_STATUS", "WORK_COMPLETE"],
        source=f"{_CLIENT_REQUESTS} (BG versions are detached); {RUN} (no server client for BG)",
    )
    def background_silent(s: Session) -> None:
        fn = s.name("fn")
        client, worker, handle, _job = start_job(s, fn, b"bg", s.name("u"), type)
        worker.work(T.WORK_DATA, handle, b"partial")
        worker.work(T.WORK_STATUS, handle, 1, 2)
        worker.work(T.WORK_COMPLETE, handle, b"done")
        settle(worker)
        client.expect_silence("nothing for a background job")

    background_silent.__name__ = background_silent.__qualname__ = f"background_silent_{type.name.lower()}"


_background_silent_case(1, T.SUBMIT_JOB_BG)
_background_silent_case(2, T.SUBMIT_JOB_HIGH_BG)
_background_silent_case(3, T.SUBMIT_JOB_LOW_BG)


@case(
    "submit/background/4",
    "A background job still runs after its submitter disconnects",
    packets=["SUBMIT_JOB_BG", "JOB_CREATED", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_CLIENT_REQUESTS} (BG: the client is detached); {JOB_ADD}",
)
def background_outlives_client(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = client.submit(fn, b"detached", b"", T.SUBMIT_JOB_BG)
    client.close()
    worker = s.worker(fn)
    job = worker.grab()
    s.check_equal(job.handle, handle, "assigned handle")


@case(
    "submit/pipeline/1",
    "Ten SUBMIT_JOB sent in one write get ten JOB_CREATED in order, each with a distinct handle",
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{PROTOCOL} (JOB_CREATED answers each SUBMIT_JOB); {RUN}",
)
def pipelined_submits(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    batch = b"".join(Packet.request(T.SUBMIT_JOB, fn, b"", b"job%d" % i).to_bytes() for i in range(10))
    client.send_raw(batch, "10 x SUBMIT_JOB in one write")
    handles = [client.expect(T.JOB_CREATED).handle for _ in range(10)]
    s.check(len(set(handles)) == 10, "10 distinct handles", f"handles {handles!r}")
    worker = s.worker(fn)
    for i in range(10):
        job = worker.grab()
        s.check_equal(job["data"], b"job%d" % i, f"data of job {i + 1} (FIFO)")
        s.check_equal(job.handle, handles[i], f"handle of job {i + 1}")


@case(
    "submit/pipeline/2",
    "Submits for different functions on one connection each reach a worker of their own function",
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (CAN_DO: a worker is given jobs for its functions); {JOB_ADD}",
)
def functions_kept_apart(s: Session) -> None:
    fn_a, fn_b = s.name("a"), s.name("b")
    client = s.client()
    h_a = client.submit(fn_a, b"for-a")
    h_b = client.submit(fn_b, b"for-b", b"", T.SUBMIT_JOB_BG)
    worker_b = s.worker(fn_b)
    job = worker_b.grab()
    s.check_equal(job.handle, h_b, "worker of b gets b's job")
    worker_b.grab_nothing()
    worker_a = s.worker(fn_a)
    job = worker_a.grab()
    s.check_equal(job.handle, h_a, "worker of a gets a's job")


@case(
    "submit/foreground/2",
    "A foreground job's result goes only to its submitter, not to another client connection",
    packets=["SUBMIT_JOB", "WORK_COMPLETE"],
    source=f"{PROTOCOL} (Client Responses: forwarded to the job's clients); {RUN}",
)
def result_only_to_submitter(s: Session) -> None:
    fn = s.name("fn")
    bystander = s.client()
    bystander.submit(s.name("other"), b"unrelated")
    client, worker, handle, _job = start_job(s, fn, b"x")
    worker.work(T.WORK_COMPLETE, handle, b"mine")
    client.expect(T.WORK_COMPLETE)
    bystander.expect_silence("nothing for another client's job")


@case(
    "submit/unique/1",
    "A 64-byte unique id (gearmand's maximum) is accepted and reaches the worker unchanged",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_CREATED", "JOB_ASSIGN_UNIQ"],
    source=f"{RUN} (SUBMIT_JOB: unique up to GEARMAN_UNIQUE_SIZE 64); {PROTOCOL} (JOB_ASSIGN_UNIQ)",
)
def unique_64(s: Session) -> None:
    fn = s.name("fn")
    unique = (s.name("u") + "-" * 64)[:64].encode()
    handle = s.client().submit(fn, b"x", unique)
    # Only JOB_ASSIGN_UNIQ / JOB_ASSIGN_ALL show the worker the unique: without a grab packet
    # that returns one, "reaches the worker unchanged" cannot be seen (no pass on JOB_ASSIGN).
    job = unique_grab(s, s.worker(fn))
    s.check_equal(job.handle, handle, "assigned handle")
    s.check_equal(job["unique"], unique, "assigned unique")
