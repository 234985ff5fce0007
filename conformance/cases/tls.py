"""TLS: what a job server does at the TLS layer, and (EXTENSION) its access-control list.

These cases run only against a TLS target (`--target tls://HOST:PORT`; conformance/tls.py);
every other case runs over TLS there too. The ACL cases (`tls/acl/*`) need the four
identities of `--tls-acl-identities` and a target configured with the suite's ACL
(docs/conformance.md); without the identities they are unsupported.

Sources: RFC 8446 (TLS 1.3) section 6.1 (closure alerts: "Each party MUST send a
close_notify alert before closing its write side", and a close without one is a truncation
the application must be able to notice) and section 4.4.2 (a server that asked for a client
certificate and got none "MAY at its discretion" abort with certificate_required); python
gear's geard (gear/__init__.py `Server.connectLoop`: client certificates required with
`--ssl-ca`; `Server.handleCanDo`, `Server._handleSubmitJob`, `Server._cancelJob`:
the ACL checks; gear/acl.py `ACL`: deny by default). Python's ssl module cannot start a TLS 1.2
renegotiation, so renegotiation is not tested.
"""

from __future__ import annotations

import ssl

from gearspec.conformance.harness import CaseEnd, Conn, Outcome, Session, describe
from gearspec.conformance.registry import EXTENSION, INFO, MUST, SHOULD, case
from gearspec.conformance.tls import ACL_PREFIX, TlsSettings, client_hello

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RFC_CLOSE = "RFC 8446 section 6.1 (closure alerts)"
_GEARD_TLS = "python gear gear/__init__.py Server.connectLoop (CERT_REQUIRED with --ssl-ca)"
_GEARD_ACL = "python gear gear/acl.py ACL (deny by default); gear/__init__.py Server.handleCanDo, " \
    "Server._handleSubmitJob, Server._cancelJob"


def _tls(s: Session) -> TlsSettings:
    settings = s.target.tls
    if settings is None:
        s.unsupported("not a TLS target (give --target tls://HOST:PORT)")
    return settings


def _mutual(s: Session) -> TlsSettings:
    """The settings of a target the suite shows a client certificate (else the case is unsupported)."""
    settings = _tls(s)
    if not settings.cert:
        s.unsupported("the suite presents no client certificate (--tls-cert), so it does not test the server's demand")
    return settings


def _expect_refused(s: Session, label: str, context: ssl.SSLContext, what: str) -> None:
    how = _refused(s, label, context)
    s.check(how is not None, f"{what} refused", "it was served")
    s.note(f"refused: {how}")
    s.check_alive(what)


def _refused(s: Session, label: str, context: ssl.SSLContext) -> str | None:
    """None when a connection with `context` gets an ECHO answered; else how it was refused."""
    try:
        conn = s.connect(label, tls=context)
    except CaseEnd as end:
        if end.outcome is Outcome.ERROR and "TLS handshake" in end.message:
            return "refused in the handshake"
        raise
    event = _round_trip(s, conn)
    if isinstance(event, Packet):
        return None
    return "the connection ended unanswered" if event is not None else "no answer"


def _round_trip(s: Session, conn: Conn) -> object:
    """The reply to the target's barrier request (ECHO, or GET_STATUS for targets without
    ECHO) as a Packet, skipping ERROR and NOOP; else whatever came instead (None: nothing)."""
    if s.barrier == "status":
        conn.send(T.GET_STATUS, b"gs-tls-probe")
        wanted = T.STATUS_RES
    else:
        conn.send(T.ECHO_REQ, b"gs-tls-probe")
        wanted = T.ECHO_RES
    event = conn.receive(timeout=max(s.wait, 5.0))
    while isinstance(event, Packet) and event.type in (T.ERROR, T.NOOP):  # a refusal answered late
        event = conn.receive(timeout=max(s.wait, 5.0))
    if isinstance(event, Packet) and event.type is not wanted:
        return describe(event)
    return event


def _run_job(s: Session, worker: Conn, client: Conn, handle: bytes, what: str) -> None:
    """`worker` gets the job `handle` and completes it; `client` hears WORK_COMPLETE."""
    s.check_equal(worker.grab(timeout=max(s.wait, 5.0)).handle, handle, what)
    worker.work(T.WORK_COMPLETE, handle, b"done")
    client.expect(T.WORK_COMPLETE)


