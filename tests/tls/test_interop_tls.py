"""Interop over TLS: python gear's client and worker with certificates against `gearspec serve`,
gearspec's client and both workers against python gear's geard (--ssl-*), and the drivers of
libraries without TLS saying so (exit 5) instead of sending plaintext."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.impls import fill, load_registry
from gearspec.conformance.servers import RunningServer
from gearspec.conformance.tls import suite_acl
from gearspec.reference.client import Client

from gearspec.wire.tls import client_context
from tests.tls.certs import Pki
from tests.tls.helpers import start_registry_server, start_tls_server

EXIT_UNSUPPORTED = 5


def _tls(pki: Pki, role: str = "client") -> list[str]:
    return ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.identities / f"{role}.pem")]  # type: ignore[operator]


def _start(driver: str, role: str, server: RunningServer, function: str, *extra: str) -> subprocess.Popen[str]:
    argv = [*DRIVERS[driver].argv, role, "--host", server.host, "--port", str(server.port), "--function", function]
    return subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _job(server: RunningServer, pki: Pki, client: str, worker: str, function: str,
         client_role: str = "client", worker_role: str = "worker") -> tuple[int, str, str]:
    """Run one job (data "hello") from `client` through `worker`; (client exit, stdout, stderr)."""
    work = _start(worker, "worker", server, function, "--count", "1", "--timeout", "30", *_tls(pki, worker_role))
    try:
        submit = _start(client, "client", server, function, "--data", "hello", "--timeout", "30",
                        *_tls(pki, client_role))
        out, err = submit.communicate(timeout=60)
        return submit.returncode, out, err
    finally:
        if work.poll() is None:
            work.kill()
        work.communicate()


@pytest.fixture(scope="module")
def geard(pki: Pki) -> Iterator[RunningServer]:
    tls = ["--ssl-cert", str(pki.server), "--ssl-key", str(pki.server), "--ssl-ca", str(pki.ca)]
    with start_registry_server("gear", *tls) as running:
        yield running


@pytest.fixture(scope="module")
def acl_server(pki: Pki) -> Iterator[RunningServer]:
    with start_tls_server(pki, acl=suite_acl()) as running:
        yield running


@pytest.mark.parametrize(("client", "worker"), [("gear", "gear"), ("gear", "reference"), ("reference", "gear")])
def test_gear_with_certificates_against_gearspec_serve(tls_server: RunningServer, pki: Pki, client: str,
                                                       worker: str) -> None:
    code, out, err = _job(tls_server, pki, client, worker, f"tls-interop-{client}-{worker}")
    assert (code, out) == (0, "olleh"), err


@pytest.mark.parametrize("exceptions", [False, True])
@pytest.mark.parametrize("worker", ["reference", "gear"])
def test_gearspec_client_and_workers_against_geard_over_tls(geard: RunningServer, pki: Pki, worker: str,
                                                           exceptions: bool) -> None:
    # geard never answers OPTION_REQ (conformance/impls/gear): a client that asks for
    # exceptions gives up on the option after 2 s and reconnects, over TLS again (it once
    # reconnected in plaintext, and geard reset the connection); the job runs through each
    # library's worker over TLS.
    function = f"tls-geard-{worker}-{exceptions}"
    work = _start(worker, "worker", geard, function, "--count", "1", "--timeout", "30", *_tls(pki, "worker"))

    async def submit() -> bytes:
        context = client_context(str(pki.ca), str(pki.identities / "client.pem"))  # type: ignore[operator]
        async with Client([f"tls://{geard.address}"], tls=context, exceptions=exceptions) as client:
            return await client.run(function, b"hello", timeout=30)

    try:
        assert asyncio.run(submit()) == b"olleh"
        assert work.wait(timeout=30) == 0
    finally:
        if work.poll() is None:
            work.kill()
        work.communicate()


def test_gear_client_and_worker_through_rustygeard_over_tls(pki: Pki) -> None:
    # rustygeard built with its "tls" feature, started with the flags of its impl.toml `tls`
    # (--tls, --tls-cert/--tls-key, --tls-ca: client certificates required); gear's client
    # and worker run a job through it with their certificates.
    tls = fill(load_registry()["rustygeard"].tls, cert=pki.server, key=pki.server, ca=pki.ca)
    with start_registry_server("rustygeard", *tls) as server:
        code, out, err = _job(server, pki, "gear", "gear", "tls-interop-rustygeard")
    assert (code, out) == (0, "olleh"), err


def test_gear_under_the_reference_acl(acl_server: RunningServer, pki: Pki) -> None:
    code, out, err = _job(acl_server, pki, "gear", "gear", "gs-acl-interop")
    assert (code, out) == (0, "olleh"), err
    # A client certificate without the submit right: gearspec's client reports the refusal.
    refused = _start("reference", "client", acl_server, "gs-acl-interop", "--data", "x", "--timeout", "10",
                     *_tls(pki, "nobody"))
    _, err = refused.communicate(timeout=60)
    assert refused.returncode != 0 and "PERMISSION_DENIED" in err, err


@pytest.mark.parametrize("driver", ["gearman3", "gearman-cli"])
def test_drivers_without_tls_say_so(tls_server: RunningServer, pki: Pki, driver: str) -> None:
    run = _start(driver, "client", tls_server, "x", "--data", "x", *_tls(pki))
    _, err = run.communicate(timeout=60)
    assert run.returncode == EXIT_UNSUPPORTED and "unsupported: TLS" in err, err


def test_gear_without_a_client_certificate_is_unsupported(tls_server: RunningServer, pki: Pki, tmp_path: Path) -> None:
    run = _start("gear", "client", tls_server, "x", "--tls-ca", str(pki.ca))
    _, err = run.communicate(timeout=60)
    assert run.returncode == EXIT_UNSUPPORTED, err


def test_interop_matrix_over_tls(pki: Pki, tmp_path: Path) -> None:
    report = tmp_path / "matrix.json"
    run = subprocess.run(
        [sys.executable, "-m", "gearspec", "interop", "--servers", "reference,perl,gear,rustygeard",
         "--clients", "reference,gear,php", "--tls-ca", str(pki.ca), "--tls-server-cert", str(pki.server),
         "--tls-cert", str(pki.identities / "client.pem"), "--json", str(report), "-q"],  # type: ignore[operator]
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    grades: dict[tuple[str, str], set[str]] = {}
    for cell in json.loads(report.read_text())["cases"]:
        grades.setdefault((cell["client"], cell["server"]), set()).add(cell["verdict"])
    assert grades[("reference", "reference")] == {"pass"}
    assert grades[("gear", "reference")] == {"pass"}
    assert grades[("php", "reference")] == {"unsupported"}  # the PHP extension's driver has no TLS
    assert all(grades[(client, "perl")] <= {"unsupported", "expected-fail"} for client in ("reference", "gear", "php"))
    # geard and rustygeard serve TLS: gearspec's client reaches geard over TLS (also after
    # giving up on OPTION_REQ), gear's client both.
    assert grades[("reference", "gear")] == {"pass", "expected-fail"}  # expected-fail: exception (no OPTION_RES)
    assert "pass" in grades[("gear", "gear")] and "pass" in grades[("gear", "rustygeard")]
    assert grades[("php", "gear")] | grades[("php", "rustygeard")] <= {"unsupported", "expected-fail"}
