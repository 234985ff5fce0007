"""`gearspec serve --tls-cert/--tls-key/--tls-ca/--acl` over real TLS sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from gearspec.conformance.servers import RunningServer

from gearspec.codec import Packet
from gearspec.spec import PacketType as T
from gearspec.wire.tls import client_context
from tests.reference_server.conftest import TIMEOUT
from tests.tls.certs import Pki
from tests.tls.helpers import SUITE_ACL, TlsConn, handshake_refused, start_tls_server


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[RunningServer]:
    with start_tls_server(pki) as running:
        yield running


@pytest.fixture(scope="module")
def acl_server(pki: Pki) -> Iterator[RunningServer]:
    with start_tls_server(pki, acl=SUITE_ACL) as running:
        yield running


def test_echo_over_tls_with_a_client_certificate(server: RunningServer, pki: Pki) -> None:
    conn = TlsConn(server, pki, pki.client())
    conn.send(T.ECHO_REQ, b"over tls")
    conn.expect(T.ECHO_RES, b"over tls")


def test_a_job_runs_over_tls(server: RunningServer, pki: Pki) -> None:
    worker, client = TlsConn(server, pki, pki.client("gearspec-worker")), TlsConn(server, pki, pki.client())
    worker.send(T.CAN_DO, b"tls-job")
    client.send(T.SUBMIT_JOB, b"tls-job", b"", b"payload")
    handle = client.expect(T.JOB_CREATED).args[0]
    worker.send(T.GRAB_JOB)
    assert worker.expect(T.JOB_ASSIGN).args == (handle, b"tls-job", b"payload")
    worker.send(T.WORK_COMPLETE, handle, b"done")
    client.expect(T.WORK_COMPLETE, handle, b"done")


@pytest.mark.parametrize("who", ["no certificate", "untrusted certificate"])
def test_client_certificate_required_and_verified(server: RunningServer, pki: Pki, who: str) -> None:
    cert = None if who == "no certificate" else str(pki.untrusted)
    assert handshake_refused(server, client_context(str(pki.ca), cert)) is not None
    assert handshake_refused(server, client_context(str(pki.ca), str(pki.client()))) is None


def test_plaintext_to_the_tls_port_is_closed_and_the_server_goes_on(server: RunningServer, pki: Pki) -> None:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(Packet.request(T.ECHO_REQ, b"plain").to_bytes())
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    assert b"\0RES" not in data  # at most a TLS alert, never a Gearman reply
    assert handshake_refused(server, client_context(str(pki.ca), str(pki.client()))) is None


def test_the_server_certificate_is_checked_by_the_client(server: RunningServer, pki: Pki) -> None:
    # Trusting the system's CAs only: the test CA's server certificate is refused.
    assert handshake_refused(server, client_context(None, str(pki.client()))) == "SSLCertVerificationError"


# -- the ACL ----------------------------------------------------------------------------------
def _error(conn: TlsConn) -> tuple[bytes, bytes]:
    packet = conn.expect(T.ERROR)
    return packet.args[0], packet.args[1]


def test_acl_register(acl_server: RunningServer, pki: Pki) -> None:
    worker = TlsConn(acl_server, pki, pki.client("gearspec-worker"))
    worker.send(T.CAN_DO, b"gs-acl-reverse")
    worker.send(T.CAN_DO_TIMEOUT, b"other", b"5000")
    code, text = _error(worker)
    assert code == b"PERMISSION_DENIED" and b"'gearspec-worker' may not register 'other'" in text
    client = TlsConn(acl_server, pki, pki.client())
    client.send(T.CAN_DO, b"gs-acl-reverse")
    assert _error(client)[0] == b"PERMISSION_DENIED"
    admin = TlsConn(acl_server, pki, pki.client("gearspec-admin"))
    rows = admin.admin("workers")
    registered = [row for row in rows.lines if "gs-acl-reverse" in row]
    assert len(registered) == 1 and "other" not in registered[0]


@pytest.mark.parametrize("packet", [t for t in T if t.name.startswith("SUBMIT_") and t is not T.SUBMIT_JOB_SCHED])
def test_acl_submit(acl_server: RunningServer, pki: Pki, packet: T) -> None:
    def args(function: bytes) -> list[bytes]:
        extra = {T.SUBMIT_JOB_EPOCH: [b"0"], T.SUBMIT_REDUCE_JOB: [b"", b"0"],
                 T.SUBMIT_REDUCE_JOB_BACKGROUND: [b"", b"0"]}.get(packet, [])
        return [function, b"", *extra, b"data"]

    client = TlsConn(acl_server, pki, pki.client())
    client.send(packet, *args(b"gs-acl-allowed"))
    client.expect(T.JOB_CREATED)
    for who in ("gearspec-worker", "gearspec-nobody"):
        other = TlsConn(acl_server, pki, pki.client(who))
        other.send(packet, *args(b"gs-acl-allowed"))
        assert _error(other) == (b"PERMISSION_DENIED", f"certificate '{who}' may not submit jobs to 'gs-acl-allowed'".encode())
    client.send(packet, *args(b"elsewhere"))
    assert _error(client)[0] == b"PERMISSION_DENIED"


def test_acl_admin_commands(acl_server: RunningServer, pki: Pki) -> None:
    client = TlsConn(acl_server, pki, pki.client())
    client.send(T.SUBMIT_JOB_BG, b"gs-acl-cancel", b"", b"x")
    handle = client.expect(T.JOB_CREATED).args[0].decode()
    for command in (f"cancel job {handle}", "maxqueue gs-acl-cancel 5", "create function gs-acl-new",
                    "drop function gs-acl-new", "shutdown"):
        line = client.admin(command).lines[0]
        assert line.startswith("ERR PERMISSION_DENIED certificate+'gearspec-client'+may+not+"), (command, line)
    # read-only commands stay open
    assert any(row.startswith("gs-acl-cancel\t1\t") for row in client.admin("status").lines)
    admin = TlsConn(acl_server, pki, pki.client("gearspec-admin"))
    for command in ("maxqueue gs-acl-cancel 5", f"cancel job {handle}", "create function gs-acl-new",
                    "drop function gs-acl-new"):
        assert admin.admin(command).lines == ("OK",), command
    assert "refused by the ACL: certificate 'gearspec-client' may not shutdown the server" in acl_server.log()


def test_acl_without_tls_ca_and_bad_acl_files_are_refused(tmp_path: object, pki: Pki) -> None:
    serve = [sys.executable, "-m", "gearspec", "serve", "--port", "0", "--queue", "memory"]
    acl = pki.folder / "bad.ini"
    for body, flags, message in (
        ("", ["--acl", str(acl)], "--acl needs --tls-cert"),
        ("", ["--tls-cert", str(pki.server), "--acl", str(acl)], "--acl needs --tls-ca"),
        ("[x]\ninvoke = *\n", ["--tls-cert", str(pki.server), "--tls-ca", str(pki.ca), "--acl", str(acl)],
         "unknown permission 'invoke'"),
        ("[x]\nregister = *\n[x]\n", ["--tls-cert", str(pki.server), "--tls-ca", str(pki.ca), "--acl", str(acl)],
         "section 'x' already exists"),
        ("", ["--tls-cert", str(pki.folder / "missing.pem")], "no such file"),
    ):
        acl.write_text(body)
        run = subprocess.run([*serve, *flags], capture_output=True, text=True, timeout=60)
        assert run.returncode != 0 and message in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_plaintext_on_a_public_address_warns() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "serve", "--host", "0.0.0.0", "--port", "0", "--queue", "memory"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert "listening on 0.0.0.0:" in proc.stdout.readline()
        assert "warning: listening on 0.0.0.0 without TLS" in proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
