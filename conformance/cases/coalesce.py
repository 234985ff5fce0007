"""Coalescing: submits with the same (function, unique) attach to one job.

PROTOCOL ("Client Requests") says the server *may* attach a submit to an existing job with
the same unique id, including jobs already running; every implementation we test does, so
the cases are SHOULD (a server that never coalesces is legal, but surprising). Sources:
gearmand `libgearman-server/job.cc` `gearman_server_job_add_reducer` (lookup by function +
unique, empty unique never merges, unique "-" keys on the data), `server.cc`
`_server_queue_work_data` (results go to every attached client).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import JOB_ADD, PROTOCOL, QUEUE_WORK_DATA, require_coalesced, settle
from gearspec.conformance.harness import Session
from gearspec.conformance.registry import EXTENSION, SHOULD, case

from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (Client Requests: coalescing); {JOB_ADD}"


@case(
    "coalesce/unique/1",
    "Two SUBMIT_JOB with the same function and unique, while the first is queued, get the same handle",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=_RULE,
)
def same_unique_same_handle(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    a, b = s.client(), s.client()
    h1 = a.submit(fn, b"x", unique)
    h2 = b.submit(fn, b"x", unique)
    s.check_equal(h2, h1, "second handle")


@case(
    "coalesce/unique/2",
    "Both coalesced foreground submitters receive the single WORK_COMPLETE",
    level=SHOULD,
    packets=["SUBMIT_JOB", "WORK_COMPLETE"],
    source=f"{_RULE}; {QUEUE_WORK_DATA}",
)
def both_get_result(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    a, b = s.client(), s.client()
    h = a.submit(fn, b"x", unique)
    s.check_equal(b.submit(fn, b"x", unique), h, "second handle")
    worker = s.worker(fn)
    job = worker.grab()
    worker.work(T.WORK_COMPLETE, job.handle, b"shared")
    for conn in (a, b):
        done = conn.expect(T.WORK_COMPLETE)
        s.check_equal(done["data"], b"shared", f"{conn.label} WORK_COMPLETE data")


@case(
    "coalesce/unique/3",
    "Coalesced submits make one job: the worker is assigned it once, then gets NO_JOB",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "GRAB_JOB", "JOB_ASSIGN", "NO_JOB"],
    source=_RULE,
)
def run_once(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client = s.client()
    client.submit(fn, b"x", unique)
    s.client().submit(fn, b"x", unique, T.SUBMIT_JOB_BG)
    s.client().submit(fn, b"x", unique)
    worker = s.worker(fn)
    worker.grab()
    worker.grab_nothing()


@case(
    "coalesce/unique/4",
    "A submit with the unique of a job that is already running attaches to it and gets its result",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_CREATED", "WORK_COMPLETE"],
    source=f"{_RULE} ('This includes jobs already in progress')",
)
def attach_to_running(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    a = s.client()
    h = a.submit(fn, b"x", unique)
    worker = s.worker(fn)
    worker.grab()
    b = s.client()
    s.check_equal(b.submit(fn, b"x", unique), h, "handle of the late submit")
    worker.work(T.WORK_COMPLETE, h, b"late-too")
    s.check_equal(b.expect(T.WORK_COMPLETE)["data"], b"late-too", "late submitter's result")
    a.expect(T.WORK_COMPLETE)


@case(
    "coalesce/unique/5",
    "The same unique under two different functions makes two jobs with different handles",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{JOB_ADD} (lookup by function and unique)",
)
def per_function(s: Session) -> None:
    unique = s.name("u")
    client = s.client()
    h1 = client.submit(s.name("a"), b"x", unique)
    h2 = client.submit(s.name("b"), b"x", unique)
    s.check(h1 != h2, "different handles", f"both {h1!r}")


@case(
    "coalesce/unique/6",
    "An empty unique never coalesces: two such submits are two jobs",
    level=SHOULD,
    packets=["SUBMIT_JOB", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (unique 'may be blank'); {JOB_ADD} (unique_size == 0)",
)
def empty_unique_never(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    h1 = client.submit(fn, b"same", b"")
    h2 = client.submit(fn, b"same", b"")
    s.check(h1 != h2, "different handles", f"both {h1!r}")
    worker = s.worker(fn)
    got = {worker.grab().handle, worker.grab().handle}
    s.check_equal(got, {h1, h2}, "assigned handles")


@case(
    "coalesce/unique/7",
    "After a job completes, and after it fails, a new submit with the same unique runs again",
    level=SHOULD,
    packets=["SUBMIT_JOB", "WORK_COMPLETE", "WORK_FAIL", "JOB_ASSIGN"],
    source=f"{_RULE} (only queued or running jobs coalesce)",
)
def not_after_completion(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client = s.client()
    client.submit(fn, b"first", unique)
    worker = s.worker(fn)
    job = worker.grab()
    worker.work(T.WORK_COMPLETE, job.handle, b"")
    client.expect(T.WORK_COMPLETE)
    client.submit(fn, b"second", unique)
    again = worker.grab()
    s.check_equal(again["data"], b"second", "data of the new job")
    worker.work(T.WORK_FAIL, again.handle)
    client.expect(T.WORK_FAIL)
    client.submit(fn, b"third", unique)
    s.check_equal(worker.grab()["data"], b"third", "data of the job submitted after a WORK_FAIL")


@case(
    "coalesce/unique/8",
    "Uniques are compared byte for byte: ids differing only in letter case make two jobs",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{JOB_ADD} (memcmp of the unique)",
)
def case_sensitive(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client = s.client()
    h1 = client.submit(fn, b"x", unique.lower())
    h2 = client.submit(fn, b"x", unique.upper())
    s.check(h1 != h2, "different handles", f"both {h1!r}")


@case(
    "coalesce/unique/9",
    "A foreground submit coalesced onto a queued background job gets the job's result",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "SUBMIT_JOB", "WORK_COMPLETE"],
    source=f"{_RULE} ('non-background jobs will be sent the same result')",
)
def foreground_on_background(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    bg = s.client()
    h = bg.submit(fn, b"x", unique, T.SUBMIT_JOB_BG)
    fg = s.client()
    s.check_equal(fg.submit(fn, b"x", unique), h, "foreground handle")
    worker = s.worker(fn)
    worker.grab()
    worker.work(T.WORK_COMPLETE, h, b"for-fg")
    s.check_equal(fg.expect(T.WORK_COMPLETE)["data"], b"for-fg", "result")
    bg.expect_silence("nothing for the background submitter")


@case(
    "coalesce/unique/10",
    "A coalesced submit does not replace the job's data: the worker sees the first submit's data",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN"],
    source=f"{JOB_ADD} (an existing job is returned unchanged)",
)
def first_data_wins(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    s.client().submit(fn, b"first", unique)
    s.client().submit(fn, b"second", unique)
    job = s.worker(fn).grab()
    s.check_equal(job["data"], b"first", "assigned data")


@case(
    "coalesce/unique/11",
    "When one of two coalesced clients disconnects, the other still gets WORK_COMPLETE",
    level=SHOULD,
    packets=["SUBMIT_JOB", "WORK_COMPLETE"],
    source=f"{_RULE}; gearmand libgearman-server/gearmand_con.cc gearman_server_con_free (client removed from the job)",
)
def survivor_gets_result(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    a, b = s.client(), s.client()
    h = require_coalesced(s, [a.submit(fn, b"x", unique), b.submit(fn, b"x", unique)])
    worker = s.worker(fn)
    worker.grab()
    a.close()
    settle(b)
    worker.work(T.WORK_COMPLETE, h, b"still")
    s.check_equal(b.expect(T.WORK_COMPLETE)["data"], b"still", "survivor's result")
    worker.expect_silence("no error for completing a job one client left")


@case(
    "coalesce/dash/1",
    "Unique '-' means 'the data is the unique': same function and data coalesce, other data does not",
    level=EXTENSION,
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{JOB_ADD} (unique '-' looks the job up by its data); libgearman client docs (unique '-')",
    alternatives={"literal": "'-' treated as an ordinary unique: every '-' submit coalesces"},
)
def dash_unique(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    data = s.name("d").encode()
    h1 = client.submit(fn, data, b"-")
    h2 = client.submit(fn, data, b"-")
    h3 = client.submit(fn, data + b"-other", b"-")
    if h1 != h2 and h2 != h3:
        s.unsupported("unique '-' is not special: equal data does not coalesce")
    s.check_equal(h2, h1, "handle for equal data")
    if h3 == h1:
        s.non_strict("literal", "different data got the same handle")


@case(
    "coalesce/unique/12",
    "Two SUBMIT_JOB_BG with the same function and unique make one queued job with one handle",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "JOB_CREATED", "JOB_ASSIGN", "NO_JOB"],
    source=_RULE,
)
def background_coalesce(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client = s.client()
    h1 = client.submit(fn, b"x", unique, T.SUBMIT_JOB_BG)
    h2 = client.submit(fn, b"x", unique, T.SUBMIT_JOB_BG)
    s.check_equal(h2, h1, "second handle")
    worker = s.worker(fn)
    worker.grab()
    worker.grab_nothing()
