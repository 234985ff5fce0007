"""Shared steps for the job-semantics case modules (submit, coalesce, work, ...).

Not a case module (the leading underscore keeps the registry from importing it as one).
Every helper takes the case's `Session` and fails the case through it, so a case reads as
a short script of what the protocol requires.
"""

from __future__ import annotations

import select
import ssl
import time

from gearspec.conformance.capabilities import PROBED_SUBMITS
from gearspec.conformance.harness import Closed, Conn, Garbled, Received, Session, describe, is_barrier_reply

from gearspec.admin import parse_workers
from gearspec.codec import Packet, RawPacket
from gearspec.spec import PacketType as T
from gearspec.spec import packet_spec

__all__ = [
    "ASSIGN_TYPES",
    "JOB_ADD",
    "JOB_PEEK",
    "JOB_TAKE",
    "PERL_CLIENT",
    "PROTOCOL",
    "QUEUE_WORK_DATA",
    "RUN",
    "close_and_wait_forgotten",
    "first_to_speak",
    "grab_any",
    "probe",
    "read_status",
    "refusal",
    "require_coalesced",
    "routed_variant",
    "settle",
    "sleeping_worker",
    "start_job",
    "status_of",
    "submit_or_unsupported",
    "submit_variant",
    "unique_grab",
]

PROTOCOL = "PROTOCOL"
RUN = "gearmand libgearman-server/server.cc gearman_server_run_command"
JOB_ADD = "gearmand libgearman-server/job.cc gearman_server_job_add_reducer (gearman_server_job_add)"
JOB_TAKE = "gearmand libgearman-server/gearmand_con.cc gearman_server_job_take"
JOB_PEEK = "gearmand libgearman-server/gearmand_con.cc gearman_server_job_peek"
QUEUE_WORK_DATA = "gearmand libgearman-server/server.cc _server_queue_work_data"
PERL_CLIENT = "Perl Gearman::Server lib/Gearman/Server/Client.pm"

ASSIGN_TYPES = (T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL)


def probe(s: Session, conn: Conn, type: T, *args: object) -> list[Received] | None:
    """Send one request and a barrier; what came before the barrier reply, None if closed.

    For requests a target may not know (extensions): an ERROR, silence and a closed
    connection are all answers here, where `conn.sync()` would fail the case on a close.
    """
    conn.send(type, *args)
    token = b"gs-barrier-" + s.token().encode()
    conn.send(s.barrier_request(token))
    before: list[Received] = []
    while True:
        event = conn.receive()
        if event is None:
            s.fail(f"a reply to the barrier after {type.name}", "nothing (the target stopped answering)")
        if isinstance(event, Closed):
            return None
        if isinstance(event, Garbled):
            s.fail(f"a decodable reply to {type.name}", describe(event))
        if is_barrier_reply(event, token):
            return before
        before.append(event)


def refusal(events: list[Received] | None) -> str | None:
    """Why the events mean "this request is not supported", or None when they do not."""
    if events is None:
        return "the target closed the connection"
    if not events:
        return "the target ignored the request"
    first = events[0]
    if isinstance(first, (Packet, RawPacket)) and first.name == "ERROR":
        return f"the target refused it: {describe(first)}"
    return None


def submit_or_unsupported(s: Session, conn: Conn, type: T, *args: object) -> bytes:
    """Send an extension submit packet; its handle, or end unsupported when it is refused."""
    events = probe(s, conn, type, *args)
    reason = refusal(events)
    if reason is not None:
        s.unsupported(f"{type.name}: {reason}")
    assert events is not None
    first = events[0]
    if not (isinstance(first, Packet) and first.type is T.JOB_CREATED):
        s.fail(f"JOB_CREATED for {type.name}", describe(first))
    if len(events) > 1:
        s.fail(f"only JOB_CREATED for {type.name}", "; ".join(describe(e) for e in events))
    return first.handle


