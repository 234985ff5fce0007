"""SET_CLIENT_ID: naming a connection for the admin 'workers' listing.

Sources: gearmand `PROTOCOL` (SET_CLIENT_ID: an id for monitoring; no response);
`libgearman-server/server.cc` `gearman_server_run_command` (SET_CLIENT_ID ->
`gearman_server_con_set_id`, truncated to GEARMAN_SERVER_CON_ID_SIZE); `text.cc` (workers:
`FD IP CLIENT_ID : FUNCTIONS`); Perl Gearman::Server `Client.pm` `CMD_set_client_id` (strips
whitespace).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PROTOCOL, RUN, settle
from gearspec.conformance.harness import Conn, Session
from gearspec.conformance.registry import INFO, SHOULD, case

from gearspec.admin import parse_workers
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (SET_CLIENT_ID); {RUN} (SET_CLIENT_ID)"
_WORKERS = f"{PROTOCOL} (Administrative Protocol: workers); gearmand libgearman-server/text.cc"


def _ids_for(s: Session, fn: str) -> list[str]:
    """Client ids of the `workers` rows that list `fn`."""
    reply = s.connect("admin").admin("workers")
    return [row.client_id for row in parse_workers(reply) if fn in row.functions]


@case(
    "client_id/set/1",
    "SET_CLIENT_ID gets no reply",
    packets=["SET_CLIENT_ID"],
    source=f"{_RULE} (no response type exists)",
)
def no_reply(s: Session) -> None:
    conn = s.connect("worker")
    conn.send(T.SET_CLIENT_ID, s.name("id"))
    conn.expect_silence("no reply to SET_CLIENT_ID")


@case(
    "client_id/workers/1",
    "The admin 'workers' listing shows the id a worker set with SET_CLIENT_ID",
    level=SHOULD,
    packets=["SET_CLIENT_ID", "CAN_DO"],
    admin=["workers"],
    source=f"{_RULE}; {_WORKERS}",
)
def listed(s: Session) -> None:
    fn, client_id = s.name("fn"), s.name("id")
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, client_id)
    worker.can_do(fn)
    settle(worker)
    s.check_equal(_ids_for(s, fn), [client_id], "client ids listed for the function")


@case(
    "client_id/workers/2",
    "A second SET_CLIENT_ID replaces the first in the 'workers' listing",
    level=SHOULD,
    packets=["SET_CLIENT_ID", "CAN_DO"],
    admin=["workers"],
    source=f"{_RULE}; {_WORKERS}",
)
def replaced(s: Session) -> None:
    fn, first, second = s.name("fn"), s.name("id1"), s.name("id2")
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, first)
    worker.can_do(fn)
    worker.send(T.SET_CLIENT_ID, second)
    settle(worker)
    s.check_equal(_ids_for(s, fn), [second], "client ids listed for the function")


def _worker_with_id(s: Session, fn: str) -> Conn:
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, s.name("id"))
    worker.can_do(fn)
    return worker


@case(
    "client_id/worker/1",
    "A worker that set a client id is given jobs as usual",
    packets=["SET_CLIENT_ID", "CAN_DO", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=_RULE,
)
def worker_still_works(s: Session) -> None:
    fn = s.name("fn")
    worker = _worker_with_id(s, fn)
    client = s.client()
    handle = client.submit(fn, b"x")
    worker.grab()
    worker.work(T.WORK_COMPLETE, handle, b"ok")
    client.expect(T.WORK_COMPLETE)


@case(
    "client_id/client/1",
    "SET_CLIENT_ID on a client connection is accepted and submits still work",
    packets=["SET_CLIENT_ID", "SUBMIT_JOB", "JOB_CREATED"],
    source=f"{_RULE} (any connection)",
)
def on_client(s: Session) -> None:
    client = s.client()
    client.send(T.SET_CLIENT_ID, s.name("id"))
    handle = client.submit(s.name("fn"), b"x")
    s.check(len(handle) > 0, "a handle", "an empty handle")


@case(
    "client_id/long/1",
    "What the 'workers' listing shows for a 300-byte client id (gearmand truncates)",
    level=INFO,
    packets=["SET_CLIENT_ID"],
    admin=["workers"],
    source=f"{RUN} (gearman_server_con_set_id: GEARMAN_SERVER_CON_ID_SIZE)",
)
def long_id(s: Session) -> None:
    fn = s.name("fn")
    client_id = (s.name("id") + "x" * 300)[:300]
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, client_id)
    worker.can_do(fn)
    settle(worker)
    ids = _ids_for(s, fn)
    if not ids:
        s.info("the worker is not listed")
    shown = ids[0]
    s.info("shown in full" if shown == client_id else f"shown as {len(shown)} bytes")
