"""`gearspec proxy` and `gearspec fuzz` (and its TLS relay) against a tls:// target."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from gearspec.conformance.servers import RunningServer
from gearspec.fuzz.relay import TlsRelay

from gearspec.spec import PacketType as T
from gearspec.wire.tls import client_context
from tests.reference_server.conftest import Conn, wait_for
from tests.tls.certs import Pki
from tests.tls.helpers import TlsConn
from tests.wire.helpers import proxy_process, run_gearman_job


def _tls(pki: Pki) -> list[str]:
    return ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client())]


def test_proxy_carries_a_plaintext_client_to_a_tls_server(tls_server: RunningServer, pki: Pki) -> None:
    # libgearman's CLI has no working TLS; through the proxy it reaches a TLS-only server.
    with proxy_process(f"tls://{tls_server.address}", *_tls(pki)) as proxy:
        assert run_gearman_job(proxy.host, proxy.port, "tls-proxied", "hello") == "olleh"
        out = proxy.stop()
    assert re.search(r"\d+ connection\(s\), 0 violation\(s\), 0 error\(s\)", out), out


def _fuzz(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gearspec", "fuzz", *argv], capture_output=True, text=True,
                          timeout=120)


def test_fuzz_reaches_a_tls_target(tls_server: RunningServer, pki: Pki) -> None:
    run = _fuzz("--target", f"tls://{tls_server.address}", *_tls(pki), "--budget", "2s",
                "--pid", str(tls_server.process.pid))
    assert run.returncode == 0, run.stdout + run.stderr
    steps = re.search(r"seed 0: (\d+) steps", run.stdout)
    assert steps and int(steps.group(1)) > 5, run.stdout
    assert "findings: crash 0, hang 0, broken 0" in run.stdout
    assert "Traceback" not in run.stderr and "relaying plaintext" in run.stderr


def test_fuzz_model_over_tls(tls_server: RunningServer, pki: Pki) -> None:
    run = _fuzz("--target", f"tls://{tls_server.address}", *_tls(pki), "--budget", "1s", "--model",
                "--profile", "reference", "--examples", "10")
    assert run.returncode == 0 and "agrees with the model" in run.stdout, run.stdout + run.stderr


def test_tls_options_without_a_tls_target_are_refused(pki: Pki) -> None:
    run = _fuzz("--target", "127.0.0.1:1", *_tls(pki))
    assert run.returncode == 2 and "apply to a tls://HOST:PORT target" in run.stderr
    proxy = subprocess.run([sys.executable, "-m", "gearspec", "proxy", "--upstream", "127.0.0.1:1", *_tls(pki)],
                           capture_output=True, text=True, timeout=60)
    assert proxy.returncode == 2 and "apply to a tls://HOST:PORT upstream" in proxy.stderr


def _plain(address: tuple[str, int]) -> Conn:
    return Conn(address)


def test_relay_passes_a_half_close_and_a_close_as_the_fuzzers_mean_them(tls_server: RunningServer, pki: Pki) -> None:
    context = client_context(str(pki.ca), str(pki.client()))
    with TlsRelay(tls_server.host, tls_server.port, context, grace=2.0) as address:
        conn = _plain(address)
        conn.send(T.ECHO_REQ, b"then SHUT_WR")
        conn.sock.shutdown(socket.SHUT_WR)  # the byte fuzzer's half-close: the reply still comes
        conn.expect(T.ECHO_RES, b"then SHUT_WR")
    with TlsRelay(tls_server.host, tls_server.port, context, grace=0.0) as address:
        client = _plain(address)
        client.send(T.SUBMIT_JOB, b"tls-relay-gone", b"", b"x")
        client.expect(T.JOB_CREATED)
        client.close()  # the model's "this client is gone": the server must drop its foreground job
        admin = TlsConn(tls_server, pki, pki.client())

        def dropped() -> bool:
            return not any(row.startswith("tls-relay-gone\t1") for row in admin.admin("status").lines)

        wait_for(dropped, "the foreground job of the closed client to be dropped")


# A client that submits and leaves; a worker then finds nothing (from a model run that failed
# while the relay still held the TLS connection of a closed client open).
_GONE_CLIENT_SCRIPT = """{"format": "gearspec-replay/1", "options": {}, "steps": [
  {"op": "open", "conn": "c0"}, {"op": "open", "conn": "w0"},
  {"op": "send", "conn": "c0", "packet": {"type": "SUBMIT_JOB", "args": ["tls-replay-f0", "u0", "d"]}},
  {"op": "expect", "conn": "c0", "one_of": [{"type": "JOB_CREATED", "args": [{"var": "h1"}]}]},
  {"op": "close", "conn": "c0"},
  {"op": "sync", "conn": "w0", "expect": [], "optional": []},
  {"op": "send", "conn": "w0", "packet": {"type": "CAN_DO", "args": ["tls-replay-f0"]}},
  {"op": "sync", "conn": "w0", "expect": [], "optional": []},
  {"op": "send", "conn": "w0", "packet": {"type": "GRAB_JOB", "args": []}},
  {"op": "expect", "conn": "w0", "one_of": [{"type": "NO_JOB", "args": []}]}
]}
"""


def test_fuzz_replay_over_tls_sees_a_closed_client_go(tls_server: RunningServer, pki: Pki, tmp_path: Path) -> None:
    script = tmp_path / "gone.json"
    script.write_text(_GONE_CLIENT_SCRIPT)
    run = _fuzz("--target", f"tls://{tls_server.address}", *_tls(pki), "--replay", str(script))
    assert run.returncode == 0 and "replay of 10 steps passed" in run.stdout, run.stdout + run.stderr