def submit_variant(s: Session, conn: Conn, fn: str, data: bytes, unique: str | bytes, type: T) -> bytes:
    """Submit with `type` as a setup step: a refused variant ends the case unsupported.

    The submit/variant cases grade each variant; other cases (priority, sleep...) should
    not fail a second time because a server lacks, say, SUBMIT_JOB_LOW.
    """
    if type is T.SUBMIT_JOB:
        return conn.submit(fn, data, unique, type)
    conn.send(type, fn, unique, data)
    reply = conn.expect(T.JOB_CREATED, T.ERROR, what=f"JOB_CREATED for {type.name}")
    if reply.type is T.ERROR:
        s.unsupported(f"{type.name} refused ({describe(reply)}); see submit/variant/*")
    return reply.handle


def routed_variant(s: Session, wanted: T) -> T:
    """`wanted`, or its sibling of the same priority and the other kind (foreground <->
    background) when the target refused `wanted` in the run's probe.

    For cases about an order rule that both kinds share (FIFO within HIGH holds for
    SUBMIT_JOB_HIGH as for SUBMIT_JOB_HIGH_BG): a server that lacks one kind is still graded
    with the other. Unsupported only when the target refused both.
    """
    if wanted in s.capabilities.submits:
        return wanted
    attrs = packet_spec(wanted).submit
    assert attrs is not None, wanted
    for sibling in PROBED_SUBMITS:
        other = packet_spec(sibling).submit
        if other is not None and other.priority == attrs.priority and sibling in s.capabilities.submits:
            s.note(f"{wanted.name} was refused in the probe; {sibling.name} queues at the same level instead")
            return sibling
    return s.unsupported(
        f"needs {wanted.name} or its {'foreground' if attrs.background else 'background'} sibling; the target refused both"
    )


def unique_grab(s: Session, worker: Conn) -> Packet:
    """Grab one job with a packet whose assignment carries the unique (GRAB_JOB_UNIQ, else
    GRAB_JOB_ALL); ends the case unsupported when the target has none.

    The run's probe may miss one (rustygeard merges the probe's empty-unique jobs, so its
    probe finds one grab packet or none from run to run): without one in its list,
    GRAB_JOB_UNIQ is tried, and only an ERROR, a close or silence means unsupported (Perl:
    ERROR server_error, it serves GRAB_JOB only).
    """
    for grab in (T.GRAB_JOB_UNIQ, T.GRAB_JOB_ALL):
        if grab in s.capabilities.grabs:
            return worker.grab(grab)
    worker.send(T.GRAB_JOB_UNIQ)
    while True:
        event = worker.receive()
        if isinstance(event, Packet) and event.type is T.NOOP:
            continue
        if isinstance(event, Packet) and event.type is T.JOB_ASSIGN_UNIQ:
            return event
        if event is None or isinstance(event, Closed) or getattr(event, "name", "") == "ERROR":
            s.unsupported(
                "no grab packet that carries the unique: GRAB_JOB_UNIQ got "
                + worker.describe_received(event)
                + " (and the run's probe found no GRAB_JOB_ALL)"
            )
        s.fail("JOB_ASSIGN_UNIQ (or an ERROR) for GRAB_JOB_UNIQ", describe(event))


def start_job(
    s: Session, fn: str, data: bytes = b"", unique: str | bytes = b"", type: T = T.SUBMIT_JOB
) -> tuple[Conn, Conn, bytes, Packet]:
    """Submit one job and have a fresh worker take it: (client, worker, handle, assignment)."""
    client = s.client()
    handle = submit_variant(s, client, fn, data, unique, type)
    worker = s.worker(fn)
    job = worker.grab()
    s.check_equal(job.handle, handle, "handle in the assignment")
    return client, worker, handle, job


def grab_any(s: Session, worker: Conn) -> Packet:
    """One grab with the run's grab packet: NO_JOB or an assignment (NOOPs skipped)."""
    worker.send(s.grab_type)
    return worker.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])


def sleeping_worker(s: Session, *functions: str) -> Conn:
    """A new worker of `functions` that found no job and is asleep (PRE_SLEEP) on the server."""
    worker = s.worker(*functions)
    worker.grab_nothing()
    worker.send(T.PRE_SLEEP)
    settle(worker)  # the server has put it to sleep before anything is submitted
    return worker


