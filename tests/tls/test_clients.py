"""Client, Worker, AdminClient, the blocking facade and the CLI against `tls://HOST:PORT`."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
import threading

import pytest
from gearspec.conformance.servers import RunningServer
from gearspec.reference.admin import AdminClient
from gearspec.reference.blocking import BlockingClient
from gearspec.reference.client import Client, NoServerAvailable
from gearspec.reference.worker import Worker, WorkerJob

from gearspec.wire.tls import client_context, server_context
from tests.tls.certs import Pki


def _url(server: RunningServer) -> str:
    return f"tls://{server.host}:{server.port}"


def test_python_api_over_tls(tls_server: RunningServer, pki: Pki) -> None:
    context = client_context(str(pki.ca), str(pki.client()))

    async def scenario() -> tuple[bytes, list[str]]:
        worker = Worker([_url(tls_server)], tls=context)

        @worker.function("tls-api-reverse")
        async def reverse(job: WorkerJob) -> bytes:
            return job.data[::-1]

        running = asyncio.create_task(worker.run())
        try:
            async with Client([_url(tls_server)], tls=context) as client:
                result = await client.run("tls-api-reverse", b"secret", timeout=20)
            async with AdminClient(_url(tls_server), tls=context) as admin:
                names = [row.function for row in await admin.status()]
        finally:
            await worker.stop()
            await running
        return result, names

    result, names = asyncio.run(scenario())
    assert result == b"terces" and "tls-api-reverse" in names


def test_blocking_client_over_tls(tls_server: RunningServer, pki: Pki) -> None:
    with BlockingClient([_url(tls_server)], tls=client_context(str(pki.ca), str(pki.client()))) as client:
        assert client.echo(b"blocking") == b"blocking"


def test_an_untrusted_server_is_refused_with_a_reason(tls_server: RunningServer, pki: Pki) -> None:
    async def attempt() -> None:
        async with Client([_url(tls_server)], tls=client_context(None, str(pki.client()))) as client:
            await client.echo(b"x")

    with pytest.raises(NoServerAvailable) as caught:
        asyncio.run(attempt())
    assert "certificate is not trusted" in str(caught.value)


def _cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gearspec", *argv], capture_output=True, text=True, timeout=60,
                          input=stdin)


def test_cli_submit_work_admin_over_tls(tls_server: RunningServer, pki: Pki) -> None:
    tls = ["-s", _url(tls_server), "--tls-ca", str(pki.ca), "--tls-cert", str(pki.client())]
    worker = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "work", *tls, "-f", "tls-cli-rev", "-c", "1", "--", "rev"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        submitted = _cli("submit", *tls, "-f", "tls-cli-rev", "-t", "30", "hello")
        assert submitted.returncode == 0, submitted.stderr
        assert submitted.stdout.strip() == "olleh"
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    status = _cli("admin", *tls, "status")
    assert status.returncode == 0 and "tls-cli-rev" in status.stdout, status.stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--tls-ca", "{ca}"], "requires a client certificate"),  # none given: the server ends the handshake
    (["--tls-cert", "{client}"], "the server's certificate is not trusted"),
    (["--tls-ca", "{folder}/missing.pem"], "--tls-ca: no such file"),
    (["--tls-key", "{client}"], "--tls-key needs --tls-cert"),
])
def test_cli_tls_problems_are_one_line(tls_server: RunningServer, pki: Pki, flags: list[str], message: str) -> None:
    filled = [f.format(ca=pki.ca, client=pki.client(), folder=pki.folder) for f in flags]
    run = _cli("admin", "-s", _url(tls_server), *filled, "--timeout", "10", "status")
    assert run.returncode != 0 and message in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_a_reset_after_the_handshake_names_the_likely_cause(pki: Pki) -> None:
    # A TLS 1.3 server refusing a missing client certificate may reset the connection instead
    # of letting its alert through (the flake of the case above): the message says the same.
    listener = socket.create_server(("127.0.0.1", 0))
    context = server_context(str(pki.server))

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            tls.recv(1)  # the admin line has arrived: the reset now hits the client's read

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        run = _cli("admin", "-s", f"tls://127.0.0.1:{port}", "--tls-ca", str(pki.ca), "--timeout", "10", "status")
    finally:
        thread.join(10)
        listener.close()
    assert run.returncode != 0 and "requires a client certificate" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_cli_tls_options_need_a_tls_server(pki: Pki) -> None:
    run = _cli("admin", "-s", "127.0.0.1:1", "--tls-ca", str(pki.ca), "status")
    assert run.returncode != 0 and "apply to tls://HOST:PORT servers (-s tls://HOST:PORT)" in run.stderr