@case(
    "tls/plaintext/1",
    "Plaintext Gearman sent to a TLS port gets no Gearman reply (the connection ends), and TLS clients are still served",
    level=MUST,
    packets=["ECHO_REQ"],
    source="RFC 8446 section 5 (record layer: a record of an unknown type is a fatal unexpected_message)",
    alternatives={"waits": "the server neither answered nor closed within the wait (it waits for a handshake)"},
    # A refused handshake may stall the server's accept loop: geard sleeps 1 s after one
    # (gear/__init__.py Server._doConnectLoop), and the cases connecting meanwhile time out.
    serial=True,
)
def plaintext_to_tls(s: Session) -> None:
    _tls(s)
    plain = s.connect("plain", tls=False)
    plain.send(T.ECHO_REQ, b"plaintext on a TLS port")
    event = plain.receive(timeout=max(s.wait, 5.0))
    if isinstance(event, Packet):
        s.fail("no Gearman reply to plaintext on a TLS port", describe(event))
    s.check_alive("plaintext sent to the TLS port")
    if event is None:
        s.non_strict("waits")


@case(
    "tls/handshake/1",
    "A TLS handshake cut midway (half a ClientHello, then close) and another one left hanging disturb no one",
    level=MUST,
    packets=["ECHO_REQ"],
    source="RFC 8446 section 4.1.2 (ClientHello); a server serves connections independently",
    serial=True,  # a server that handshakes in its accept loop stalls every other case meanwhile
)
def handshake_cut(s: Session) -> None:
    hello = client_hello(_tls(s).context, s.target.host)
    cut, hanging = s.connect("cut", tls=False), s.connect("hanging", tls=False)
    for conn in (cut, hanging):
        conn.send_raw(hello[: len(hello) // 2], f"the first {len(hello) // 2} of {len(hello)} bytes of a ClientHello")
    cut.close()
    s.check_alive("a handshake cut midway, with another one left hanging")


@case(
    "tls/client_cert/1",
    "Without a client certificate the server serves nothing on the connection",
    level=SHOULD,
    packets=["ECHO_REQ"],
    source=f"RFC 8446 section 4.4.2 (certificate_required); {_GEARD_TLS}",
    # A refused handshake may stall the server's accept loop: geard sleeps 1 s after one
    # (gear/__init__.py Server._doConnectLoop), and the cases connecting meanwhile time out.
    serial=True,
)
def no_client_certificate(s: Session) -> None:
    _expect_refused(s, "nocert", _mutual(s).without_certificate(), "a connection without a client certificate")


@case(
    "tls/client_cert/2",
    "A client certificate from a CA the server does not trust is refused",
    level=SHOULD,
    packets=["ECHO_REQ"],
    source=f"RFC 8446 section 4.4.2.4 (an unacceptable certificate chain: abort); {_GEARD_TLS}",
    # A refused handshake may stall the server's accept loop: geard sleeps 1 s after one
    # (gear/__init__.py Server._doConnectLoop), and the cases connecting meanwhile time out.
    serial=True,
)
def untrusted_client_certificate(s: Session) -> None:
    context = _mutual(s).without_certificate()
    try:
        import trustme
    except ImportError:
        s.unsupported("needs the trustme package (pip install trustme) to make a certificate from an unknown CA")
    trustme.CA().issue_cert("gearspec-intruder.invalid", common_name="gearspec-intruder").configure_cert(context)
    _expect_refused(s, "untrusted", context, "a client certificate from an unknown CA")


@case(
    "tls/close_notify/1",
    "A client's close_notify is answered with the server's own close_notify",
    level=SHOULD,
    packets=["ECHO_REQ"],
    source=f"{_RFC_CLOSE}: each party MUST send a close_notify alert before closing its write side",
    alternatives={"bare-close": "the server closed the TCP connection without a close_notify"},
)
def close_notify_answered(s: Session) -> None:
    _tls(s)
    conn = s.connect("tls")
    conn.sync()
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    sock.settimeout(max(s.wait, 5.0))
    try:
        sock.unwrap()  # sends close_notify, then waits for the server's
    except TimeoutError:
        s.fail("close_notify or a close after the client's close_notify", f"nothing within {max(s.wait, 5.0):g} s")
    except (ssl.SSLError, OSError) as exc:
        s.note(f"unwrap: {getattr(exc, 'reason', None) or exc}")
        s.check_alive("a client's close_notify")
        s.non_strict("bare-close", str(getattr(exc, "reason", None) or exc))
    s.note("the server answered close_notify")
    s.check_alive("a client's close_notify")


@case(
    "tls/close_notify/2",
    "A worker connection cut without close_notify (a truncated session) is a disconnect: its job goes to another worker",
    level=MUST,
    packets=["CAN_DO", "SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_RFC_CLOSE} (a close without close_notify is a truncation); gearmand "
    "libgearman-server/gearmand_con.cc gearman_server_con_free (a worker's jobs are requeued)",
)
def truncated_worker(s: Session) -> None:
    # With ACL identities, as them (the target may have an ACL); else as the suite's certificate.
    acl = bool(_tls(s).identities)
    fn = _acl_name(s) if acl else s.name()

    def worker() -> Conn:
        conn = _as(s, "worker") if acl else s.connect("worker")
        conn.can_do(fn)
        return conn

    first = worker()
    client = _as(s, "client") if acl else s.client()
    handle = client.submit(fn, b"survives a truncated TLS session")
    assign = first.grab()
    s.check_equal(assign.handle, handle, "handle of the assigned job")
    first.close()  # SSLSocket.close sends no close_notify: the TCP connection just ends
    _run_job(s, worker(), client, handle, "handle reassigned after the truncated session")


@case(
    "tls/version/1",
    "The TLS version and cipher the server negotiates with the suite (recorded)",
    level=INFO,
    packets=["ECHO_REQ"],
    source="RFC 8446; RFC 5246",
)
def negotiated(s: Session) -> None:
    _tls(s)
    conn = s.connect("tls")
    conn.sync()
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    cipher = sock.cipher()
    s.info(f"{sock.version()} with {cipher[0] if cipher else '?'}")


# -- the ACL (EXTENSION) ---------------------------------------------------------------------
def _as(s: Session, role: str) -> Conn:
    identities = _tls(s).identities
    if not identities:
        s.unsupported("no ACL identities (give --tls-acl-identities DIR and configure the suite's ACL)")
    return s.connect(role, tls=identities[role])


def _acl_name(s: Session) -> str:
    return f"{ACL_PREFIX}{s.run_token}{s.token()}"


def _still_served(s: Session, conn: Conn, after: str) -> None:
    event = _round_trip(s, conn)
    if not isinstance(event, Packet):
        s.fail(f"the connection still served after {after}", event if isinstance(event, str) else describe(event))


@case(
    "tls/acl/1",
    "A certificate the ACL lets register a function gets its jobs; one it lets submit gets JOB_CREATED",
    level=EXTENSION,
    packets=["CAN_DO", "SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=_GEARD_ACL,
)
def acl_allowed(s: Session) -> None:
    fn = _acl_name(s)
    worker, client = _as(s, "worker"), _as(s, "client")
    worker.can_do(fn)
    worker.sync()
    _run_job(s, worker, client, client.submit(fn, b"allowed"), "handle of the assigned job")


@case(
    "tls/acl/2",
    "A CAN_DO the ACL does not allow registers nothing: that connection is given no job of the function",
    level=EXTENSION,
    packets=["CAN_DO", "SUBMIT_JOB_BG", "GRAB_JOB", "NO_JOB"],
    source=_GEARD_ACL,
)
def acl_register_refused(s: Session) -> None:
    fn = _acl_name(s)
    client = _as(s, "client")
    refused = [_as(s, "client"), _as(s, "nobody")]
    for conn in refused:
        conn.can_do(fn)
    handle = client.submit(fn, b"not for them", type=T.SUBMIT_JOB_BG)
    for conn in refused:
        conn.send(s.grab_type)
        conn.expect(T.NO_JOB, ignore=[T.NOOP, T.ERROR], what="NO_JOB (the CAN_DO was refused)")
    worker = _as(s, "worker")  # the job goes to an allowed worker, and the queue is left clean
    worker.can_do(fn)
    s.check_equal(worker.grab().handle, handle, "handle assigned to the allowed worker")
    worker.work(T.WORK_COMPLETE, handle, b"")
    worker.sync()


@case(
    "tls/acl/3",
    "A CAN_DO the ACL refuses is answered with ERROR, and the connection stays usable",
    level=EXTENSION,
    packets=["CAN_DO", "ERROR"],
    source=_GEARD_ACL,
)
def acl_register_answered(s: Session) -> None:
    conn = _as(s, "nobody")
    conn.can_do(_acl_name(s))
    error = conn.expect(T.ERROR, what="ERROR for a CAN_DO the ACL refuses")
    s.note(f"refusal: {describe(error)}")
    _still_served(s, conn, "a refused CAN_DO")


@case(
    "tls/acl/4",
    "A submit the ACL does not allow is answered with ERROR and creates no job",
    level=EXTENSION,
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "ERROR", "GRAB_JOB", "NO_JOB"],
    source=_GEARD_ACL,
)
def acl_submit_refused(s: Session) -> None:
    fn = _acl_name(s)
    for role in ("worker", "nobody"):
        conn = _as(s, role)
        for kind in (T.SUBMIT_JOB, T.SUBMIT_JOB_BG):
            conn.send(kind, fn, b"", b"refused")
            error = conn.expect(T.ERROR, what=f"ERROR for a {kind.name} the ACL refuses ({role} certificate)")
            s.note(f"{role} {kind.name}: {describe(error)}")
        _still_served(s, conn, "a refused submit")
    worker = _as(s, "worker")
    worker.can_do(fn)
    worker.grab_nothing()


@case(
    "tls/acl/5",
    "'cancel job' from a certificate without the right is refused and the job stays; the admin certificate's works",
    level=EXTENSION,
    admin=["cancel job"],
    packets=["SUBMIT_JOB_BG", "GET_STATUS", "STATUS_RES"],
    source=_GEARD_ACL,
)
def acl_cancel(s: Session) -> None:
    fn = _acl_name(s)
    client = _as(s, "client")
    handle = client.submit(fn, b"cancel me", type=T.SUBMIT_JOB_BG)
    nobody = _as(s, "nobody")
    nobody.send_admin("cancel job", handle.decode("latin-1"))
    reply = nobody.expect_admin("cancel job")
    s.check(reply.is_error, "ERR for a cancel the ACL refuses", "; ".join(reply.lines))
    s.note(f"refusal: {reply.lines[0]}")
    s.check_equal(client.get_status(handle).args[1], b"1", "known flag of the job after the refused cancel")
    admin = _as(s, "admin")
    reply = admin.admin("cancel job", handle.decode("latin-1"))
    s.check(not reply.is_error, "OK for the admin certificate's cancel", "; ".join(reply.lines))
    s.check_equal(client.get_status(handle).args[1], b"0", "known flag of the job after the admin's cancel")


def _admin_reply(s: Session, conn: Conn, command: str, *args: object) -> list[str]:
    """The reply lines to an admin command; unsupported when the target does not know it."""
    conn.send_admin(command, *args)
    first = conn.receive()
    if first is None:
        s.unsupported(f"'{command}' got no reply within {s.wait:g} s")
    conn.unread(first)
    lines = list(conn.expect_admin(command).lines)
    if lines and lines[0].upper().startswith("ERR UNKNOWN_COMMAND"):
        s.unsupported(f"'{command}' answered {lines[0]!r}")
    return lines


@case(
    "tls/acl/6",
    "'create function', 'maxqueue' and 'drop function' need the admin right: ERR for a certificate without it, "
    "OK for the admin certificate; read-only 'show jobs' stays open, and incomplete commands get their usual ERR",
    level=EXTENSION,
    admin=["create function", "maxqueue", "drop function", "show jobs"],
    source="gearspec serve (docs/server.md, TLS and access control: `admin` covers the commands that change a "
    "function; reference/broker.py Broker._admin_refusal)",
)
def acl_admin_commands(s: Session) -> None:
    fn = _acl_name(s)
    nobody, admin = _as(s, "nobody"), _as(s, "admin")
    steps: list[tuple[str, tuple[object, ...]]] = [
        ("create function", (fn,)), ("maxqueue", (fn, 1)), ("maxqueue", (fn,)), ("drop function", (fn,)),
    ]
    for command, args in steps:
        refused = _admin_reply(s, nobody, command, *args)
        s.check(refused[0].startswith("ERR"), f"ERR for '{command}' from a certificate without the admin right",
                " | ".join(refused))
        s.note(f"{command}: {refused[0]}")
        allowed = _admin_reply(s, admin, command, *args)
        s.check(allowed == ["OK"], f"OK for the admin certificate's '{command}'", " | ".join(allowed))
    # Read-only commands stay open to every verified certificate, with arguments too.
    shown = _admin_reply(s, nobody, "show jobs")
    first = shown[0] if shown else "(no rows)"
    s.check(not first.upper().startswith("ERR PERMISSION"), "'show jobs' answered for any certificate", first)
    # Incomplete commands are answered as without an ACL: one ERR line, the connection kept.
    for bare in ("maxqueue", "cancel job"):
        reply = nobody.admin(bare)
        s.check(reply.is_error, f"an ERR line for a bare '{bare}'", " | ".join(reply.lines))
    _still_served(s, nobody, "incomplete admin commands")