def settle(*conns: Conn) -> None:
    """Make sure the server has processed everything sent so far on each connection.

    A round trip per connection, in order: what one connection's request made the server
    send to another is queued before the next barrier reply there.
    """
    for conn in conns:
        extra = conn.sync()
        if extra:
            conn.unread(*extra)  # keep them for the case to read


def first_to_speak(s: Session, conns: list[Conn], timeout: float) -> Conn | None:
    """Wait (up to `timeout`, within the case deadline) until one of `conns` receives something.

    Returns that connection, with the event left for its next `receive()`, or None when all
    stayed quiet. For races between alternatives, e.g. "the client gets WORK_FAIL or a
    sleeping worker gets NOOP", without paying the full wait for the one that never comes.
    """
    deadline = min(time.monotonic() + timeout, s.deadline)
    while True:
        for conn in conns:
            if conn.has_event():
                return conn
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        # Over TLS, bytes already decrypted wait inside the socket, where select cannot see them.
        buffered_tls = [
            c.sock for c in conns if not c.closed and isinstance(c.sock, ssl.SSLSocket) and c.sock.pending()
        ]
        readable = buffered_tls or select.select([c.sock for c in conns if not c.closed], [], [], remaining)[0]
        for conn in conns:
            if conn.sock in readable:
                event = conn.receive(timeout=0.05)
                if event is not None:
                    conn.unread(event)
                    return conn


def status_of(s: Session, conn: Conn, handle: bytes) -> tuple[bytes, ...]:
    """GET_STATUS round trip; the STATUS_RES fields after the handle, read leniently.

    A STATUS_RES whose number fields are off-spec (e.g. empty numerator, as Perl
    Gearman::Server sends) is still read here, with a note: the cases that use this check
    known/running, and the number format has its own case (status/unknown/2).
    """
    conn.send(T.GET_STATUS, handle)
    return read_status(s, conn, handle)


def read_status(s: Session, conn: Conn, handle: bytes) -> tuple[bytes, ...]:
    """Read the STATUS_RES for `handle` (see `status_of`), for pipelined GET_STATUS."""
    event = conn.receive()
    if isinstance(event, Packet) and event.type is T.STATUS_RES:
        s.check_equal(event.handle, handle, "STATUS_RES handle")
        return tuple(event.args[1:5])
    if isinstance(event, RawPacket) and event.name == "STATUS_RES":
        fields = event.payload.split(b"\0", 4)
        if len(fields) == 5 and fields[0] == handle:
            s.note(f"off-spec STATUS_RES read leniently: {describe(event)}")
            return tuple(fields[1:])
    return s.fail(f"STATUS_RES for {handle!r}", conn.describe_received(event))


def require_coalesced(s: Session, handles: list[bytes]) -> bytes:
    """The one handle of submits meant to coalesce; unsupported when the server made several.

    Coalescing is optional (PROTOCOL: the server *may* attach); coalesce/unique/1 grades it.
    Cases that only use it as a setup step end as unsupported on servers without it.
    """
    if len(set(handles)) != 1:
        s.unsupported(f"the server does not coalesce (handles {sorted(set(handles))!r}); see coalesce/unique/1")
    return handles[0]


def close_and_wait_forgotten(s: Session, conn: Conn, client_id: str) -> None:
    """Close `conn` (which sent SET_CLIENT_ID `client_id`) and wait until the server dropped it.

    A close is processed asynchronously; the admin `workers` listing (which shows every
    connection with its client id) tells when the server has done so. Bounded polling with
    round trips, no sleeps. Falls back to one round trip when the id is not listed at all, or
    when the target has no admin protocol (a case about jobs must not fail for that).
    """
    if not s.capabilities.admin:
        s.note("no admin 'workers' (the target did not answer 'status'); cannot confirm the close was processed")
        conn.close()
        settle(s.client())
        return
    admin = s.connect("admin")

    def listed() -> bool:
        return any(row.client_id == client_id for row in parse_workers(admin.admin("workers")))

    if not listed():
        s.note(f"client id {client_id!r} not in 'workers'; cannot confirm the close was processed")
        conn.close()
        admin.sync()
        return
    conn.close()
    for _ in range(200):
        if not listed():
            return
    s.fail("the server to drop the closed connection", f"{client_id!r} still listed by 'workers' after 200 polls")
