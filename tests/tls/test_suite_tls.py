"""Evidence: `gearspec test --target tls://...` against the reference server and geard over TLS.

The reference server must pass every case over TLS (--strict), the TLS cases and, with the
suite's ACL, the ACL cases; geard over TLS (and with its ACL) must match the gear profile,
which proves each TLS and ACL deviation listed there still happens. A port that does not speak
TLS stops the run with one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gearspec.conformance.impls import fill, load_registry
from gearspec.conformance.registry import all_cases
from gearspec.conformance.servers import RunningServer, start_local
from gearspec.conformance.tls import suite_acl

from tests.tls.certs import Pki
from tests.tls.helpers import SERVE, start_registry_server, start_tls_server


def _suite(server: RunningServer, pki: Pki, tmp_path: Path, *extra: str, code: int = 0) -> dict:
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--target", f"tls://{server.address}", "--tls-ca", str(pki.ca),
         "--tls-cert", str(pki.client()), "-j", "6", "-q", "--json", str(report), *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == code, f"exit {out.returncode}\n{out.stdout[-6000:]}\n{out.stderr[-2000:]}"
    return json.loads(report.read_text())


def _verdicts(data: dict, prefix: str) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in data["cases"] if c["id"].startswith(prefix)}


@pytest.fixture(scope="module")
def acl_server(pki: Pki) -> Iterator[RunningServer]:
    with start_tls_server(pki, acl=suite_acl()) as running:
        yield running


def _geard(pki: Pki, acl: Path | None) -> RunningServer:
    tls = ["--ssl-cert", str(pki.server), "--ssl-key", str(pki.server), "--ssl-ca", str(pki.ca)]
    return start_registry_server("gear", *tls, *(["--acl", str(acl)] if acl else []))


def test_reference_server_passes_every_case_over_tls(tls_server: RunningServer, pki: Pki, tmp_path: Path) -> None:
    data = _suite(tls_server, pki, tmp_path, "--profile", "reference", "--strict")
    assert [c["id"] for c in data["cases"] if c["verdict"] in ("fail", "error", "unexpected-pass")] == []
    assert len(data["cases"]) == len(all_cases())  # every case, the TLS ones included
    tls = _verdicts(data, "tls/")
    assert {v for k, v in tls.items() if not k.startswith(("tls/acl/", "tls/version/"))} == {"pass"}


def test_acl_cases_pass_against_the_reference_server(acl_server: RunningServer, pki: Pki, tmp_path: Path) -> None:
    data = _suite(acl_server, pki, tmp_path, "--tls-acl-identities", str(pki.identities), "--select", "tls",
                  "--strict")
    acl = _verdicts(data, "tls/acl/")
    assert len(acl) >= 5 and set(acl.values()) == {"pass"}, acl


def test_acl_cases_need_their_identities(tls_server: RunningServer, pki: Pki, tmp_path: Path) -> None:
    data = _suite(tls_server, pki, tmp_path, "--select", "tls/acl")
    assert set(_verdicts(data, "tls/acl/").values()) == {"unsupported"}


def test_geard_over_tls_matches_the_gear_profile(pki: Pki, tmp_path: Path) -> None:
    # -j 3: geard handshakes one connection at a time in its accept thread behind a listen
    # backlog of 1, so many parallel connects time out (an accept-loop limit, not a case's).
    with _geard(pki, None) as geard:
        data = _suite(geard, pki, tmp_path, "--profile", "gear", "--wait", "1", "-j", "3")
    assert data["totals"].get("pass", 0) > 100
    assert _verdicts(data, "tls/handshake/")["tls/handshake/1"] == "expected-fail"


def test_geard_acl_matches_the_gear_profile(pki: Pki, tmp_path: Path) -> None:
    acl = tmp_path / "geard-acl.ini"
    acl.write_text(suite_acl("geard"))
    with _geard(pki, acl) as geard:
        data = _suite(geard, pki, tmp_path, "--profile", "gear", "--tls-acl-identities", str(pki.identities),
                      "--select", "tls/acl")
    verdicts = _verdicts(data, "tls/acl/")
    # geard has no 'create function', 'maxqueue' or 'drop function' (no reply): unsupported.
    assert verdicts.pop("tls/acl/6") == "unsupported"
    assert set(verdicts.values()) == {"expected-fail"}


def test_rustygeard_over_tls_matches_its_profile(pki: Pki, tmp_path: Path) -> None:
    # rustygeard's TLS (its cargo feature "tls", the flags in conformance/impls/rustygeard):
    # every case over TLS, graded with the same profile as in plaintext plus its TLS entries.
    tls = fill(load_registry()["rustygeard"].tls, cert=pki.server, key=pki.server, ca=pki.ca)
    with start_registry_server("rustygeard", *tls) as server:
        # -j 1, the profile's: parallel cases would read each other's results (its
        # expectations.toml, [target] jobs); _suite's own -j 6 is overridden here.
        data = _suite(server, pki, tmp_path, "--profile", "rustygeard", "--wait", "1", "-j", "1")
    assert data["totals"].get("pass", 0) > 50
    tls_cases = _verdicts(data, "tls/")
    assert tls_cases and "pass" in tls_cases.values(), tls_cases


def _one_line_refusal(target: str, pki: Pki) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--target", target, "--tls-ca", str(pki.ca),
         "--tls-cert", str(pki.client()), "-q"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and out.stdout == "", out.stdout[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr


def test_a_plaintext_server_behind_tls_url_is_one_line(pki: Pki) -> None:
    with start_local(SERVE, name="reference-plain") as plain:
        assert "does not speak TLS on this port" in _one_line_refusal(f"tls://{plain.address}", pki)


def test_gearmand_with_ssl_flags_but_no_tls_is_one_line(pki: Pki) -> None:
    # Debian's gearmand 1.1.20 lists --ssl yet has no TLS: it closes on a ClientHello.
    ssl = ["--ssl", f"--ssl-certificate={pki.server}", f"--ssl-key={pki.server}", f"--ssl-ca-file={pki.ca}"]
    with start_registry_server("gearmand", *ssl) as gearmand:
        assert "does not speak TLS on this port" in _one_line_refusal(f"tls://{gearmand.address}", pki)


def test_tls_cases_and_options_need_a_tls_target(pki: Pki) -> None:
    with start_local(SERVE, name="reference-plain") as plain:
        for extra, message in ((["--select", "tls"], "the tls cases need a --target tls://HOST:PORT"),
                               (["--tls-ca", str(pki.ca)], "--tls-ca/--tls-cert/--tls-key apply to a tls://HOST:PORT target")):
            out = subprocess.run([sys.executable, "-m", "gearspec", "test", "--target", plain.address, "-q", *extra],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 2 and message in out.stderr, out.stderr
