"""The driver contract's arguments are spelled once (contract.client_argv/worker_argv) and read
back by the same module's parser: what the role tests, the interop matrix and run_client
send is what every Python driver reads."""

from __future__ import annotations

import pytest
from gearspec.conformance.drivers.contract import ClientArgs, TlsFiles, WorkerArgs, client_argv, parse, worker_argv


@pytest.mark.parametrize("options", [
    {},
    {"data": "héllo wörld", "unique": "u-1", "background": True, "priority": "high", "timeout": 2.5, "exceptions": True},
    {"data": "", "priority": "low", "timeout": 10.0},
])
def test_client_arguments_read_back_as_given(options: dict[str, object]) -> None:
    parsed = parse(["client", *client_argv("::1", 4730, "fn", **options)])
    assert isinstance(parsed, ClientArgs)
    assert (parsed.host, parsed.port, parsed.function) == ("::1", 4730, "fn")
    assert parsed.data == str(options.get("data", "")).encode()
    assert parsed.unique == options.get("unique")
    assert parsed.background is bool(options.get("background", False))
    assert parsed.priority == options.get("priority", "normal")
    assert parsed.exceptions is bool(options.get("exceptions", False))
    assert parsed.timeout == options.get("timeout", 10.0)  # the parser's default when left out


def test_defaults_are_left_out_so_basic_programs_run() -> None:
    assert client_argv("h", 1, "f") == ["--host", "h", "--port", "1", "--function", "f", "--data", ""]
    assert worker_argv("h", 1, "f") == ["--host", "h", "--port", "1", "--function", "f"]


def test_worker_arguments_read_back_as_given() -> None:
    parsed = parse(["worker", *worker_argv("127.0.0.1", 0, "fn", count=3, timeout=1.5), "--tls-ca", "ca.pem"])
    assert parsed == WorkerArgs("127.0.0.1", 0, "fn", 3, 1.5, TlsFiles("ca.pem"))
