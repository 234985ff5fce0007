"""Job handles: opaque, unique per job, and the only name a job has on the wire.

Sources: gearmand `PROTOCOL` (JOB_CREATED: "Job handle assigned by server"; JOB_ASSIGN:
"All communication about the job ... should use the handle"); `libgearman-server/job.cc`
`gearman_server_job_add_reducer` (handle = prefix ":" counter, shorter than
GEARMAND_JOB_HANDLE_SIZE 64); `libgearman-server/server.cc` (handles are NUL-terminated
fields, so they cannot contain NUL).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import JOB_ADD, PROTOCOL, start_job
from gearspec.conformance.harness import Session
from gearspec.conformance.registry import INFO, SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (JOB_CREATED, JOB_ASSIGN); {JOB_ADD}"


@case(
    "handles/unique/1",
    "Thirty jobs submitted on one connection get thirty different handles",
    packets=["SUBMIT_JOB_BG", "JOB_CREATED"],
    source=_RULE,
)
def distinct_on_one_connection(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    batch = b"".join(Packet.request(T.SUBMIT_JOB_BG, fn, b"", b"%d" % i).to_bytes() for i in range(30))
    client.send_raw(batch, "30 x SUBMIT_JOB_BG")
    handles = [client.expect(T.JOB_CREATED).handle for _ in range(30)]
    s.check(len(set(handles)) == 30, "30 distinct handles", f"{len(set(handles))} distinct of 30")


@case(
    "handles/unique/2",
    "Jobs submitted on different connections get different handles",
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=_RULE,
)
def distinct_across_connections(s: Session) -> None:
    fn = s.name("fn")
    handles = [s.client().submit(fn, b"x") for _ in range(5)]
    s.check(len(set(handles)) == 5, "5 distinct handles", f"handles {handles!r}")


@case(
    "handles/stable/1",
    "The handle in JOB_ASSIGN and in every forwarded WORK_* packet is the one JOB_CREATED gave",
    packets=["JOB_CREATED", "JOB_ASSIGN", "WORK_STATUS", "WORK_COMPLETE"],
    source=_RULE,
)
def same_handle_everywhere(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, job = start_job(s, fn)
    worker.work(T.WORK_STATUS, job.handle, 1, 2)
    worker.work(T.WORK_COMPLETE, job.handle, b"c")
    s.check_equal(client.expect(T.WORK_STATUS).handle, handle, "WORK_STATUS handle")
    s.check_equal(client.expect(T.WORK_COMPLETE).handle, handle, "WORK_COMPLETE handle")


@case(
    "handles/format/1",
    "Handles are non-empty printable ASCII without spaces, shorter than 64 bytes",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{JOB_ADD} (GEARMAND_JOB_HANDLE_SIZE 64); {PROTOCOL} (Administrative Protocol: handles in text lines)",
)
def printable(s: Session) -> None:
    handle = s.client().submit(s.name("fn"), b"x")
    ok = 0 < len(handle) < 64 and all(0x21 <= b <= 0x7E for b in handle)
    s.check(ok, "1..63 printable, space-free bytes", f"handle {handle!r}")


@case(
    "handles/reuse/1",
    "A finished job's handle is not given to the next job",
    level=SHOULD,
    packets=["SUBMIT_JOB", "WORK_COMPLETE", "JOB_CREATED"],
    source=f"{JOB_ADD} (a counter, never reused while the server runs)",
)
def not_reused(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_COMPLETE, handle, b"")
    client.expect(T.WORK_COMPLETE)
    again = client.submit(fn, b"y")
    s.check(again != handle, "a new handle", f"the old handle {again!r} again")


@case(
    "handles/opaque/1",
    "The shape of the server's handles (recorded; clients must treat them as opaque)",
    level=INFO,
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{PROTOCOL} (JOB_CREATED)",
)
def shape(s: Session) -> None:
    client = s.client()
    fn = s.name("fn")
    h1, h2 = client.submit(fn, b"1"), client.submit(fn, b"2")
    s.info(f"handles {h1.decode('latin-1')!r}, {h2.decode('latin-1')!r}")
