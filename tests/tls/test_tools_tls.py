"""`gearspec proxy` and `gearspec fuzz` against a tls:// target."""

from __future__ import annotations

import re
import subprocess
import sys

from gearspec.conformance.launch import RunningServer

from tests.tls.certs import Pki
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
